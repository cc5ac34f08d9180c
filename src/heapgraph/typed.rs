//! Each object's type. Three passes, the surest first, and an object keeps
//! the first type it is given:
//!
//! 1. the allocation header (Go 1.22+, objects of more than 512 bytes with
//!    pointers): the runtime's own record of what was allocated;
//! 2. a walk along DWARF types from the typed roots (package variables,
//!    live stack variables) and the header-typed objects: a pointer types
//!    the object at its target (an array of the pointee when the object
//!    holds several), a slice its backing array, a string its bytes, a map
//!    its header, buckets (classic) or directory, tables and groups
//!    (swiss), a channel its buffer, an interface the object its data word
//!    points to, by the dynamic type's runtime descriptor;
//! 3. whatever is left is `unknown (size N)`: reached only through words
//!    whose type goat does not know (unsafe.Pointer, a register), or
//!    garbage not yet swept.
//!
//! A type is given to an object only when a pointer lands on its start (or
//! its data, after a header): an interior pointer says nothing sure of the
//! whole object.

use std::collections::HashMap;
use std::rc::Rc;

use crate::binary::dwarf_vars::VarIndex;
use crate::heapwalk::Heap;
use crate::process::{Memory, MemoryExt};
use crate::values::types::kind;
use crate::values::{type_name_at, Scope};

use super::graph::Objects;
use super::roots::TypedRoot;

/// No type yet.
pub(super) const UNTYPED: u32 = u32::MAX;
/// Nesting of structs and arrays flattened into one plan.
const MAX_PLAN_DEPTH: usize = 16;
/// Words of a plan, at most (a larger value is scanned in parts).
const MAX_PLAN_ACTIONS: usize = 4096;
/// Elements of an inline array flattened into its container's plan.
const FLATTEN_ARRAY: u64 = 16;
/// Bytes of a value read at once.
const MAX_VALUE_READ: u64 = 1 << 20;
/// Values the type walk scans beyond one per word of the heap: package
/// variables and stack values.
const WALK_BUDGET_EXTRA: u64 = 1 << 26;
/// `abi.Type`: size at 0, ptrdata at 8; an itab's `_type` at 8.
const ITAB_TYPE: u64 = 8;

/// What to do with a word (or words) at an offset of a value.
#[derive(Debug, Clone)]
enum Action {
    /// A pointer to a value of this DWARF type.
    Ptr(usize),
    /// A slice: pointer, len, cap, of this element type.
    Slice(usize),
    /// A string's bytes.
    Str,
    /// An interface: `tab` (an itab) or `_type`, then data.
    Iface { itab: bool },
    /// A channel: a pointer to its `hchan<T>` (DWARF type), elements `T`.
    Chan { hchan: usize, elem: usize },
    /// A swiss map's header fields: where `dirPtr` and `dirLen` are, the
    /// group type (a small map's one group) and `*table<K,V>`.
    Swiss {
        dir_len: u64,
        group: usize,
        table_ptr: usize,
    },
    /// An inline array too long to flatten.
    Array { elem: usize, count: u64 },
}

type Plan = Rc<Vec<(u64, Action)>>;

/// Entries of the direct-mapped table in front of [`Walk::info_of`].
const RECENT: usize = 64;

/// One DWARF type as the walk uses it.
struct TyInfo {
    /// DWARF's size, and [`Walk::value_size`].
    size: u64,
    value_size: u64,
    plan: Plan,
    /// The type's name id, once one object was given it.
    name: Option<u32>,
}

/// Each object's type: an index into [`Types::names`] (or [`UNTYPED`]),
/// in a u16 while the names are fewer than 65535 (a heap's types are a
/// few thousand: 32 MB less for 16M objects), in a u32 past that.
pub(super) enum TypeIds {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

/// [`UNTYPED`] in a [`TypeIds::Narrow`].
const UNTYPED_NARROW: u16 = u16::MAX;

impl TypeIds {
    fn untyped(objects: usize) -> TypeIds {
        TypeIds::Narrow(vec![UNTYPED_NARROW; objects])
    }

