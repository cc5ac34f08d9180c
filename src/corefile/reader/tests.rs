//! The core reader on a core built here byte by byte (every rule of memory
//! reads), and on mutated cores (a real one when gdb's `gcore` is present):
//! a hostile core yields errors, never a panic.

use std::io::Write;
use std::path::PathBuf;

use super::*;
use crate::process::MemoryExt;

/// A minimal core writer: notes and segments, laid out one after another.
struct Builder {
    notes: Vec<u8>,
    loads: Vec<(u64, u64, u32, Vec<u8>)>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            notes: Vec::new(),
            loads: Vec::new(),
        }
    }

    fn note(&mut self, kind: u32, desc: &[u8]) -> &mut Self {
        let name = b"CORE\0\0\0\0";
        self.notes.extend_from_slice(&5u32.to_le_bytes());
        self.notes
            .extend_from_slice(&(desc.len() as u32).to_le_bytes());
        self.notes.extend_from_slice(&kind.to_le_bytes());
        self.notes.extend_from_slice(name);
        self.notes.extend_from_slice(desc);
        while !self.notes.len().is_multiple_of(4) {
            self.notes.push(0);
        }
        self
    }

    fn prstatus(&mut self, tid: i32, rip: u64, rsp: u64) -> &mut Self {
        let mut d = vec![0u8; 336];
        d[32..36].copy_from_slice(&tid.to_le_bytes());
        d[112 + 16 * 8..][..8].copy_from_slice(&rip.to_le_bytes());
        d[112 + 19 * 8..][..8].copy_from_slice(&rsp.to_le_bytes());
        self.note(NT_PRSTATUS, &d)
    }

    /// A thread's `NT_PRSTATUS` naming `sig` as its current signal.
    fn prstatus_signalled(&mut self, tid: i32, sig: u16) -> &mut Self {
        let mut d = vec![0u8; 336];
        d[12..14].copy_from_slice(&sig.to_le_bytes());
        d[32..36].copy_from_slice(&tid.to_le_bytes());
        self.note(NT_PRSTATUS, &d)
    }

    fn prpsinfo(&mut self, pid: i32, fname: &str) -> &mut Self {
        let mut d = vec![0u8; 136];
        d[24..28].copy_from_slice(&pid.to_le_bytes());
        d[40..40 + fname.len()].copy_from_slice(fname.as_bytes());
        self.note(NT_PRPSINFO, &d)
    }

    fn auxv_entry(&mut self, entry: u64) -> &mut Self {
        let mut d = Vec::new();
        for (k, v) in [(6u64, 4096u64), (AT_ENTRY, entry), (0, 0)] {
            d.extend_from_slice(&k.to_le_bytes());
            d.extend_from_slice(&v.to_le_bytes());
        }
        self.note(NT_AUXV, &d)
    }

    fn files(&mut self, entries: &[(u64, u64, u64, &str)]) -> &mut Self {
        let mut d = Vec::new();
        d.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        d.extend_from_slice(&4096u64.to_le_bytes());
        for &(s, e, pgoff, _) in entries {
            for v in [s, e, pgoff] {
                d.extend_from_slice(&v.to_le_bytes());
            }
        }
        for &(_, _, _, name) in entries {
            d.extend_from_slice(name.as_bytes());
            d.push(0);
        }
        self.note(NT_FILE, &d)
    }

    fn load(&mut self, vaddr: u64, memsz: u64, flags: u32, data: Vec<u8>) -> &mut Self {
        self.loads.push((vaddr, memsz, flags, data));
        self
    }

    fn build(&self) -> Vec<u8> {
        let phnum = 1 + self.loads.len();
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&ET_CORE.to_le_bytes());
        out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut offset = 64 + 56 * phnum as u64;
        let phdr = |out: &mut Vec<u8>, t: u32, f: u32, off: u64, va: u64, fs: u64, ms: u64| {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&f.to_le_bytes());
            for v in [off, va, 0, fs, ms, 1] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        };
        phdr(&mut out, PT_NOTE, 0, offset, 0, self.notes.len() as u64, 0);
        offset += self.notes.len() as u64;
        for (va, ms, fl, data) in &self.loads {
            phdr(&mut out, PT_LOAD, *fl, offset, *va, data.len() as u64, *ms);
            offset += data.len() as u64;
        }
        out.extend_from_slice(&self.notes);
        for (_, _, _, data) in &self.loads {
            out.extend_from_slice(data);
        }
        out
    }
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("goat-core-{}-{name}", std::process::id()));
    let mut f = File::create(&p).unwrap();
    f.write_all(bytes).unwrap();
    p
}

