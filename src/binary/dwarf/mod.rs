//! Struct layouts and global variables from a Go binary's DWARF.
//!
//! [`DwarfTypes::load`] walks every unit of `.debug_info` once and keeps an
//! owned index (so the result is `Send + Sync` and does not borrow the ELF
//! bytes): every type entry's name and size by `.debug_info` offset, the
//! members of every struct type, struct names, and global variables whose
//! location is a plain `DW_OP_addr`. Queries are map lookups; nested paths
//! (`sched.sp`) follow member type references, through typedefs.
//!
//! Malformed DWARF never panics: a unit that fails to parse ends the walk
//! of that unit (what was read before it stays indexed) and is counted in
//! [`DwarfTypes::unit_errors`]; lookups that cannot be resolved return `None`.

use std::borrow::Cow;
use std::collections::HashMap;

use gimli::{AttributeValue, EndianSlice, LittleEndian, Unit};
use object::{Object, ObjectSection};

/// Why DWARF could not be loaded.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum DwarfError {
    /// The ELF file could not be parsed.
    #[error("not a readable ELF file: {0}")]
    Elf(object::Error),
    /// There is no (or an empty) `.debug_info` section (e.g. built with `-ldflags=-w`).
    #[error("no .debug_info section (binary built without DWARF, e.g. -ldflags=-w)")]
    NoDebugInfo,
    /// A section could not be decompressed.
    #[error("cannot decompress {section}: {error}")]
    Decompress {
        section: &'static str,
        error: object::Error,
    },
    /// The unit headers of `.debug_info` could not be read at all.
    #[error("malformed .debug_info at offset {offset:#x}: {error}")]
    Malformed { offset: u64, error: gimli::Error },
}

/// The byte size and members of one struct type.
#[derive(Debug, Clone)]
pub struct StructLayout {
    pub name: String,
    pub size: u64,
    pub fields: Vec<Field>,
}

/// One struct member.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub offset: u64,
    /// The member type's DWARF name (`runtime.gobuf`, `*runtime.m`, `uint64`);
    /// empty when the type has no name or cannot be resolved.
    pub type_name: String,
    /// The member type's byte size, when DWARF gives one.
    pub size: Option<u64>,
}

impl StructLayout {
    /// Offset of a direct member, by name. For nested paths (`sched.sp`) use
    /// [`DwarfTypes::field_offset`].
    pub fn offset(&self, field: &str) -> Option<u64> {
        self.fields
            .iter()
            .find(|f| f.name == field)
            .map(|f| f.offset)
    }

    /// The member named `field`, if any.
    pub fn field(&self, field: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == field)
    }
}

/// A type entry, keyed by its `.debug_info` offset.
#[derive(Debug, Clone)]
struct TypeEntry {
    name: Option<String>,
    size: Option<u64>,
    /// `DW_TAG_typedef`: the type it names (followed by nested lookups).
    typedef_of: Option<usize>,
    /// `DW_TAG_structure_type`: its members.
    members: Option<Vec<Member>>,
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    offset: u64,
    type_ref: Option<usize>,
}

#[derive(Debug, Clone)]
struct Variable {
    address: Option<u64>,
    type_ref: Option<usize>,
}

/// Index of struct types and global variables; see the module docs.
#[derive(Debug, Default)]
pub struct DwarfTypes {
    types: HashMap<usize, TypeEntry>,
    structs_by_name: HashMap<String, usize>,
    variables: HashMap<String, Variable>,
    unit_errors: usize,
}

/// Longest typedef chain followed.
const MAX_TYPEDEF_HOPS: usize = 16;
/// Most path components in a [`DwarfTypes::field_offset`] path.
const MAX_PATH_DEPTH: usize = 32;
/// Most entries read from one unit (a Go unit has well under a million).
const MAX_ENTRIES_PER_UNIT: usize = 50_000_000;

pub(super) type R<'a> = EndianSlice<'a, LittleEndian>;

impl DwarfTypes {
    /// Parses from the ELF file bytes. `Err` if there is no `.debug_info`.
    pub fn load(elf: &[u8]) -> Result<DwarfTypes, DwarfError> {
        let sections = dwarf_sections(elf)?;
        Self::from_sections(&sections)
    }

    /// Indexes already extracted (uncompressed) sections, by ELF name.
    fn from_sections(sections: &Sections<'_>) -> Result<DwarfTypes, DwarfError> {
        let dwarf = load_dwarf(sections)?;

        let mut index = DwarfTypes::default();
        let mut headers = dwarf.units();
        // Where the next unit header starts (for the error message).
        let mut next_unit: u64 = 0;
        loop {
            let header = match headers.next() {
                Ok(Some(h)) => {
                    if let Some(o) = h.debug_info_offset() {
                        next_unit = (o.0 + h.length_including_self()) as u64;
                    }
                    h
                }
                Ok(None) => break,
                Err(error) => {
                    // Unit headers chain by length: after a bad header there
                    // is no way to find the next one.
                    if index.types.is_empty() && index.variables.is_empty() {
                        return Err(DwarfError::Malformed {
                            offset: next_unit,
                            error,
                        });
                    }
                    index.unit_errors += 1;
                    break;
                }
            };
            let unit = match dwarf.unit(header) {
                Ok(u) => u,
                Err(_) => {
                    index.unit_errors += 1;
                    continue;
                }
            };
            if index.index_unit(&dwarf, &unit).is_err() {
                index.unit_errors += 1;
            }
        }
        Ok(index)
    }

