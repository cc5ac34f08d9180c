//! What goat knows about each goroutine once decoded: the data every report
//! (text, JSON, grouped, REPL) is made from.

use std::sync::Arc;

use serde::Serialize;

/// All goroutines of one stop, plus what the text layout depends on.
#[derive(Debug, Clone, Serialize)]
pub struct Dump {
    /// The target's Go version from buildinfo, e.g. `go1.21.13`.
    pub go_version: String,
    /// Whether this Go release prints ` gp=0x.. m=N mp=0x..` in headers at the
    /// "system" traceback level (Go 1.23+).
    pub header_shows_gp: bool,
    pub goroutines: Vec<Goroutine>,
}

impl Dump {
    /// What the layout depends on besides the goroutines.
    pub fn info(&self) -> DumpInfo {
        DumpInfo {
            go_version: self.go_version.clone(),
            header_shows_gp: self.header_shows_gp,
        }
    }
}

/// What a dump's layout depends on besides its goroutines: all a streaming
/// writer needs to know before the first goroutine arrives.
#[derive(Debug, Clone)]
pub struct DumpInfo {
    /// As [`Dump::go_version`].
    pub go_version: String,
    /// As [`Dump::header_shows_gp`].
    pub header_shows_gp: bool,
}

/// One goroutine.
#[derive(Debug, Clone, Serialize)]
pub struct Goroutine {
    pub id: u64,
    /// Address of its `runtime.g`.
    pub gp: u64,
    /// The runtime's status word with the scan bit removed (`_Grunning` = 2 …).
    pub status_code: u32,
    /// Whether the `_Gscan` bit was set.
    pub scan: bool,
    /// The header text: a wait reason (`chan receive`) or a status (`running`).
    pub status: String,
    /// The wait reason, when waiting with one.
    pub wait_reason: Option<String>,
    /// Whole minutes blocked, as the runtime's traceback measures them
    /// (`, N minutes` when N >= 1): `None` when unknown, that is when not
    /// waiting or in a syscall, when the runtime has not stamped the wait
    /// (`waitsince` 0: only a GC stamps it, so an idle program has none),
    /// or with no clock to measure against (a core of another tool).
    pub wait_minutes: Option<i64>,
    /// `lockedm != 0`: wired to its OS thread (`runtime.LockOSThread`).
    pub locked: bool,
    /// The M running it, when any.
    pub m: Option<MachineRef>,
    /// Bubble root goroutine of a `testing/synctest` group (Go 1.24+), if any.
    pub synctest_group: Option<u64>,
    /// Stack frames, innermost first (inlined calls expanded).
    pub frames: Vec<Frame>,
    /// Where frames were left out, as the runtime elides deep stacks.
    pub elided: Option<Elision>,
    pub created_by: Option<CreatedBy>,
    /// Why the stack could not be read, when it could not (the goroutine is
    /// still listed, with what could be read).
    pub unreadable: Option<String>,
}

impl Goroutine {
    /// The runtime's name for the status (`gStatusStrings`: "waiting",
    /// "running", ...). [`Self::status`] is the wait reason instead when
    /// there is one, and a goroutine has one only when waiting, or (Go
    /// 1.26+) leaked.
    /// The frame a user reads a goroutine by: the innermost that is not
    /// the runtime's (nor standard library code inlined into it), else
    /// the innermost. Frames must be decoded.
    pub fn user_frame(&self) -> Option<&Frame> {
        let goroot = self.goroot_src();
        let inlined_std = |f: &Frame| f.inlined && goroot.is_some_and(|r| f.file.starts_with(r));
        self.frames
            .iter()
            .find(|f| {
                !f.function.starts_with("runtime.")
                    && !f.function.starts_with("internal/")
                    && !inlined_std(f)
            })
            .or(self.frames.first())
    }

    pub fn runtime_status(&self) -> &str {
        match (&self.wait_reason, self.status_code) {
            (None, _) => &self.status,
            (Some(_), super::version::G_LEAKED) => "leaked",
            (Some(_), _) => "waiting",
        }
    }
}

impl Goroutine {
    /// `GOROOT/src/` as the goroutine's runtime frames name their files
    /// (`/usr/lib/go/src/runtime/proc.go`), if one does.
    pub fn goroot_src(&self) -> Option<&str> {
        self.frames
            .iter()
            .filter(|f| f.function.starts_with("runtime."))
            .find_map(|f| {
                let at = f.file.find("/src/runtime/")?;
                f.file.get(..at + "/src/".len())
            })
    }

