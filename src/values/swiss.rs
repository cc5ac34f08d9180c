//! Entries of a swiss-table Go map (Go 1.24+, `internal/runtime/maps`), as
//! the linker describes it in DWARF: `map<K,V>` {used, dirPtr, dirLen, ...},
//! `table<K,V>` {groups: groupReference<K,V> {data, lengthMask}}, and the
//! compiler's group type: a control word (one byte per slot, high bit clear
//! when the slot is full) followed by either `slots [8]{key, elem}` or (the
//! split layout) `keys [8]K` and `elems [8]V`.
//!
//! `dirLen == 0` is a small map: `dirPtr` points at its one group. Otherwise
//! `dirPtr` is an array of `dirLen` table pointers, where a table appears
//! once per directory slot it covers.

use std::collections::HashSet;

use super::maps::Entries;
use super::{Place, Scope, Value};

/// Most directory entries read (a directory holds at most a few thousand).
const MAX_DIR: u64 = 1 << 16;
/// Most groups walked in one map.
const MAX_GROUPS: u64 = 1 << 14;
/// A control byte with its high bit clear marks a full slot.
const CTRL_EMPTY_BIT: u64 = 0x80;

/// Where the keys and values sit in a group.
struct Group {
    size: u64,
    ctrl: u64,
    slots: u64,
    key_ty: usize,
    elem_ty: usize,
    /// The slot holds a pointer to the key (value), not the key itself.
    key_indirect: bool,
    elem_indirect: bool,
    /// Address of slot `i`'s key and value, relative to the group.
    key_at: Box<dyn Fn(u64) -> u64>,
    elem_at: Box<dyn Fn(u64) -> u64>,
}

