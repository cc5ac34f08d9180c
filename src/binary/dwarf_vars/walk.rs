//! The one walk over a unit's entries that fills a [`VarIndex`].

use gimli::{AttributeValue, DebuggingInformationEntry, Unit};

use super::{
    Ctx, Function, Global, Inlined, Location, Member, Type, Var, VarIndex, DW_AT_GO_ELEM,
    DW_AT_GO_EMBEDDED_FIELD, DW_AT_GO_KEY, DW_AT_GO_KIND, DW_AT_GO_RUNTIME_TYPE,
    MAX_ENTRIES_PER_UNIT,
};
use crate::binary::dwarf::{global_ref, is_type_tag, member_offset, op_addr, R};

impl VarIndex {
    pub(super) fn index_unit(
        &mut self,
        dwarf: &gimli::Dwarf<R<'_>>,
        unit: &Unit<R<'_>>,
    ) -> gimli::Result<()> {
        let mut cursor = unit.entries();
        let mut stack: Vec<(isize, Ctx)> = Vec::new();
        let mut blocks: Vec<Vec<(u64, u64)>> = Vec::new();
        let mut seen = 0usize;
        while let Some(entry) = cursor.next_dfs()? {
            seen += 1;
            if seen > MAX_ENTRIES_PER_UNIT {
                break;
            }
            let depth = entry.depth();
            while stack.last().is_some_and(|&(d, _)| d >= depth) {
                stack.pop();
            }
            let parent = stack.last().map(|&(_, c)| c);
            let Some(offset) = entry.offset().to_debug_info_offset(&unit.header) else {
                continue;
            };
            let offset = offset.0;
            let tag = entry.tag();
            let ty = entry
                .attr_value(gimli::DW_AT_type)
                .and_then(|v| global_ref(unit, v));
            match tag {
                gimli::DW_TAG_subprogram => {
                    let ranges = ranges_of(dwarf, unit, entry);
                    if ranges.is_empty() {
                        stack.push((depth, Ctx::Skip));
                        continue;
                    }
                    self.functions.push(Function {
                        name: name_of(dwarf, unit, entry).unwrap_or_default(),
                        ranges,
                        encoding: unit.encoding(),
                        vars: Vec::new(),
                        inlined: Vec::new(),
                    });
                    stack.push((depth, Ctx::Func(self.functions.len() - 1)));
                }
                gimli::DW_TAG_lexical_block => match parent {
                    Some(Ctx::Func(_) | Ctx::Inl(..) | Ctx::Block(_)) => {
                        blocks.push(ranges_of(dwarf, unit, entry));
                        stack.push((depth, Ctx::Block(blocks.len() - 1)));
                    }
                    _ => stack.push((depth, Ctx::Skip)),
                },
                gimli::DW_TAG_inlined_subroutine => {
                    let within = stack.iter().all(|&(_, c)| !matches!(c, Ctx::Skip));
                    let inl_depth = 1 + stack
                        .iter()
                        .filter(|&&(_, c)| matches!(c, Ctx::Inl(..)))
                        .count();
                    match (within, owner(&stack)) {
                        (true, Some(Ctx::Func(f) | Ctx::Inl(f, _))) => {
                            let calls = &mut self.functions[f].inlined;
                            calls.push(Inlined {
                                depth: inl_depth,
                                ranges: ranges_of(dwarf, unit, entry),
                                vars: Vec::new(),
                            });
                            stack.push((depth, Ctx::Inl(f, calls.len() - 1)));
                        }
                        _ => stack.push((depth, Ctx::Skip)),
                    }
                }
                gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => {
                    let (name, ty) = named(dwarf, unit, entry, ty);
                    if !name.is_empty() {
                        self.origins.insert(offset, (name.clone(), ty));
                    }
                    let scope = match parent {
                        Some(Ctx::Block(b)) => blocks[b].clone(),
                        _ => Vec::new(),
                    };
                    let block_depth = stack
                        .iter()
                        .rev()
                        .take_while(|&&(_, c)| matches!(c, Ctx::Block(_)))
                        .count();
                    let attr = entry.attr_value(gimli::DW_AT_location);
                    let is_local =
                        matches!(parent, Some(Ctx::Func(_) | Ctx::Inl(..) | Ctx::Block(_)));
                    match (parent, owner(&stack)) {
                        (_, Some(o)) if is_local => {
                            let var = Var {
                                name,
                                param: tag == gimli::DW_TAG_formal_parameter,
                                result: matches!(
                                    entry.attr_value(gimli::DW_AT_variable_parameter),
                                    Some(AttributeValue::Flag(true))
                                ),
                                ty,
                                scope,
                                block_depth,
                                location: location_of(dwarf, unit, attr),
                                decl_line: entry
                                    .attr_value(gimli::DW_AT_decl_line)
                                    .and_then(|v| v.udata_value()),
                                origin: entry
                                    .attr_value(gimli::DW_AT_abstract_origin)
                                    .and_then(|v| global_ref(unit, v)),
                            };
                            match o {
                                Ctx::Func(f) => self.functions[f].vars.push(var),
                                Ctx::Inl(f, i) => self.functions[f].inlined[i].vars.push(var),
                                _ => {}
                            }
                        }
                        (None, _) if tag == gimli::DW_TAG_variable => {
                            let addr = match attr {
                                Some(AttributeValue::Exprloc(e)) => op_addr(e.0.slice()),
                                _ => None,
                            };
                            if let (Some(addr), Some(name)) = (addr, name_of(dwarf, unit, entry)) {
                                self.globals.entry(name).or_insert(Global { addr, ty });
                            }
                        }
                        _ => {}
                    }
                }
                gimli::DW_TAG_member => {
                    if let Some(Ctx::Struct(s)) = parent {
                        let m = Member {
                            name: name_of(dwarf, unit, entry).unwrap_or_default(),
                            offset: entry
                                .attr_value(gimli::DW_AT_data_member_location)
                                .and_then(member_offset)
                                .unwrap_or(0),
                            ty,
                            embedded: matches!(
                                entry.attr_value(DW_AT_GO_EMBEDDED_FIELD),
                                Some(AttributeValue::Flag(true))
                            ),
                        };
                        if let Some(t) = self.types.get_mut(&s) {
                            t.members.push(m);
                        }
                    }
                }
                gimli::DW_TAG_subrange_type => {
                    if let Some(Ctx::Array(a)) = parent {
                        let count = entry
                            .attr_value(gimli::DW_AT_count)
                            .and_then(|v| v.udata_value())
                            .or_else(|| {
                                let ub = entry.attr_value(gimli::DW_AT_upper_bound)?;
                                ub.udata_value().map(|u| u + 1)
                            });
                        if let Some(t) = self.types.get_mut(&a) {
                            t.count = count;
                        }
                    }
                }
                _ if is_type_tag(tag) => {
                    let udata = |at| entry.attr_value(at).and_then(|v| v.udata_value());
                    let t = Type {
                        tag,
                        name: name_of(dwarf, unit, entry).unwrap_or_default(),
                        size: udata(gimli::DW_AT_byte_size).or((tag == gimli::DW_TAG_pointer_type)
                            .then_some(u64::from(unit.header.address_size()))),
                        kind: udata(DW_AT_GO_KIND).unwrap_or(0) as u8,
                        target: ty,
                        elem: entry
                            .attr_value(DW_AT_GO_ELEM)
                            .and_then(|v| global_ref(unit, v)),
                        key: entry
                            .attr_value(DW_AT_GO_KEY)
                            .and_then(|v| global_ref(unit, v)),
                        encoding: udata(gimli::DW_AT_encoding).unwrap_or(0) as u8,
                        count: None,
                        members: Vec::new(),
                    };
                    let rt = match entry.attr_value(DW_AT_GO_RUNTIME_TYPE) {
                        Some(AttributeValue::Addr(a)) => Some(a),
                        Some(v) => v.udata_value(),
                        None => None,
                    };
                    if let Some(rt) = rt.filter(|&a| a != 0) {
                        self.runtime_types.entry(rt).or_insert(offset);
                    }
                    self.types.insert(offset, t);
                    let ctx = match tag {
                        gimli::DW_TAG_structure_type => Ctx::Struct(offset),
                        gimli::DW_TAG_array_type => Ctx::Array(offset),
                        _ => Ctx::Skip,
                    };
                    stack.push((depth, ctx));
                }
                gimli::DW_TAG_compile_unit | gimli::DW_TAG_partial_unit => {}
                _ => stack.push((depth, Ctx::Skip)),
            }
        }
        Ok(())
    }
}

