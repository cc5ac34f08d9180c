//! Runtime offsets of the Go releases goat is tested against (1.19 and
//! 1.21–1.27; 1.20 could not be installed here), for binaries built without
//! DWARF (`-ldflags=-w`). Each row is checked against DWARF by
//! `layout::tests::table_matches_dwarf_for_every_fixture`; a release not
//! listed here needs DWARF.

use super::layout::{DeferOffsets, GOffsets, MOffsets};
use super::version::GoVersion;

/// The offsets for `version`, when goat knows them.
pub fn offsets(version: GoVersion) -> Option<(GOffsets, MOffsets, DeferOffsets)> {
    if version.major != 1 {
        return None;
    }
    // runtime.g: stack, m and sched have not moved since 1.19.
    let base = GOffsets {
        size: 0,
        stack_lo: 0,
        stack_hi: 8,
        m: 48,
        sched_sp: 56,
        sched_pc: 64,
        syscallsp: 112,
        syscallpc: 120,
        atomicstatus: 144,
        goid: 152,
        waitsince: 168,
        waitreason: 176,
        lockedm: 232,
        gopc: 296,
        parent_goid: None,
        labels: 360,
        defers: 40,
    };
    let m_until_1_24 = MOffsets {
        size: 0,
        procid: 72,
        curg: 192,
        id: 232,
    };
    let (g, m) = match version.minor {
        19 => (base, m_until_1_24),
        21 | 22 => (
            GOffsets {
                lockedm: 208,
                gopc: 280,
                parent_goid: Some(272),
                labels: 344,
                ..base
            },
            m_until_1_24,
        ),
        23 | 24 => (
            GOffsets {
                atomicstatus: 152,
                goid: 160,
                waitsince: 176,
                waitreason: 184,
                lockedm: 216,
                gopc: 288,
                parent_goid: Some(280),
                labels: 352,
                ..base
            },
            m_until_1_24,
        ),
        25 => (
            GOffsets {
                syscallsp: 104,
                syscallpc: 112,
                lockedm: 208,
                gopc: 280,
                parent_goid: Some(272),
                labels: 344,
                ..base
            },
            MOffsets {
                size: 0,
                procid: 64,
                curg: 184,
                id: 224,
            },
        ),
        26 | 27 => (
            GOffsets {
                syscallsp: 104,
                syscallpc: 112,
                lockedm: 208,
                gopc: 288,
                parent_goid: Some(280),
                labels: 352,
                ..base
            },
            MOffsets {
                size: 0,
                procid: 64,
                curg: 184,
                id: 232,
            },
        ),
        _ => return None,
    };
    let g = GOffsets {
        size: g.max_field_end(),
        ..g
    };
    let m = MOffsets {
        size: m.procid.max(m.curg).max(m.id) + 8,
        ..m
    };
    // runtime._defer: 1.22 dropped started, openDefer, _panic, fd, varp
    // and framepc, and added rangefunc and head.
    let defer = DeferOffsets {
        sp: 8,
        pc: 16,
        fn_: 24,
        link: 40,
        rangefunc: None,
        head: None,
    };
    let defer = match version.minor {
        19 | 21 => defer,
        _ => DeferOffsets {
            link: 32,
            rangefunc: Some(1),
            head: Some(40),
            ..defer
        },
    };
    Some((g, m, defer))
}
