//! `PAGEMAP_SCAN` (Linux 6.7+): which pages of a range of another
//! process are written, present, the shared zero page… answered by the
//! kernel as runs of pages with equal categories, optionally
//! write-protecting again, atomically, the written pages it reports.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Page categories (`PAGE_IS_*` in `linux/fs.h`).
pub mod category {
    /// Not write-protected by a userfaultfd since the last protect.
    pub const WRITTEN: u64 = 1 << 1;
    pub const FILE: u64 = 1 << 2;
    pub const PRESENT: u64 = 1 << 3;
    pub const SWAPPED: u64 = 1 << 4;
    /// Maps the shared zero page.
    pub const PFNZERO: u64 = 1 << 5;
}

/// Write-protect the written pages reported, in the same page-table walk.
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
/// Fail unless the range is registered for asynchronous write protection.
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
/// `_IOWR('f', 16, struct pm_scan_arg)`.
const PAGEMAP_SCAN: u64 = (3 << 30) | ((size_of::<ScanArg>() as u64) << 16) | (0x66 << 8) | 16;
/// Runs asked for per call.
const BATCH: usize = 4096;

#[repr(C)]
#[derive(Default)]
struct ScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// A run of pages `[start, end)` with the same `categories`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Run {
    pub start: u64,
    pub end: u64,
    pub categories: u64,
}

/// What to ask: pages whose categories, after flipping `inverted`, have
/// all of `all` and (if non-zero) one of `any`; report `report` of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query {
    pub inverted: u64,
    pub all: u64,
    pub any: u64,
    pub report: u64,
}

/// `/proc/PID/pagemap`, open for scans.
pub struct PageMap {
    file: File,
}

impl PageMap {
    pub fn open(pid: i32) -> io::Result<PageMap> {
        Ok(PageMap {
            file: crate::process::procfs::open_pagemap(pid)?,
        })
    }

    /// The runs of `[start, end)` matching `q`.
    pub fn scan(&self, start: u64, end: u64, q: Query) -> io::Result<Vec<Run>> {
        self.walk(start, end, q, 0)
    }

    /// Like [`PageMap::scan`], but fails unless all of `[start, end)` is
    /// registered for asynchronous write protection (so that "written"
    /// means written since protected).
    pub fn scan_tracked(&self, start: u64, end: u64, q: Query) -> io::Result<Vec<Run>> {
        self.walk(start, end, q, PM_SCAN_CHECK_WPASYNC)
    }

    /// The written runs of `[start, end)`, write-protected again as they
    /// are reported (a write after that shows in the next call). The range
    /// must be registered with a userfaultfd in asynchronous WP mode.
    pub fn take_written(&self, start: u64, end: u64) -> io::Result<Vec<Run>> {
        // Presence too: a written page that is gone (MADV_DONTNEED) is
        // zero now, and is not to be read.
        let q = Query {
            all: category::WRITTEN,
            report: category::WRITTEN | category::PRESENT | category::SWAPPED,
            ..Query::default()
        };
        self.walk(start, end, q, PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC)
    }

    fn walk(&self, start: u64, end: u64, q: Query, flags: u64) -> io::Result<Vec<Run>> {
        let mut out = Vec::new();
        let mut runs = vec![Run::default(); BATCH];
        let mut at = start;
        // Each call advances `walk_end` past at least one page or ends the
        // walk; the bound is the page count plus one, so never endless.
        let mut calls = (end.saturating_sub(start) >> 12) + 1;
        while at < end && calls > 0 {
            calls -= 1;
            let mut arg = ScanArg {
                size: size_of::<ScanArg>() as u64,
                flags,
                start: at,
                end,
                vec: runs.as_mut_ptr() as u64,
                vec_len: BATCH as u64,
                category_inverted: q.inverted,
                category_mask: q.all,
                category_anyof_mask: q.any,
                return_mask: q.report,
                ..ScanArg::default()
            };
            // SAFETY: `arg` is a pm_scan_arg of the size it states, and its
            // `vec` points at `BATCH` writable `page_region`s (`Run`).
            let n = unsafe {
                libc::ioctl(
                    self.file.as_raw_fd(),
                    PAGEMAP_SCAN as libc::c_ulong,
                    &mut arg as *mut ScanArg,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = (n as usize).min(BATCH);
            out.extend_from_slice(&runs[..n]);
            if arg.walk_end <= at || arg.walk_end >= end {
                break;
            }
            at = arg.walk_end;
        }
        Ok(out)
    }
}
