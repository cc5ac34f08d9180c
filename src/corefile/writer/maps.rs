//! `/proc/PID/smaps` and the kernel's `coredump_filter` rules: which
//! mappings a core holds, and how much of each.

pub use crate::process::procfs::{parse_smaps, Vma};

/// What the dump rules ask of a mapping beyond what smaps says.
impl Vma {
    fn flag(&self, f: &str) -> bool {
        self.vm_flags.iter().any(|v| v == f)
    }
    /// A shared mapping of an unlinked inode (shmem, `/dev/zero`, SysV,
    /// memfd): the kernel's `i_nlink == 0` test, as far as smaps shows it.
    fn anon_shared(&self) -> bool {
        match self.path.as_deref() {
            None => true,
            Some(p) => {
                p.ends_with(" (deleted)") || p.starts_with("/SYSV") || p.starts_with("[anon_shmem")
            }
        }
    }
}

/// How much of a mapping goes into the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump {
    /// Nothing (a `PT_LOAD` with `p_filesz` 0).
    None,
    /// Every page (pages that read as zero become holes).
    Whole,
    /// The first page, if it starts with the ELF magic.
    ElfHeader,
}

/// `/proc/PID/coredump_filter` bits (see core(5)).
pub mod filter {
    pub const ANON_PRIVATE: u32 = 1 << 0;
    pub const ANON_SHARED: u32 = 1 << 1;
    pub const MAPPED_PRIVATE: u32 = 1 << 2;
    pub const MAPPED_SHARED: u32 = 1 << 3;
    pub const ELF_HEADERS: u32 = 1 << 4;
    pub const HUGETLB_PRIVATE: u32 = 1 << 5;
    pub const HUGETLB_SHARED: u32 = 1 << 6;
    /// The kernel's default.
    pub const DEFAULT: u32 = 0x33;
}

/// The kernel's `vma_dump_size()` (fs/coredump.c), from what smaps shows:
/// `anon_vma` becomes "has anonymous pages", `i_nlink == 0` a deleted or
/// SysV/shmem name. `[vdso]` is always dumped; `[vvar]` and `[vsyscall]`
/// never (they cannot be read through `process_vm_readv` anyway).
pub fn dump_rule(vma: &Vma, filter: u32) -> Dump {
    use filter::*;
    let on = |bit: u32| filter & bit != 0;
    match vma.path.as_deref() {
        Some("[vdso]") => return Dump::Whole,
        Some("[vvar]") | Some("[vvar_vclock]") | Some("[vsyscall]") => return Dump::None,
        _ => {}
    }
    if !vma.read || vma.flag("dd") || vma.flag("io") {
        return Dump::None;
    }
    if vma.flag("ht") {
        let bit = if vma.shared {
            HUGETLB_SHARED
        } else {
            HUGETLB_PRIVATE
        };
        return if on(bit) { Dump::Whole } else { Dump::None };
    }
    if vma.shared {
        let bit = if vma.anon_shared() {
            ANON_SHARED
        } else {
            MAPPED_SHARED
        };
        return if on(bit) { Dump::Whole } else { Dump::None };
    }
    let written = vma.anonymous_kb > 0;
    if written && on(ANON_PRIVATE) {
        return Dump::Whole;
    }
    if !vma.is_file() {
        // Anonymous (heap, stacks, pseudo-names): never-touched memory has no
        // anon_vma and reads as zero anyway.
        return Dump::None;
    }
    if on(MAPPED_PRIVATE) {
        return Dump::Whole;
    }
    if on(ELF_HEADERS) && vma.offset == 0 {
        return Dump::ElfHeader;
    }
    Dump::None
}

/// Reads `/proc/PID/coredump_filter` (the default 0x33 if unreadable).
pub fn read_filter(pid: i32) -> u32 {
    crate::process::procfs::coredump_filter(pid).unwrap_or(filter::DEFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
00400000-00401000 r--p 00000000 08:01 123                                /usr/bin/prog with space
Size:                  4 kB
Anonymous:             0 kB
VmFlags: rd mr mw me dw sd
00401000-00500000 r-xp 00001000 08:01 123                                /usr/bin/prog with space
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
00600000-00610000 rw-p 00100000 08:01 123                                /usr/bin/prog with space
Anonymous:             8 kB
VmFlags: rd wr mr mw me ac sd
c000000000-c004000000 rw-p 00000000 00:00 0 
Anonymous:          1024 kB
VmFlags: rd wr mr mw me ac sd
c004000000-c008000000 ---p 00000000 00:00 0 
Anonymous:             0 kB
VmFlags: mr mw me sd
7f0000000000-7f0000001000 rw-s 00000000 00:01 7                          /dev/zero (deleted)
VmFlags: rd wr sh mr mw me ms sd
7f0000002000-7f0000003000 rw-s 00000000 08:01 9                          /data/shared.db
VmFlags: rd wr sh mr mw me ms sd
7ffd0000-7ffd2000 r--p 00000000 00:00 0                                  [vvar]
VmFlags: rd mr pf io de dd sd
7ffd2000-7ffd4000 r-xp 00000000 00:00 0                                  [vdso]
VmFlags: rd ex mr mw me de sd
7ffe0000-7ffe1000 rw-p 00000000 00:00 0                                  [stack]
Anonymous:             4 kB
VmFlags: rd wr mr mw me gd ac
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    #[test]
    fn parses_smaps_with_paths_flags_and_anonymous() {
        let v = parse_smaps(SMAPS);
        assert_eq!(v.len(), 11);
        assert_eq!(v[0].path.as_deref(), Some("/usr/bin/prog with space"));
        assert_eq!(v[1].offset, 0x1000);
        assert!(v[1].exec && !v[1].write);
        assert_eq!(v[2].anonymous_kb, 8);
        assert_eq!(v[3].path, None);
        assert!(v[5].shared);
        assert!(v[7].vm_flags.iter().any(|f| f == "dd"));
        assert_eq!(v[10].start, 0xffffffffff600000);
    }

    #[test]
    fn default_filter_follows_the_kernel() {
        let v = parse_smaps(SMAPS);
        let rules: Vec<Dump> = v.iter().map(|m| dump_rule(m, filter::DEFAULT)).collect();
        use Dump::*;
        assert_eq!(
            rules,
            [
                ElfHeader, // first page of the executable
                None,      // text: read-only, never written
                Whole,     // .data written
                Whole,     // Go heap
                None,      // reserved, unreadable
                Whole,     // shared anonymous (/dev/zero)
                None,      // shared file: MAPPED_SHARED off by default
                None,      // [vvar]
                Whole,     // [vdso]
                Whole,     // [stack]
                None,      // [vsyscall]
            ]
        );
    }

    #[test]
    fn filter_bits_switch_classes_on_and_off() {
        let v = parse_smaps(SMAPS);
        let all = 0x7f;
        assert_eq!(dump_rule(&v[1], all), Dump::Whole);
        assert_eq!(dump_rule(&v[6], all), Dump::Whole);
        assert_eq!(dump_rule(&v[3], 0), Dump::None);
        assert_eq!(dump_rule(&v[0], 0), Dump::None);
        assert_eq!(dump_rule(&v[8], 0), Dump::Whole, "vdso is always dumped");
    }
}
