//! A dump written to a regular file with `O_DIRECT` (`goat stacks PID >
//! FILE`), from a few reused page-aligned buffers, on a thread of its own
//! so that the disk works while the dump is decoded.
//!
//! Why: through the page cache, a million goroutines' 4 GB of text cost
//! as much kernel time again as decoding it (see `direct_io.rs`), and
//! `goat stacks` to a file took 2.4 times its time to `/dev/null`. It also
//! spares the box being debugged: gigabytes of dirty pages make every
//! writer on the machine wait its turn for the disk, the service under
//! goat among them.
//!
//! The descriptor stays the caller's: writes go where its offset stood,
//! the bytes before the first page boundary and after the last whole
//! page go through it as usual, and its offset is left after the last
//! byte, as a plain `write` would have left it. A descriptor opened for
//! appending, one on a file system without a disk (tmpfs), or one whose
//! file system refuses direct writes is written as usual.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

use crate::direct_io::{next_buffer, reopen_direct, AlignedBuf, ALIGN};

/// Bytes a buffer holds before it goes to the disk in one write.
const BUFFER_BYTES: usize = 2 << 20;
/// Buffers in all: one filling, one or two being written.
const BUFFERS: usize = 3;

/// A full buffer, its bytes in use and the file offset they go to.
type Full = (AlignedBuf, usize, u64);

/// An `io::Write` over a regular file's descriptor that writes whole
/// pages with `O_DIRECT`; [`DirectFile::finish`] writes the rest.
#[derive(Debug)]
pub struct DirectFile {
    /// The caller's descriptor (a duplicate: the same offset).
    plain: Arc<File>,
    /// Where the next byte goes.
    at: u64,
    filling: AlignedBuf,
    filled: usize,
    spare: Vec<AlignedBuf>,
    made: usize,
    to_writer: Option<Sender<Full>>,
    given_back: Receiver<AlignedBuf>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// The writer's first error; it writes nothing after one.
    failed: Arc<Mutex<Option<io::Error>>>,
    /// Whether the file system refused a direct write (and the pages went
    /// through the page cache from then on).
    refused: Arc<AtomicBool>,
}

impl DirectFile {
    /// `fd` as a `DirectFile`, when it is a regular file not opened for
    /// appending on a file system with a disk; else `None`, and the caller
    /// writes to it as usual.
    pub fn over(fd: impl AsFd) -> Option<DirectFile> {
        let plain = File::from(fd.as_fd().try_clone_to_owned().ok()?);
        if !plain.metadata().ok()?.file_type().is_file() {
            return None;
        }
        let flags = nix::fcntl::fcntl(&plain, nix::fcntl::FcntlArg::F_GETFL).ok()?;
        if flags & libc::O_APPEND != 0 {
            return None;
        }
        let direct = reopen_direct(&plain)?;
        let at = (&plain).stream_position().ok()?;
        let plain = Arc::new(plain);
        let (to_writer, full) = crossbeam_channel::bounded::<Full>(BUFFERS - 1);
        let (give_back, given_back) = crossbeam_channel::unbounded();
        let failed = Arc::new(Mutex::new(None));
        let refused = Arc::new(AtomicBool::new(false));
        let writer = {
            let (plain, failed, refused) = (plain.clone(), failed.clone(), refused.clone());
            std::thread::Builder::new()
                .name("goat-out".into())
                .spawn(move || {
                    let ends = Ends {
                        give_back,
                        failed: &failed,
                        refused: &refused,
                    };
                    write_buffers(&direct, &plain, &full, &ends)
                })
                .ok()?
        };
        Some(DirectFile {
            plain,
            at,
            filling: AlignedBuf::default(),
            filled: 0,
            spare: Vec::new(),
            made: 0,
            to_writer: Some(to_writer),
            given_back,
            writer: Some(writer),
            failed,
            refused,
        })
    }

    /// Writes what is left and waits for every write; leaves the
    /// descriptor's offset after the last byte. Whether the pages went
    /// directly (else the file system refused, and they went through the
    /// page cache).
    pub fn finish(mut self) -> io::Result<bool> {
        self.end()?;
        Ok(!self.refused.load(Ordering::Relaxed))
    }

