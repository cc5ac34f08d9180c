//! A value's parts, one level down, a page at a time: what an editor's
//! variables view expands (DAP's `variables` with `start`/`count`). A
//! struct's fields, a slice's or array's elements, a map's entries (named
//! by their key as `print` shows it), what a pointer points at, what an
//! interface holds, a channel's `runtime.hchan`. Every page is bounded,
//! whatever length the target's bytes claim.

use super::format::Dynamic;
use super::types::{kind, offset};
use super::{Place, Scope, Value, VarError};

/// Most children one page holds.
pub const MAX_PAGE: u64 = 1024;
/// Most map entries walked to reach a page (a map is read from its start).
const MAX_MAP_WALK: u64 = 1 << 16;

/// One page of a value's children.
#[derive(Debug, Clone, Default)]
pub struct Children {
    /// `(name, value)`: `Name` for a field, `[3]` for an element,
    /// `[KEY]` for a map entry, `*` for a pointee, the dynamic type's
    /// name for an interface's value.
    pub items: Vec<(String, Value)>,
    /// How many children the value has in all (an editor pages by it),
    /// when known.
    pub total: u64,
    /// Why some could not be read, when some could not.
    pub partial: Option<String>,
}

impl Scope<'_> {
    /// How many children `v` has (0: a leaf, nothing to expand).
    pub fn child_count(&self, v: &Value) -> u64 {
        self.children(v, 0, 0).map_or(0, |c| c.total)
    }

    /// Children `start..start + count` of `v` (at most [`MAX_PAGE`]).
    pub fn children(&self, v: &Value, start: u64, count: u64) -> Result<Children, VarError> {
        if let Place::Unavailable(why) = &v.place {
            return Err(why.clone());
        }
        let count = count.min(MAX_PAGE);
        let (lay, t) = self.layout(v.ty).ok_or(VarError::UnknownType)?;
        let page = |total: u64| start.min(total)..start.saturating_add(count).min(total);
        let mut out = Children::default();
        match self.kind(v.ty) {
            kind::STRUCT => {
                out.total = t.members.len() as u64;
                for i in page(out.total) {
                    let Some(m) = t.members.get(i as usize) else {
                        break;
                    };
                    let Some(ty) = m.ty else { continue };
                    out.items.push((
                        m.name.clone(),
                        Value {
                            ty,
                            place: offset(&v.place, m.offset),
                        },
                    ));
                }
            }
            kind::SLICE | kind::ARRAY => {
                let (elem, base, len, _) = self.sequence(v)?;
                if matches!(base, Place::Mem(0)) {
                    return Ok(out);
                }
                out.total = len;
                let size = self.size(elem);
                for i in page(len) {
                    let Some(off) = i.checked_mul(size) else {
                        break;
                    };
                    out.items.push((
                        format!("[{i}]"),
                        Value {
                            ty: elem,
                            place: offset(&base, off),
                        },
                    ));
                }
            }
            kind::POINTER => {
                let p = self.read_u64(&v.place, 0)?;
                if let Some(to) = t.target.filter(|_| p != 0) {
                    out.total = 1;
                    if !page(1).is_empty() {
                        let place = Place::Mem(p);
                        out.items.push(("*".into(), Value { ty: to, place }));
                    }
                }
            }
            kind::INTERFACE => match self.dynamic(v)? {
                Dynamic::Value(inner) => {
                    out.total = 1;
                    if !page(1).is_empty() {
                        out.items.push((self.type_name(inner.ty), inner));
                    }
                }
                Dynamic::Nil | Dynamic::Undescribed { .. } => {}
            },
            kind::CHAN => {
                // The channel is a pointer to its `runtime.hchan`.
                if let Some((p, Some(hdr))) = self.runtime_header(v, lay)? {
                    let hchan = Value {
                        ty: hdr,
                        place: Place::Mem(p),
                    };
                    return self.children(&hchan, start, count);
                }
            }
            kind::MAP => {
                let Some((p, Some(hdr))) = self.runtime_header(v, lay)? else {
                    return Ok(out);
                };
                let off = self
                    .member(hdr, "count")
                    .or_else(|| self.member(hdr, "used"))
                    .map_or(0, |(o, _)| o);
                out.total = self.read_u64(&Place::Mem(p), off)?;
                let range = page(out.total);
                if range.is_empty() {
                    return Ok(out);
                }
                let kv = self.map_key_elem(v.ty);
                let want = range.end.min(MAX_MAP_WALK) as usize;
                let entries = self
                    .map_entries(p, hdr, kv, want)
                    .or_else(|| self.swiss_entries(p, hdr, kv, want));
                let Some(e) = entries else {
                    out.partial = Some("the map's layout is not one goat reads".into());
                    return Ok(out);
                };
                out.partial = e.partial;
                if range.end > MAX_MAP_WALK {
                    out.partial = Some(format!("entries past {MAX_MAP_WALK} are not read"));
                }
                for (k, val) in e.pairs.into_iter().skip(range.start as usize) {
                    out.items.push((format!("[{}]", self.format(&k)), val));
                }
            }
            _ => {}
        }
        Ok(out)
    }
}