/// The innermost function or inlined call being walked.
fn owner(stack: &[(isize, Ctx)]) -> Option<Ctx> {
    stack
        .iter()
        .rev()
        .map(|&(_, c)| c)
        .find(|c| matches!(c, Ctx::Func(_) | Ctx::Inl(..)))
}

fn name_of<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &Unit<R<'a>>,
    entry: &DebuggingInformationEntry<R<'a>>,
) -> Option<String> {
    let v = entry.attr_value(gimli::DW_AT_name)?;
    let s = dwarf.attr_string(unit, v).ok()?;
    Some(String::from_utf8_lossy(s.slice()).into_owned())
}

/// Name and type, through `DW_AT_abstract_origin` when the entry has none.
fn named<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &Unit<R<'a>>,
    entry: &DebuggingInformationEntry<R<'a>>,
    ty: Option<usize>,
) -> (String, Option<usize>) {
    if let Some(n) = name_of(dwarf, unit, entry) {
        return (n, ty);
    }
    if let Some(AttributeValue::UnitRef(o)) = entry.attr_value(gimli::DW_AT_abstract_origin) {
        if let Ok(origin) = unit.entry(o) {
            let oty = origin
                .attr_value(gimli::DW_AT_type)
                .and_then(|v| global_ref(unit, v));
            return (
                name_of(dwarf, unit, &origin).unwrap_or_default(),
                ty.or(oty),
            );
        }
    }
    (String::new(), ty)
}