/// A core of a process that mapped `exe` at 0x400000 (first page dumped,
/// the rest not), with a heap that is partly dumped, and a PROT_NONE hole.
fn sample(exe: &Path) -> Vec<u8> {
    let exe = exe.to_str().unwrap();
    Builder::new()
        .prstatus(101, 0x401234, 0x7000_0100)
        .prpsinfo(100, "prog")
        .prstatus(102, 0x401000, 0x7000_0200)
        .auxv_entry(0x401000)
        .files(&[
            (0x400000, 0x403000, 0, exe),
            (0x403000, 0x404000, 3, exe),
            // Left out of the PT_LOADs altogether, as gcore does read-only data.
            (0x500000, 0x501000, 2, exe),
        ])
        .load(0x400000, 0x3000, PF_R | PF_X, vec![0xee; 0x1000])
        .load(0x403000, 0x1000, PF_R | PF_W, vec![0xdd; 0x1000])
        .load(0x7000_0000, 0x2000, PF_R | PF_W, vec![7; 0x1000])
        .load(0x7000_2000, 0x1000, 0, Vec::new())
        .build()
}

/// Stands for the executable: byte i is i / 4096 + 1 (the page number + 1).
fn sample_exe(name: &str) -> PathBuf {
    let bytes: Vec<u8> = (0..0x4000).map(|i| (i / 0x1000 + 1) as u8).collect();
    temp_file(name, &bytes)
}

#[test]
fn reads_dumped_file_backed_and_faults_on_undumped_and_prot_none() {
    let exe = sample_exe("exe1");
    let core = CoreFile::from_bytes(sample(&exe)).unwrap();
    assert_eq!(core.pid(), Some(100));
    assert_eq!(core.command(), Some("prog"));
    assert_eq!(core.executable(), Some(exe.clone()));
    let tids: Vec<i32> = core.threads().iter().map(|t| t.tid).collect();
    assert_eq!(tids, vec![101, 102]);
    assert_eq!(core.threads()[0].regs.rip, 0x401234);
    assert_eq!(core.threads()[1].regs.rsp, 0x7000_0200);

    // Dumped first page, then text from the file's second page.
    assert_eq!(core.read_u32(0x400ffe).unwrap(), 0x0202_eeee);
    assert_eq!(core.read_u64(0x402000).unwrap(), 0x0303_0303_0303_0303);
    // Dumped data (the file's page 3 is not used: the core holds it).
    assert_eq!(core.read_u32(0x403000).unwrap(), 0xdddd_dddd);
    // An anonymous tail that was not dumped is unknown, not zeros.
    assert!(core.read_u64(0x7000_0ffc).is_err());
    assert!(core.read_u64(0x7000_1000).is_err());
    assert_eq!(core.read_u32(0x7000_0ffc).unwrap(), 0x0707_0707);
    // A PROT_NONE reservation and unmapped memory fault.
    assert!(core.read_u64(0x7000_2000).is_err());
    assert!(core.read_u64(0x7000_1ffc).is_err());
    assert!(core.read_u64(0x1000).is_err());
    assert!(core.read_u64(u64::MAX - 3).is_err());
    // Only the core's own bytes.
    let mut b = [0u8; 8];
    assert!(core.read_dumped(0x400000, &mut b).is_ok());
    assert!(core.read_dumped(0x401000, &mut b).is_err());

    let mut x = [0u8; 4];
    let mut y = [0u8; 4];
    let r = core.read_batch(&mut [(0x7000_0000, &mut x[..]), (0x10, &mut y[..])]);
    assert!(r[0].is_ok() && r[1].is_err());
    assert_eq!(x, [7; 4]);

    // A file mapping with no PT_LOAD at all is read from the file.
    assert_eq!(core.read_u32(0x500ffc).unwrap(), 0x0303_0303);
    assert!(core.read_u64(0x500ffc).is_err());

    // Known without reading, as each read above went.
    for (addr, len, held) in [
        (0x400ffe, 4, true),
        (0x402000, 8, true),
        (0x7000_0ffc, 4, true),
        (0x7000_0ffc, 8, false),
        (0x7000_2000, 8, false),
        (0x1000, 8, false),
        (u64::MAX - 3, 8, false),
        (0x500ffc, 4, true),
        (0x500ffc, 8, false),
        (0x400000, 0x3008, true),
    ] {
        let mut buf = vec![0u8; len];
        assert_eq!(core.read(addr, &mut buf).is_ok(), held, "{addr:#x}+{len}");
        assert_eq!(core.holds(addr, len), Some(held), "{addr:#x}+{len}");
    }

    let m = core.mappings();
    assert_eq!(m.len(), 5);
    assert_eq!((m[2].start, m[2].offset), (0x500000, 0x2000));
    assert_eq!(m[0].path.as_deref(), exe.to_str());
    assert!(m[0].executable && !m[0].writable);
    assert_eq!((m[1].offset, m[1].path.as_deref()), (0x3000, exe.to_str()));
    assert_eq!(m[3].path, None);
    let _ = std::fs::remove_file(exe);
}

