//! Inlined frames at a pc: the runtime's inline unwinder (symtabinl.go in
//! Go 1.21+, the equivalent loops in traceback.go before).
//!
//! `PCDATA_InlTreeIndex` gives, at a pc, the index of the innermost inlined
//! call in the function's `FUNCDATA_InlTree` array, or -1 in the body of the
//! physical function. Each `inlinedCall` names the inlined function and
//! gives `parentPc`, the offset from the entry of an instruction whose
//! position is the call site; looking up the index there climbs one level.
//! File and line always come from the physical function's pcfile/pcln
//! tables at the current pc.

use super::pclntab::{Func, Layout, SourceFrame};
use super::BinaryError;

const PCDATA_INL_TREE_INDEX: u32 = 2;
const FUNCDATA_INL_TREE: u8 = 3;
/// Inlining depth is bounded by the compiler's budget; a longer chain is a
/// cycle in a corrupt table.
const MAX_INLINE_DEPTH: usize = 1000;

/// One `inlinedCall` record.
struct InlinedCall {
    func_id: u8,
    name_off: u32,
    parent_pc: i32,
}

impl Layout {
    fn inlined_call_size(self) -> u64 {
        match self {
            // parent i16, funcID u8, pad, file i32, line i32, func_ i32, parentPc i32
            Layout::Go118 => 20,
            // funcID u8, pad [3], nameOff i32, parentPc i32, startLine i32
            Layout::Go120 => 16,
        }
    }

    fn decode_inlined_call(self, rec: &[u8]) -> Option<InlinedCall> {
        let i32_at = |o: usize| Some(i32::from_le_bytes(rec.get(o..o + 4)?.try_into().ok()?));
        Some(match self {
            Layout::Go118 => InlinedCall {
                func_id: *rec.get(2)?,
                name_off: i32_at(12)? as u32,
                parent_pc: i32_at(16)?,
            },
            Layout::Go120 => InlinedCall {
                func_id: *rec.first()?,
                name_off: i32_at(4)? as u32,
                parent_pc: i32_at(8)?,
            },
        })
    }
}

