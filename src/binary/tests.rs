//! Tests against the prebuilt fixtures (tests/fixtures/bin/goVER-MODE/states),
//! with the matching toolchain's `go tool nm` / `go tool objdump` /
//! `go version` as oracles. A missing fixture or toolchain fails the test
//! (see `crate::require`) unless `GOAT_SKIP_FIXTURES=1` /
//! `GOAT_SKIP_GO_TOOLCHAIN=1` says to skip it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{inspect, name_for_print, Binary, SourceFrame};
use crate::require::{require_fixture, require_tool, require_toolchain};

const VERSIONS: [&str; 4] = ["1.19", "1.21", "1.24", "1.27"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Fixture {
    version: &'static str,
    path: PathBuf,
    go: PathBuf,
}

fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for version in VERSIONS {
        for mode in ["exe", "pie"] {
            let path = root().join(format!("tests/fixtures/bin/go{version}-{mode}/states"));
            let go = root().join(format!(".toolchains/go{version}/bin/go"));
            if !require_fixture(&path) || !require_toolchain(&go) {
                continue;
            }
            out.push(Fixture { version, path, go });
        }
    }
    out
}

fn go_tool(go: &Path, args: &[&str]) -> String {
    let out = Command::new(go)
        .args(args)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go tool");
    assert!(
        out.status.success(),
        "go {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// `go tool nm` text symbols: name → address.
fn nm_text(fx: &Fixture) -> Vec<(String, u64)> {
    let out = go_tool(&fx.go, &["tool", "nm", "-n", fx.path.to_str().unwrap()]);
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let addr = u64::from_str_radix(it.next()?, 16).ok()?;
            let kind = it.next()?;
            let name = it.collect::<Vec<_>>().join(" ");
            matches!(kind, "T" | "t").then_some((name, addr))
        })
        .collect()
}

/// One instruction of `go tool objdump`: file basename, line, address, text.
struct Insn {
    file: String,
    line: u32,
    addr: u64,
    text: String,
}

