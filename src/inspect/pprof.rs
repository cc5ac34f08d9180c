//! `goat stacks --pprof`: every goroutine as a goroutine profile
//! (`report::pprof`), with each one's pprof labels, written gzipped.

use std::io::{self, Write};

use crate::goruntime::labels::LabelTable;
use crate::report::{GoroutineProfile, LabelValue, ProfileMapping};

use super::mode_choice::StacksMode;
use super::stacks::StacksWritten;
use super::{verify, InspectError, Inspector, Source, Warning};

/// Goroutines profiled per chunk: a chunk keeps one copy of each distinct
/// stack, so a large one costs little and merges far fewer.
const CHUNK_GOROUTINES: usize = 4096;

/// The label of a goroutine whose pprof labels could not be read.
pub const LABELS_UNREADABLE: &str = "goat_labels_unreadable";

impl Inspector {
    /// Every goroutine, read as [`Self::write_stacks`] reads them (a live
    /// process in `mode`), written to `out` as a gzipped goroutine profile
    /// for `go tool pprof`: a sample per distinct stack and label set.
    /// The labels are read in the stop (stop mode), right after the final
    /// stop (pre-copy mode: see `precopy.rs`), or from the core.
    /// Decoding runs in parallel chunks, each profiled apart and merged in
    /// order; memory grows with the distinct stacks, not the goroutines.
    /// Nothing is written when no goroutine is found (an error).
    pub fn write_pprof(
        &self,
        out: &mut dyn Write,
        mode: StacksMode,
        warn: &mut dyn FnMut(Warning),
    ) -> Result<StacksWritten, InspectError> {
        let c = self.copy(mode, true, warn)?;
        let mapping = self.profile_mapping(c.bias);
        let labels = c.labels.as_ref();
        let mut profile = GoroutineProfile::new(mapping.as_ref());
        self.prog
            .decoder(c.bias)?
            .stream_views(
                &c.capture,
                CHUNK_GOROUTINES,
                |_| GoroutineProfile::new(mapping.as_ref()),
                |p, g| p.add_view(g, &sample_labels(labels, g.header().gp)),
                |p| p,
                |p| {
                    profile.merge(p);
                    Ok::<(), io::Error>(())
                },
            )
            .map_err(InspectError::Output)?;
        let goroutines = usize::try_from(profile.goroutines()).unwrap_or(usize::MAX);
        if goroutines == 0 {
            return Err(InspectError::NoGoroutines { of: c.of.clone() });
        }
        // A crashed runtime's `goroutine 0` system stacks, as the text
        // dump shows them (they have no labels).
        for g in self.crash_g0s(&c)? {
            profile.add(&g, &[]);
        }
        let mut out = out;
        profile.write_gz(&mut out).map_err(InspectError::Output)?;
        let read = c.finish("decode+write");
        Ok(StacksWritten { goroutines, read })
    }

    /// The executable's text as the target maps it at `bias`; `None` when
    /// the binary has no `.text` in a loadable segment.
    pub(crate) fn profile_mapping(&self, bias: u64) -> Option<ProfileMapping> {
        let bin = self.prog.binary();
        let (text, _) = bin.section_range(".text")?;
        let (vaddr, offset, size) = bin
            .file_segments()
            .into_iter()
            .find(|&(v, _, size)| v <= text && text < v.saturating_add(size))?;
        let start = vaddr.checked_add(bias)?;
        let file = match &self.source {
            Source::Live { exe, .. } | Source::Core { exe, .. } => exe,
        };
        Some(ProfileMapping {
            memory_start: start,
            memory_limit: start.checked_add(size)?,
            file_offset: offset,
            file: file.to_string_lossy().into_owned(),
            build_id: verify::profile_build_id(bin),
        })
    }
}

/// The sample labels of the goroutine at `gp`: its pprof labels, or why
/// they could not be read.
pub(crate) fn sample_labels(labels: Option<&LabelTable>, gp: u64) -> Vec<(&str, LabelValue<'_>)> {
    match labels.and_then(|t| t.of(gp)) {
        None => Vec::new(),
        Some(Ok(set)) => set
            .iter()
            .map(|(k, v)| (k.as_str(), LabelValue::Str(v)))
            .collect(),
        Some(Err(why)) => vec![(LABELS_UNREADABLE, LabelValue::Str(why))],
    }
}
