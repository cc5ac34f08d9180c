//! A goroutine as `goat why` keeps it: the header fields its analysis
//! reads and the few facts of its stack it uses, shared by every goroutine
//! that stands in the same stack. 100k decoded goroutines with their frames
//! are about 6 KB each; a [`GoroutineBrief`] is about 150 bytes, and the
//! service of a million goroutines stands in a few hundred stacks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::model::{CreatedBy, FrameRef, Goroutine, MachineRef};
use super::waits::SyncKind;
use super::{GoroutineView, PcHasher};

/// What the analysis reads of one goroutine.
#[derive(Debug, Clone)]
pub struct GoroutineBrief {
    pub id: u64,
    /// Address of its `runtime.g`.
    pub gp: u64,
    /// As [`Goroutine::status_code`].
    pub status_code: u32,
    /// As [`Goroutine::status`].
    pub status: Arc<str>,
    pub wait_reason: Option<Arc<str>>,
    pub wait_minutes: Option<i64>,
    pub m: Option<MachineRef>,
    /// The innermost frame's pc and sp, where the stack scan starts.
    pub top: Option<(u64, u64)>,
    /// As [`Goroutine::unreadable`].
    pub unreadable: Option<Box<str>>,
    /// "func file:line" of the `go` statement that created it.
    pub created_by: Option<Arc<str>>,
    pub stack: Arc<StackFacts>,
}

/// What `goat why` uses of a stack's frames (the frames shown, as
/// [`Goroutine::frames`] holds them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StackFacts {
    /// The pcs of the frames that are not inlined, innermost first: the
    /// code that may name a package variable.
    pub call_pcs: Box<[u64]>,
    /// The innermost sync method on the stack, for a `semacquire` wait.
    pub sync_kind: Option<SyncKind>,
    /// A frame is `runtime.runfinq`: the finalizer goroutine.
    pub runs_finalizers: bool,
    /// [`Goroutine::own_code_frame`] as "func file:line".
    pub own_code: Option<Arc<str>>,
}

impl GoroutineBrief {
    /// Whether this is a thread's system stack (`g0`), as a crash core
    /// lists them: `goroutine 0 [idle]`. The runtime numbers goroutines
    /// from 1; only an M's `g0` and `gsignal` keep id 0 (and a `g` goat
    /// could not read at all, whose stack it has not either).
    pub fn is_system_stack(&self) -> bool {
        self.id == 0
    }

    /// `g`'s brief, its stack facts its own (see [`Briefs`] to share them).
    pub fn of(g: &Goroutine) -> GoroutineBrief {
        Briefs::default().of_goroutine(g)
    }
}

impl StackFacts {
    fn of(frames: &[FrameRef<'_>]) -> StackFacts {
        StackFacts {
            call_pcs: frames.iter().filter(|f| !f.inlined).map(|f| f.pc).collect(),
            sync_kind: super::waits::sync_kind_from_frames(frames.iter().map(|f| f.function)),
            runs_finalizers: frames.iter().any(|f| f.function == "runtime.runfinq"),
            own_code: own_code_frame(frames)
                .map(|f| format!("{} {}:{}", f.function, f.file, f.line).into()),
        }
    }
}

/// [`Goroutine::own_code_frame`] over borrowed frames.
fn own_code_frame<'f, 'a>(frames: &'f [FrameRef<'a>]) -> Option<&'f FrameRef<'a>> {
    let goroot = frames
        .iter()
        .filter(|f| f.function.starts_with("runtime."))
        .find_map(|f| {
            let at = f.file.find("/src/runtime/")?;
            f.file.get(..at + "/src/".len())
        });
    frames
        .iter()
        .find(|f| {
            !f.function.starts_with("runtime.")
                && !f.function.starts_with("internal/")
                && goroot.is_none_or(|r| !f.file.starts_with(r))
        })
        .or(frames.first())
}

/// Makes briefs, sharing what goroutines have in common: stack facts by
/// stack (each frame's pc, line and whether inlined: what its text is
/// decoded from), statuses and creation sites by their text. Used from
/// several decoding threads at once.
#[derive(Default)]
pub struct Briefs {
    stacks: Mutex<HashMap<Box<[u64]>, Arc<StackFacts>, PcHasher>>,
    texts: Mutex<HashMap<Box<str>, Arc<str>, PcHasher>>,
}

/// Distinct stacks and texts kept at most: past this, briefs stop sharing
/// (a hostile target's goroutines cannot grow the tables without bound
/// beyond one entry per goroutine anyway; this only caps the lookups).
const MAX_SHARED: usize = 1 << 20;

/// A decoding thread's side of [`Briefs`]: a reused key buffer, and
/// caches in front of the shared tables. Keying each of a million
/// goroutines' stacks into a table two threads lock, hashing its texts and
/// formatting its creation site was a fifth of `goat why`'s decoding.
#[derive(Default)]
pub struct BriefScratch {
    key: Vec<u64>,
    stacks: HashMap<Box<[u64]>, Arc<StackFacts>, PcHasher>,
    texts: HashMap<Box<str>, Arc<str>, PcHasher>,
    /// "func file:line" of a creation site, by its pc (which tells the
    /// rest).
    created: HashMap<u64, Arc<str>, PcHasher>,
}

/// Entries a [`BriefScratch`] table keeps before it starts again.
const MAX_LOCAL: usize = 1 << 16;

