//! A decode's stack reads fetched ahead of it from goat's own copy of a
//! process on disk, with `O_DIRECT` into a few buffers that are reused.
//!
//! Why not the page cache: reading a million goroutines' copy (4.5 GB)
//! back through it gives every page a new page frame, and on a VM whose
//! host takes back the guest's free memory each frame costs 2.4 µs to
//! 10 µs the first time it is touched; half of `goat why`'s decoding time
//! was loads that touched one. Reads into the same few buffers touch no
//! new frame after the first round, and read only the blocks that hold a
//! stack the decode will unwind (the copy has the whole heap too).
//!
//! Why ahead and in windows: a stack is a few KiB at a random place, and
//! one `O_DIRECT` read per stack, waited for, is a disk round trip each
//! (21 s for a million, on four threads). The decode's order is known
//! before it starts (the capture's), so the ranges are cut into windows
//! of consecutive ones; each window's blocks are sorted, merged across
//! small gaps and read by one of several loaders while the decode works
//! on an earlier window (a million stacks' 1.3 GB lie in 3.8 GB of pages;
//! read so, they come in a few tens of thousands of reads, about 3 s of
//! the disk on four loaders, under the decode's own time).
//!
//! Anything the plan cannot serve (a range it left out, a window not
//! loaded yet or given up, a read that failed) is the caller's to read
//! the usual way: a read here is an answer or nothing.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};
use std::thread::JoinHandle;

/// What an `O_DIRECT` read's offset and length must be multiples of (the
/// largest logical block size of a disk; the buffer, a map, is aligned
/// to a page).
const ALIGN: u64 = 4096;
/// Bytes between two ranges' blocks that are read through rather than
/// read apart: each read is a request the host is notified of, and at a
/// million stacks 64 KiB (a fifth more bytes than 16 KiB, half the reads)
/// took 0.6-0.9 CPU-s less of the decode.
const MERGE_GAP: u64 = 64 << 10;
/// One window's buffer at most (and half of it the ranges' own blocks):
/// larger windows merge more neighbours. Six of them are held only while
/// the stacks are decoded, when at a million goroutines goat is far
/// below its later peak.
const WINDOW_BYTES: usize = 16 << 20;
/// One window's buffer at least. Between the two, a sixty-fourth of the
/// blocks planned: at 100k goroutines six full windows were a quarter of
/// goat's peak.
const WINDOW_BYTES_MIN: usize = 2 << 20;
/// Ranges of one window at most: a window is freed only once the decode
/// has moved two windows on, so this bounds what stays held for nothing.
const WINDOW_RANGES: usize = 4096;
/// Windows held at once: the two the decode may be reading (its threads
/// work on neighbouring chunks) and those loading ahead of it.
const SLOTS: usize = 6;
/// Windows read at once: the disk answers several reads together nearly
/// as fast as one.
const LOADERS: usize = 4;
/// Fewer ranges than this are read as they come: the loaders and their
/// buffers would cost more than they save.
pub const MIN_RANGES: usize = 4096;

/// A range the decode will read: its address and length, and where its
/// bytes start in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub addr: u64,
    pub len: u64,
    pub file_offset: u64,
}

/// A planned range, found by address: its window and where its bytes
/// start in the window's buffer.
#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: u64,
    end: u64,
    window: usize,
    at: usize,
    /// Its place in the plan (the order of the reads).
    pos: usize,
}

/// One read of a window: `len` bytes of the file from `file_offset` into
/// the window's buffer at `at`, of which the first `need` must be there.
#[derive(Debug, Clone, Copy)]
struct Run {
    file_offset: u64,
    len: usize,
    at: usize,
    need: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Loading,
    Ready,
    /// A read failed: its ranges are read the usual way.
    Failed,
    /// The decode moved on: its slot may hold another window.
    Released,
}

/// A window's buffer, mapped on first use and reused: a map is aligned
/// for `O_DIRECT` (to a page), and unmapped when the read-ahead ends, so
/// its pages leave goat's resident set at once (from malloc, a freed
/// 16 MiB block may stay in an arena, adding to goat's later peak).
#[derive(Default)]
struct Slot {
    window: Option<usize>,
    ready: bool,
    bytes: Option<memmap2::MmapMut>,
}