fn objdump(fx: &Fixture, path: &Path, func: &str) -> Vec<Insn> {
    let pattern = format!("^{}$", func.replace('.', "\\.").replace('*', "\\*"));
    let out = go_tool(
        &fx.go,
        &["tool", "objdump", "-s", &pattern, path.to_str().unwrap()],
    );
    out.lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| {
            let mut it = l.split('\t').map(str::trim).filter(|s| !s.is_empty());
            let (file, line) = it.next()?.rsplit_once(':')?;
            let addr = u64::from_str_radix(it.next()?.trim_start_matches("0x"), 16).ok()?;
            let _hex = it.next()?;
            Some(Insn {
                file: file.to_owned(),
                line: line.parse().ok()?,
                addr,
                text: it.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

#[test]
fn version_and_module_match_go_version() {
    for fx in fixtures() {
        let bin = Binary::open(&fx.path).unwrap();
        let out = go_tool(&fx.go, &["version", fx.path.to_str().unwrap()]);
        let expected = out.trim().rsplit(' ').next().unwrap();
        assert_eq!(bin.go_version(), Some(expected), "{}", fx.path.display());
        assert!(expected.starts_with(&format!("go{}.", fx.version)));
        assert_eq!(bin.module_path(), Some("goat.test/states"));
        let pie = fx.path.to_str().unwrap().contains("-pie/");
        assert_eq!(bin.is_pie(), pie);
        assert!(bin.has_dwarf());
        assert_eq!(bin.link_base(), 0x400000);
        let info = inspect(&fx.path).unwrap();
        assert!(info.has_pclntab && info.has_dwarf);
        assert_eq!(info.go_version.as_deref(), Some(expected));
    }
}

#[test]
fn find_func_matches_nm_for_every_function() {
    for fx in fixtures() {
        let bin = Binary::open(&fx.path).unwrap();
        let tab = bin.pclntab().unwrap();
        assert_eq!(Some(tab.text_start()), bin.symbol("runtime.text"));
        let mut syms: std::collections::HashMap<u64, Vec<String>> = Default::default();
        for (name, addr) in nm_text(&fx) {
            syms.entry(addr).or_default().push(name);
        }
        let mut checked = 0;
        for (addr, names) in &syms {
            let Some(f) = tab.find_func(*addr) else {
                continue;
            };
            if f.entry() != *addr {
                continue; // a label inside a function
            }
            let name = f.name().unwrap();
            // Several symbols may share an address (C code, runtime.text).
            let abi0 = format!("{name}.abi0");
            assert!(
                names.iter().any(|n| *n == name
                    || *n == abi0
                    || name_for_print(n) == name
                    || n.replace('·', ".") == name.replace('·', ".")),
                "{} at {addr:#x}: {name} not in {names:?}",
                fx.path.display()
            );
            checked += 1;
        }
        assert!(
            checked > tab.func_count() * 9 / 10,
            "{checked} of {}",
            tab.func_count()
        );
        for name in [
            "main.recurse",
            "main.main",
            "runtime.gopark",
            "main.inlinedCaller",
        ] {
            let addr = bin.symbol(name).unwrap();
            let f = tab.find_func(addr).unwrap();
            assert_eq!(f.name().unwrap(), name);
            assert_eq!(f.entry(), addr);
            assert_eq!(tab.find_func(addr + 1).unwrap().entry(), addr);
            let by_name = tab.func_by_name(name).unwrap();
            assert_eq!(by_name.entry(), addr);
            if fx.version != "1.19" {
                assert!(f.start_line().is_some());
            }
        }
        assert_eq!(
            tab.func_by_name("main.recurse")
                .unwrap()
                .start_line()
                .unwrap_or(76),
            76
        );
        assert!(tab.func_by_name("no.such.func").is_none());
        // Outside text.
        assert!(tab.find_func(tab.text_start() - 1).is_none());
        assert!(tab.find_func(0).is_none());
        assert!(tab.find_func(u64::MAX).is_none());
        // goexit is a top frame.
        let goexit = tab.func_by_name("runtime.goexit").unwrap();
        assert_eq!(goexit.flag() & 1, 1);
    }
}

#[test]
fn file_line_and_sp_delta_match_objdump() {
    for fx in fixtures() {
        let bin = Binary::open(&fx.path).unwrap();
        let tab = bin.pclntab().unwrap();
        for func in [
            "main.recurse",
            "main.inlinedCaller",
            "runtime.gopark",
            "main.main",
        ] {
            let insns = objdump(&fx, &fx.path, func);
            assert!(!insns.is_empty(), "objdump {func}");
            let f = tab.find_func(insns[0].addr).unwrap();
            assert_eq!(f.name().unwrap(), func);
            assert_eq!(f.sp_delta(f.entry()).unwrap(), 0);
            let mut frame = 0;
            for insn in &insns {
                let (file, line) = f.file_line(insn.addr).unwrap();
                // Go 1.19's objdump cannot read a 1.19 PIE's
                // .data.rel.ro.gopclntab and prints ":0".
                assert!(
                    insn.file.is_empty() || (basename(file), line) == (&insn.file, insn.line),
                    "{func} {:#x}: {file}:{line} vs {}:{}",
                    insn.addr,
                    insn.file,
                    insn.line
                );
                // Track the prologue: the frame is complete at every CALL
                // that follows it (but not the morestack call before it).
                if insn.text == "PUSHQ BP" {
                    frame += 8;
                } else if let Some(n) = ["SUBQ $0x", "ADDQ $-0x"]
                    .iter()
                    .find_map(|p| insn.text.strip_prefix(p))
                    .and_then(|s| s.strip_suffix(", SP"))
                {
                    frame += i32::from_str_radix(n, 16).unwrap();
                } else if insn.text.starts_with("CALL ") && !insn.text.contains("morestack") {
                    assert_eq!(
                        f.sp_delta(insn.addr).unwrap(),
                        frame,
                        "{func} {:#x}",
                        insn.addr
                    );
                }
            }
            // One past the end of the function is not covered.
            let end = insns.last().unwrap().addr + 1;
            if tab.find_func(end).map(|g| g.entry()) != Some(f.entry()) {
                let _ = f.sp_delta(end + 0x1000).unwrap_err();
            }
        }
        // gopark: fp - sp = 0x20 at its call sites in a 1.27 SIGQUIT dump.
        if fx.version == "1.27" {
            let gopark = tab.func_by_name("runtime.gopark").unwrap();
            let insns = objdump(&fx, &fx.path, "runtime.gopark");
            let call = insns
                .iter()
                .find(|i| i.text.starts_with("CALL runtime.mcall"))
                .unwrap();
            assert_eq!(gopark.sp_delta(call.addr).unwrap() + 8, 0x20);
        }
    }
}

fn expect_inlined(frames: &[SourceFrame<'_>]) {
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].function, "main.recvInlined");
    assert!(frames[0].inlined);
    assert_eq!((basename(frames[0].file), frames[0].line), ("main.go", 86));
    assert_eq!(frames[1].function, "main.inlinedCaller");
    assert!(!frames[1].inlined);
    assert_eq!((basename(frames[1].file), frames[1].line), ("main.go", 90));
    assert_eq!(frames[1].func_id, 0);
}

/// The return address of the `CALL runtime.chanrecv1` in main.inlinedCaller.
fn chanrecv_return_pc(fx: &Fixture, path: &Path) -> u64 {
    let insns = objdump(fx, path, "main.inlinedCaller");
    let i = insns
        .iter()
        .position(|i| i.text.starts_with("CALL runtime.chanrecv1"))
        .expect("call to chanrecv1");
    insns[i + 1].addr
}

#[test]
fn source_frames_unwind_inlined_calls() {
    for fx in fixtures() {
        let bin = Binary::open(&fx.path).unwrap();
        let tab = bin.pclntab().unwrap();
        assert_eq!(
            tab.gofunc(),
            bin.symbol("go:func.*").or(bin.symbol("go.func.*"))
        );
        let ret = chanrecv_return_pc(&fx, &fx.path);
        let f = tab.find_func(ret - 1).unwrap();
        expect_inlined(&f.source_frames(ret - 1).unwrap());
        // The inlined sync.(*WaitGroup).Done at the first call.
        let insns = objdump(&fx, &fx.path, "main.inlinedCaller");
        let add = insns
            .iter()
            .find(|i| i.text.contains("WaitGroup).Add"))
            .unwrap();
        let frames = f.source_frames(add.addr).unwrap();
        assert_eq!(frames[0].function, "sync.(*WaitGroup).Done");
        assert!(frames[0].inlined);
        assert_eq!(frames.last().unwrap().function, "main.inlinedCaller");
        assert_eq!(frames.last().unwrap().line, 89);
        // A function without inlining: one physical frame.
        let recurse = tab.func_by_name("main.recurse").unwrap();
        let frames = recurse.source_frames(recurse.entry()).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].line, 76);
        // Funcdata slot 3 is the inline tree, inside the file.
        let tree = f.funcdata(3).unwrap();
        assert!(bin.read_static(tree, 16).is_some());
        assert!(f.pcdata(2, ret - 1).unwrap().unwrap() >= 0);
        assert_eq!(f.pcdata(200, ret - 1).unwrap(), None);
    }
}

#[test]
fn generic_names_print_like_the_runtime() {
    assert_eq!(
        name_for_print("main.genericWait[go.shape.string]"),
        "main.genericWait[...]"
    );
    assert_eq!(name_for_print("main.main"), "main.main");
    assert_eq!(
        name_for_print("main.(*T[go.shape.int]).M"),
        "main.(*T[...]).M"
    );
    assert_eq!(
        name_for_print("main.T[go.shape.int].M[go.shape.string]"),
        "main.T[...].M[...]"
    );
    assert_eq!(name_for_print("a]b[c"), "a]b[c");
    assert_eq!(name_for_print("f[[]int]"), "f[...]");
    for fx in fixtures() {
        let bin = Binary::open(&fx.path).unwrap();
        let tab = bin.pclntab().unwrap();
        let f = tab
            .func_by_name("main.genericWait[go.shape.string]")
            // Go 1.18/1.19 linkers store the printed form.
            .or_else(|| tab.func_by_name("main.genericWait[...]"))
            .unwrap_or_else(|| panic!("genericWait in {}", fx.path.display()));
        assert_eq!(name_for_print(f.name().unwrap()), "main.genericWait[...]");
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("goat-binary-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn stripped_binaries_still_symbolize() {
    if !require_tool("objcopy", "apt-get install binutils") {
        return;
    }
    let dir = temp_dir("strip");
    for fx in fixtures() {
        let full = Binary::open(&fx.path).unwrap();
        let full_tab = full.pclntab().unwrap();
        let stripped = dir.join(format!("states-{}-{}", fx.version, full.is_pie()));
        let status = Command::new("objcopy")
            .arg("--strip-all")
            .arg(&fx.path)
            .arg(&stripped)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "objcopy --strip-all {}",
            fx.path.display()
        );
        let bin = Binary::open(&stripped).unwrap();
        assert_eq!(bin.symbol("runtime.text"), None);
        assert!(!bin.has_dwarf());
        assert_eq!(bin.go_version(), full.go_version());
        let tab = bin.pclntab().unwrap();
        assert_eq!(tab.text_start(), full_tab.text_start());
        assert_eq!(
            tab.gofunc(),
            full_tab.gofunc(),
            "gofunc from moduledata, {}",
            fx.version
        );
        assert_eq!(tab.moduledata(), full.symbol("runtime.firstmoduledata"));
        let types = full
            .symbol("runtime.types")
            .zip(full.symbol("runtime.etypes"));
        assert!(types.is_some(), "{}", fx.version);
        assert_eq!(tab.types(), types, "types from moduledata, {}", fx.version);
        let ret = chanrecv_return_pc(&fx, &fx.path);
        let f = tab.find_func(ret - 1).unwrap();
        expect_inlined(&f.source_frames(ret - 1).unwrap());
        let recurse = full.symbol("main.recurse").unwrap();
        assert_eq!(
            tab.find_func(recurse + 3).unwrap().name().unwrap(),
            "main.recurse"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stripped_build_without_version_hint() {
    // Moduledata layout chosen by the rodata check alone.
    for fx in fixtures() {
        let bytes = std::fs::read(&fx.path).unwrap();
        let image = std::sync::Arc::new(super::image::Image::from_bytes(bytes).unwrap());
        let tab = super::Pclntab::parse(image, None, &|_| None).unwrap();
        let full = Binary::open(&fx.path).unwrap();
        assert_eq!(tab.gofunc(), full.pclntab().unwrap().gofunc());
        assert_eq!(tab.text_start(), full.symbol("runtime.text").unwrap());
        let types = full
            .symbol("runtime.types")
            .zip(full.symbol("runtime.etypes"));
        assert_eq!(tab.types(), types, "{}", fx.version);
    }
}

/// xorshift64*, deterministic.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn exercise(bin: &Binary, pcs: &[u64]) {
    let _ = bin.go_version();
    let _ = bin.module_path();
    let Ok(tab) = bin.pclntab() else { return };
    for &pc in pcs {
        if let Some(f) = tab.find_func(pc) {
            let _ = f.name();
            let _ = f.sp_delta(pc);
            let _ = f.file_line(pc);
            let _ = f.source_frames(pc);
            let _ = f.pcdata(0, pc);
            let _ = f.pcdata(2, pc);
            let _ = f.funcdata(0);
        }
    }
    let _ = tab.func_by_name("main.main");
}

/// Every release's `states` built here: the four every test uses must be
/// (see `crate::require`), the others (stacks-comparison releases) are
/// taken when present.
fn every_release() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fixtures().into_iter().map(|f| f.path).collect();
    let bins = root().join("tests/fixtures/bin");
    let dirs = std::fs::read_dir(&bins).map(|d| d.filter_map(Result::ok).collect::<Vec<_>>());
    for dir in dirs.unwrap_or_default() {
        let name = dir.file_name().to_string_lossy().into_owned();
        let path = dir.path().join("states");
        if name.ends_with("-exe") && path.is_file() && !out.contains(&path) {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn corrupt_pclntab_never_panics() {
    let releases = every_release();
    assert!(!releases.is_empty() || std::env::var_os("GOAT_SKIP_FIXTURES").is_some());
    for path in releases {
        corrupt_pclntab_of(&path);
    }
}

/// Corrupts one executable's pclntab 60 ways; every load and lookup must
/// return (a value or an error), never panic.
fn corrupt_pclntab_of(path: &Path) {
    let orig = std::fs::read(path).unwrap();
    let full = Binary::from_bytes(orig.clone()).unwrap();
    let tab = full.pclntab().unwrap();
    // The whole text, whatever its size in this release.
    let (start, end) = full
        .section_range(".text")
        .unwrap_or((tab.text_start(), tab.text_start() + 0xea000));
    // PIE builds before Go 1.26 name it after the relro segment it is in.
    let sec = full
        .image
        .section(".gopclntab")
        .or_else(|| full.image.section(".data.rel.ro.gopclntab"))
        .unwrap_or_else(|| panic!("{}: no pclntab section", path.display()));
    let (sec_off, sec_len) = (sec.file_offset.unwrap() as usize, sec.size as usize);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let pcs: Vec<u64> = (0..300)
        .map(|_| start + rng.next() % (end - start))
        .collect();
    let names = ["main.recurse", "main.inlinedCaller", "runtime.gopark"];
    let mut pcs = pcs;
    pcs.extend(names.iter().filter_map(|n| Some(full.symbol(n)? + 0x20)));
    for round in 0..60 {
        let mut bytes = orig.clone();
        match round % 3 {
            // Flip bits anywhere in the table, denser in the header.
            0 => {
                for _ in 0..(1 + rng.next() % 64) {
                    let i = sec_off + (rng.next() as usize % sec_len);
                    bytes[i] ^= 1 << (rng.next() % 8);
                }
                let h = sec_off + (rng.next() as usize % 72);
                bytes[h] ^= 0xff;
            }
            // Random bytes over a stretch of the table.
            1 => {
                let at = sec_off + (rng.next() as usize % sec_len);
                for b in bytes.iter_mut().skip(at).take(4096) {
                    *b = rng.next() as u8;
                }
            }
            // Truncate the file inside the table.
            _ => bytes.truncate(sec_off + (rng.next() as usize % sec_len)),
        }
        if let Ok(bin) = Binary::from_bytes(bytes) {
            exercise(&bin, &pcs);
        }
    }
}

#[test]
fn garbage_that_is_not_elf_is_an_error() {
    // Garbage that is not ELF at all.
    assert!(Binary::from_bytes(vec![0x7f, b'E', b'L', b'F']).is_err());
    assert!(Binary::from_bytes(Vec::new()).is_err());
}

/// One frame of a `GOTRACEBACK=system` SIGQUIT dump.
struct DumpFrame {
    name: String,
    file: String,
    line: u32,
    /// `(pc, off, fp - sp)` for a physical frame; `None` for an inlined one.
    physical: Option<(u64, u64, u64)>,
    /// The innermost frame of its goroutine (looked up at pc, not pc-1,
    /// when the goroutine was interrupted by a signal).
    first: bool,
}

/// The name printed before the argument list "name(args)".
fn strip_args(line: &str) -> &str {
    let mut depth = 0;
    for (i, c) in line.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return &line[..i];
                }
            }
            _ => {}
        }
    }
    line
}

fn parse_dump(text: &str) -> Vec<DumpFrame> {
    let lines: Vec<&str> = text.lines().collect();
    let mut frames = Vec::new();
    for (i, pair) in lines.windows(2).enumerate() {
        let (head, pos) = (pair[0], pair[1]);
        let first = i > 0 && lines[i - 1].starts_with("goroutine ");
        if head.starts_with('\t')
            || head.starts_with("goroutine ")
            || head.starts_with("created by ")
            || !head.ends_with(')')
            || !pos.starts_with('\t')
        {
            continue;
        }
        let mut tokens = pos.split_whitespace();
        let Some((file, line)) = tokens.next().and_then(|t| t.rsplit_once(':')) else {
            continue;
        };
        let hex = |t: &str, p: &str| u64::from_str_radix(t.strip_prefix(p)?, 16).ok();
        let rest: Vec<&str> = tokens.collect();
        let physical = match rest.as_slice() {
            [off, fp, sp, pc] => Some((
                hex(pc, "pc=0x").unwrap(),
                hex(off, "+0x").unwrap(),
                hex(fp, "fp=0x").unwrap() - hex(sp, "sp=0x").unwrap(),
            )),
            [] => None,
            _ => continue,
        };
        frames.push(DumpFrame {
            name: strip_args(head).to_owned(),
            file: file.to_owned(),
            line: line.parse().unwrap(),
            physical,
            first,
        });
    }
    frames
}

/// The runtime's own SIGQUIT dump of a fresh run of `path` (taken now, so
/// it always matches the binary built on this machine).
fn live_sigquit_dump(path: &std::path::Path) -> String {
    use std::io::{BufRead, Read};
    let mut child = std::process::Command::new(path)
        .env("GOTRACEBACK", "system")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGQUIT,
    )
    .unwrap();
    let mut text = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let _ = child.wait();
    text
}

/// Every frame of a real SIGQUIT dump of each fixture (taken live, with
/// GOTRACEBACK=system) is reproduced: the function at the
/// return pc, the inlined frames and file:line at pc-1, and fp-sp from pcsp.
#[test]
fn sigquit_dumps_are_reproduced() {
    for fx in fixtures() {
        let name = fx
            .path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let text = live_sigquit_dump(&fx.path);
        let bin = Binary::open(&fx.path).unwrap();
        let tab = bin.pclntab().unwrap();
        let frames = parse_dump(&text);
        // The load bias, from the first physical frame of a plain function.
        let (bias_frame, (pc, off, _)) = frames
            .iter()
            .find_map(|f| Some((f, f.physical?)).filter(|_| f.name == "runtime.gopark"))
            .unwrap();
        let entry = tab.func_by_name(&bias_frame.name).unwrap().entry();
        let bias = pc - off - entry;
        let mut pending: Vec<&DumpFrame> = Vec::new();
        let mut checked = 0;
        for frame in &frames {
            let Some((pc, off, fp_minus_sp)) = frame.physical else {
                pending.push(frame);
                continue;
            };
            let link_pc = pc - bias;
            let f = tab.find_func(link_pc).unwrap();
            assert_eq!(f.entry() + off, link_pc, "{name} {}", frame.name);
            let printed = |n: &str| {
                if n == "runtime.gopanic" {
                    "panic".to_owned()
                } else {
                    name_for_print(n).into_owned()
                }
            };
            assert_eq!(printed(f.name().unwrap()), frame.name, "{name}");
            assert_eq!(
                f.sp_delta(link_pc).unwrap() as u64 + 8,
                fp_minus_sp,
                "{name} {}",
                frame.name
            );
            let lookup = if link_pc > f.entry() {
                link_pc - 1
            } else {
                link_pc
            };
            let mut ours = f.source_frames(lookup).unwrap();
            if frame.first && pending.is_empty() && ours.last().unwrap().line != frame.line {
                ours = f.source_frames(link_pc).unwrap(); // trapped: no pc-1
            }
            let theirs: Vec<(String, &str, u32)> = pending
                .iter()
                .chain(std::iter::once(&frame))
                .map(|d| (d.name.clone(), d.file.as_str(), d.line))
                .collect();
            let ours: Vec<(String, &str, u32)> = ours
                .iter()
                .map(|s| (printed(s.function), s.file, s.line))
                .collect();
            assert_eq!(ours, theirs, "{name} at {link_pc:#x}");
            pending.clear();
            checked += 1;
        }
        assert!(checked > 40, "{name}: only {checked} frames");
    }
}

#[test]
fn shared_across_threads() {
    fn check<T: Send + Sync>() {}
    check::<Binary>();
    check::<super::Pclntab>();
    check::<super::BinaryError>();
}