impl<'a> Func<'a> {
    /// The source frames at lookup pc `pc`, innermost first, the physical
    /// function last. A file/line that cannot be decoded is reported as
    /// `"?"`, 0, as the runtime prints it.
    pub fn source_frames(&self, pc: u64) -> Result<Vec<SourceFrame<'a>>, BinaryError> {
        let mut frames = Vec::new();
        let pc = self.walk_inlined(pc, |frame| frames.push(frame))?;
        let (file, line) = self.file_line(pc).unwrap_or(("?", 0));
        frames.push(SourceFrame {
            function: self.name()?,
            file,
            line,
            func_id: self.func_id(),
            inlined: false,
        });
        Ok(frames)
    }

    /// The pc in this function's own code where the inlined calls at `pc`
    /// were made (the outermost call site's `parentPc`), or `pc` when no
    /// call is inlined there. Go 1.19 and 1.20 take argument liveness there.
    pub fn inline_site_pc(&self, pc: u64) -> Result<u64, BinaryError> {
        self.walk_inlined(pc, |_| {})
    }

    /// Calls `each` with the inlined frames at `pc`, innermost first, and
    /// returns the pc in the physical function they were inlined at.
    fn walk_inlined(
        &self,
        pc: u64,
        mut each: impl FnMut(SourceFrame<'a>),
    ) -> Result<u64, BinaryError> {
        let mut pc = pc;
        let mut depth = 0;
        if let Some(tree) = self.inline_tree()? {
            let layout = self.tab.layout;
            let size = layout.inlined_call_size();
            loop {
                // Non-strict, like the runtime: a bad table means "outermost".
                let index = self
                    .pcdata(PCDATA_INL_TREE_INDEX, pc)
                    .ok()
                    .flatten()
                    .unwrap_or(-1);
                let Ok(index) = u64::try_from(index) else {
                    break;
                };
                depth += 1;
                if depth > MAX_INLINE_DEPTH {
                    return Err(BinaryError::Malformed {
                        what: "inline tree (cycle)",
                        offset: tree,
                    });
                }
                let addr = index
                    .checked_mul(size)
                    .and_then(|o| tree.checked_add(o))
                    .ok_or(BinaryError::NotFileBacked {
                        addr: tree,
                        len: size,
                    })?;
                let call = self
                    .tab
                    .image
                    .read_static(addr, size as usize)
                    .and_then(|rec| layout.decode_inlined_call(rec))
                    .ok_or(BinaryError::NotFileBacked { addr, len: size })?;
                let (file, line) = self.file_line(pc).unwrap_or(("?", 0));
                each(SourceFrame {
                    function: self.name_at(call.name_off)?,
                    file,
                    line,
                    func_id: call.func_id,
                    inlined: true,
                });
                let parent = u64::try_from(call.parent_pc).map_err(|_| BinaryError::Malformed {
                    what: "inlinedCall.parentPc",
                    offset: addr,
                })?;
                pc = self.entry().wrapping_add(parent);
            }
        }
        Ok(pc)
    }

    /// The first pc of each inlined copy of function `name` in this
    /// function's code (link-time, ascending): one per call site in the
    /// inline tree, at the lowest pc whose chain of inlined calls passes
    /// through it (Delve breaks at each such copy).
    pub fn inlined_entries(&self, name: &str) -> Result<Vec<u64>, BinaryError> {
        let Some(tree) = self.inline_tree()? else {
            return Ok(Vec::new());
        };
        let Some(off) = self.pcdata_offset(PCDATA_INL_TREE_INDEX) else {
            return Ok(Vec::new());
        };
        let layout = self.tab.layout;
        let size = layout.inlined_call_size();
        // Tree index → lowest pc inside that inlined call.
        let mut first: std::collections::BTreeMap<u64, u64> = Default::default();
        for (start, _end, index) in self.runs(off, "pcdata")? {
            let mut index = index;
            for _ in 0..MAX_INLINE_DEPTH {
                let Ok(i) = u64::try_from(index) else { break };
                let Some(addr) = i.checked_mul(size).and_then(|o| tree.checked_add(o)) else {
                    break;
                };
                let Some(call) = self
                    .tab
                    .image
                    .read_static(addr, size as usize)
                    .and_then(|rec| layout.decode_inlined_call(rec))
                else {
                    break;
                };
                if self.name_at(call.name_off)? == name {
                    let at = first.entry(i).or_insert(start);
                    *at = (*at).min(start);
                }
                let Ok(parent) = u64::try_from(call.parent_pc) else {
                    break;
                };
                let parent_pc = self.entry().wrapping_add(parent);
                index = self
                    .pcdata(PCDATA_INL_TREE_INDEX, parent_pc)
                    .ok()
                    .flatten()
                    .unwrap_or(-1);
            }
        }
        let mut pcs: Vec<u64> = first.into_values().collect();
        pcs.sort_unstable();
        pcs.dedup();
        Ok(pcs)
    }

    /// Link-time address of the inline tree, if the function has one.
    fn inline_tree(&self) -> Result<Option<u64>, BinaryError> {
        if self.funcdata_offset(FUNCDATA_INL_TREE).is_none() {
            return Ok(None);
        }
        self.funcdata(FUNCDATA_INL_TREE)
            .map(Some)
            .ok_or(BinaryError::NoFuncDataBase {
                entry: self.entry(),
            })
    }
}

#[cfg(test)]
mod inlined_entries_tests {
    /// runctl's main.finish: inlined into main.main (only) when optimized,
    /// a function of its own and never inlined with `-N -l`.
    #[test]
    fn inlined_copies_of_the_runctl_fixture() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for ver in ["go1.19", "go1.21", "go1.24", "go1.27"] {
            for flavour in ["exe", "noopt"] {
                let path = root.join(format!("tests/fixtures/bin/{ver}-{flavour}/runctl"));
                if !crate::require::require_fixture(&path) {
                    continue;
                }
                let bin = crate::binary::Binary::open(&path).unwrap();
                let tab = bin.pclntab().unwrap();
                let main = tab.func_by_name("main.main").unwrap();
                let copies = main.inlined_entries("main.finish").unwrap();
                let end = main.end().unwrap();
                if flavour == "exe" {
                    assert!(tab.func_by_name("main.finish").is_none(), "{ver}");
                    assert_eq!(copies.len(), 1, "{ver}: {copies:x?}");
                    assert!(copies[0] > main.entry() && copies[0] < end, "{ver}");
                    let frames = main.source_frames(copies[0]).unwrap();
                    assert_eq!(frames[0].function, "main.finish", "{ver}");
                } else {
                    assert!(tab.func_by_name("main.finish").is_some(), "{ver}");
                    assert!(copies.is_empty(), "{ver}: {copies:x?}");
                }
                assert!(main.inlined_entries("main.nothing").unwrap().is_empty());
            }
        }
    }
}
