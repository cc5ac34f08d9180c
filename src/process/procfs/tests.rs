//! The reader against this test process's own `/proc`.

use super::*;

fn me() -> i32 {
    std::process::id() as i32
}

#[test]
fn stat_and_status_describe_this_process() {
    let st = stat(me()).expect("own stat");
    assert_eq!(st.pid, me());
    let tid = nix::unistd::gettid().as_raw();
    let own = task_stat(me(), tid).expect("own thread's stat");
    assert_eq!(own.state, 'R', "a thread reading its own stat runs");
    assert_eq!(st.ppid, nix::unistd::getppid().as_raw());
    let status = status(me()).expect("own status");
    assert_eq!(status.tgid, me());
    assert_eq!(status.ruid, nix::unistd::getuid().as_raw());
    assert_eq!(status.tracerpid, 0, "tests run untraced");
    assert!(kb_to_bytes(status.vmrss) > 0);
    assert_eq!(own_status().map(|s| s.tgid), Some(me()));
    assert!(!has_exited(me()));
}

#[test]
fn threads_are_listed_and_read_one_by_one() {
    let tids = tasks(me()).expect("own tasks");
    assert!(tids.contains(&me()));
    let tid = nix::unistd::gettid().as_raw();
    assert!(tids.contains(&tid));
    assert!(is_own_thread(tid));
    assert_eq!(task_stat(me(), tid).map(|s| s.pid), Some(tid));
    assert_eq!(task_status(me(), tid).map(|s| s.pid), Some(tid));
}

#[test]
fn a_child_is_listed_and_seen_to_exit() {
    let mut kid = std::process::Command::new("true")
        .spawn()
        .expect("run true");
    let pid = kid.id() as i32;
    // Until it is waited for, the child stays a zombie child of this process.
    let ms = std::time::Duration::from_millis;
    let zombie = crate::poll::poll_until(ms(2000), ms(1), || {
        stat(pid).is_some_and(|s| s.state == 'Z').then_some(())
    });
    assert!(zombie.is_some(), "the child ends");
    assert!(children(me()).contains(&pid));
    assert!(has_exited(pid));
    kid.wait().expect("reap");
    assert!(has_exited(pid), "gone");
    assert!(stat(pid).is_none());
}

#[test]
fn files_and_links_of_this_process() {
    assert!(comm(me()).is_some_and(|c| c.ends_with('\n')));
    let cmdline = cmdline_raw(me()).expect("cmdline");
    assert!(cmdline.ends_with(&[0]));
    assert!(auxv_raw(me()).is_some_and(|a| a.len() % 16 == 0 && !a.is_empty()));
    assert_eq!(
        exe(me()).expect("exe link"),
        std::env::current_exe().expect("current exe")
    );
    assert!(open_mem(me(), false).is_ok());
    assert!(open_pagemap(me()).is_ok());
    assert!(coredump_filter(me()).is_some());
    assert!(ns_link(Who::Me, "pid").is_some());
    assert_eq!(ns_link(Who::Me, "pid"), ns_link(Who::Pid(me()), "pid"));
    assert!(stat(-1).is_none() && tasks(-1).is_none() && comm(-1).is_none());
}

#[test]
fn maps_and_smaps_agree_on_this_process() {
    let m = maps(me()).expect("maps");
    let s = smaps(me()).expect("smaps");
    assert!(!m.is_empty());
    let ranges = |v: &[Vma]| v.iter().map(|v| (v.start, v.end)).collect::<Vec<_>>();
    // Allocations between the two reads may add mappings; the stack stays.
    let stack = |v: &[Vma]| {
        v.iter()
            .find(|v| v.path.as_deref() == Some("[stack]"))
            .map(|v| v.start)
    };
    assert!(stack(&m).is_some());
    assert_eq!(stack(&m), stack(&s));
    assert!(s.iter().any(|v| !v.vm_flags.is_empty()), "{:?}", ranges(&s));
    let exe = exe(me()).expect("exe").to_string_lossy().into_owned();
    let mapped = read_mappings(me());
    assert!(mapped
        .iter()
        .any(|m| m.executable && m.path.as_deref() == Some(exe.as_str())));
}

#[test]
fn parse_stat_reads_a_name_with_parentheses() {
    let mut f: Vec<String> = (4..=52).map(|_| "0".to_string()).collect();
    f[38 - 4] = "17".into();
    let line = format!("42 (a) Z 1 (b) S {}", f.join(" "));
    let st = parse_stat(&line).expect("parses");
    assert_eq!((st.pid, st.comm.as_str(), st.state), (42, "a) Z 1 (b", 'S'));
    assert_eq!(st.exit_signal, Some(17));
    assert!(parse_stat("42 (a").is_none());
}