    /// How many units could not be (fully) read; their entries up to the
    /// error are indexed.
    pub fn unit_errors(&self) -> usize {
        self.unit_errors
    }

    /// Byte size and member offsets of a struct type by its DWARF name
    /// (`runtime.g`, `runtime.m`, `runtime.gobuf`, `runtime.stack`, …).
    pub fn struct_layout(&self, name: &str) -> Option<StructLayout> {
        let entry = self.types.get(self.structs_by_name.get(name)?)?;
        let members = entry.members.as_ref()?;
        let fields = members
            .iter()
            .map(|m| {
                let ty = m.type_ref.and_then(|r| self.types.get(&r));
                Field {
                    name: m.name.clone(),
                    offset: m.offset,
                    type_name: ty.and_then(|t| t.name.clone()).unwrap_or_default(),
                    size: m.type_ref.and_then(|r| self.type_size(r)),
                }
            })
            .collect();
        Some(StructLayout {
            name: name.to_string(),
            size: entry.size.unwrap_or(0),
            fields,
        })
    }

    /// Offset of a member reached by a dotted path through nested struct
    /// members: `("runtime.g", "sched.pc")` is `g.sched` + `gobuf.pc`.
    pub fn field_offset(&self, struct_name: &str, path: &str) -> Option<u64> {
        let mut ty = *self.structs_by_name.get(struct_name)?;
        let mut total: u64 = 0;
        for (depth, part) in path.split('.').enumerate() {
            if depth >= MAX_PATH_DEPTH {
                return None;
            }
            let members = self
                .types
                .get(&self.resolve_typedef(ty)?)?
                .members
                .as_ref()?;
            let m = members.iter().find(|m| m.name == part)?;
            total = total.checked_add(m.offset)?;
            ty = m.type_ref?;
        }
        Some(total)
    }

    /// The link-time address of a global variable (`DW_OP_addr`), e.g.
    /// `runtime.allgs`. For a PIE, add the load bias.
    pub fn variable_address(&self, name: &str) -> Option<u64> {
        self.variables.get(name)?.address
    }

    /// The type name and byte size of a global variable, e.g.
    /// `runtime.allgs` → (`[]*runtime.g`, 24).
    pub fn variable_type(&self, name: &str) -> Option<(String, u64)> {
        let r = self.variables.get(name)?.type_ref?;
        let name = self.types.get(&r)?.name.clone()?;
        Some((name, self.type_size(r)?))
    }

    /// A type's size, looking through typedefs when the entry has none.
    fn type_size(&self, r: usize) -> Option<u64> {
        let entry = self.types.get(&r)?;
        entry
            .size
            .or_else(|| self.types.get(&self.resolve_typedef(r)?)?.size)
    }

    /// Follows typedefs to the type they name.
    fn resolve_typedef(&self, mut r: usize) -> Option<usize> {
        for _ in 0..MAX_TYPEDEF_HOPS {
            match self.types.get(&r)?.typedef_of {
                Some(next) => r = next,
                None => return Some(r),
            }
        }
        None
    }