    fn end(&mut self) -> io::Result<()> {
        let whole = self.filled / ALIGN * ALIGN;
        let start = self.at - self.filled as u64;
        // Less than a page, which cannot go directly.
        let tail = self
            .filling
            .bytes()
            .get(whole..self.filled)
            .unwrap_or(&[])
            .to_vec();
        self.filled = 0;
        if whole > 0 {
            let buf = std::mem::take(&mut self.filling);
            self.send((buf, whole, start))?;
        }
        // Every whole page written before the tail and the offset: the
        // file's end is then this writer's last, whatever the order.
        self.to_writer = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        self.take_failure()?;
        self.plain.write_all_at(&tail, start + whole as u64)?;
        (&*self.plain).seek(SeekFrom::Start(self.at))?;
        Ok(())
    }

    fn take_failure(&self) -> io::Result<()> {
        match self.failed.lock().map(|mut f| f.take()) {
            Ok(Some(e)) => Err(e),
            Ok(None) => Ok(()),
            Err(_) => Err(io::Error::other("the dump's writer thread failed")),
        }
    }

    fn send(&mut self, full: Full) -> io::Result<()> {
        self.take_failure()?;
        let sent = self.to_writer.as_ref().map(|w| w.send(full).is_ok());
        match sent {
            Some(true) => Ok(()),
            // The writer stopped at an error: that error.
            _ => self
                .take_failure()
                .and(Err(io::Error::other("the dump's writer thread ended"))),
        }
    }

    /// A buffer of [`BUFFER_BYTES`] to fill ([`next_buffer`]).
    fn next_buffer(&mut self) -> io::Result<AlignedBuf> {
        let mut b = next_buffer(&mut self.spare, &mut self.made, BUFFERS, &self.given_back)
            .ok_or_else(|| io::Error::other("the dump's writer thread ended"))?;
        b.ensure(BUFFER_BYTES);
        Ok(b)
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // Up to the first page boundary: through the caller's descriptor.
        let off_page = self.at as usize % ALIGN;
        if self.filled == 0 && off_page != 0 {
            let n = data.len().min(ALIGN - off_page);
            self.plain.write_all_at(&data[..n], self.at)?;
            self.at += n as u64;
            return Ok(n);
        }
        if self.filling.bytes().is_empty() {
            self.filling = self.next_buffer()?;
        }
        let room = self.filling.bytes().len() - self.filled;
        let n = data.len().min(room);
        self.filling.bytes_mut()[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        self.at += n as u64;
        if self.filled == self.filling.bytes().len() {
            let full = std::mem::take(&mut self.filling);
            let start = self.at - self.filled as u64;
            let n_full = self.filled;
            self.filled = 0;
            self.send((full, n_full, start))?;
            self.spare.extend(self.given_back.try_iter());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // What is written stays in goat's buffers until `finish`: a page
        // written in part cannot go directly.
        self.take_failure()
    }
}

impl Drop for DirectFile {
    /// Ended without `finish` (an error on the way): what was written
    /// still goes out, as a plain writer's would have.
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.end();
        }
    }
}

/// Where the writer thread gives buffers back and says how it went.
struct Ends<'a> {
    give_back: Sender<AlignedBuf>,
    failed: &'a Mutex<Option<io::Error>>,
    refused: &'a AtomicBool,
}

/// The writer thread: each full buffer's pages at its offset, directly;
/// through `plain` from the first direct write the file system refuses
/// (it took the flag but has no direct I/O for this file) on.
fn write_buffers(direct: &File, plain: &File, full: &Receiver<Full>, ends: &Ends<'_>) {
    for (buf, n, at) in full {
        let bytes = buf.bytes().get(..n).unwrap_or(&[]);
        let refused = ends.refused.load(Ordering::Relaxed);
        let mut written = match refused {
            true => plain.write_all_at(bytes, at),
            false => direct.write_all_at(bytes, at),
        };
        if matches!(&written, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) && !refused {
            ends.refused.store(true, Ordering::Relaxed);
            written = plain.write_all_at(bytes, at);
        }
        if let Err(e) = written {
            if let Ok(mut f) = ends.failed.lock() {
                f.get_or_insert(e);
            }
            return;
        }
        let _ = ends.give_back.send(buf);
    }
}