impl Slot {
    fn buffer(&mut self, len: usize) -> Option<&mut [u8]> {
        if self.bytes.is_none() {
            self.bytes = memmap2::MmapMut::map_anon(len).ok();
        }
        self.bytes.as_deref_mut()
    }

    fn held(&self) -> &[u8] {
        self.bytes.as_deref().unwrap_or_default()
    }
}

struct State {
    status: Vec<Status>,
    /// Windows below this are released.
    released: usize,
    /// The next window a loader takes.
    next: usize,
    stop: bool,
}

struct Shared {
    file: File,
    /// Each window's entries in turn; each planned range's entry, by its
    /// place in the plan; and every entry by address, once sorted.
    entries: Vec<Entry>,
    by_pos: Vec<u32>,
    by_addr: OnceLock<Vec<u32>>,
    windows: Vec<Vec<Run>>,
    /// Each window's buffer.
    window_bytes: usize,
    slots: Vec<RwLock<Slot>>,
    state: Mutex<State>,
    changed: Condvar,
    /// The highest window a read has asked for.
    front: AtomicUsize,
}

/// Reads of planned ranges, served from windows loaded ahead of them.
pub struct ReadAhead {
    shared: Arc<Shared>,
    loaders: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead")
            .field("ranges", &self.shared.entries.len())
            .field("windows", &self.shared.windows.len())
            .finish()
    }
}

impl ReadAhead {
    /// Starts loading `planned` (in the order they will be read) from
    /// `file`, opened with `O_DIRECT`. `None` when there is too little to
    /// plan or no loader could be started.
    pub fn start(file: File, planned: &[Planned]) -> Option<ReadAhead> {
        if planned.len() < MIN_RANGES {
            return None;
        }
        let window_bytes = window_bytes(planned);
        let (windows, entries) = plan(planned, window_bytes);
        if windows.is_empty() {
            return None;
        }
        // Each range's entry by its place in the plan, for readers in
        // plan order; by address is sorted on a thread of its own (200k
        // entries took 10 ms, before the decode could start).
        let mut by_pos = vec![u32::MAX; planned.len()];
        for (k, e) in entries.iter().enumerate() {
            if let (Some(slot), Ok(k)) = (by_pos.get_mut(e.pos), u32::try_from(k)) {
                *slot = k;
            }
        }
        let shared = Arc::new(Shared {
            file,
            entries,
            by_pos,
            by_addr: OnceLock::new(),
            slots: (0..SLOTS).map(|_| RwLock::default()).collect(),
            state: Mutex::new(State {
                status: vec![Status::Pending; windows.len()],
                released: 0,
                next: 0,
                stop: false,
            }),
            windows,
            window_bytes,
            changed: Condvar::new(),
            front: AtomicUsize::new(0),
        });
        let sorter = shared.clone();
        let sorted = std::thread::Builder::new()
            .name("goat-ahead-sort".into())
            .spawn(move || sorter.sort_by_addr());
        if sorted.is_err() {
            shared.sort_by_addr();
        }
        let loaders: Vec<_> = (0..LOADERS)
            .filter_map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("goat-ahead-{i}"))
                    .spawn(move || shared.load_windows())
                    .ok()
            })
            .collect();
        if loaders.is_empty() {
            return None;
        }
        Some(ReadAhead { shared, loaders })
    }

    /// Fills `buf` with the bytes at `addr` when a planned range holds
    /// them all and its window is (or is about to be) loaded; `false`
    /// when the caller must read them itself.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let mut hint = usize::MAX;
        self.shared.read(addr, buf, &mut hint)
    }

    /// [`Self::read`] for a reader that keeps `hint` between its reads:
    /// the place in the plan of its last, near which its next is looked
    /// for first (a binary search over a million entries per read was 6%
    /// of decoding).
    pub fn read_near(&self, addr: u64, buf: &mut [u8], hint: &mut usize) -> bool {
        self.shared.read(addr, buf, hint)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        for t in self.loaders.drain(..) {
            let _ = t.join();
        }
    }
}

/// The buffer of a window of `planned`: a sixty-fourth of their blocks,
/// within [`WINDOW_BYTES_MIN`, `WINDOW_BYTES`].
fn window_bytes(planned: &[Planned]) -> usize {
    let blocks = planned
        .iter()
        .filter_map(aligned)
        .fold(0u64, |sum, (lo, hi)| sum.saturating_add(hi - lo));
    let share = usize::try_from(blocks / 64).unwrap_or(usize::MAX);
    share.clamp(WINDOW_BYTES_MIN, WINDOW_BYTES) / ALIGN as usize * ALIGN as usize
}

