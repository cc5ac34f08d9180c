//! Functions' variables and the types they need, from a Go binary's DWARF.
//!
//! [`VarIndex::load`] walks `.debug_info` once and keeps an owned index:
//! every type entry (tag, name, size, Go kind, element/target type, members,
//! array count, `DW_AT_go_runtime_type`), every concrete subprogram with its
//! parameters and locals (each with the pc ranges of its innermost lexical
//! block and its location: an expression, or a location list resolved to
//! absolute ranges), and package variables. Variables of inlined calls are
//! skipped (they belong to the inlined function, not the physical one).
//! Addresses are link-time; callers add the load bias.

use std::collections::HashMap;

use gimli::{AttributeValue, DebuggingInformationEntry, EndianSlice, LittleEndian, Unit};

use super::dwarf::{dwarf_sections, global_ref, member_offset, op_addr, DwarfError, R};

/// `DW_AT_go_kind`, `DW_AT_go_elem`, `DW_AT_go_runtime_type` (Go extensions).
const DW_AT_GO_KIND: gimli::DwAt = gimli::DwAt(0x2900);
const DW_AT_GO_ELEM: gimli::DwAt = gimli::DwAt(0x2902);
const DW_AT_GO_RUNTIME_TYPE: gimli::DwAt = gimli::DwAt(0x2904);
/// Most entries read from one unit.
const MAX_ENTRIES_PER_UNIT: usize = 50_000_000;

/// One type entry, keyed by its `.debug_info` offset.
#[derive(Debug, Clone)]
pub struct Type {
    pub tag: gimli::DwTag,
    pub name: String,
    pub size: Option<u64>,
    /// Go's `reflect.Kind` (`DW_AT_go_kind`), 0 when absent.
    pub kind: u8,
    /// `DW_AT_type`: pointee, typedef target, array element.
    pub target: Option<usize>,
    /// `DW_AT_go_elem`: a slice's or channel's element type.
    pub elem: Option<usize>,
    /// A base type's `DW_ATE_*` encoding.
    pub encoding: u8,
    /// An array's element count.
    pub count: Option<u64>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub offset: u64,
    pub ty: Option<usize>,
}

/// Where a variable lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// No `DW_AT_location`: optimized away.
    None,
    /// One expression for the whole scope.
    Expr(Vec<u8>),
    /// `(begin, end, expression)`, link-time pcs.
    List(Vec<(u64, u64, Vec<u8>)>),
}

impl Location {
    /// The expression valid at link-time `pc`, if any.
    pub fn at(&self, pc: u64) -> Option<&[u8]> {
        match self {
            Location::None => None,
            Location::Expr(e) => Some(e),
            Location::List(l) => l
                .iter()
                .find(|(b, e, _)| *b <= pc && pc < *e)
                .map(|(_, _, x)| &x[..]),
        }
    }
}

/// A parameter or local of a function.
#[derive(Debug, Clone)]
pub struct Var {
    pub name: String,
    pub param: bool,
    pub ty: Option<usize>,
    /// The ranges of its innermost lexical block; empty for the whole function.
    pub scope: Vec<(u64, u64)>,
    pub location: Location,
}

impl Var {
    pub fn in_scope(&self, pc: u64) -> bool {
        self.scope.is_empty() || self.scope.iter().any(|&(b, e)| b <= pc && pc < e)
    }
}

/// A concrete (out-of-line) function.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub ranges: Vec<(u64, u64)>,
    pub encoding: gimli::Encoding,
    pub vars: Vec<Var>,
}

/// A package-level variable at a fixed address.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    pub addr: u64,
    pub ty: Option<usize>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct VarIndex {
    pub types: HashMap<usize, Type>,
    runtime_types: HashMap<u64, usize>,
    functions: Vec<Function>,
    globals: HashMap<String, Global>,
}

/// What an entry's children belong to, while walking.
#[derive(Clone, Copy)]
enum Ctx {
    Func(usize),
    Block(usize),
    Skip,
    Struct(usize),
    Array(usize),
}