#[test]
fn the_signalled_thread_is_the_first_with_a_current_signal() {
    let exe = sample_exe("exe-sig");
    let quiet = CoreFile::from_bytes(sample(&exe)).unwrap();
    assert_eq!(quiet.signalled_thread(), None, "no thread names a signal");
    // The kernel writes the dumping thread first and gives every thread
    // the signal: the first one is the crashed thread.
    let mut b = Builder::new();
    b.prstatus(201, 0, 0)
        .prstatus_signalled(203, 6)
        .prstatus_signalled(202, 6)
        .prpsinfo(200, "prog")
        .load(0x7000_0000, 0x1000, PF_R | PF_W, vec![0; 0x1000]);
    let core = CoreFile::from_bytes(b.build()).unwrap();
    assert_eq!(core.signalled_thread(), Some(203));
    let _ = std::fs::remove_file(exe);
}

#[test]
fn use_file_reads_text_from_elsewhere_and_missing_files_fault() {
    let named = PathBuf::from("/nonexistent/goat-test/prog");
    let mut core = CoreFile::from_bytes(sample(&named)).unwrap();
    assert_eq!(core.executable(), Some(named.clone()));
    assert!(core.read_u64(0x402000).is_err(), "the file is not there");
    assert_eq!(core.read_u8_at(0x400000), Some(0xee));
    let local = sample_exe("exe2");
    core.use_file(&named, &local);
    assert_eq!(core.read_u64(0x402000).unwrap(), 0x0303_0303_0303_0303);
    let _ = std::fs::remove_file(local);
}

impl CoreFile {
    fn read_u8_at(&self, addr: u64) -> Option<u8> {
        let mut b = [0u8];
        self.read(addr, &mut b).ok()?;
        Some(b[0])
    }
}

