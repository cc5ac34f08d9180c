//! Runtime offsets of the Go releases goat is tested against (1.19 and
//! 1.21–1.27; 1.20 could not be installed here), for binaries built without
//! DWARF (`-ldflags=-w`). Each row is checked against DWARF by
//! `layout::tests::table_matches_dwarf_for_every_fixture`; a release not
//! listed here needs DWARF.

use super::layout::{DeferOffsets, GOffsets, MOffsets};
use super::version::GoVersion;

/// The releases the table has rows for.
const RELEASES: [u32; 8] = [19, 21, 22, 23, 24, 25, 26, 27];
/// How far from the release a version string names goat looks for a row
/// that fits (a vendor's runtime may be a neighbour's).
const NEIGHBOURS: u32 = 2;

/// The rows to try for a binary that says it is `hint`: its own first,
/// then the nearest within [`NEIGHBOURS`] minor releases. A development
/// build (`devel ...`, minor `u32::MAX`) is taken to be past the newest.
pub fn candidates(hint: GoVersion) -> Vec<GoVersion> {
    if hint.major != 1 {
        return Vec::new();
    }
    let newest = RELEASES[RELEASES.len() - 1];
    let minor = hint.minor.min(newest + 1);
    let mut near: Vec<u32> = RELEASES
        .iter()
        .copied()
        .filter(|r| r.abs_diff(minor) <= NEIGHBOURS)
        .collect();
    near.sort_by_key(|r| (r.abs_diff(minor), std::cmp::Reverse(*r)));
    near.into_iter()
        .map(|minor| GoVersion { major: 1, minor })
        .collect()
}

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
        panic: 32,
        sched_ctxt: 80,
    };
    // runtime.m: g0 has always been its first field.
    let m_until_1_24 = MOffsets {
        size: 0,
        procid: 72,
        curg: 192,
        id: 232,
        g0: 0,
        alllink: 336,
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
            MOffsets {
                alllink: if version.minor == 22 { 328 } else { 336 },
                ..m_until_1_24
            },
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
            MOffsets {
                alllink: if version.minor == 23 { 328 } else { 352 },
                ..m_until_1_24
            },
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
                g0: 0,
                alllink: 344,
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
                g0: 0,
                alllink: 352,
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
        heap: 1,
    };
    let defer = match version.minor {
        19 | 21 => defer,
        _ => DeferOffsets {
            link: 32,
            rangefunc: Some(1),
            head: Some(40),
            heap: 0,
            ..defer
        },
    };
    Some((g, m, defer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u32) -> GoVersion {
        GoVersion { major: 1, minor }
    }

    #[test]
    fn candidates_start_with_the_named_release() {
        let minors = |h| candidates(v(h)).iter().map(|c| c.minor).collect::<Vec<_>>();
        assert_eq!(minors(24), [24, 25, 23, 26, 22]);
        assert_eq!(minors(19), [19, 21]);
        assert_eq!(minors(20), [21, 19, 22]);
        assert_eq!(minors(u32::MAX), [27, 26]);
        assert!(candidates(GoVersion { major: 2, minor: 0 }).is_empty());
        for r in RELEASES {
            assert!(offsets(v(r)).is_some(), "no row for go1.{r}");
        }
    }
}
