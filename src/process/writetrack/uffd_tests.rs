//! What live mode assumes of the kernel, checked on this test process's
//! own memory: a write, and a page given back with `MADV_DONTNEED`, show
//! as written once; a scan protects them again; reads do not count.

use std::os::fd::{FromRawFd, OwnedFd};

use super::super::pagescan::{category, PageMap};
use super::{ioctl, request_size, WriteTracker};
use super::{UFFDIO_API, UFFDIO_REGISTER, UFFDIO_UNREGISTER, UFFDIO_WRITEPROTECT};
use std::io;

const PAGES: usize = 16;
const PAGE: usize = 4096;

/// An anonymous private mapping of `PAGES` pages, every page touched.
struct Region(*mut u8);

impl Region {
    fn new() -> Region {
        // SAFETY: a fresh anonymous mapping; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGES * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let r = Region(p.cast());
        for i in 0..PAGES {
            r.write(i, 1);
        }
        r
    }
    fn addr(&self, page: usize) -> u64 {
        self.0 as u64 + (page * PAGE) as u64
    }
    fn write(&self, page: usize, v: u8) {
        // SAFETY: inside the mapping.
        unsafe { std::ptr::write_volatile(self.0.add(page * PAGE), v) }
    }
    fn read(&self, page: usize) -> u8 {
        // SAFETY: inside the mapping.
        unsafe { std::ptr::read_volatile(self.0.add(page * PAGE)) }
    }
    fn give_back(&self, page: usize) {
        // SAFETY: inside the mapping.
        let r = unsafe { libc::madvise(self.0.add(page * PAGE).cast(), PAGE, libc::MADV_DONTNEED) };
        assert_eq!(r, 0);
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.0.cast(), PAGES * PAGE) };
    }
}

/// This process's own userfaultfd, or `None` where the kernel refuses.
fn own_userfaultfd() -> Option<OwnedFd> {
    let flags = libc::O_CLOEXEC | libc::O_NONBLOCK | 1; // UFFD_USER_MODE_ONLY
                                                        // SAFETY: a plain syscall; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
    // SAFETY: a new descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The written pages of `r`, by index, protecting them again.
fn take(map: &PageMap, r: &Region) -> Vec<usize> {
    let runs = map.take_written(r.addr(0), r.addr(PAGES)).unwrap();
    let mut pages = Vec::new();
    for run in runs {
        assert_ne!(run.categories & category::WRITTEN, 0);
        let first = ((run.start - r.addr(0)) as usize) / PAGE;
        let last = ((run.end - r.addr(0)) as usize) / PAGE;
        pages.extend(first..last);
    }
    pages
}

#[test]
fn writes_and_given_back_pages_show_once_reads_never() {
    // Live mode (the default) needs both; the suite runs it everywhere.
    let fd = own_userfaultfd().expect("userfaultfd (CONFIG_USERFAULTFD)");
    let mut tracker = WriteTracker::new(fd).expect("asynchronous write protection (Linux 6.7+)");
    let r = Region::new();
    tracker.track(r.addr(0), r.addr(PAGES)).unwrap();
    let map = PageMap::open(std::process::id() as i32).unwrap();
    assert_eq!(take(&map, &r), Vec::<usize>::new(), "all protected");
    r.write(3, 7);
    assert_eq!(r.read(5), 1);
    r.give_back(9);
    assert_eq!(take(&map, &r), [3, 9], "a write and a give-back");
    assert_eq!(take(&map, &r), Vec::<usize>::new(), "protected again");
    // Reading the given-back page maps the zero page: not a write.
    assert_eq!(r.read(9), 0);
    assert_eq!(take(&map, &r), Vec::<usize>::new());
    r.write(9, 2);
    assert_eq!(take(&map, &r), [9]);
    assert!(tracker.covers(r.addr(2), r.addr(4)));
    assert!(!tracker.covers(r.addr(0), r.addr(PAGES + 1)));
    tracker.release();
    // Released: writes no longer fault into the tracking, and work.
    r.write(4, 5);
    assert_eq!(r.read(4), 5);
}

/// An argument of another size than the request names is refused before
/// the kernel sees it (it would read or write past the slice).
#[test]
fn an_argument_of_the_wrong_size_is_refused() {
    let fd = OwnedFd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
    let mut short = [0u64; 2];
    let e = ioctl(&fd, UFFDIO_API, &mut short).expect_err("16 bytes for a 24-byte request");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    for req in [
        UFFDIO_API,
        UFFDIO_REGISTER,
        UFFDIO_UNREGISTER,
        UFFDIO_WRITEPROTECT,
    ] {
        assert_eq!(request_size(req) % 8, 0, "{req:#x}");
    }
}

/// The lines of this process's maps that overlap `[start, end)`.
fn maps_over(start: u64, end: u64) -> Vec<(u64, u64)> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (s, e) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(s, 16).ok()?,
                u64::from_str_radix(e, 16).ok()?,
            ))
        })
        .filter(|&(s, e)| s < end && e > start)
        .collect()
}