    /// The innermost frame of the program's own code: outside the Go
    /// distribution (`sync`, `net`, the runtime), else the innermost one.
    pub fn own_code_frame(&self) -> Option<&Frame> {
        let goroot = self.goroot_src();
        self.frames
            .iter()
            .find(|f| {
                !f.function.starts_with("runtime.")
                    && !f.function.starts_with("internal/")
                    && goroot.is_none_or(|r| !f.file.starts_with(r))
            })
            .or(self.frames.first())
    }
}

#[cfg(test)]
impl Goroutine {
    /// A goroutine waiting (`_Gwaiting`) with `status` as its wait reason,
    /// at `gp` 0: what unit tests build reports and profiles from.
    pub(crate) fn waiting_for_tests(
        id: u64,
        status: &str,
        frames: Vec<Frame>,
        created_by: Option<CreatedBy>,
    ) -> Goroutine {
        Goroutine {
            id,
            gp: 0,
            status_code: 4,
            scan: false,
            status: status.into(),
            wait_reason: Some(status.into()),
            wait_minutes: None,
            locked: false,
            m: None,
            synctest_group: None,
            frames,
            elided: None,
            created_by,
            unreadable: None,
        }
    }
}

/// An M (OS thread) the goroutine is on.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MachineRef {
    /// `m.id`.
    pub id: i64,
    /// Address of the `runtime.m`.
    pub mp: u64,
    /// The kernel thread id (`m.procid`).
    pub tid: i64,
}

/// One (possibly inlined) frame.
#[derive(Debug, Clone, Serialize)]
pub struct Frame {
    /// Function name as the runtime prints it (generic type arguments as `[...]`).
    /// Shared: 100k goroutines mostly stand in a few dozen functions.
    pub function: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    /// The frame's PC (return address for callers, as the runtime shows it).
    pub pc: u64,
    /// `pc - entry` of the physical function; printed as ` +0x..` when > 0
    /// and the frame is not inlined.
    pub offset: u64,
    pub inlined: bool,
    /// Frame pointer (caller's SP) and SP, as the runtime computes them.
    pub fp: u64,
    pub sp: u64,
    /// The argument list as the runtime prints it between the parentheses
    /// (`0xc000010000, 0x1`, `...` for inlined frames, `{...}` for unknown).
    pub args: String,
}

/// A [`Frame`] borrowed, from a `Frame` ([`Frame::view`]) or from a
/// decoding thread's buffers ([`super::GoroutineView::frames`]): what the
/// text layout reads.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    pub function: &'a str,
    pub file: &'a str,
    pub line: u32,
    pub pc: u64,
    pub offset: u64,
    pub inlined: bool,
    pub fp: u64,
    pub sp: u64,
    pub args: &'a str,
    /// Names the frame's text other than its arguments, fp and sp, when
    /// known: the PC and which of its source frames this is (a decoder's
    /// frames have one; a layout may keep that text per key).
    pub key: Option<(u64, u32)>,
}

impl FrameRef<'_> {
    /// The frame as an owned [`Frame`], with `function` and `file` (this
    /// frame's, shared).
    pub fn to_frame(&self, function: Arc<str>, file: Arc<str>) -> Frame {
        Frame {
            function,
            file,
            line: self.line,
            pc: self.pc,
            offset: self.offset,
            inlined: self.inlined,
            fp: self.fp,
            sp: self.sp,
            args: self.args.to_string(),
        }
    }
}

impl Frame {
    pub fn view(&self) -> FrameRef<'_> {
        FrameRef {
            function: &self.function,
            file: &self.file,
            line: self.line,
            pc: self.pc,
            offset: self.offset,
            inlined: self.inlined,
            fp: self.fp,
            sp: self.sp,
            args: &self.args,
            key: None,
        }
    }
}

/// Where the runtime would elide frames of a deep stack.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Elision {
    /// Index into `frames` before which the elision line goes.
    pub at: usize,
    /// How many frames were elided; `None` for the pre-1.21 wording
    /// (`...additional frames elided...`, always at the end).
    pub count: Option<usize>,
}

/// The `created by` line.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedBy {
    /// Shared, as [`Frame::function`]: goroutines are mostly created at a
    /// few places.
    pub function: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    pub pc: u64,
    pub offset: u64,
    /// The parent goroutine id (Go 1.21+ prints ` in goroutine N`); `None`
    /// when the release does not record it or it is 0.
    pub goroutine: Option<u64>,
}
