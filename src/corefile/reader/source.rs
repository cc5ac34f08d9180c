//! The core file (and the files it maps) read with `pread` through a small
//! block cache.

use super::*;

/// Reads of a mapped file this large are `pread`s instead.
const PREAD_MIN: usize = 2048;

/// A file read with `pread` through a small cache of blocks.
#[derive(Debug)]
pub(super) struct Source {
    pub(super) data: Data,
    pub(super) len: u64,
    pub(super) cache: Mutex<BlockCache>,
    /// The thread dropping a mapped copy's pages from the page cache
    /// ([`Source::done_reading`]), joined when the source is dropped.
    pub(super) uncaching: Background,
    /// The thread fetching what [`Source::prefetch`] was told, stopped
    /// and joined when the source is dropped.
    pub(super) prefetching: Background,
    /// The file again, writable, when its owner gave it up to be emptied
    /// once read ([`Source::adopt_scratch`]): goat's own copy of a process.
    scratch: Mutex<Option<File>>,
    /// Set once a scratch copy is being emptied: every read fails from
    /// then on, rather than answer with the zeros of a punched hole.
    released: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
pub(super) enum Data {
    File(File),
    /// Held in memory (tests, fuzzing).
    Bytes(Vec<u8>),
    /// Mapped (`CoreFile::open_mapped`): goat's own private copy, its
    /// resident pages bounded; the file beside, for large reads.
    Mapped(crate::process::mapped::BoundedMap, File),
}

#[derive(Debug, Default)]
pub(super) struct BlockCache {
    pub(super) blocks: HashMap<u64, Arc<Vec<u8>>>,
    pub(super) order: VecDeque<u64>,
}

impl Source {
    /// `len` bytes of `data`, nothing cached yet.
    fn over(data: Data, len: u64) -> Source {
        Source {
            data,
            len,
            cache: Mutex::new(BlockCache::default()),
            uncaching: Background::default(),
            prefetching: Background::default(),
            scratch: Mutex::new(None),
            released: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `file` (this source's file, opened for writing) is goat's own
    /// scratch copy: [`Source::done_reading`] then frees its blocks, and
    /// nothing reads it after that. Only for a mapped copy.
    pub(super) fn adopt_scratch(&self, file: File) {
        if matches!(self.data, Data::Mapped(..)) {
            *self.scratch.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
        }
    }

    fn is_released(&self) -> bool {
        self.released.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(super) fn open(path: &Path) -> std::io::Result<Source> {
        // Non-blocking, and regular files only: a hostile core can name a
        // FIFO or a device, and reading one must not hang.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let len = meta.len();
        Ok(Source::over(Data::File(file), len))
    }

    /// This core, or the core it holds compressed, unpacked into a private
    /// temporary file (see `unpack.rs`).
    pub(super) fn unpacked(self, path: &Path) -> Result<Source, CoreError> {
        let Data::File(file) = &self.data else {
            return Ok(self);
        };
        let mut head = [0u8; 6];
        let Some(kind) = file
            .read_exact_at(&mut head, 0)
            .ok()
            .and_then(|()| unpack::Compression::sniff(&head))
        else {
            return Ok(self);
        };
        let (file, len) = unpack::unpack(file, self.len, kind).map_err(|e| match e {
            unpack::UnpackError::Corrupt(why) => CoreError::BadCompressed {
                path: path.to_path_buf(),
                format: kind.name(),
                why: format!("corrupt or cut short: {why}"),
            },
            unpack::UnpackError::TooLarge => CoreError::BadCompressed {
                path: path.to_path_buf(),
                format: kind.name(),
                why: "it unpacks to more than any core holds".into(),
            },
            unpack::UnpackError::Temporary { dir, cause } => CoreError::UnpackRoom {
                path: path.to_path_buf(),
                dir,
                cause,
            },
        })?;
        Ok(Source::over(Data::File(file), len))
    }

    /// The same file, read through a memory map.
    pub(super) fn mapped(self) -> std::io::Result<Source> {
        let Data::File(file) = self.data else {
            return Ok(self);
        };
        let map = crate::process::mapped::map_private_copy(&file)?;
        Ok(Source::over(
            Data::Mapped(crate::process::mapped::BoundedMap::new(map), file),
            self.len,
        ))
    }

    pub(super) fn from_bytes(bytes: Vec<u8>) -> Source {
        let len = bytes.len() as u64;
        Source::over(Data::Bytes(bytes), len)
    }

    pub(super) fn pread(&self, buf: &mut [u8], off: u64) -> bool {
        match &self.data {
            Data::File(f) => f.read_exact_at(buf, off).is_ok(),
            // A large read costs a fault per 64 KiB through the map, and
            // its pages then count in goat's RSS until given back; a
            // `pread` copies from the page cache once.
            Data::Mapped(_, f) if buf.len() >= PREAD_MIN => f.read_exact_at(buf, off).is_ok(),
            Data::Mapped(m, _) => copy_from(m.for_read(buf.len()), off, buf),
            Data::Bytes(b) => copy_from(b, off, buf),
        }
    }

    /// The file opened again for direct reads, for goat's own copy only
    /// (see `Memory::read_ahead`).
    pub(super) fn direct(&self) -> Option<File> {
        match &self.data {
            Data::Mapped(_, f) => crate::process::readahead::reopen_direct(f),
            _ => None,
        }
    }

    /// A mapped copy's pages given back while no read comes.
    pub(super) fn pause_reads(&self) {
        if let Data::Mapped(m, _) = &self.data {
            m.give_back();
        }
    }

    /// A mapped copy (goat's own, unlinked) read for the last time: its
    /// pages are given back, and its file's pages dropped from the page
    /// cache on a thread of their own. Reading it back filled the cache
    /// with all of it, and freeing 4.5 GB of cached pages when the copy
    /// is closed kept a million goroutines' `goat why` waiting for most
    /// of a second after its report was made. Dropped now, they go while
    /// the answers are built. A user's core is left as it is cached.
    ///
    /// An adopted scratch copy ([`Source::adopt_scratch`]) has its blocks
    /// freed too, by punching the whole file: the file system took 0.8-1 s
    /// to free a million goroutines' 4.3 GB copy when it was closed (on a
    /// disk mounted with `discard`, it waits for the disk), and that was
    /// the last second of `goat why`. From here on the source reads
    /// nothing: a read fails instead of seeing the hole's zeros.
    pub(super) fn done_reading(&self) {
        let Data::Mapped(m, f) = &self.data else {
            return;
        };
        let scratch = self
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if scratch.is_some() {
            self.released
                .store(true, std::sync::atomic::Ordering::Release);
        }
        m.give_back();
        // What the prefetch has not fetched yet is not wanted either.
        self.prefetching.stop();
        let mut uncaching = self.uncaching.lock();
        if uncaching.is_some() {
            return;
        }
        let (file, len) = match scratch {
            Some(file) => (file, Some(self.len)),
            None => match f.try_clone() {
                Ok(file) => (file, None),
                Err(_) => return,
            },
        };
        let spawned = std::thread::Builder::new()
            .name("goat-uncache".into())
            .spawn(move || match len {
                // A failure (no holes on this file system) leaves the
                // blocks to the close, as before.
                Some(len) => {
                    use nix::fcntl::FallocateFlags as F;
                    if let Ok(len) = i64::try_from(len) {
                        let mode = F::FALLOC_FL_PUNCH_HOLE | F::FALLOC_FL_KEEP_SIZE;
                        let _ = nix::fcntl::fallocate(&file, mode, 0, len);
                    }
                }
                // Advice only: a failure leaves the pages to the close.
                None => {
                    let _ = nix::fcntl::posix_fadvise(
                        &file,
                        0,
                        0,
                        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                    );
                }
            });
        *uncaching = spawned.ok();
    }

    /// A mapped copy's `ranges` of the file (the heap's spans) fetched
    /// into the page cache on a thread of its own, in file order; from
    /// now on a fault on the map reads its page alone. The decode's stacks
    /// come through `readahead.rs`, and an 8 MiB read-around per miss
    /// brought the whole copy (4.5 GB at a million goroutines) back into
    /// the page cache for the waits' few hundred MB. A user's core is left
    /// as it is read.
    pub(super) fn prefetch(&self, mut ranges: Vec<(u64, u64)>) {
        let Data::Mapped(m, f) = &self.data else {
            return;
        };
        let mut prefetching = self.prefetching.lock();
        if prefetching.is_some() {
            return;
        }
        let Ok(file) = f.try_clone() else {
            return;
        };
        m.no_read_around();
        ranges.sort_unstable();
        let stop = self.prefetching.stop.clone();
        let spawned = std::thread::Builder::new()
            .name("goat-prefetch".into())
            .spawn(move || {
                for (start, end) in ranges {
                    let mut at = start;
                    while at < end && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let n = (end - at).min(PREFETCH_PIECE);
                        let (Ok(offset), Ok(len)) = (i64::try_from(at), i64::try_from(n)) else {
                            break;
                        };
                        // Advice only: what it does not fetch is read on a miss.
                        let _ = nix::fcntl::posix_fadvise(
                            &file,
                            offset,
                            len,
                            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
                        );
                        at += n;
                    }
                }
            });
        *prefetching = spawned.ok();
    }

    /// Fills `buf` from byte `off`, or fails (nothing past the end is read).
    pub(super) fn read_at(&self, off: u64, buf: &mut [u8]) -> bool {
        // Every read comes through here (the block cache's too).
        if self.is_released() {
            return false;
        }
        let Some(end) = off.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > self.len {
            return false;
        }
        if buf.len() as u64 >= BLOCK || matches!(self.data, Data::Bytes(_) | Data::Mapped(..)) {
            return self.pread(buf, off);
        }
        let mut done = 0;
        while done < buf.len() {
            let pos = off + done as u64;
            let index = pos / BLOCK;
            let Some(block) = self.block(index) else {
                return false;
            };
            let within = (pos - index * BLOCK) as usize;
            let n = (buf.len() - done).min(block.len().saturating_sub(within));
            if n == 0 {
                return false;
            }
            buf[done..done + n].copy_from_slice(&block[within..within + n]);
            done += n;
        }
        true
    }

    pub(super) fn block(&self, index: u64) -> Option<Arc<Vec<u8>>> {
        let start = index.checked_mul(BLOCK)?;
        let n = BLOCK.min(self.len.checked_sub(start)?) as usize;
        let mut bytes = {
            let mut cache = self.lock_cache();
            if let Some(b) = cache.blocks.get(&index) {
                return Some(b.clone());
            }
            // The block evicted lends its buffer when no reader holds it: a
            // fresh zeroed 64 KiB per block read was 8% of a large dump's
            // work.
            cache.make_room().unwrap_or_default()
        };
        // Read with the cache unlocked: decoding threads each waited for
        // the other's 64 KiB `pread` on every miss, a sixth of `goat why
        // --core`'s time at a million goroutines spent switching between
        // them. Two threads missing the same block both read it; the
        // second keeps the first one's.
        bytes.resize(n, 0);
        if !self.pread(&mut bytes, start) {
            return None;
        }
        let bytes = Arc::new(bytes);
        let mut cache = self.lock_cache();
        if let Some(b) = cache.blocks.get(&index) {
            return Some(b.clone());
        }
        let _ = cache.make_room();
        cache.blocks.insert(index, bytes.clone());
        cache.order.push_back(index);
        Some(bytes)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, BlockCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Bytes one `WILLNEED` asks for: a prefetch stops between pieces when
/// its source is dropped.
const PREFETCH_PIECE: u64 = 4 << 20;

/// A thread of [`Source::done_reading`] or [`Source::prefetch`], told to
/// stop (if it looks) and joined when dropped: goat never leaves one
/// behind half done.
#[derive(Debug, Default)]
pub(super) struct Background {
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Background {
    /// Tells the thread to stop at its next look.
    fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<std::thread::JoinHandle<()>>> {
        self.thread.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
        let thread = self.thread.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = thread.take() {
            let _ = t.join();
        }
    }
}

impl BlockCache {
    /// Evicts the oldest blocks until one more fits; the buffer of the
    /// last one evicted, when no reader holds it.
    fn make_room(&mut self) -> Option<Vec<u8>> {
        let mut spare = None;
        while self.order.len() >= CACHE_BLOCKS {
            spare = self
                .order
                .pop_front()
                .and_then(|old| self.blocks.remove(&old))
                .and_then(|b| Arc::try_unwrap(b).ok());
        }
        spare
    }
}

/// Fills `buf` from `bytes` at `off`, whole or not at all.
fn copy_from(bytes: &[u8], off: u64, buf: &mut [u8]) -> bool {
    let Ok(start) = usize::try_from(off) else {
        return false;
    };
    match bytes.get(start..start.saturating_add(buf.len())) {
        Some(src) if src.len() == buf.len() => {
            buf.copy_from_slice(src);
            true
        }
        _ => false,
    }
}