#[test]
fn protecting_and_releasing_in_pieces_tracks_and_leaves_one_mapping() {
    let fd = own_userfaultfd().expect("userfaultfd (CONFIG_USERFAULTFD)");
    let mut tracker = WriteTracker::new(fd).expect("asynchronous write protection (Linux 6.7+)");
    // Pieces of 3 pages over 16: the last piece is short.
    tracker.set_piece(3 * PAGE as u64);
    let r = Region::new();
    tracker.track(r.addr(0), r.addr(PAGES)).unwrap();
    let map = PageMap::open(std::process::id() as i32).unwrap();
    assert_eq!(take(&map, &r), Vec::<usize>::new(), "every piece protected");
    r.write(0, 2);
    r.write(PAGES - 1, 2);
    assert_eq!(take(&map, &r), [0, PAGES - 1]);
    tracker.release();
    // Unregistered piece by piece, the mapping is whole again (each piece
    // merged with the one before), and writes work.
    let over = maps_over(r.addr(0), r.addr(PAGES));
    assert_eq!(over.len(), 1, "{over:x?}");
    assert!(
        over[0].0 <= r.addr(0) && over[0].1 >= r.addr(PAGES),
        "{over:x?}"
    );
    r.write(7, 9);
    assert_eq!(r.read(7), 9);
}

/// A tracked mapping split since (as Go 1.19's huge-page advice splits
/// its heap) shows up as pieces at new starts: tracking a piece again must
/// not protect it again, which would hide the writes not yet scanned.
#[test]
fn a_piece_of_a_tracked_mapping_keeps_its_written_pages() {
    let fd = own_userfaultfd().expect("userfaultfd (CONFIG_USERFAULTFD)");
    let mut tracker = WriteTracker::new(fd).expect("asynchronous write protection (Linux 6.7+)");
    let r = Region::new();
    tracker.track(r.addr(0), r.addr(8)).unwrap();
    let map = PageMap::open(std::process::id() as i32).unwrap();
    r.write(5, 3);
    // SAFETY: inside the mapping; advice changes no byte.
    let split = unsafe { libc::madvise(r.0.add(4 * PAGE).cast(), 2 * PAGE, libc::MADV_NOHUGEPAGE) };
    assert_eq!(split, 0);
    assert!(maps_over(r.addr(0), r.addr(8)).len() > 1, "split");
    assert_eq!(tracker.track_new(r.addr(4), r.addr(6)).unwrap(), []);
    // Past the tracked part, only what was not tracked is new.
    assert_eq!(
        tracker.track_new(r.addr(6), r.addr(PAGES)).unwrap(),
        [(r.addr(8), r.addr(PAGES))]
    );
    r.write(9, 3);
    assert_eq!(take(&map, &r), [5, 9], "the write before, and after");
    // What `track` of the piece again would have done: the write is gone.
    r.write(5, 4);
    tracker.track(r.addr(4), r.addr(6)).unwrap();
    assert_eq!(take(&map, &r), Vec::<usize>::new(), "hidden by protecting");
    tracker.release();
}

#[test]
fn pieces_cover_the_range_in_order() {
    let p: Vec<_> = super::pieces(0x1000, 0x6000, 0x2000).collect();
    assert_eq!(p, [(0x1000, 0x3000), (0x3000, 0x5000), (0x5000, 0x6000)]);
    assert_eq!(super::pieces(0x1000, 0x1000, 0x2000).count(), 0);
    // A piece of 0 bytes still moves on; one past the end saturates.
    assert_eq!(super::pieces(0, 3, 0).count(), 3);
    assert_eq!(super::pieces(u64::MAX - 1, u64::MAX, 1 << 20).count(), 1);
}