impl Scope<'_> {
    fn group_layout(&self, group_ty: usize) -> Option<Group> {
        let size = self.size(group_ty);
        let (ctrl, _) = self.member(group_ty, "ctrl")?;
        if let Some((slots_off, arr)) = self.member(group_ty, "slots") {
            let (_, a) = self.layout(arr)?;
            let slot = a.target?;
            let slot_size = self.size(slot);
            let (k_off, key_ty) = self.member(slot, "key")?;
            let (e_off, elem_ty) = self.member(slot, "elem")?;
            return Some(Group {
                size,
                ctrl,
                slots: a.count?,
                key_ty,
                elem_ty,
                key_indirect: false,
                elem_indirect: false,
                key_at: Box::new(move |i| slots_off + i * slot_size + k_off),
                elem_at: Box::new(move |i| slots_off + i * slot_size + e_off),
            });
        }
        let (keys_off, keys) = self.member(group_ty, "keys")?;
        let (elems_off, elems) = self.member(group_ty, "elems")?;
        let (_, ka) = self.layout(keys)?;
        let (_, ea) = self.layout(elems)?;
        let (key_ty, elem_ty) = (ka.target?, ea.target?);
        let (ks, es) = (self.size(key_ty), self.size(elem_ty));
        Some(Group {
            size,
            ctrl,
            slots: ka.count?,
            key_ty,
            elem_ty,
            key_indirect: false,
            elem_indirect: false,
            key_at: Box::new(move |i| keys_off + i * ks),
            elem_at: Box::new(move |i| elems_off + i * es),
        })
    }

    /// Up to `max` (key, value) pairs of the swiss map at `map` whose
    /// `map<K,V>` type is `hdr`; `None` when the layout is not a swiss map's.
    /// `kv` are the map's own key and value types (`DW_AT_go_key`,
    /// `DW_AT_go_elem`), which tell an indirect slot from a pointer key.
    pub fn swiss_entries(
        &self,
        map: u64,
        hdr: usize,
        kv: (Option<usize>, Option<usize>),
        max: usize,
    ) -> Option<Entries> {
        let at = Place::Mem(map);
        let (dir_ptr_off, dir_ptr_ty) = self.member(hdr, "dirPtr")?;
        let (dir_len_off, _) = self.member(hdr, "dirLen")?;
        // dirPtr is described as **table<K,V>.
        let table_ptr = self.layout(dir_ptr_ty)?.1.target?;
        let table = self.layout(table_ptr)?.1.target?;
        let (groups_off, groups_ty) = self.member(table, "groups")?;
        let (data_off, data_ty) = self.member(groups_ty, "data")?;
        let (mask_off, _) = self.member(groups_ty, "lengthMask")?;
        let mut group = self.group_layout(self.layout(data_ty)?.1.target?)?;
        if let Some(k) = kv.0.and_then(|k| self.indirect(group.key_ty, k)) {
            (group.key_ty, group.key_indirect) = (k, true);
        }
        if let Some(e) = kv.1.and_then(|e| self.indirect(group.elem_ty, e)) {
            (group.elem_ty, group.elem_indirect) = (e, true);
        }

        let mut out = Entries::default();
        let (Ok(dir_ptr), Ok(dir_len)) = (
            self.read_u64(&at, dir_ptr_off),
            self.read_u64(&at, dir_len_off),
        ) else {
            out.unreadable(map);
            return Some(out);
        };
        if dir_len == 0 {
            self.group_entries(&group, dir_ptr, max, &mut out);
            return Some(out);
        }
        if dir_len > MAX_DIR {
            out.partial = Some(format!("directory of {dir_len} tables"));
        }
        let mut tables = HashSet::new();
        let mut walked = 0u64;
        for i in 0..dir_len.min(MAX_DIR) {
            let Ok(t) = self.read_u64(&Place::Mem(dir_ptr), i * 8) else {
                out.unreadable(dir_ptr.wrapping_add(i * 8));
                break;
            };
            // A table covers a run of directory slots: walk it once.
            if t == 0 || !tables.insert(t) {
                continue;
            }
            let refs = Place::Mem(t.wrapping_add(groups_off));
            let (Ok(data), Ok(mask)) = (
                self.read_u64(&refs, data_off),
                self.read_u64(&refs, mask_off),
            ) else {
                out.unreadable(t);
                continue;
            };
            for g in 0..=mask.min(MAX_GROUPS) {
                if out.pairs.len() >= max {
                    return Some(out);
                }
                walked += 1;
                if walked > MAX_GROUPS {
                    out.partial.get_or_insert_with(|| "too many groups".into());
                    return Some(out);
                }
                let Some(addr) = g.checked_mul(group.size).and_then(|o| data.checked_add(o)) else {
                    out.unreadable(data);
                    break;
                };
                self.group_entries(&group, addr, max, &mut out);
            }
        }
        Some(out)
    }

    /// The full slots of the group at `addr`, appended to `out` (up to `max`).
    fn group_entries(&self, g: &Group, addr: u64, max: usize, out: &mut Entries) {
        let Ok(ctrl) = self.read_u64(&Place::Mem(addr), g.ctrl) else {
            out.unreadable(addr);
            return;
        };
        for i in 0..g.slots.min(8) {
            if out.pairs.len() >= max {
                return;
            }
            if (ctrl >> (8 * i)) & CTRL_EMPTY_BIT != 0 {
                continue;
            }
            let key = self.slot(g.key_ty, g.key_indirect, addr.wrapping_add((g.key_at)(i)));
            let val = self.slot(
                g.elem_ty,
                g.elem_indirect,
                addr.wrapping_add((g.elem_at)(i)),
            );
            match (key, val) {
                (Ok(k), Ok(v)) => out.push(k, v),
                (Err(a), _) | (_, Err(a)) => out.unreadable(a),
            }
        }
    }

    /// `want` when the slot type `slot` is a pointer to it rather than it.
    pub(super) fn indirect(&self, slot: usize, want: usize) -> Option<usize> {
        if slot == want || self.type_name(slot) == self.type_name(want) {
            return None;
        }
        let to = self.layout(slot)?.1.target?;
        (self.type_name(to) == self.type_name(want)).then_some(want)
    }

    /// The key or value in a slot at `at`: when `indirect` the slot holds
    /// a pointer to it (keys and values over 128 bytes are stored so).
    pub(super) fn slot(&self, ty: usize, indirect: bool, at: u64) -> Result<Value, u64> {
        let place = if indirect {
            Place::Mem(self.read_u64(&Place::Mem(at), 0).map_err(|_| at)?)
        } else {
            Place::Mem(at)
        };
        Ok(Value { ty, place })
    }
}
