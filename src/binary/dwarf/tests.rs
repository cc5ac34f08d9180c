//! Tests of the DWARF index against the fixtures and hostile input.

use super::*;

const FIXTURES: &[&str] = &[
    "go1.19-exe",
    "go1.19-pie",
    "go1.21-exe",
    "go1.21-pie",
    "go1.24-exe",
    "go1.24-pie",
    "go1.27-exe",
    "go1.27-pie",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/bin/{name}/states",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (build the fixtures first)"))
}

fn minor(name: &str) -> u32 {
    name[4..6].parse().unwrap()
}

#[test]
fn runtime_layouts_in_every_fixture() {
    for &name in FIXTURES {
        let elf = fixture(name);
        let start = std::time::Instant::now();
        let d = DwarfTypes::load(&elf).unwrap_or_else(|e| panic!("{name}: {e}"));
        let took = start.elapsed();
        assert_eq!(d.unit_errors(), 0, "{name}");

        let g = d
            .struct_layout("runtime.g")
            .unwrap_or_else(|| panic!("{name}: no runtime.g"));
        println!("{name}: loaded in {took:?}; runtime.g size {:#x}", g.size);
        for f in &g.fields {
            println!(
                "  {:#6x} {:<20} {} ({:?})",
                f.offset, f.name, f.type_name, f.size
            );
        }
        let mut want = vec![
            "goid",
            "atomicstatus",
            "waitreason",
            "waitsince",
            "sched",
            "stack",
            "m",
            "lockedm",
            "gopc",
            "startpc",
        ];
        if minor(name) >= 21 {
            want.push("parentGoid");
        }
        for field in want {
            assert!(g.offset(field).is_some(), "{name}: runtime.g.{field}");
        }
        assert_eq!(
            g.offset("stack"),
            Some(0),
            "{name}: g.stack is the first field"
        );
        assert_eq!(g.field("stack").unwrap().type_name, "runtime.stack");
        assert_eq!(g.field("m").unwrap().type_name, "*runtime.m");
        assert_eq!(g.field("m").unwrap().size, Some(8));
        assert_eq!(g.field("goid").unwrap().size, Some(8));

        let gobuf = d.struct_layout("runtime.gobuf").unwrap();
        assert_eq!(gobuf.offset("sp"), Some(0), "{name}: gobuf.sp is first");
        assert_eq!(gobuf.offset("pc"), Some(8), "{name}");
        let sched = g.offset("sched").unwrap();
        assert_eq!(
            d.field_offset("runtime.g", "sched.sp"),
            Some(sched + gobuf.offset("sp").unwrap())
        );
        assert_eq!(d.field_offset("runtime.g", "sched.pc"), Some(sched + 8));
        assert_eq!(d.field_offset("runtime.g", "stack.lo"), Some(0), "{name}");
        assert_eq!(d.field_offset("runtime.g", "stack.hi"), Some(8), "{name}");
        assert_eq!(d.field_offset("runtime.g", "sched.nope"), None);
        assert_eq!(
            d.field_offset("runtime.g", "goid.x"),
            None,
            "{name}: goid is not a struct"
        );
        // Before sched come stack (16), stackguard0, stackguard1, _panic, _defer, m.
        assert_eq!(g.offset("m"), Some(0x30), "{name}");
        assert_eq!(sched, 0x38, "{name}");

        // (atomicstatus, goid, waitreason, lockedm, gopc) as binutils'
        // `readelf --debug-dump=info` reads them from the same fixtures.
        let expected = match minor(name) {
            19 => (144, 152, 176, 232, 296),
            21 => (144, 152, 176, 208, 280),
            24 => (152, 160, 184, 216, 288),
            27 => (144, 152, 176, 208, 288),
            other => panic!("no expected offsets for go1.{other}"),
        };
        let got =
            ["atomicstatus", "goid", "waitreason", "lockedm", "gopc"].map(|f| g.offset(f).unwrap());
        assert_eq!(
            got,
            [expected.0, expected.1, expected.2, expected.3, expected.4],
            "{name}"
        );

        let stack = d.struct_layout("runtime.stack").unwrap();
        assert_eq!(
            (stack.size, stack.offset("lo"), stack.offset("hi")),
            (16, Some(0), Some(8))
        );

        let m = d.struct_layout("runtime.m").unwrap();
        for field in ["id", "procid", "curg", "g0"] {
            assert!(m.offset(field).is_some(), "{name}: runtime.m.{field}");
        }
        assert_eq!(m.offset("g0"), Some(0), "{name}: m.g0 is first");
        assert!(d.struct_layout("runtime.sudog").is_some(), "{name}");
        assert!(d.struct_layout("runtime.no_such_type").is_none());

        let allgs = d.variable_address("runtime.allgs").unwrap();
        let file = object::File::parse(&*elf).unwrap();
        let section = file
            .sections()
            .find(|s| s.address() <= allgs && allgs < s.address() + s.size())
            .unwrap_or_else(|| panic!("{name}: allgs {allgs:#x} in no section"));
        let sname = section.name().unwrap();
        assert!(
            [".data", ".bss", ".noptrdata", ".noptrbss"].contains(&sname),
            "{name}: allgs in {sname}"
        );
        for v in [
            "runtime.allglen",
            "runtime.allm",
            "runtime.sched",
            "runtime.firstmoduledata",
        ] {
            assert!(d.variable_address(v).is_some(), "{name}: {v}");
        }
        assert_eq!(
            d.variable_type("runtime.allgs"),
            Some(("[]*runtime.g".to_string(), 24))
        );
        assert_eq!(
            d.variable_type("runtime.allglen"),
            Some(("uintptr".to_string(), 8))
        );
        let (ty, size) = d.variable_type("runtime.sched").unwrap();
        assert_eq!(ty, "runtime.schedt");
        assert_eq!(
            Some(size),
            d.struct_layout("runtime.schedt").map(|s| s.size)
        );
        println!("{name}: allgs at {allgs:#x} in {sname}");
        if let Some((ty, size)) = d.variable_type("runtime.waitReasonStrings") {
            println!("{name}: runtime.waitReasonStrings: {ty} ({size} bytes)");
        }
    }
}