fn ranges_of<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &Unit<R<'a>>,
    entry: &DebuggingInformationEntry<R<'a>>,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    if size_range_overflows(dwarf, unit, entry) {
        return out;
    }
    if let Ok(mut it) = dwarf.die_ranges(unit, entry) {
        while let Ok(Some(r)) = it.next() {
            if r.begin < r.end && out.len() < 4096 {
                out.push((r.begin, r.end));
            }
        }
    }
    out
}

/// Whether `DW_AT_low_pc` + `DW_AT_high_pc` (as a size) passes 2^64:
/// gimli's `die_ranges` adds them unchecked (a panic where overflow checks
/// are on, found by fuzzing `dwarf_index`), and such a function has no
/// sensible range anyway.
fn size_range_overflows<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &Unit<R<'a>>,
    entry: &DebuggingInformationEntry<R<'a>>,
) -> bool {
    let low = entry
        .attr_value(gimli::DW_AT_low_pc)
        .and_then(|v| dwarf.attr_address(unit, v).ok().flatten());
    // An address form is an end address, not a size (as gimli reads it).
    let size = entry
        .attr(gimli::DW_AT_high_pc)
        .and_then(|a| match a.value() {
            AttributeValue::Addr(_) | AttributeValue::DebugAddrIndex(_) => None,
            _ => a.udata_value(),
        });
    matches!((low, size), (Some(l), Some(s)) if l.checked_add(s).is_none())
}

fn location_of<'a>(
    dwarf: &gimli::Dwarf<R<'a>>,
    unit: &Unit<R<'a>>,
    attr: Option<AttributeValue<R<'a>>>,
) -> Location {
    let Some(attr) = attr else {
        return Location::None;
    };
    if let AttributeValue::Exprloc(e) = attr {
        return Location::Expr(e.0.slice().to_vec());
    }
    let mut list = Vec::new();
    if let Ok(Some(mut it)) = dwarf.attr_locations(unit, attr) {
        while let Ok(Some(l)) = it.next() {
            if list.len() >= 4096 {
                break;
            }
            list.push((l.range.begin, l.range.end, l.data.0.slice().to_vec()));
        }
    }
    Location::List(list)
}