/// A brief's shared texts, found through the shared tables or a thread's.
struct Texts {
    status: Arc<str>,
    wait_reason: Option<Arc<str>>,
    created_by: Option<Arc<str>>,
}

/// The brief of `header`, standing in `stack` from `top`.
fn assemble(
    header: &Goroutine,
    top: Option<(u64, u64)>,
    stack: Arc<StackFacts>,
    texts: Texts,
) -> GoroutineBrief {
    GoroutineBrief {
        id: header.id,
        gp: header.gp,
        status_code: header.status_code,
        status: texts.status,
        wait_reason: texts.wait_reason,
        wait_minutes: header.wait_minutes,
        m: header.m,
        top,
        unreadable: header.unreadable.as_deref().map(Box::from),
        created_by: texts.created_by,
        stack,
    }
}

/// A creation site as a brief keeps it: "func file:line".
fn creation_text(c: &CreatedBy) -> String {
    format!("{} {}:{}", c.function, c.file, c.line)
}

impl Briefs {
    /// The brief of a decoding thread's goroutine, looked up in the
    /// thread's `scratch` before the shared tables.
    pub fn of_view(&self, v: &GoroutineView<'_>, scratch: &mut BriefScratch) -> GoroutineBrief {
        let header = v.header();
        scratch.key.clear();
        let mut top = None;
        for f in v.frames() {
            top = top.or(Some((f.pc, f.sp)));
            scratch.key.extend(Self::key_of(&f));
        }
        let stack = match scratch.stacks.get(scratch.key.as_slice()) {
            Some(s) => s.clone(),
            None => {
                let frames: Vec<FrameRef<'_>> = v.frames().collect();
                let s = self.stack_keyed(Box::from(scratch.key.as_slice()), &frames);
                if scratch.stacks.len() >= MAX_LOCAL {
                    scratch.stacks.clear();
                }
                scratch
                    .stacks
                    .insert(Box::from(scratch.key.as_slice()), s.clone());
                s
            }
        };
        let created_by = header.created_by.as_ref().map(|c| {
            if scratch.created.len() >= MAX_LOCAL {
                scratch.created.clear();
            }
            scratch
                .created
                .entry(c.pc)
                .or_insert_with(|| self.text(&creation_text(c)))
                .clone()
        });
        let texts = Texts {
            status: self.text_with(&header.status, scratch),
            wait_reason: header
                .wait_reason
                .as_deref()
                .map(|r| self.text_with(r, scratch)),
            created_by,
        };
        assemble(header, top, stack, texts)
    }

    /// [`Self::text`], looked up in `scratch` first.
    fn text_with(&self, s: &str, scratch: &mut BriefScratch) -> Arc<str> {
        if let Some(t) = scratch.texts.get(s) {
            return t.clone();
        }
        let t = self.text(s);
        if scratch.texts.len() >= MAX_LOCAL {
            scratch.texts.clear();
        }
        scratch.texts.insert(Box::from(s), t.clone());
        t
    }

    /// A frame's part of its stack's key.
    fn key_of(f: &FrameRef<'_>) -> [u64; 2] {
        [f.pc, u64::from(f.line) << 1 | u64::from(f.inlined)]
    }

    /// The brief of a decoded goroutine.
    pub fn of_goroutine(&self, g: &Goroutine) -> GoroutineBrief {
        let frames: Vec<FrameRef<'_>> = g.frames.iter().map(|f| f.view()).collect();
        self.of_parts(g, &frames)
    }

    /// `header`'s fields (its frames, if any, are not read) with `frames`.
    fn of_parts(&self, header: &Goroutine, frames: &[FrameRef<'_>]) -> GoroutineBrief {
        let texts = Texts {
            status: self.text(&header.status),
            wait_reason: header.wait_reason.as_deref().map(|r| self.text(r)),
            created_by: header
                .created_by
                .as_ref()
                .map(|c| self.text(&creation_text(c))),
        };
        let top = frames.first().map(|f| (f.pc, f.sp));
        assemble(header, top, self.stack(frames), texts)
    }

    fn text(&self, s: &str) -> Arc<str> {
        let mut texts = self.texts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = texts.get(s) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(s);
        if texts.len() < MAX_SHARED {
            texts.insert(Box::from(s), t.clone());
        }
        t
    }

    fn stack(&self, frames: &[FrameRef<'_>]) -> Arc<StackFacts> {
        let key: Box<[u64]> = frames.iter().flat_map(Self::key_of).collect();
        self.stack_keyed(key, frames)
    }

    /// The facts of `frames`, whose key is `key`.
    fn stack_keyed(&self, key: Box<[u64]>, frames: &[FrameRef<'_>]) -> Arc<StackFacts> {
        if let Some(s) = self.lock_stacks().get(&key) {
            return s.clone();
        }
        // Worked out outside the lock: another thread may do the same
        // stack meanwhile, and both get equal facts.
        let facts = Arc::new(StackFacts::of(frames));
        let mut stacks = self.lock_stacks();
        if stacks.len() < MAX_SHARED {
            stacks.entry(key).or_insert_with(|| facts.clone());
        }
        facts
    }

    fn lock_stacks(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Box<[u64]>, Arc<StackFacts>, PcHasher>> {
        self.stacks.lock().unwrap_or_else(|p| p.into_inner())
    }
}