#[test]
fn errors_instead_of_panics() {
    assert!(matches!(
        DwarfTypes::load(b"not an elf"),
        Err(DwarfError::Elf(_))
    ));
    assert!(matches!(DwarfTypes::load(&[]), Err(DwarfError::Elf(_))));
    // Corrupt the (decompressed) .debug_info: indexing must not panic.
    let elf = fixture("go1.21-exe");
    let good = dwarf_sections(&elf).unwrap();
    let info = good[".debug_info"].to_vec();
    for (step, fill) in [
        (7usize, 0xffu8),
        (3, 0x00),
        (13, 0x80),
        (101, 0x0b),
        (4093, 0x13),
    ] {
        let mut bad = info.clone();
        for i in (16..bad.len()).step_by(step) {
            bad[i] = fill;
        }
        let mut sections = good.clone();
        sections.insert(".debug_info", Cow::Owned(bad));
        if let Ok(d) = DwarfTypes::from_sections(&sections) {
            let _ = (
                d.struct_layout("runtime.g"),
                d.field_offset("runtime.g", "sched.sp"),
            );
            let _ = d.variable_type("runtime.allgs");
        }
    }
    let mut sections = good.clone();
    let mut bad = info.clone();
    bad[..4].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]); // absurd first unit length
    sections.insert(".debug_info", Cow::Owned(bad));
    assert!(matches!(
        DwarfTypes::from_sections(&sections),
        Err(DwarfError::Malformed { .. })
    ));
    sections.insert(".debug_info", Cow::Owned(Vec::new()));
    assert!(matches!(
        DwarfTypes::from_sections(&sections),
        Err(DwarfError::NoDebugInfo)
    ));
    // A typedef cycle must not loop.
    let mut d = DwarfTypes::default();
    for (a, b) in [(1, 2), (2, 1)] {
        d.types.insert(
            a,
            TypeEntry {
                name: None,
                size: None,
                typedef_of: Some(b),
                members: None,
            },
        );
    }
    d.structs_by_name.insert("t".into(), 1);
    assert_eq!(d.field_offset("t", "x"), None);
}

#[test]
fn index_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<DwarfTypes>();
}

#[test]
fn member_offset_forms() {
    assert_eq!(uleb128(&[0xe5, 0x8e, 0x26]), Some((624485, 3)));
    assert_eq!(uleb128(&[0x80; 12]), None);
    assert_eq!(op_addr(&[0x03, 1, 0, 0, 0, 0, 0, 0, 0]), Some(1));
    assert_eq!(op_addr(&[0x03, 1, 0]), None);
}
