use std::cell::RefCell;
use std::path::Path;

use super::*;
use crate::process::ReadFault;

const MINORS: [u32; 8] = [19, 21, 22, 23, 24, 25, 26, 27];

fn open(flavour: &str) -> Binary {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bin")
        .join(flavour)
        .join("states");
    Binary::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the fixtures with scripts/build-fixtures",
            path.display()
        )
    })
}

/// Where a symbol table names `runtime.gcphase` (`-w`), the code search
/// finds that address; in the stripped build (`-s -w`) it finds one in
/// `.bss` too (that it is the phase shows in tests/stacks_precopy.rs,
/// where a stripped program's marks are waited out).
#[test]
fn gcphase_is_found_in_the_code() {
    for minor in MINORS {
        let named = open(&format!("go1.{minor}-nodwarf"));
        let want = named.symbol("runtime.gcphase").expect("a symbol");
        assert_eq!(gcphase_from_code(&named), Some(want), "go1.{minor} -w");
        assert_eq!(
            GcPhase::in_binary(&named, 0x1000),
            Some(GcPhase {
                addr: want + 0x1000
            })
        );
        let stripped = open(&format!("go1.{minor}-stripped"));
        assert_eq!(stripped.symbol("runtime.gcphase"), None, "go1.{minor}");
        let found = gcphase_from_code(&stripped).expect("found in -s -w");
        assert!(stripped.in_bss(found), "go1.{minor}: {found:#x}");
    }
}

/// A phase that reads as the values given, one per read, then as the last.
struct Phases(RefCell<Vec<u32>>);

impl Memory for Phases {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let mut left = self.0.borrow_mut();
        let v = if left.len() > 1 {
            left.remove(0)
        } else {
            left[0]
        };
        match (addr, buf.len()) {
            (0x5000, 4) => {
                buf.copy_from_slice(&v.to_le_bytes());
                Ok(())
            }
            _ => Err(ReadFault {
                addr,
                len: buf.len(),
            }),
        }
    }
}

const AT: GcPhase = GcPhase { addr: 0x5000 };

/// The copies a watch asks for before the final stop, the program's
/// phase reading as `phases`, with `looks` looks made during the copy.
fn copies_asked(looks: &[u32], phases: Vec<u32>) -> (usize, Vec<MarkWait>) {
    let mut w = MarkWatch::new(AT);
    for &p in looks {
        w.look(&Phases(RefCell::new(vec![p])));
    }
    let mem = Phases(RefCell::new(phases));
    let mut copies = 0;
    while w.before_final_stop(&mem) == Next::CopyAgain {
        copies += 1;
    }
    (copies, std::mem::take(&mut w.marks))
}

#[test]
fn a_mark_is_waited_out_then_copied_again() {
    // No mark seen, none now: straight to the final stop.
    assert_eq!(copies_asked(&[0, 0], vec![0]), (0, vec![]));
    // Marking for three looks, then sweeping: one mark waited out and one
    // copy after it.
    let (copies, marks) = copies_asked(&[0], vec![1, 1, 1, 0]);
    assert_eq!(copies, 1);
    assert!(
        matches!(marks[..], [MarkWait::Ended(d)] if !d.is_zero()),
        "{marks:?}"
    );
    assert!(marks_note(&marks).contains("for a mark to end"));
    // A mark seen during the copy that has ended since: its writes are
    // still to copy, with no wait.
    let (copies, marks) = copies_asked(&[0, 1, 0], vec![0]);
    assert_eq!(copies, 1);
    assert_eq!(marks, vec![MarkWait::Ended(Duration::ZERO)]);
    assert!(marks_note(&marks).contains("had ended"));
    // Mark termination (2) is not a mark: the world is about to stop.
    assert!(!AT.marking(&Phases(RefCell::new(vec![2]))));
}

#[test]
fn a_program_collecting_back_to_back_is_waited_for_a_few_marks_only() {
    // Marking again at every look: at most MAX_MARK_WAITS copies.
    let (copies, marks) = copies_asked(&[1], vec![1, 0, 1, 0, 1, 0, 1, 0, 1, 0]);
    assert_eq!(copies, MAX_MARK_WAITS);
    assert_eq!(marks.len(), MAX_MARK_WAITS);
}
#[test]
fn an_unreadable_phase_is_not_a_mark() {
    let elsewhere = GcPhase { addr: 0x6000 };
    assert!(!elsewhere.marking(&Phases(RefCell::new(vec![1]))));
    assert_eq!(
        elsewhere.wait_for_mark_end(&Phases(RefCell::new(vec![1])), Instant::now()),
        MarkWait::NotMarking
    );
}