/// `planned` cut into windows of consecutive ranges, each window's blocks
/// merged into runs that fill at most `window_bytes`; and every range's
/// entry.
fn plan(planned: &[Planned], window_bytes: usize) -> (Vec<Vec<Run>>, Vec<Entry>) {
    let mut windows = Vec::new();
    let mut entries = Vec::with_capacity(planned.len());
    let mut members: Vec<(usize, Planned)> = Vec::new();
    let mut blocks = 0usize;
    for (pos, p) in planned.iter().enumerate() {
        let Some(span) = aligned(p).map(|(lo, hi)| (hi - lo) as usize) else {
            continue;
        };
        // A range of half a window or more is read the usual way.
        if span > window_bytes / 2 {
            continue;
        }
        if members.len() >= WINDOW_RANGES || blocks + span > window_bytes / 2 {
            windows.push(window(&members, windows.len(), window_bytes, &mut entries));
            members.clear();
            blocks = 0;
        }
        members.push((pos, *p));
        blocks += span;
    }
    if !members.is_empty() {
        windows.push(window(&members, windows.len(), window_bytes, &mut entries));
    }
    (windows, entries)
}

/// The file's aligned blocks holding `p`: `[lo, hi)`.
fn aligned(p: &Planned) -> Option<(u64, u64)> {
    let end = p.file_offset.checked_add(p.len)?;
    let hi = end.checked_next_multiple_of(ALIGN)?;
    (p.len > 0).then_some((p.file_offset / ALIGN * ALIGN, hi))
}