#[test]
fn rejects_non_cores_and_truncated_cores() {
    let exe = sample_exe("exe3");
    let good = sample(&exe);
    assert!(matches!(
        CoreFile::from_bytes(b"#!/bin/sh\n".to_vec()),
        Err(CoreError::NotCore { .. })
    ));
    let mut exec = good.clone();
    exec[16] = 2; // ET_EXEC
    assert!(matches!(
        CoreFile::from_bytes(exec),
        Err(CoreError::NotCore { .. })
    ));
    assert!(matches!(
        CoreFile::from_bytes(good[..good.len() - 100].to_vec()),
        Err(CoreError::Truncated { .. })
    ));
    // A p_offset pointing far past the end is a bad header, not a cut:
    // the PT_LOAD at index 1 (after the PT_NOTE) given a flipped high bit.
    let mut flipped = good.clone();
    let off_at = 64 + 56 + 8;
    let bad = u64::from_le_bytes(flipped[off_at..off_at + 8].try_into().unwrap()) | 1 << 40;
    flipped[off_at..off_at + 8].copy_from_slice(&bad.to_le_bytes());
    assert!(matches!(
        CoreFile::from_bytes(flipped),
        Err(CoreError::Malformed { what, .. }) if what.starts_with("segment offset")
    ));
    let mut huge = good.clone();
    // The PT_NOTE's p_filesz: 2^60 bytes of notes.
    huge[64 + 32..64 + 40].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(CoreFile::from_bytes(huge).is_err());
    let _ = std::fs::remove_file(exe);
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A real core of `sleep`, from gdb's `gcore`, when gdb is installed.
fn gcore_of_sleep() -> Option<Vec<u8>> {
    let mut sleep = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .ok()?;
    let prefix = std::env::temp_dir().join(format!("goat-core-fuzz-{}", std::process::id()));
    let out = std::process::Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(sleep.id().to_string())
        .output();
    let path = PathBuf::from(format!("{}.{}", prefix.display(), sleep.id()));
    let _ = sleep.kill();
    let _ = sleep.wait();
    let bytes = out
        .ok()
        .filter(|o| o.status.success())
        .and(std::fs::read(&path).ok());
    let _ = std::fs::remove_file(&path);
    bytes
}

/// Exercises everything a caller can ask of a core that opened.
fn poke(core: &CoreFile, rng: &mut Rng) {
    let _ = core.executable();
    let _ = (
        core.pid(),
        core.command(),
        core.args(),
        core.threads().len(),
    );
    let maps = core.mappings().to_vec();
    for _ in 0..8 {
        let addr = match maps.get(rng.below(maps.len() + 1)) {
            Some(m) => m.start.wrapping_add(rng.next() % (m.end - m.start).max(1)),
            None => rng.next(),
        };
        let mut buf = vec![0u8; rng.below(70_000)];
        let read = core.read(addr, &mut buf).is_ok();
        // What a pass-through capture trusts: the segments say what a
        // read would do.
        assert_eq!(
            core.holds(addr, buf.len()),
            Some(read),
            "{addr:#x}+{}",
            buf.len()
        );
        let _ = core.read_dumped(addr, &mut buf);
    }
    let mut a = [0u8; 16];
    let mut b = [0u8; 16];
    let _ = core.read_batch(&mut [(rng.next(), &mut a[..]), (0, &mut b[..])]);
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = seed.to_vec();
    // Mostly the headers and notes, where the parser looks.
    for _ in 0..1 + rng.below(4) {
        let hot = m.len().min(16 << 10);
        if hot < 8 {
            break;
        }
        match rng.below(5) {
            0 => {
                let i = rng.below(hot);
                m[i] = rng.next() as u8;
            }
            1 | 2 => {
                let i = rng.below(hot.saturating_sub(8));
                let v = match rng.below(4) {
                    0 => u64::MAX,
                    1 => 0,
                    2 => rng.next() >> rng.below(64),
                    _ => u64::from(u32::MAX),
                };
                let w = [2usize, 4, 8][rng.below(3)];
                m[i..i + w].copy_from_slice(&v.to_le_bytes()[..w]);
            }
            3 => m.truncate(rng.below(m.len() + 1)),
            _ => {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
        }
    }
    m
}

#[test]
fn fuzz_mutated_cores_never_panic() {
    let exe = sample_exe("exe4");
    let mut seeds = vec![sample(&exe)];
    match gcore_of_sleep() {
        Some(real) => seeds.push(real),
        None => eprintln!("fuzz: no gcore here; mutating the built core only"),
    }
    eprintln!("fuzz: {} seed cores", seeds.len());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in &seeds {
        let core = CoreFile::from_bytes(seed.clone()).expect("seed core opens");
        poke(&core, &mut rng);
        let mut opened = 0;
        for _ in 0..1500 {
            if let Ok(core) = CoreFile::from_bytes(mutate(seed, &mut rng)) {
                opened += 1;
                poke(&core, &mut rng);
            }
        }
        assert!(opened > 100, "mutations too destructive: {opened} opened");
    }
    let _ = std::fs::remove_file(exe);
}

#[test]
fn a_file_read_on_many_threads_through_the_block_cache_stays_bounded_and_right() {
    // Each 8-byte word of the file holds its own offset.
    let words = (CACHE_BLOCKS as u64 * 3 * BLOCK) / 8;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..words).flat_map(|w| (w * 8).to_le_bytes()).collect();
    f.write_all(&bytes).unwrap();
    let source = source::Source::open(f.path()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let source = &source;
            s.spawn(move || {
                // Strides that keep missing the cache, from each thread.
                let mut w = t * 977;
                for _ in 0..4000 {
                    w = (w + 8191 * (t + 1)) % words;
                    let mut buf = [0u8; 8];
                    assert!(source.read_at(w * 8, &mut buf));
                    assert_eq!(u64::from_le_bytes(buf), w * 8);
                }
            });
        }
    });
    let cache = source.cache.lock().unwrap();
    assert!(cache.blocks.len() <= CACHE_BLOCKS, "{}", cache.blocks.len());
    assert_eq!(cache.blocks.len(), cache.order.len());
}