    /// Object `i`'s type id, [`UNTYPED`] for none yet.
    pub fn get(&self, i: usize) -> Option<u32> {
        match self {
            TypeIds::Narrow(v) => v.get(i).map(|&t| match t {
                UNTYPED_NARROW => UNTYPED,
                t => u32::from(t),
            }),
            TypeIds::Wide(v) => v.get(i).copied(),
        }
    }

    fn set(&mut self, i: usize, id: u32) {
        if let TypeIds::Narrow(v) = self {
            match u16::try_from(id) {
                Ok(t) if t != UNTYPED_NARROW => {
                    if let Some(slot) = v.get_mut(i) {
                        *slot = t;
                    }
                    return;
                }
                _ => {
                    let wide = v
                        .iter()
                        .map(|&t| match t {
                            UNTYPED_NARROW => UNTYPED,
                            t => u32::from(t),
                        })
                        .collect();
                    *self = TypeIds::Wide(wide);
                }
            }
        }
        if let TypeIds::Wide(v) = self {
            if let Some(slot) = v.get_mut(i) {
                *slot = id;
            }
        }
    }
}

/// Type names, each once, and each object's type (an index into `names`).
pub(super) struct Types {
    pub names: Vec<String>,
    index: HashMap<String, u32>,
    pub of: TypeIds,
    /// The DWARF walk stopped at its bound: some objects it would have
    /// typed are `unknown`.
    pub walk_cut_short: bool,
}

impl Types {
    fn id(&mut self, name: String) -> u32 {
        if let Some(&i) = self.index.get(&name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.index.insert(name.clone(), i);
        self.names.push(name);
        i
    }

    pub fn name_of(&self, object: u32) -> &str {
        match self.of.get(object as usize) {
            Some(t) if t != UNTYPED => self.names.get(t as usize).map_or("?", String::as_str),
            _ => "?",
        }
    }
}

struct Walk<'a> {
    heap: &'a Heap,
    mem: &'a dyn Memory,
    bias: u64,
    objects: &'a Objects,
    scope: Scope<'a>,
    types: Types,
    /// Objects whose values were queued for scanning (once each: a type
    /// from a header is still scanned along DWARF when one reaches it), a
    /// bit each.
    scanned: Vec<u64>,
    /// What the walk needs of each DWARF type it met, found through a
    /// small direct-mapped table before the map: a heap of millions
    /// interleaves a few types, and hashing a DWARF offset (and a type's
    /// name, to give it) per object was most of the walk.
    infos: Vec<TyInfo>,
    info_of: HashMap<usize, u32>,
    recent: [(usize, u32); RECENT],
    /// Names of arrays of a type (`[n]T`), by type and count.
    array_names: HashMap<(usize, u64), u32>,
    /// The bytes of the value being scanned.
    buf: Vec<u8>,
    /// Runtime descriptor (run-time address) to its DWARF type.
    by_rtype: HashMap<u64, Option<usize>>,
    /// Values still to scan: (address, DWARF type, how many in a row).
    work: Vec<(u64, usize, u64)>,
    /// Values left to scan: a word's worth per word of the heap and of
    /// the roots, so hostile DWARF or counts cannot make the walk endless.
    budget: u64,
    /// The budget ran out: some objects were left untyped.
    pub(super) exhausted: bool,
    rtypes: Option<(u64, u64)>,
}

/// Types every object; see the module docs.
pub(super) fn type_objects(
    heap: &Heap,
    mem: &dyn Memory,
    bias: u64,
    objects: &Objects,
    vars: Option<&VarIndex>,
    rtypes: Option<(u64, u64)>,
    typed_roots: &[TypedRoot],
) -> Types {
    let mut types = Types {
        names: Vec::new(),
        index: HashMap::new(),
        of: TypeIds::untyped(objects.len()),
        walk_cut_short: false,
    };
    let Some(index) = vars else {
        headers_only(heap, mem, bias, objects, rtypes, &mut types);
        unknown(heap, objects, &mut types);
        return types;
    };
    let mut w = Walk {
        heap,
        mem,
        bias,
        objects,
        scope: Scope::frameless(mem, index, bias, rtypes),
        types,
        scanned: vec![0; objects.len().div_ceil(64)],
        infos: Vec::new(),
        info_of: HashMap::new(),
        recent: [(usize::MAX, 0); RECENT],
        array_names: HashMap::new(),
        buf: Vec::new(),
        by_rtype: HashMap::new(),
        work: Vec::new(),
        budget: heap
            .totals()
            .bytes
            .saturating_div(8)
            .saturating_add(WALK_BUDGET_EXTRA),
        exhausted: false,
        rtypes,
    };
    w.headers();
    for r in typed_roots {
        w.work.push((r.addr, r.ty, 1));
    }
    // Every push follows a type given to an object (once each) or a root:
    // the work is bounded by the objects' sizes.
    while let Some((addr, ty, count)) = w.work.pop() {
        w.scan(addr, ty, count);
    }
    let mut types = w.types;
    types.walk_cut_short = w.exhausted;
    unknown(heap, objects, &mut types);
    types
}

/// Pass 1 without DWARF: names from the headers only.
fn headers_only(
    heap: &Heap,
    mem: &dyn Memory,
    bias: u64,
    objects: &Objects,
    rtypes: Option<(u64, u64)>,
    types: &mut Types,
) {
    let Some(range) = rtypes else { return };
    for (i, obj) in heap.objects().enumerate().take(objects.len()) {
        if let Some((typ, start)) = heap.header_type(mem, &obj) {
            if let Ok(name) = type_name_at(mem, range, bias, typ) {
                let size = mem.read_u64(typ).unwrap_or(0);
                let n = count_in(
                    (obj.base.saturating_add(obj.size)).saturating_sub(start),
                    size,
                );
                let id = types.id(array_name(&name, n));
                types.of.set(i, id);
            }
        }
    }
}

fn bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 != 0)
}

