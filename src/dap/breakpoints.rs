//! The breakpoints an editor sets: by file (`setBreakpoints` replaces all
//! of a file's) and by function (`setFunctionBreakpoints` replaces them
//! all), with conditions and hit conditions as Delve reads them.

use std::collections::HashMap;

use serde_json::{json, Value as Json};

use super::errors::text;
use crate::session::breakpoints::{HitCond, HitOp};
use crate::session::Session;

#[derive(Default)]
pub(super) struct EditorBreakpoints {
    /// Breakpoint ids set per source path.
    by_source: HashMap<String, Vec<i64>>,
    /// Function breakpoints.
    functions: Vec<i64>,
}

impl EditorBreakpoints {
    /// One of the requests that change breakpoints (`setBreakpoints`,
    /// `setFunctionBreakpoints`, `setExceptionBreakpoints`): its answer's
    /// body.
    pub(super) fn edit(
        &mut self,
        s: &mut Session,
        command: &str,
        args: &Json,
    ) -> Result<Json, String> {
        match command {
            "setBreakpoints" => self.set_for_source(s, args),
            "setFunctionBreakpoints" => self.set_functions(s, args),
            "setExceptionBreakpoints" => set_exception_filters(s, args),
            other => Err(format!("{other:?} sets no breakpoint")),
        }
    }

    /// `setBreakpoints`: the file's breakpoints replaced by those asked for.
    pub(super) fn set_for_source(&mut self, s: &mut Session, args: &Json) -> Result<Json, String> {
        let path = args["source"]["path"]
            .as_str()
            .ok_or("setBreakpoints: no source.path")?
            .to_string();
        for id in self.by_source.remove(&path).unwrap_or_default() {
            clear(s, id)?;
        }
        let mut ids = Vec::new();
        let mut out = Vec::new();
        let empty = Vec::new();
        for bp in args["breakpoints"].as_array().unwrap_or(&empty) {
            let line = bp["line"].as_u64().unwrap_or(0);
            let cond = bp["condition"]
                .as_str()
                .filter(|c| !c.trim().is_empty())
                .map(str::to_string);
            let set = hit_condition(bp["hitCondition"].as_str()).and_then(|hit| {
                s.set_breakpoint(&format!("{path}:{line}"), cond, hit)
                    .map_err(text)
            });
            out.push(match set {
                Ok(id) => {
                    ids.push(id);
                    json!({"id": id, "verified": true, "line": line})
                }
                Err(e) => json!({"verified": false, "line": line, "message": e}),
            });
        }
        self.by_source.insert(path, ids);
        Ok(json!({ "breakpoints": out }))
    }

    /// `setFunctionBreakpoints`: every function breakpoint replaced.
    pub(super) fn set_functions(&mut self, s: &mut Session, args: &Json) -> Result<Json, String> {
        for id in std::mem::take(&mut self.functions) {
            clear(s, id)?;
        }
        let mut out = Vec::new();
        let empty = Vec::new();
        for bp in args["breakpoints"].as_array().unwrap_or(&empty) {
            let name = bp["name"].as_str().unwrap_or("");
            let cond = bp["condition"].as_str().map(str::to_string);
            let set = hit_condition(bp["hitCondition"].as_str())
                .and_then(|hit| s.set_breakpoint(name, cond, hit).map_err(text));
            out.push(match set {
                Ok(id) => {
                    self.functions.push(id);
                    json!({"id": id, "verified": true})
                }
                Err(e) => json!({"verified": false, "message": e}),
            });
        }
        Ok(json!({ "breakpoints": out }))
    }
}

/// Clears breakpoint `id` the editor set, unless the debug console's
/// `clear` or `clearall` did already.
fn clear(s: &mut Session, id: i64) -> Result<(), String> {
    if s.bps.list.iter().any(|b| b.id == id) {
        s.clear_breakpoint(id).map_err(text)?;
    }
    Ok(())
}

/// A DAP hit condition: `N` (the N-th hit: `== N`, as Delve takes it) or
/// `OP N` with OP one of `== != > < >= <= %`.
fn hit_condition(text: Option<&str>) -> Result<Option<HitCond>, String> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let split = t
        .find(|c: char| c.is_ascii_digit())
        .ok_or_else(|| format!("hit condition {t:?}: no count"))?;
    let (op, k) = t.split_at(split);
    let op = match op.trim() {
        "" => HitOp::Eq,
        op => HitOp::parse(op).ok_or_else(|| format!("hit condition {t:?}: no operator {op:?}"))?,
    };
    let k = k
        .trim()
        .parse()
        .map_err(|_| format!("hit condition {t:?}: {k:?} is not a count"))?;
    Ok(Some(HitCond {
        op,
        k,
        per_g: false,
    }))
}

/// `setExceptionBreakpoints`: the runtime's panic and throw breakpoints,
/// set at attach, stay armed for the filters asked for (a core has none).
fn set_exception_filters(s: &mut Session, args: &Json) -> Result<Json, String> {
    let filters: Vec<&str> = args["filters"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    if s.core_path().is_none() {
        for name in [
            crate::session::breakpoints::UNRECOVERED_PANIC,
            crate::session::breakpoints::FATAL_THROW,
        ] {
            if s.bps.find(name).is_ok() {
                s.set_enabled(name, filters.contains(&name)).map_err(text)?;
            }
        }
    }
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_conditions_read_as_delve_reads_them() {
        let hit = |t| hit_condition(Some(t)).unwrap().unwrap();
        assert_eq!((hit("5").op, hit("5").k), (HitOp::Eq, 5));
        assert_eq!((hit(">= 3").op, hit(">= 3").k), (HitOp::Ge, 3));
        assert_eq!(hit("%2").op, HitOp::Rem);
        assert!(hit_condition(Some("  ")).unwrap().is_none());
        assert!(hit_condition(None).unwrap().is_none());
        assert!(hit_condition(Some("=~ 3")).is_err());
        assert!(hit_condition(Some("often")).is_err());
        assert!(hit_condition(Some("> 99999999999999999999999")).is_err());
    }
}
