//! The one reader of `/proc`: every fact goat takes from the kernel's
//! process files comes through here, typed.
//!
//! `stat` and `status` are parsed by the `procfs` crate; the memory maps
//! are parsed by hand (`maps.rs`), because the core writer reads `smaps` of
//! processes with tens of thousands of mappings during a stop, and the
//! crate builds a map of every field of every mapping. Small files the
//! crate parses more strictly than goat needs (`coredump_filter`,
//! `cgroup`) are read by hand too, so an unexpected value keeps the
//! default it always had.
//!
//! Functions answer `None` (or an empty list) when a file cannot be read or
//! parsed: the process may have exited, and callers decide what that means.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use ::procfs::process::{Process, Task};
pub use ::procfs::process::{Stat, Status};
use ::procfs::FromRead;

mod maps;
mod sockets;
#[cfg(test)]
mod tests;

pub use maps::{maps, parse_smaps, read_mappings, smaps, Vma};
pub use sockets::{FdInfo, ProcFds, SocketAddrs};

/// Goat's own executable, as a path that stays valid when the file on disk
/// is replaced (the tracer process and the guardian are goat run again).
pub const OWN_EXE: &str = "/proc/self/exe";

/// Whose `/proc` directory: goat's own (through `/proc/self`, right even
/// when goat's pid is not the one its `/proc` mount shows) or a process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Me,
    Pid(i32),
}

impl Who {
    fn dir(self) -> PathBuf {
        match self {
            Who::Me => PathBuf::from("/proc/self"),
            Who::Pid(pid) => PathBuf::from(format!("/proc/{pid}")),
        }
    }
}

/// `/proc/PID/FILE`.
fn path(pid: i32, file: &str) -> PathBuf {
    Who::Pid(pid).dir().join(file)
}

fn task(pid: i32, tid: i32) -> Option<Task> {
    Process::new(pid).ok()?.task_from_tid(tid).ok()
}

/// `/proc/PID/stat` (process-wide fields; also works for a thread id).
pub fn stat(pid: i32) -> Option<Stat> {
    Process::new(pid).ok()?.stat().ok()
}

/// `/proc/PID/task/TID/stat`: one thread's state and times.
pub fn task_stat(pid: i32, tid: i32) -> Option<Stat> {
    task(pid, tid)?.stat().ok()
}

/// Parses the text of a `stat` file (tests build lines by hand).
pub fn parse_stat(text: &str) -> Option<Stat> {
    Stat::from_read(text.as_bytes()).ok()
}

/// `/proc/PID/status` (process-wide; also works for a thread id).
pub fn status(pid: i32) -> Option<Status> {
    Process::new(pid).ok()?.status().ok()
}

/// Whether `pid` is stopped by job control (`State: T (stopped)`: SIGSTOP,
/// Ctrl-Z), as opposed to running, sleeping or stopped by a tracer (`t`).
pub fn stopped_by_job_control(pid: i32) -> bool {
    status(pid).is_some_and(|s| s.state.starts_with('T'))
}

/// `/proc/PID/task/TID/status`: one thread's signal masks.
pub fn task_status(pid: i32, tid: i32) -> Option<Status> {
    task(pid, tid)?.status().ok()
}

/// The id thread `tid` of `pid` has in the process's own (innermost) pid
/// namespace: the last `NSpid` entry of its status.
pub fn ns_tid(pid: i32, tid: i32) -> Option<i32> {
    task_status(pid, tid)?.nspid?.last().copied()
}

/// Goat's own `/proc/self/status`.
pub fn own_status() -> Option<Status> {
    Process::myself().ok()?.status().ok()
}

/// A `status` size in kB (`VmRSS`, `RssAnon`) as bytes; 0 if absent.
pub fn kb_to_bytes(kb: Option<u64>) -> u64 {
    kb.map_or(0, |kb| kb.saturating_mul(1024))
}

/// Whether process `pid` has exited: it is gone, or a zombie (or dying).
pub fn has_exited(pid: i32) -> bool {
    // A stat that cannot be read or parsed means the process is gone.
    stat(pid).is_none_or(|s| matches!(s.state, 'Z' | 'X'))
}

/// The thread ids of `pid` (`/proc/PID/task`); `None` if it is gone.
pub fn tasks(pid: i32) -> Option<Vec<i32>> {
    let dir = std::fs::read_dir(path(pid, "task")).ok()?;
    Some(
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

/// Whether `tid` is a thread of goat itself (`/proc/self/task/TID`).
pub fn is_own_thread(tid: i32) -> bool {
    Who::Me.dir().join("task").join(tid.to_string()).exists()
}

/// The children of every thread of `pid` (`/proc/PID/task/*/children`),
/// sorted, without repeats.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out: Vec<i32> = tasks(pid)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|tid| {
            let text = std::fs::read_to_string(path(pid, &format!("task/{tid}/children"))).ok()?;
            Some(
                text.split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect::<Vec<i32>>(),
            )
        })
        .flatten()
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// `/proc/PID/comm` as written (with its newline; callers trim).
pub fn comm(pid: i32) -> Option<String> {
    let raw = std::fs::read(path(pid, "comm")).ok()?;
    Some(String::from_utf8_lossy(&raw).into_owned())
}

/// `/proc/PID/cmdline`, NUL-separated as the kernel gives it.
pub fn cmdline_raw(pid: i32) -> Option<Vec<u8>> {
    std::fs::read(path(pid, "cmdline")).ok()
}

/// `/proc/PID/auxv`, the raw auxiliary vector.
pub fn auxv_raw(pid: i32) -> Option<Vec<u8>> {
    std::fs::read(path(pid, "auxv")).ok()
}

/// `/proc/PID/exe`: a path that opens the running executable even when its
/// file was replaced or deleted.
pub fn exe_path(pid: i32) -> PathBuf {
    path(pid, "exe")
}

/// Where `/proc/PID/exe` points (` (deleted)` appended by the kernel when
/// the file is gone). The error tells a refusal (EACCES) from an exit.
pub fn exe(pid: i32) -> io::Result<PathBuf> {
    std::fs::read_link(exe_path(pid))
}

/// `/proc/PID/mem`, for reading, or for writing too (which writes through
/// read-only text, as a debugger needs).
pub fn open_mem(pid: i32, write: bool) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(path(pid, "mem"))
}

/// `/proc/PID/pagemap`, for page scans.
pub fn open_pagemap(pid: i32) -> io::Result<File> {
    File::open(path(pid, "pagemap"))
}

/// `/proc/PID/coredump_filter` (core(5)). Read by hand: the crate refuses
/// bits it does not know, and goat passes every bit on.
pub fn coredump_filter(pid: i32) -> Option<u32> {
    let text = std::fs::read_to_string(path(pid, "coredump_filter")).ok()?;
    u32::from_str_radix(text.trim(), 16).ok()
}

/// The cgroup v2 path of `pid` (the `0::` line of `/proc/PID/cgroup`).
pub fn cgroup_v2_path(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(path(pid, "cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

/// `/proc/sys/kernel/yama/ptrace_scope`, trimmed; `None` without Yama.
pub fn yama_ptrace_scope() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok()?;
    Some(text.trim().to_string())
}

/// The namespace link `/proc/WHO/ns/NAME` (e.g. `pid:[4026531836]`).
pub fn ns_link(who: Who, name: &str) -> Option<PathBuf> {
    std::fs::read_link(who.dir().join("ns").join(name)).ok()
}

/// `/proc/WHO/timens_offsets`, the text.
pub fn timens_offsets(who: Who) -> Option<String> {
    std::fs::read_to_string(who.dir().join("timens_offsets")).ok()
}