/// The runs that read `members` (their aligned blocks: at most half a
/// window, and the gaps read through at most the other half), and their
/// entries.
fn window(
    members: &[(usize, Planned)],
    index: usize,
    window_bytes: usize,
    entries: &mut Vec<Entry>,
) -> Vec<Run> {
    let mut sorted: Vec<&(usize, Planned)> = members.iter().collect();
    sorted.sort_unstable_by_key(|(pos, p)| (p.file_offset, *pos));
    let mut runs: Vec<Run> = Vec::new();
    let (mut used, mut gaps) = (0usize, 0usize);
    for (pos, p) in sorted {
        let Some((lo, hi)) = aligned(p) else {
            continue;
        };
        let end = p.file_offset + p.len;
        let last = runs.last_mut().filter(|run| {
            let run_end = run.file_offset + run.len as u64;
            let gap = lo.saturating_sub(run_end) as usize;
            lo <= run_end.saturating_add(MERGE_GAP) && gaps + gap <= window_bytes / 2
        });
        let at = match last {
            Some(run) => {
                let run_end = run.file_offset + run.len as u64;
                gaps += lo.saturating_sub(run_end) as usize;
                let grow = hi.saturating_sub(run_end) as usize;
                run.len += grow;
                used += grow;
                run.need = run.need.max((end - run.file_offset) as usize);
                run.at + (p.file_offset - run.file_offset) as usize
            }
            None => {
                let run = Run {
                    file_offset: lo,
                    len: (hi - lo) as usize,
                    at: used,
                    need: (end - lo) as usize,
                };
                runs.push(run);
                used += run.len;
                run.at + (p.file_offset - lo) as usize
            }
        };
        entries.push(Entry {
            addr: p.addr,
            end: p.addr.saturating_add(p.len),
            window: index,
            at,
            pos: *pos,
        });
    }
    runs
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sorts the entries by address, for [`Self::entry`].
    fn sort_by_addr(&self) {
        let mut v: Vec<u32> = (0..self.entries.len())
            .filter_map(|k| u32::try_from(k).ok())
            .collect();
        v.sort_unstable_by_key(|&k| self.entries[k as usize].addr);
        let _ = self.by_addr.set(v);
    }

    /// The entry holding `[addr, end)`: one of the three planned after
    /// `hint`, else by address; `hint` moves to it. A reader with no
    /// hint (`usize::MAX`) waits for the entries to be sorted; one with
    /// a hint that missed does not, and reads the usual way meanwhile.
    fn entry(&self, addr: u64, end: u64, hint: &mut usize) -> Option<&Entry> {
        let holds = |e: &&Entry| e.addr <= addr && end <= e.end;
        let near = (*hint..hint.saturating_add(3))
            .filter_map(|q| self.by_pos.get(q))
            .filter_map(|&k| self.entries.get(k as usize))
            .find(holds);
        let e = match near {
            Some(e) => e,
            None => {
                let by_addr = match *hint {
                    usize::MAX => self.by_addr.wait(),
                    _ => self.by_addr.get()?,
                };
                let i = by_addr.partition_point(|&k| self.entries[k as usize].addr <= addr);
                i.checked_sub(1)
                    .and_then(|i| by_addr.get(i))
                    .and_then(|&k| self.entries.get(k as usize))
                    .filter(holds)?
            }
        };
        *hint = e.pos;
        Some(e)
    }

    fn read(&self, addr: u64, buf: &mut [u8], hint: &mut usize) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        let Some(e) = self.entry(addr, end, hint) else {
            return false;
        };
        let at = e.at + (addr - e.addr) as usize;
        self.moved_to(e.window);
        loop {
            if self.copy(e.window, at, buf) {
                return true;
            }
            let mut st = self.lock();
            loop {
                match st.status.get(e.window) {
                    Some(Status::Ready) => break,
                    Some(Status::Pending | Status::Loading)
                        if !st.stop && e.window < st.released + SLOTS =>
                    {
                        st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                    // Released, failed, or not to be loaded before the
                    // decode frees a slot it is still reading.
                    _ => return false,
                }
            }
        }
    }

    /// Copies from window `w`'s slot when it holds `w` loaded.
    fn copy(&self, w: usize, at: usize, buf: &mut [u8]) -> bool {
        let slot = self.slots[w % SLOTS]
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let held = match (
            slot.window == Some(w) && slot.ready,
            at.checked_add(buf.len()),
        ) {
            (true, Some(end)) => slot.held().get(at..end),
            _ => None,
        };
        match held {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }

    /// The decode reads window `w`: windows two before it are done with.
    fn moved_to(&self, w: usize) {
        if self.front.fetch_max(w, Ordering::Relaxed) >= w {
            return;
        }
        let mut st = self.lock();
        let upto = w.saturating_sub(1);
        if upto > st.released {
            let from = st.released;
            for s in st.status.iter_mut().take(upto).skip(from) {
                *s = Status::Released;
            }
            st.released = upto;
            drop(st);
            self.changed.notify_all();
        }
    }

    /// A loader: takes the next window whose slot is free, loads it, and
    /// so on until every window is taken or the reads end.
    fn load_windows(&self) {
        loop {
            let w = {
                let mut st = self.lock();
                loop {
                    if st.stop || st.next >= self.windows.len() {
                        return;
                    }
                    if st.next < st.released + SLOTS {
                        break;
                    }
                    st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                let w = st.next;
                st.next += 1;
                if st.status[w] != Status::Pending {
                    continue;
                }
                st.status[w] = Status::Loading;
                w
            };
            let loaded = {
                let mut slot = self.slots[w % SLOTS]
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                slot.window = Some(w);
                slot.ready = false;
                let ok = match slot.buffer(self.window_bytes) {
                    Some(buf) => self.load(&self.windows[w], buf),
                    None => false,
                };
                slot.ready = ok;
                ok
            };
            let mut st = self.lock();
            if st.status[w] == Status::Loading {
                st.status[w] = if loaded {
                    Status::Ready
                } else {
                    Status::Failed
                };
            }
            drop(st);
            self.changed.notify_all();
        }
    }

    /// Reads a window's runs into `buf`.
    fn load(&self, runs: &[Run], buf: &mut [u8]) -> bool {
        runs.iter().all(|run| {
            let Some(into) = buf.get_mut(run.at..run.at + run.len) else {
                return false;
            };
            read_direct(&self.file, into, run.file_offset) >= run.need
        })
    }
}

/// Bytes read into `buf` from `offset` until it is full, the file ends or
/// a read fails.
fn read_direct(file: &File, buf: &mut [u8], offset: u64) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    done
}

/// `file`, opened again with `O_DIRECT` (through `/proc/self/fd`, which
/// reaches an unlinked file too); `None` where its file system has no
/// direct I/O (a tmpfs).
pub fn reopen_direct(file: &File) -> Option<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
}

#[cfg(test)]
mod tests;