impl VarIndex {
    /// Indexes the ELF file's DWARF. Units that fail to parse are skipped.
    pub fn load(elf: &[u8]) -> Result<VarIndex, DwarfError> {
        let sections = dwarf_sections(elf)?;
        if sections.get(".debug_info").is_none_or(|d| d.is_empty()) {
            return Err(DwarfError::NoDebugInfo);
        }
        let dwarf = gimli::Dwarf::load(|id| -> Result<R<'_>, DwarfError> {
            let data = sections.get(id.name()).map_or(&[][..], |d| &d[..]);
            Ok(EndianSlice::new(data, LittleEndian))
        })?;
        let mut index = VarIndex::default();
        let mut headers = dwarf.units();
        while let Ok(Some(header)) = headers.next() {
            if let Ok(unit) = dwarf.unit(header) {
                let _ = index.index_unit(&dwarf, &unit);
            }
        }
        index.functions.sort_by_key(|f| f.ranges.first().map_or(0, |r| r.0));
        Ok(index)
    }

    /// The function whose code contains link-time `pc`.
    pub fn function(&self, pc: u64) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| f.ranges.iter().any(|&(b, e)| b <= pc && pc < e))
    }

    pub fn global(&self, name: &str) -> Option<Global> {
        self.globals.get(name).copied()
    }

    pub fn ty(&self, offset: usize) -> Option<&Type> {
        self.types.get(&offset)
    }

    /// A type by DWARF name (the first found).
    pub fn type_named(&self, name: &str) -> Option<usize> {
        self.types
            .iter()
            .find(|(_, t)| t.name == name)
            .map(|(&o, _)| o)
    }

    /// The type whose `DW_AT_go_runtime_type` is link-time address `addr`.
    pub fn by_runtime_type(&self, addr: u64) -> Option<usize> {
        self.runtime_types.get(&addr).copied()
    }

    fn index_unit(&mut self, dwarf: &gimli::Dwarf<R<'_>>, unit: &Unit<R<'_>>) -> gimli::Result<()> {
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
                    });
                    stack.push((depth, Ctx::Func(self.functions.len() - 1)));
                }
                gimli::DW_TAG_lexical_block => match parent {
                    Some(Ctx::Func(_) | Ctx::Block(_)) => {
                        blocks.push(ranges_of(dwarf, unit, entry));
                        stack.push((depth, Ctx::Block(blocks.len() - 1)));
                    }
                    _ => stack.push((depth, Ctx::Skip)),
                },
                gimli::DW_TAG_inlined_subroutine => stack.push((depth, Ctx::Skip)),
                gimli::DW_TAG_formal_parameter | gimli::DW_TAG_variable => {
                    let func = stack.iter().rev().find_map(|&(_, c)| match c {
                        Ctx::Func(f) => Some(f),
                        _ => None,
                    });
                    let scope = match parent {
                        Some(Ctx::Block(b)) => blocks[b].clone(),
                        _ => Vec::new(),
                    };
                    let attr = entry.attr_value(gimli::DW_AT_location);
                    match (parent, func) {
                        (Some(Ctx::Func(_) | Ctx::Block(_)), Some(f)) => {
                            let (name, ty) = named(dwarf, unit, entry, ty);
                            let location = location_of(dwarf, unit, attr);
                            self.functions[f].vars.push(Var {
                                name,
                                param: tag == gimli::DW_TAG_formal_parameter,
                                ty,
                                scope,
                                location,
                            });
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
                        size: udata(gimli::DW_AT_byte_size).or((tag
                            == gimli::DW_TAG_pointer_type)
                            .then_some(u64::from(unit.header.address_size()))),
                        kind: udata(DW_AT_GO_KIND).unwrap_or(0) as u8,
                        target: ty,
                        elem: entry
                            .attr_value(DW_AT_GO_ELEM)
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

fn is_type_tag(tag: gimli::DwTag) -> bool {
    matches!(
        tag,
        gimli::DW_TAG_structure_type
            | gimli::DW_TAG_typedef
            | gimli::DW_TAG_base_type
            | gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_array_type
            | gimli::DW_TAG_subroutine_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_unspecified_type
    )
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
    if let Ok(mut it) = dwarf.die_ranges(unit, entry) {
        while let Ok(Some(r)) = it.next() {
            if r.begin < r.end && out.len() < 4096 {
                out.push((r.begin, r.end));
            }
        }
    }
    out
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