#[test]
fn a_mapped_copy_done_reading_still_reads_what_it_holds() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..(3 * BLOCK) / 8)
        .flat_map(|w| (w * 8).to_le_bytes())
        .collect();
    f.write_all(&bytes).unwrap();
    let source = source::Source::open(f.path()).unwrap().mapped().unwrap();
    let word = |at: u64| {
        let mut buf = [0u8; 8];
        assert!(source.read_at(at, &mut buf));
        u64::from_le_bytes(buf)
    };
    assert_eq!(word(BLOCK + 64), BLOCK + 64);
    // Twice: the second call finds the first one's thread and starts none.
    source.done_reading();
    source.done_reading();
    // A read that comes anyway is answered, from the file again.
    assert_eq!(word(BLOCK + 64), BLOCK + 64);
    let mut big = vec![0u8; 4096];
    assert!(source.read_at(2 * BLOCK, &mut big));
    assert_eq!(&big[..8], &(2 * BLOCK).to_le_bytes());
    // Dropping the source joins the thread.
    drop(source);
}

#[test]
fn an_adopted_scratch_copy_is_emptied_and_read_no_more() {
    use std::os::unix::fs::MetadataExt;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..(4 * BLOCK) / 8)
        .flat_map(|w| (w * 8 + 1).to_le_bytes())
        .collect();
    f.write_all(&bytes).unwrap();
    f.as_file().sync_all().unwrap();
    let source = source::Source::open(f.path()).unwrap().mapped().unwrap();
    let writable = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path())
        .unwrap();
    source.adopt_scratch(writable);
    let mut word = [0u8; 8];
    assert!(source.read_at(BLOCK + 64, &mut word));
    assert_eq!(u64::from_le_bytes(word), BLOCK + 65);
    source.done_reading();
    // From now on a read fails, small (through the map) or large: never
    // the zeros of the hole.
    assert!(!source.read_at(BLOCK + 64, &mut word));
    let mut big = vec![0u8; 4096];
    assert!(!source.read_at(2 * BLOCK, &mut big));
    // Dropping the source joins the thread that punched the file.
    drop(source);
    let meta = f.as_file().metadata().unwrap();
    assert_eq!(meta.len(), bytes.len() as u64, "the size is kept");
    // A file system without holes keeps its blocks: only tmpfs and the
    // like, where the test's temporary directory rarely is.
    if meta.blocks() != 0 {
        let mut back = vec![0u8; 8];
        std::os::unix::fs::FileExt::read_exact_at(f.as_file(), &mut back, BLOCK + 64).unwrap();
        panic!(
            "{} blocks left after the punch (the bytes read {:?})",
            meta.blocks(),
            back
        );
    }
}

#[test]
fn a_user_core_is_never_adopted_as_scratch() {
    // Read with pread (not mapped): adopting is refused, and reading
    // after done_reading goes on.
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&vec![7u8; 3 * BLOCK as usize]).unwrap();
    let source = source::Source::open(f.path()).unwrap();
    let writable = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path())
        .unwrap();
    source.adopt_scratch(writable);
    source.done_reading();
    let mut buf = [0u8; 16];
    assert!(source.read_at(BLOCK, &mut buf));
    assert_eq!(buf, [7u8; 16]);
    drop(source);
    assert_eq!(
        std::fs::read(f.path()).unwrap(),
        vec![7u8; 3 * BLOCK as usize]
    );
}
