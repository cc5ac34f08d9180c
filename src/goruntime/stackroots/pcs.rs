//! What the stack walk needs of each frame's function and maps, worked out
//! once per pc: a million goroutines stand at a few thousand pcs, and
//! finding a function, its name, its stack map index (a pc-value table
//! decoded from the start) and its bitmaps for every frame of every
//! goroutine was most of `goat why`'s stack scan.

use std::collections::HashMap;
use std::sync::Arc;

use super::maps::{self, Bitmap, MapError, ObjectRecord};
use super::{ARGS_SIZE_UNKNOWN, WORD};
use crate::binary::{Binary, Pclntab};
use crate::goruntime::PcHasher;

/// Entries kept per table: distinct pcs are bounded by the executable's
/// code, but a table past this many starts again rather than grow.
const MAX_ENTRIES: usize = 1 << 16;

/// A function, as the walk reads it.
#[derive(Debug, Clone, Copy)]
pub(super) struct FuncFacts {
    /// Link-time entry.
    pub entry: u64,
    /// `runtime.asyncPreempt` or `runtime.debugCallV2`: an injected call,
    /// whose caller stands at any instruction.
    pub injected: bool,
    pub sigpanic: bool,
    /// A reflect stub, whose argument size only the run time knows.
    pub reflect_stub: bool,
    pub flag: u8,
    /// The argument area's size (0 when unknown).
    pub args_bytes: u64,
    pub deferreturn: u32,
}

/// A bitmap copied out of the executable.
#[derive(Debug)]
pub(super) struct OwnedBitmap {
    pub n: u32,
    bytes: Box<[u8]>,
}

impl OwnedBitmap {
    fn of(b: Bitmap<'_>) -> OwnedBitmap {
        OwnedBitmap {
            n: b.n,
            bytes: b.bytes.into(),
        }
    }

    pub fn view(&self) -> Bitmap<'_> {
        Bitmap {
            n: self.n,
            bytes: &self.bytes,
        }
    }
}

/// A frame's maps at one pc: what `getStackMap` finds there.
#[derive(Debug)]
pub(super) struct FrameMaps {
    pub locals: Option<OwnedBitmap>,
    pub args: Option<OwnedBitmap>,
    pub objects: Vec<ObjectRecord>,
}

/// The per-pc tables of one scanning thread.
#[derive(Default)]
pub(super) struct PcFacts {
    funcs: HashMap<u64, Option<FuncFacts>, PcHasher>,
    /// By (link-time continuation pc, the frame's room for locals in
    /// words): both fixed for a pc, the room kept in the key all the same.
    maps: HashMap<(u64, u64), Arc<Result<FrameMaps, MapError>>, PcHasher>,
}

impl PcFacts {
    /// The function whose link-time entry is `entry`, if any.
    pub fn func(&mut self, tab: &Pclntab, entry: u64) -> Option<FuncFacts> {
        if self.funcs.len() >= MAX_ENTRIES {
            self.funcs.clear();
        }
        *self.funcs.entry(entry).or_insert_with(|| {
            let f = tab.find_func(entry)?;
            let name = f.name().unwrap_or("");
            Some(FuncFacts {
                entry: f.entry(),
                injected: matches!(name, "runtime.asyncPreempt" | "runtime.debugCallV2"),
                sigpanic: name == "runtime.sigpanic",
                reflect_stub: f.args_size() == ARGS_SIZE_UNKNOWN,
                flag: f.flag(),
                args_bytes: u64::from(f.args_size().max(0).unsigned_abs()),
                deferreturn: f.deferreturn(),
            })
        })
    }

    /// `f`'s maps where it continues at link-time pc `target`, in a frame
    /// with room for `locals_room` words of locals.
    pub fn maps(
        &mut self,
        bin: &Binary,
        f: &FuncFacts,
        target: u64,
        locals_room: u64,
    ) -> Arc<Result<FrameMaps, MapError>> {
        if self.maps.len() >= MAX_ENTRIES {
            self.maps.clear();
        }
        self.maps
            .entry((target, locals_room))
            .or_insert_with(|| Arc::new(frame_maps(bin, f, target, locals_room)))
            .clone()
    }
}

/// The maps as `getStackMap` reads them.
fn frame_maps(
    bin: &Binary,
    facts: &FuncFacts,
    target: u64,
    locals_room: u64,
) -> Result<FrameMaps, MapError> {
    let f = bin
        .pclntab()
        .ok()
        .and_then(|tab| tab.find_func(facts.entry))
        .ok_or(MapError::Unreadable {
            what: "function",
            addr: facts.entry,
        })?;
    let mut index = -1;
    if target != facts.entry {
        // Back up into the CALL: at the entry the entry map (-1) holds.
        index = f
            .pcdata(maps::PCDATA_STACK_MAP_INDEX, target.wrapping_sub(1))
            .map_err(|_| MapError::Unreadable {
                what: "stack map index",
                addr: target,
            })?
            .unwrap_or(-1);
    }
    if index == -1 {
        // The runtime's guess: a prologue, before anything is live.
        index = 0;
    }
    let locals = match locals_room {
        0 => None,
        _ => maps::stackmap(
            bin,
            &f,
            maps::FUNCDATA_LOCALS_POINTER_MAPS,
            index,
            locals_room,
        )?,
    };
    let args_words = facts.args_bytes / WORD;
    let args = match args_words {
        0 => None,
        // An args map may not cover more than the frame's arguments.
        _ => maps::stackmap(bin, &f, maps::FUNCDATA_ARGS_POINTER_MAPS, index, args_words)?,
    };
    Ok(FrameMaps {
        locals: locals.map(OwnedBitmap::of),
        args: args.map(OwnedBitmap::of),
        objects: maps::stack_objects(bin, &f)?,
    })
}