fn set_bit(bits: &mut [u64], i: usize) {
    if let Some(w) = bits.get_mut(i / 64) {
        *w |= 1 << (i % 64);
    }
}

/// Pass 3.
fn unknown(heap: &Heap, objects: &Objects, types: &mut Types) {
    let mut by_size: HashMap<u64, u32> = HashMap::new();
    for (i, obj) in heap.objects().enumerate().take(objects.len()) {
        if types.of.get(i) == Some(UNTYPED) {
            let size = obj.size;
            let id = match by_size.get(&size) {
                Some(&id) => id,
                None => {
                    let id = types.id(format!("unknown (size {size})"));
                    by_size.insert(size, id);
                    id
                }
            };
            types.of.set(i, id);
        }
    }
}

/// How many values of `size` bytes fill `room` (0 when none does).
fn count_in(room: u64, size: u64) -> u64 {
    room.checked_div(size).unwrap_or(0)
}

fn array_name(elem: &str, n: u64) -> String {
    if n <= 1 {
        elem.to_string()
    } else {
        format!("[{n}]{elem}")
    }
}

impl Walk<'_> {
    /// Pass 1: header-typed objects, and their values queued for pass 2.
    fn headers(&mut self) {
        let Some(range) = self.rtypes else { return };
        let (heap, mem) = (self.heap, self.mem);
        for (i, obj) in heap.objects().enumerate().take(self.objects.len()) {
            let Some((typ, start)) = heap.header_type(mem, &obj) else {
                continue;
            };
            let Ok(name) = type_name_at(self.mem, range, self.bias, typ) else {
                continue;
            };
            let size = self.mem.read_u64(typ).unwrap_or(0);
            let n = count_in(
                (obj.base.saturating_add(obj.size)).saturating_sub(start),
                size,
            );
            let id = self.types.id(array_name(&name, n));
            self.types.of.set(i, id);
            if let Some(ty) = self.dwarf_of_rtype(typ) {
                let info = self.info(ty);
                if self.infos[info as usize].value_size == size && n > 0 {
                    set_bit(&mut self.scanned, i);
                    self.work.push((start, ty, n));
                }
            }
        }
    }

    fn dwarf_of_rtype(&mut self, typ: u64) -> Option<usize> {
        if let Some(t) = self.by_rtype.get(&typ) {
            return *t;
        }
        let t = self
            .scope
            .index
            .by_runtime_type(typ.wrapping_sub(self.bias));
        self.by_rtype.insert(typ, t);
        t
    }

    /// Gives the object starting at `p` (or whose data starts there) the
    /// type "`count` values of `ty`", and queues them, if it has no type.
    fn give(&mut self, p: u64, ty: usize) {
        let Some((i, obj)) = self.objects.numbered_at(self.heap, p) else {
            return;
        };
        let i = i as usize;
        if bit(&self.scanned, i) {
            return;
        }
        let start = match self.heap.header_type(self.mem, &obj) {
            Some((_, start)) => start,
            None => obj.base,
        };
        if p != start {
            return;
        }
        let info = self.info(ty);
        let n = count_in(
            (obj.base.saturating_add(obj.size)).saturating_sub(start),
            self.infos[info as usize].value_size,
        );
        if n == 0 {
            return;
        }
        set_bit(&mut self.scanned, i);
        if self.types.of.get(i) == Some(UNTYPED) {
            let id = self.name_id(ty, info, n);
            self.types.of.set(i, id);
        }
        if !self.infos[info as usize].plan.is_empty() {
            self.work.push((start, ty, n));
        }
    }

    /// The name id of `n` values of `ty` (`info` its [`TyInfo`]).
    fn name_id(&mut self, ty: usize, info: u32, n: u64) -> u32 {
        if n <= 1 {
            if let Some(id) = self.infos[info as usize].name {
                return id;
            }
        } else if let Some(&id) = self.array_names.get(&(ty, n)) {
            return id;
        }
        let elem = self.scope.type_name(ty);
        let id = self.types.id(array_name(&elem, n));
        if n <= 1 {
            self.infos[info as usize].name = Some(id);
        } else {
            self.array_names.insert((ty, n), id);
        }
        id
    }

    /// `ty`'s [`TyInfo`], made on first use.
    fn info(&mut self, ty: usize) -> u32 {
        let slot = (ty ^ (ty >> 7)) % RECENT;
        if self.recent[slot].0 == ty {
            return self.recent[slot].1;
        }
        let at = match self.info_of.get(&ty) {
            Some(&at) => at,
            None => {
                let mut out = Vec::new();
                self.build(ty, 0, 0, &mut out);
                let at = self.infos.len() as u32;
                self.infos.push(TyInfo {
                    size: self.scope.size(ty),
                    value_size: self.value_size(ty),
                    plan: Rc::new(out),
                    name: None,
                });
                self.info_of.insert(ty, at);
                at
            }
        };
        self.recent[slot] = (ty, at);
        at
    }

    /// Names the object starting at `p` without scanning it.
    fn name(&mut self, p: u64, name: &str) {
        if let Some((i, obj)) = self.objects.numbered_at(self.heap, p) {
            let at = i as usize;
            if self.types.of.get(at) == Some(UNTYPED) && obj.base == p {
                let id = self.types.id(name.to_string());
                self.types.of.set(at, id);
            }
        }
    }

    /// A value's size: DWARF's, or a word for the pointer-shaped kinds
    /// whose entries may carry none.
    fn value_size(&self, ty: usize) -> u64 {
        match self.scope.size(ty) {
            0 => match self.scope.kind(ty) {
                kind::POINTER | kind::MAP | kind::CHAN | kind::FUNC | kind::UNSAFE_POINTER => 8,
                _ => 0,
            },
            n => n,
        }
    }

    /// Scans `count` values of `ty` from `addr`.
    fn scan(&mut self, addr: u64, ty: usize, count: u64) {
        let info = self.info(ty);
        let plan = self.infos[info as usize].plan.clone();
        if plan.is_empty() {
            return;
        }
        let size = self.infos[info as usize].size.max(1);
        // Bytes the plan reads: through its last word (a slice's three).
        let span = plan
            .iter()
            .map(|(off, _)| off + 24)
            .max()
            .unwrap_or(8)
            .min(size);
        // One buffer for the walk, lent to each scan.
        let mut buf = std::mem::take(&mut self.buf);
        for k in 0..count {
            if self.budget == 0 {
                self.exhausted = true;
                break;
            }
            self.budget -= 1;
            let Some(at) = k.checked_mul(size).and_then(|o| addr.checked_add(o)) else {
                break;
            };
            buf.resize(span.min(MAX_VALUE_READ) as usize, 0);
            if span > MAX_VALUE_READ || self.mem.read(at, &mut buf).is_err() {
                buf.clear();
            }
            for (off, action) in plan.iter() {
                self.act(at, &buf, *off, action);
            }
        }
        self.buf = buf;
    }

    fn word(&self, at: u64, buf: &[u8], off: u64) -> u64 {
        let o = off as usize;
        match buf.get(o..o + 8) {
            Some(b) => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
            None => self.mem.read_u64(at.wrapping_add(off)).unwrap_or(0),
        }
    }

    fn act(&mut self, at: u64, buf: &[u8], off: u64, action: &Action) {
        let w = self.word(at, buf, off);
        match *action {
            Action::Ptr(target) => {
                if w != 0 {
                    self.give(w, target);
                }
            }
            Action::Slice(elem) => {
                if w != 0 {
                    self.give(w, elem);
                }
            }
            Action::Str => {
                if w != 0 {
                    self.name(w, "string");
                }
            }
            Action::Iface { itab } => {
                let data = self.word(at, buf, off + 8);
                let typ = if itab && w != 0 {
                    self.mem.read_u64(w.wrapping_add(ITAB_TYPE)).unwrap_or(0)
                } else {
                    w
                };
                if typ != 0 && data != 0 {
                    self.dynamic(typ, data);
                }
            }
            Action::Chan { hchan, elem } => {
                if w == 0 {
                    return;
                }
                self.give(w, hchan);
                let Some((buf_off, _)) = self.scope.member(hchan, "buf") else {
                    return;
                };
                let b = self.mem.read_u64(w.wrapping_add(buf_off)).unwrap_or(0);
                if b != 0 && b != w {
                    self.give(b, elem);
                }
            }
            Action::Swiss {
                dir_len,
                group,
                table_ptr,
            } => {
                if w == 0 {
                    return;
                }
                let len = self.word(at, buf, off + dir_len);
                if len == 0 {
                    self.give(w, group);
                } else {
                    self.give(w, table_ptr);
                }
            }
            Action::Array { elem, count } => {
                // Bounded: the array lies inside the value being scanned.
                self.work.push((at.wrapping_add(off), elem, count));
            }
        }
    }

    /// An interface's data word, by its dynamic type's descriptor: a
    /// pointer-shaped type (`Size_ == PtrBytes == 8`, "direct") is the
    /// word itself; any other type's value is in the object it points to.
    fn dynamic(&mut self, typ: u64, data: u64) {
        let (Ok(size), Ok(ptr_bytes)) = (
            self.mem.read_u64(typ),
            self.mem.read_u64(typ.wrapping_add(8)),
        ) else {
            return;
        };
        let dwarf = self.dwarf_of_rtype(typ);
        if size == 8 && ptr_bytes == 8 {
            // A pointer (or a struct or array of one): what it points to.
            if let Some(ty) = dwarf {
                let info = self.info(ty);
                if let Some((0, Action::Ptr(target))) =
                    self.infos[info as usize].plan.first().cloned()
                {
                    self.give(data, target);
                }
            }
            return;
        }
        match dwarf {
            Some(ty) => self.give(data, ty),
            None => {
                if let Some(range) = self.rtypes {
                    if let Ok(name) = type_name_at(self.mem, range, self.bias, typ) {
                        self.name(data, &name);
                    }
                }
            }
        }
    }

    fn build(&self, ty: usize, base: u64, depth: usize, out: &mut Vec<(u64, Action)>) {
        if depth > MAX_PLAN_DEPTH || out.len() >= MAX_PLAN_ACTIONS {
            return;
        }
        let s = &self.scope;
        let Some((_, t)) = s.layout(ty) else { return };
        match s.kind(ty) {
            kind::POINTER | kind::MAP if t.tag == gimli::DW_TAG_pointer_type => {
                if let Some(target) = t.target {
                    out.push((base, Action::Ptr(target)));
                }
            }
            kind::CHAN => {
                let elem = self.elem_of(ty);
                if let (true, Some(hchan), Some(elem)) =
                    (t.tag == gimli::DW_TAG_pointer_type, t.target, elem)
                {
                    out.push((base, Action::Chan { hchan, elem }));
                }
            }
            kind::SLICE => {
                let elem = t
                    .elem
                    .or_else(|| s.member(ty, "array").and_then(|(_, a)| s.ty(a)?.target));
                if let Some(elem) = elem {
                    out.push((base, Action::Slice(elem)));
                }
            }
            kind::STRING => out.push((base, Action::Str)),
            kind::INTERFACE => {
                let itab = s.member(ty, "tab").is_some();
                out.push((base, Action::Iface { itab }));
            }
            kind::STRUCT => {
                if let Some(swiss) = self.swiss(ty) {
                    out.push((base.saturating_add(swiss.0), swiss.1));
                    return;
                }
                for m in &t.members {
                    if let Some(mty) = m.ty {
                        self.build(mty, base.saturating_add(m.offset), depth + 1, out);
                    }
                }
            }
            kind::ARRAY => {
                let (Some(elem), Some(count)) = (t.target, t.count) else {
                    return;
                };
                let stride = s.size(elem);
                if stride == 0 {
                    return;
                }
                let mut inner = Vec::new();
                self.build(elem, 0, depth + 1, &mut inner);
                if inner.is_empty() {
                    return;
                }
                if count <= FLATTEN_ARRAY {
                    for k in 0..count {
                        for (o, a) in &inner {
                            out.push((
                                base.saturating_add(k.saturating_mul(stride))
                                    .saturating_add(*o),
                                a.clone(),
                            ));
                        }
                    }
                } else {
                    out.push((base, Action::Array { elem, count }));
                }
            }
            _ => {}
        }
    }

    /// A channel's element type, from the `chan T` type's `DW_AT_go_elem`.
    fn elem_of(&self, ty: usize) -> Option<usize> {
        let mut cur = ty;
        for _ in 0..16 {
            let t = self.scope.ty(cur)?;
            if t.elem.is_some() {
                return t.elem;
            }
            match (t.tag, t.target) {
                (gimli::DW_TAG_typedef, Some(next)) => cur = next,
                _ => return None,
            }
        }
        None
    }

    /// A swiss map's header `map<K,V>` (Go 1.24+): where `dirPtr` is and
    /// what to do with it.
    fn swiss(&self, ty: usize) -> Option<(u64, Action)> {
        let s = &self.scope;
        let (dir_ptr, dir_ptr_ty) = s.member(ty, "dirPtr")?;
        let (dir_len, _) = s.member(ty, "dirLen")?;
        // dirPtr is described as **table<K,V>; table.groups.data as *group.
        let table_ptr = s.layout(dir_ptr_ty)?.1.target?;
        let table = s.layout(table_ptr)?.1.target?;
        let (_, groups_ty) = s.member(table, "groups")?;
        let (_, data_ty) = s.member(groups_ty, "data")?;
        let group = s.layout(data_ty)?.1.target?;
        Some((
            dir_ptr,
            Action::Swiss {
                dir_len: dir_len.checked_sub(dir_ptr)?,
                group,
                table_ptr,
            },
        ))
    }
}
