//! Notes of goat's cores held against the kernel's own core of a process
//! on this machine.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{build_fixtures, run_goat, Fixture};

/// Every note of a core as (owner, type, descriptor).
fn notes(core: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let d = std::fs::read(core).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes(d[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phnum) = (u64_at(32), u16_at(56) as usize);
    let mut out = Vec::new();
    for i in 0..phnum {
        let ph = phoff + 56 * i;
        if u32_at(ph) != 4 {
            continue;
        }
        let (mut p, end) = (u64_at(ph + 8), u64_at(ph + 8) + u64_at(ph + 32));
        while p + 12 <= end {
            let (namesz, descsz, ty) = (u32_at(p) as usize, u32_at(p + 4) as usize, u32_at(p + 8));
            let name = String::from_utf8_lossy(&d[p + 12..p + 12 + namesz - 1]).into_owned();
            let desc = p + 12 + namesz.next_multiple_of(4);
            out.push((name, ty, d[desc..desc + descsz].to_vec()));
            p = desc + descsz.next_multiple_of(4);
        }
    }
    out
}

fn layout_note(core: &Path) -> Option<Vec<u8>> {
    notes(core)
        .into_iter()
        .find(|(name, ty, _)| name == "LINUX" && *ty == 0x205)
        .map(|n| n.2)
}

/// A core the kernel itself writes of a `sleep` killed by SIGABRT, when
/// `kernel.core_pattern` writes plain files (not a pipe to a handler).
fn kernel_core(dir: &Path) -> Result<std::path::PathBuf, String> {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.starts_with('|') || pattern.contains('/') {
        return Err(format!("kernel.core_pattern is {:?}", pattern.trim()));
    }
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -c unlimited && exec sleep 60"])
        .current_dir(dir)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::SIGABRT).unwrap();
    let _ = child.wait();
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("core"))
        })
        .ok_or_else(|| "the kernel wrote no core (RLIMIT_CORE refused?)".to_string())
}

#[test]
fn the_xsave_layout_note_matches_the_kernels() {
    build_fixtures();
    let dir = std::env::temp_dir().join(format!("goat-notes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fx = Fixture::start("go1.27-exe", "states", &[]);
    let ours = dir.join("goat.core");
    let out = run_goat(&["core", &fx.pid().to_string(), "-o", ours.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let goat_layout = layout_note(&ours).expect("goat wrote no NT_X86_XSAVE_LAYOUT");
    // Records of 16 bytes, one per extended component (type 2 and up).
    assert!(!goat_layout.is_empty() && goat_layout.len().is_multiple_of(16));
    assert!(goat_layout.chunks(16).all(|r| r[0] >= 2), "{goat_layout:?}");
    // Exactly once, after every thread's notes.
    let all = notes(&ours);
    let at = all.iter().position(|n| n.1 == 0x205).unwrap();
    assert!(all[at..].iter().all(|n| n.1 != 1), "before a NT_PRSTATUS");
    match kernel_core(&dir) {
        Ok(kernel) => match layout_note(&kernel) {
            Some(theirs) => assert_eq!(goat_layout, theirs, "goat's vs the kernel's"),
            None => eprintln!("the kernel here writes no NT_X86_XSAVE_LAYOUT (before 6.12)"),
        },
        Err(why) => {
            let fix = format!(
                "{why}; let the kernel write plain core files (sysctl kernel.core_pattern=core)"
            );
            let _ = common::require("kernel core", false, &fix);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