    /// Indexes one unit's entries; stops at the first parse error.
    fn index_unit(&mut self, dwarf: &gimli::Dwarf<R<'_>>, unit: &Unit<R<'_>>) -> gimli::Result<()> {
        let mut cursor = unit.entries();
        // The struct whose members are being read: (depth, global offset).
        let mut open_struct: Option<(isize, usize)> = None;
        let mut seen = 0usize;
        while let Some(entry) = cursor.next_dfs()? {
            seen += 1;
            if seen > MAX_ENTRIES_PER_UNIT {
                break;
            }
            let depth = entry.depth();
            if open_struct.is_some_and(|(d, _)| depth <= d) {
                open_struct = None;
            }
            let Some(offset) = entry.offset().to_debug_info_offset(&unit.header) else {
                continue;
            };
            let offset = offset.0;
            let tag = entry.tag();
            let name = || -> Option<String> {
                let v = entry.attr_value(gimli::DW_AT_name)?;
                let s = dwarf.attr_string(unit, v).ok()?;
                Some(String::from_utf8_lossy(s.slice()).into_owned())
            };
            let type_ref = || {
                entry
                    .attr_value(gimli::DW_AT_type)
                    .and_then(|v| global_ref(unit, v))
            };
            match tag {
                gimli::DW_TAG_member => {
                    let Some((_, parent)) = open_struct else {
                        continue;
                    };
                    let member = Member {
                        name: name().unwrap_or_default(),
                        offset: entry
                            .attr_value(gimli::DW_AT_data_member_location)
                            .and_then(member_offset)
                            .unwrap_or(0),
                        type_ref: type_ref(),
                    };
                    if let Some(members) =
                        self.types.get_mut(&parent).and_then(|t| t.members.as_mut())
                    {
                        members.push(member);
                    }
                }
                gimli::DW_TAG_variable => {
                    let Some(name) = name() else { continue };
                    let address = match entry.attr_value(gimli::DW_AT_location) {
                        Some(AttributeValue::Exprloc(e)) => op_addr(e.0.slice()),
                        _ => None,
                    };
                    if address.is_none() {
                        continue; // a local or an optimized-away global
                    }
                    self.variables.entry(name).or_insert(Variable {
                        address,
                        type_ref: type_ref(),
                    });
                }
                _ if is_type_tag(tag) => {
                    let name = name();
                    let is_struct = tag == gimli::DW_TAG_structure_type;
                    if is_struct {
                        open_struct = Some((depth, offset));
                        if let Some(n) = &name {
                            self.structs_by_name.entry(n.clone()).or_insert(offset);
                        }
                    }
                    self.types.insert(
                        offset,
                        TypeEntry {
                            name,
                            // Go gives pointer types no byte size.
                            size: entry
                                .attr_value(gimli::DW_AT_byte_size)
                                .and_then(|v| v.udata_value())
                                .or((tag == gimli::DW_TAG_pointer_type)
                                    .then_some(u64::from(unit.header.address_size()))),
                            typedef_of: if tag == gimli::DW_TAG_typedef {
                                type_ref()
                            } else {
                                None
                            },
                            members: is_struct.then(Vec::new),
                        },
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Uncompressed DWARF sections by ELF name (`.debug_info`, …).
pub(super) type Sections<'a> = HashMap<&'static str, Cow<'a, [u8]>>;

/// The sections the index needs, decompressed.
pub(super) fn dwarf_sections(elf: &[u8]) -> Result<Sections<'_>, DwarfError> {
    let file = object::File::parse(elf).map_err(DwarfError::Elf)?;
    let mut sections = Sections::new();
    let ids = [
        gimli::SectionId::DebugAbbrev,
        gimli::SectionId::DebugAddr,
        gimli::SectionId::DebugInfo,
        // `Dwarf::unit` parses each unit's line program header.
        gimli::SectionId::DebugLine,
        gimli::SectionId::DebugLineStr,
        gimli::SectionId::DebugStr,
        gimli::SectionId::DebugStrOffsets,
        gimli::SectionId::DebugRngLists,
        gimli::SectionId::DebugRanges,
        // Variable locations (dwarf_vars).
        gimli::SectionId::DebugLoc,
        gimli::SectionId::DebugLocLists,
    ];
    for id in ids {
        // object falls back to `.zdebug_*` and handles SHF_COMPRESSED.
        if let Some(section) = file.section_by_name(id.name()) {
            let data = section
                .uncompressed_data()
                .map_err(|error| DwarfError::Decompress {
                    section: id.name(),
                    error,
                })?;
            sections.insert(id.name(), data);
        }
    }
    Ok(sections)
}

/// gimli's view of the extracted sections; `NoDebugInfo` when there is no
/// `.debug_info` to read.
pub(super) fn load_dwarf<'a>(
    sections: &'a Sections<'_>,
) -> Result<gimli::Dwarf<R<'a>>, DwarfError> {
    if sections.get(".debug_info").is_none_or(|d| d.is_empty()) {
        return Err(DwarfError::NoDebugInfo);
    }
    gimli::Dwarf::load(|id| -> Result<R<'_>, DwarfError> {
        let data = sections.get(id.name()).map_or(&[][..], |d| &d[..]);
        Ok(EndianSlice::new(data, LittleEndian))
    })
}

/// The DIE tags that describe a type (indexed by both DWARF readers).
pub(super) fn is_type_tag(tag: gimli::DwTag) -> bool {
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

/// A type reference as a `.debug_info` offset.
pub(super) fn global_ref(unit: &Unit<R<'_>>, v: AttributeValue<R<'_>>) -> Option<usize> {
    match v {
        AttributeValue::UnitRef(u) => u.to_debug_info_offset(&unit.header).map(|o| o.0),
        AttributeValue::DebugInfoRef(o) => Some(o.0),
        _ => None,
    }
}

/// `DW_AT_data_member_location` as a constant, or the old
/// `DW_OP_plus_uconst N` expression form.
pub(super) fn member_offset(v: AttributeValue<R<'_>>) -> Option<u64> {
    match v {
        AttributeValue::Exprloc(e) => {
            let bytes = e.0.slice();
            if bytes.first() == Some(&gimli::DW_OP_plus_uconst.0) {
                let (n, used) = uleb128(&bytes[1..])?;
                (1 + used == bytes.len()).then_some(n)
            } else {
                None
            }
        }
        other => other.udata_value(),
    }
}

/// The address of a location expression that is exactly `DW_OP_addr A`.
pub(super) fn op_addr(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != 9 || bytes[0] != gimli::DW_OP_addr.0 {
        return None;
    }
    Some(u64::from_le_bytes(bytes[1..9].try_into().ok()?))
}

fn uleb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests;
