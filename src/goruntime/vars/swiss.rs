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
            key_at: Box::new(move |i| keys_off + i * ks),
            elem_at: Box::new(move |i| elems_off + i * es),
        })
    }

    /// Up to `max` (key, value) pairs of the swiss map at `map` whose
    /// `map<K,V>` type is `hdr`; `None` when the layout is not a swiss map's.
    pub fn swiss_entries(&self, map: u64, hdr: usize, max: usize) -> Option<Vec<(Value, Value)>> {
        let at = Place::Mem(map);
        let (dir_ptr_off, dir_ptr_ty) = self.member(hdr, "dirPtr")?;
        let (dir_len_off, _) = self.member(hdr, "dirLen")?;
        // dirPtr is described as **table<K,V>.
        let table_ptr = self.layout(dir_ptr_ty)?.1.target?;
        let table = self.layout(table_ptr)?.1.target?;
        let (groups_off, groups_ty) = self.member(table, "groups")?;
        let (data_off, data_ty) = self.member(groups_ty, "data")?;
        let (mask_off, _) = self.member(groups_ty, "lengthMask")?;
        let group = self.group_layout(self.layout(data_ty)?.1.target?)?;

        let dir_ptr = self.read_u64(&at, dir_ptr_off).ok()?;
        let dir_len = self.read_u64(&at, dir_len_off).ok()?;
        let mut out = Vec::new();
        if dir_len == 0 {
            self.group_entries(&group, dir_ptr, max, &mut out);
            return Some(out);
        }
        let mut tables = HashSet::new();
        let mut walked = 0u64;
        for i in 0..dir_len.min(MAX_DIR) {
            let Ok(t) = self.read_u64(&Place::Mem(dir_ptr), i * 8) else {
                break;
            };
            if t == 0 || !tables.insert(t) {
                continue;
            }
            let refs = Place::Mem(t + groups_off);
            let (Ok(data), Ok(mask)) = (
                self.read_u64(&refs, data_off),
                self.read_u64(&refs, mask_off),
            ) else {
                continue;
            };
            for g in 0..=mask.min(MAX_GROUPS) {
                walked += 1;
                if walked > MAX_GROUPS || out.len() >= max {
                    return Some(out);
                }
                let Some(addr) = g.checked_mul(group.size).and_then(|o| data.checked_add(o)) else {
                    break;
                };
                self.group_entries(&group, addr, max, &mut out);
            }
        }
        Some(out)
    }

    /// The full slots of the group at `addr`, appended to `out` (up to `max`).
    fn group_entries(&self, g: &Group, addr: u64, max: usize, out: &mut Vec<(Value, Value)>) {
        let Ok(ctrl) = self.read_u64(&Place::Mem(addr), g.ctrl) else {
            return;
        };
        for i in 0..g.slots.min(8) {
            if out.len() >= max {
                return;
            }
            if (ctrl >> (8 * i)) & CTRL_EMPTY_BIT != 0 {
                continue;
            }
            out.push((
                Value {
                    ty: g.key_ty,
                    place: Place::Mem(addr + (g.key_at)(i)),
                },
                Value {
                    ty: g.elem_ty,
                    place: Place::Mem(addr + (g.elem_at)(i)),
                },
            ));
        }
    }
}
