//! `goat why`'s sequence. A core is analysed as it is. A live process is
//! first copied as `goat core --mode live` copies it (a pause of
//! milliseconds, the copy consistent as of that pause; fork or stop mode
//! where live mode cannot run, with the reason in a warning) into an
//! unlinked temporary core, and the analysis reads that copy while the
//! program runs on: the heap walk may take seconds, the pause does not.

use std::time::Duration;

use crate::corefile::writer::{CoreOptions, Mode};
use crate::corefile::CoreFile;
use crate::goruntime::labels::LabelTable;
use crate::goruntime::waits::{FdInfo, ProcFds};
use crate::goruntime::Dump;
use crate::process::Target;
use crate::report::pprof::{GoroutineProfile, LabelValue};
use crate::why::{self, WhyReport};

use super::stacks::StacksMode;
use super::{InspectError, Inspector, OpenOptions, Source, Warning};

/// What `why` found, and what it cost.
pub struct WhyOutcome {
    pub report: WhyReport,
    /// The goroutines as read (for a profile of them).
    pub dump: Dump,
    /// How long a live process was stopped (`None` for a core).
    pub paused: Option<Duration>,
    /// The goroutine profile (profile.proto, gzip), when asked for: one
    /// sample per stack and wait, labelled with what the analysis found.
    pub profile: Option<Vec<u8>>,
}

/// What `why` is asked for.
#[derive(Debug, Clone, Default)]
pub struct WhyOptions {
    /// Where a live process's copy is kept while it is read (default:
    /// `$TMPDIR`, else `/var/tmp`); unlinked as soon as it is open.
    pub scratch: Option<std::path::PathBuf>,
    pub open: OpenOptions,
    /// Make [`WhyOutcome::profile`].
    pub profile: bool,
}

/// `goat why`'s private directories: `.goat-why-PID-XXXXXX`.
const COPY_DIR_PREFIX: &str = ".goat-why-";

impl Inspector {
    /// Analyses what every goroutine waits on (see `crate::why`).
    pub fn why(
        &self,
        opts: &WhyOptions,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<WhyOutcome, InspectError> {
        self.why_of(opts, warn, None)
    }

    /// [`Self::why`]; `copy_of`: the live process a core was just copied
    /// from (its sockets are named from its descriptors).
    fn why_of(
        &self,
        opts: &WhyOptions,
        warn: &mut dyn FnMut(Warning),
        copy_of: Option<i32>,
    ) -> Result<WhyOutcome, InspectError> {
        match &self.source {
            Source::Core { core, bias, .. } => {
                let fds = copy_of.map(ProcFds::read);
                self.why_core(
                    core,
                    *bias,
                    fds.as_ref().map(|f| f as &dyn FdInfo),
                    opts.profile,
                )
            }
            Source::Live { pid, exe } => {
                // On disk where there is one: the copy is as large as the
                // process's memory, too much for a tmpfs `/tmp`.
                let dir = opts
                    .scratch
                    .clone()
                    .unwrap_or_else(crate::process::temporary_dir);
                // A private directory named for goat's pid: what a goat
                // killed before it unlinked the copy left, the next goat
                // here removes (`outfile::stale::sweep_dirs`).
                crate::outfile::stale::sweep_dirs(&dir, COPY_DIR_PREFIX);
                let holder = tempfile::Builder::new()
                    .prefix(&format!("{COPY_DIR_PREFIX}{}-", std::process::id()))
                    .rand_bytes(6)
                    .tempdir_in(&dir)
                    .map_err(|cause| InspectError::Spill {
                        dir: dir.clone(),
                        cause,
                    })?;
                let dest = holder.path().join("core");
                let stats = super::write_core(
                    *pid,
                    &CoreOptions {
                        dest: dest.clone(),
                        mode: Mode::Live,
                        force: false,
                        hold: super::hold_duration(),
                        inject_under_seccomp: false,
                    },
                    warn,
                )?;
                // Opened, then unlinked at once: the copy is read through
                // the descriptor and gone from the disk whatever happens.
                let opened = std::fs::File::open(&dest);
                let _ = std::fs::remove_file(&dest);
                let file = opened.map_err(|cause| {
                    InspectError::Core(crate::corefile::CoreError::Io {
                        path: dest.clone(),
                        cause,
                    })
                })?;
                let by_fd = std::path::PathBuf::from(format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&file)
                ));
                let open = OpenOptions {
                    map_core: true,
                    ..opts.open.clone()
                };
                let copy = Inspector::open_core_with(&by_fd, Some(exe), &open, warn);
                drop(file);
                drop(holder);
                let outcome = copy?.why_of(opts, warn, Some(*pid))?;
                Ok(WhyOutcome {
                    paused: Some(stats.pause),
                    ..outcome
                })
            }
        }
    }

    fn why_core(
        &self,
        core: &CoreFile,
        bias: u64,
        fds: Option<&dyn FdInfo>,
        want_profile: bool,
    ) -> Result<WhyOutcome, InspectError> {
        let (stacks, labels) = self.stacks_labelled(StacksMode::Stop, want_profile, &mut |_| {})?;
        let dump = stacks.dump;
        let snap = why::Snapshot {
            prog: &self.prog,
            mem: core,
            bias,
            dump: &dump,
            threads: core.threads(),
            fds,
            now_ns: core.monotonic_at_stop(),
        };
        let report = why::analyze(&snap);
        let profile = match want_profile {
            true => Some(
                self.why_profile(&report, &dump, labels.as_ref(), bias)
                    .map_err(InspectError::Output)?,
            ),
            false => None,
        };
        Ok(WhyOutcome {
            report,
            dump,
            paused: None,
            profile,
        })
    }

    /// The goroutine profile of `dump`, each sample labelled with the
    /// goroutine's own pprof labels and its wait reason, minutes waiting,
    /// what it waits on and whether it can never wake (so `go tool pprof
    /// -tagfocus` filters by them).
    fn why_profile(
        &self,
        report: &WhyReport,
        dump: &Dump,
        own: Option<&LabelTable>,
        bias: u64,
    ) -> std::io::Result<Vec<u8>> {
        let mapping = self.profile_mapping(bias);
        let mut profile = GoroutineProfile::new(mapping.as_ref());
        for (g, w) in dump.goroutines.iter().zip(&report.goroutines) {
            let waits_on = match (&w.waits_on.name, &w.waits_on.addr) {
                (Some(n), _) => format!("{} {n}", w.waits_on.kind),
                (None, Some(a)) => format!("{} {a}", w.waits_on.kind),
                (None, None) => w.waits_on.kind.to_string(),
            };
            let mut labels = super::pprof::sample_labels(own, g.gp);
            labels.extend([
                (
                    "never_wakes",
                    LabelValue::Str(if w.never_wakes { "true" } else { "false" }),
                ),
                ("waits_on", LabelValue::Str(&waits_on)),
            ]);
            if let Some(r) = &w.wait_reason {
                labels.push(("wait_reason", LabelValue::Str(r)));
            }
            if let Some(m) = w.wait_minutes {
                labels.push((
                    "waiting",
                    LabelValue::Num {
                        value: m,
                        unit: "minutes",
                    },
                ));
            }
            profile.add(g, &labels);
        }
        let mut gz = Vec::new();
        profile.write_gz(&mut gz)?;
        Ok(gz)
    }
}
