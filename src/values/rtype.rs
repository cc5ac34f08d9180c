//! What the runtime's own type descriptor tells of an interface's dynamic
//! type when DWARF has no entry for it (the linker describes only the types
//! of variables and parameters; a type met only inside an interface has
//! none): its name, its kind, and so scalars, strings, and structs field
//! by field.
//!
//! `runtime._type` (Go 1.19) and `internal/abi.Type` (Go 1.21+) share one
//! layout: `size` 0, `ptrdata` 8, `hash` 16, `tflag` 20, `align` 21,
//! `fieldAlign` 22, `kind` 23, `equal` 24, `gcdata` 32, `str` 40 (a
//! `nameOff`, from the module's `types`), `ptrToThis` 44.
//!
//! A name is a flags byte, the length as a varint, then the bytes. With
//! `tflagExtraStar` the stored name is that of the pointer type (`*T`),
//! shared with it: the `*` is dropped.
//!
//! A struct's descriptor goes on after the header with `pkgPath` (8) and
//! `fields` (a slice, 56) of 24-byte fields: `name` (a pointer to a name,
//! not an offset), `typ` (a descriptor), `offset`. Same in 1.19 and 1.27.

use super::format::quote;
use super::types::kind;
use super::{Place, Scope, VarError};
use crate::process::Memory;

const OFF_TFLAG: usize = 20;
const OFF_KIND: usize = 23;
const OFF_STR: usize = 40;
const HEADER: u64 = 48;
const TFLAG_EXTRA_STAR: u8 = 1 << 1;
/// The kind's bits of the kind byte (the rest are flags).
const KIND_MASK: u8 = 0x1f;
/// Longest type name read (longer ones are cut, and say so).
const MAX_NAME: u64 = 1 << 10;
/// Bytes of a varint: 10 hold 64 bits.
const MAX_VARINT: usize = 10;
const OFF_FIELDS: u64 = 56;
const FIELD_SIZE: u64 = 24;
/// Fields shown of one struct.
const MAX_FIELDS: u64 = 32;

/// The facts of one type descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RuntimeType {
    pub size: u64,
    pub ptr_bytes: u64,
    pub kind: u8,
    pub tflag: u8,
    pub str_off: i32,
}

impl RuntimeType {
    fn parse(h: &[u8]) -> Option<RuntimeType> {
        let u64_at = |o: usize| Some(u64::from_le_bytes(h.get(o..o + 8)?.try_into().ok()?));
        Some(RuntimeType {
            size: u64_at(0)?,
            ptr_bytes: u64_at(8)?,
            tflag: *h.get(OFF_TFLAG)?,
            kind: *h.get(OFF_KIND)? & KIND_MASK,
            str_off: i32::from_le_bytes(h.get(OFF_STR..OFF_STR + 4)?.try_into().ok()?),
        })
    }
}

/// Decodes the varint length after a name's flags byte: `(length, bytes
/// the varint took)`.
fn name_len(b: &[u8]) -> Result<(u64, usize), VarError> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().take(MAX_VARINT).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(VarError::BadNameLength)
}

/// The name, as Go prints it, of the type whose descriptor is at run-time
/// `typ`; `types` is the module's link-time `[types, etypes)`. For what
/// has no `Scope`: a channel's element type, in `goat why`.
pub fn type_name_at(
    mem: &dyn Memory,
    types: (u64, u64),
    bias: u64,
    typ: u64,
) -> Result<String, VarError> {
    let h = read_at(mem, typ, HEADER)?;
    let t = RuntimeType::parse(&h).ok_or(VarError::ShortDescriptor)?;
    descriptor_name(mem, types, bias, &t)
}

fn read_at(mem: &dyn Memory, addr: u64, len: u64) -> Result<Vec<u8>, VarError> {
    let mut buf = vec![0u8; usize::try_from(len.min(super::MAX_VALUE_BYTES)).unwrap_or(0)];
    mem.read(addr, &mut buf)?;
    Ok(buf)
}

fn descriptor_name(
    mem: &dyn Memory,
    (types, etypes): (u64, u64),
    bias: u64,
    t: &RuntimeType,
) -> Result<String, VarError> {
    let off = u64::try_from(t.str_off).map_err(|_| VarError::BadNameOffset)?;
    let start = types.checked_add(off).filter(|&a| a < etypes);
    let start = start.ok_or(VarError::NameOffsetOutOfRange)?;
    let head_len = (etypes - start).min(1 + MAX_VARINT as u64);
    let at = start.wrapping_add(bias);
    let head = read_at(mem, at, head_len)?;
    let (len, n) = name_len(head.get(1..).unwrap_or_default())?;
    let body = 1 + n as u64;
    // A hostile varint can be near 2^64: no sum may wrap.
    let end = start.checked_add(body).and_then(|e| e.checked_add(len));
    if end.is_none_or(|e| e > etypes) {
        return Err(VarError::NameTooLong);
    }
    let bytes = read_at(mem, at.wrapping_add(body), len.min(MAX_NAME))?;
    let mut name = String::from_utf8_lossy(&bytes).into_owned();
    if t.tflag & TFLAG_EXTRA_STAR != 0 {
        name = name.strip_prefix('*').map(str::to_string).unwrap_or(name);
    }
    if len > MAX_NAME {
        name.push_str("...");
    }
    Ok(name)
}

impl Scope<'_> {
    /// The descriptor at run-time `typ`.
    pub(super) fn runtime_type(&self, typ: u64) -> Result<RuntimeType, VarError> {
        let h = self.read(&Place::Mem(typ), 0, HEADER)?;
        RuntimeType::parse(&h).ok_or(VarError::ShortDescriptor)
    }

    /// The type's name as Go prints it (`main.T`, `*main.T`, `[]int`).
    pub(super) fn runtime_type_name(&self, t: &RuntimeType) -> Result<String, VarError> {
        let types = self.types.ok_or(VarError::NoTypesSection)?;
        descriptor_name(self.mem, types, self.bias, t)
    }

    /// A value of a type known only by its descriptor, from the data word
    /// of an interface: scalars and strings are shown, structs field by
    /// field, anything else by its address.
    pub(super) fn fmt_runtime_value(&self, t: &RuntimeType, typ: u64, data: u64) -> String {
        // Pointer-shaped: the data word is the value itself.
        if t.size == 8 && t.ptr_bytes == 8 {
            return format!("{data:#x}");
        }
        self.fmt_runtime_at(t, typ, data, 0)
            .unwrap_or_else(|why| format!("<partial: {why}>"))
    }

    /// The value at `at` of the type `t` (described at `typ`).
    fn fmt_runtime_at(
        &self,
        t: &RuntimeType,
        typ: u64,
        at: u64,
        depth: usize,
    ) -> Result<String, VarError> {
        let place = Place::Mem(at);
        let b = self.read(&place, 0, t.size.min(16))?;
        let n = b.len().min(8);
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(&b[..n]);
        let u = u64::from_le_bytes(w);
        let word = |signed: bool| match n {
            1..=7 if signed => {
                let shift = 64 - 8 * n as u32;
                (((u << shift) as i64) >> shift).to_string()
            }
            _ if signed => (u as i64).to_string(),
            _ => u.to_string(),
        };
        Ok(match t.kind {
            kind::BOOL => (b.first() == Some(&1)).to_string(),
            kind::INT..=kind::INT64 => word(true),
            kind::UINT..=kind::UINTPTR => word(false),
            kind::FLOAT32 if b.len() == 4 => {
                f32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4])).to_string()
            }
            kind::FLOAT64 if b.len() == 8 => {
                f64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])).to_string()
            }
            kind::STRING => {
                let (bytes, len) = self.string_bytes(&place, self.lim().string_len)?;
                let mut s = quote(&bytes);
                if len > bytes.len() as u64 {
                    s.push_str(&format!("...+{} more", len - bytes.len() as u64));
                }
                s
            }
            kind::POINTER | kind::UNSAFE_POINTER => format!("{u:#x}"),
            // As a struct with DWARF prints: its type's name, then the fields.
            kind::STRUCT => {
                let name = self
                    .runtime_type_name(t)
                    .unwrap_or_else(|why| format!("<{why}>"));
                if depth < self.lim().depth {
                    format!("{name} {}", self.fmt_runtime_struct(typ, at, depth)?)
                } else {
                    format!("{name} {{...}}")
                }
            }
            _ => format!("<no DWARF type: value at {at:#x}>"),
        })
    }

    /// `{Name: value, ...}` from the field list of the struct described at `typ`.
    fn fmt_runtime_struct(&self, typ: u64, at: u64, depth: usize) -> Result<String, VarError> {
        let header = Place::Mem(typ);
        let fields = self.read_u64(&header, OFF_FIELDS)?;
        let count = self.read_u64(&header, OFF_FIELDS + 8)?;
        let mut out = String::from("{");
        for i in 0..count.min(MAX_FIELDS) {
            if i > 0 {
                out.push_str(", ");
            }
            let field = Place::Mem(fields.wrapping_add(i * FIELD_SIZE));
            let entry = self.read(&field, 0, FIELD_SIZE);
            let Some(e) = entry
                .as_ref()
                .ok()
                .filter(|e| e.len() == FIELD_SIZE as usize)
            else {
                let why = entry.err().unwrap_or(VarError::ShortField);
                out.push_str(&format!("<partial: {why}>}}"));
                return Ok(out);
            };
            let word = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().unwrap_or([0; 8]));
            let (name, ftyp, offset) = (self.read_name(word(0)), word(8), word(16));
            out.push_str(&name.unwrap_or_else(|why| format!("<{why}>")));
            out.push_str(": ");
            let value = self
                .runtime_type(ftyp)
                .and_then(|ft| self.fmt_runtime_at(&ft, ftyp, at.wrapping_add(offset), depth + 1));
            out.push_str(&value.unwrap_or_else(|why| format!("<partial: {why}>")));
        }
        if count > MAX_FIELDS {
            out.push_str(&format!(", ...+{} more", count - MAX_FIELDS));
        }
        out.push('}');
        Ok(out)
    }

    /// The name at `addr`: a flags byte, a varint length, the bytes.
    fn read_name(&self, addr: u64) -> Result<String, VarError> {
        let at = Place::Mem(addr);
        let head = self.read(&at, 0, 1 + MAX_VARINT as u64)?;
        let (len, n) = name_len(head.get(1..).unwrap_or_default())?;
        let bytes = self.read(&at, 1 + n as u64, len.min(MAX_NAME))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::dwarf_vars::VarIndex;
    use crate::process::{Memory, ReadFault};

    /// Memory of one region at `base`.
    struct Region {
        base: u64,
        bytes: Vec<u8>,
    }

    impl Memory for Region {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
            let fault = ReadFault {
                addr,
                len: buf.len(),
            };
            let off =
                usize::try_from(addr.checked_sub(self.base).ok_or(fault)?).map_err(|_| fault)?;
            let src = self.bytes.get(off..off + buf.len()).ok_or(fault)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    const TYPES: u64 = 0x1000;

    /// A types section: a descriptor at offset 0x40 of `size` bytes of
    /// `kind`, named by the name at `name_off` (bytes `name`), and at 0x100
    /// a value for it.
    fn section(name_off: i32, tflag: u8, kind: u8, size: u64, name: &[u8]) -> Region {
        let mut b = vec![0u8; 0x200];
        let d = 0x40;
        b[d..d + 8].copy_from_slice(&size.to_le_bytes());
        b[d + OFF_TFLAG] = tflag;
        b[d + OFF_KIND] = kind | 0x20;
        b[d + OFF_STR..d + OFF_STR + 4].copy_from_slice(&name_off.to_le_bytes());
        if let Ok(at) = usize::try_from(name_off) {
            if at + name.len() <= b.len() {
                b[at..at + name.len()].copy_from_slice(name);
            }
        }
        b[0x100..0x108].copy_from_slice(&(-7i64).to_le_bytes());
        Region {
            base: TYPES,
            bytes: b,
        }
    }

    /// The name and the value at 0x100 of the section's descriptor.
    fn show(mem: &Region, types_len: u64) -> (Result<String, VarError>, String) {
        let index = VarIndex::default();
        let s = Scope {
            types: Some((TYPES, TYPES + types_len)),
            ..Scope::bare(mem, &index)
        };
        match s.runtime_type(TYPES + 0x40) {
            Ok(t) => (
                s.runtime_type_name(&t),
                s.fmt_runtime_value(&t, TYPES + 0x40, TYPES + 0x100),
            ),
            Err(e) => (Err(e), String::new()),
        }
    }

    #[test]
    fn names_and_scalars_from_the_descriptor() {
        let mem = section(0x80, 0, kind::INT, 8, b"\x01\x0bmain.hidden");
        assert_eq!(show(&mem, 0x200), (Ok("main.hidden".into()), "-7".into()));
        // tflagExtraStar: the stored name is the pointer type's.
        let mem = section(0x80, TFLAG_EXTRA_STAR, kind::INT, 4, b"\x01\x07*main.T");
        assert_eq!(show(&mem, 0x200), (Ok("main.T".into()), "-7".into()));
        // A two-byte varint length (130).
        let mut name = vec![0u8, 0x82, 0x01];
        name.extend(std::iter::repeat_n(b'x', 130));
        let mem = section(0x110, 0, kind::ARRAY, 16, &name);
        let (n, v) = show(&mem, 0x200);
        assert_eq!(n, Ok("x".repeat(130)));
        assert_eq!(v, "<no DWARF type: value at 0x1100>");
    }

    #[test]
    fn hostile_descriptors_give_reasons_not_panics() {
        // Offset outside the section, negative, name running past its end,
        // a varint that never ends.
        let cases: [(i32, &[u8], &str); 5] = [
            (0x400, b"", "name offset out of range"),
            (-8, b"", "bad name offset"),
            (0x1f0, b"\x01\x7fmain", "name longer than the types section"),
            // A length near 2^64: the end must not wrap around.
            (
                0x80,
                &[
                    1, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                "name longer than the types section",
            ),
            (
                0x80,
                &[
                    1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                ],
                "bad name length",
            ),
        ];
        for (off, name, why) in cases {
            let mem = section(off, 0, kind::INT, 8, name);
            let got = show(&mem, 0x200).0.map_err(|e| e.to_string());
            assert_eq!(got, Err(why.to_string()), "{off:#x}");
        }
        // The types section says it is longer than the memory there is.
        let mem = section(0x1f8, 0, kind::INT, 8, b"\x01");
        assert!(show(&mem, 0x10000).0.is_err());
        // An unreadable value.
        let mem = section(0x80, 0, kind::INT, 8, b"\x01\x01T");
        let index = VarIndex::default();
        let s = Scope {
            types: Some((TYPES, TYPES + 0x200)),
            ..Scope::bare(&mem, &index)
        };
        let t = s.runtime_type(TYPES + 0x40).unwrap();
        assert!(s
            .fmt_runtime_value(&t, TYPES + 0x40, 0xdead_0000)
            .starts_with("<partial: "));
        assert!(s.runtime_type(0xdead_0000).is_err());
    }

    /// `struct { A int; B int }` at 0x40 (fields at 0x180, named at 0x1c0
    /// and 0x1c8, both of the int described at 0), the value {-7, 5}.
    fn struct_section(count: u64) -> Region {
        let mut mem = section(0x90, 0, kind::STRUCT, 16, b"\x01\x06main.P");
        let b = &mut mem.bytes;
        b[0..8].copy_from_slice(&8u64.to_le_bytes());
        b[OFF_KIND] = kind::INT;
        let put =
            |b: &mut Vec<u8>, at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(b, 0x40 + 56, TYPES + 0x180);
        put(b, 0x40 + 64, count);
        for (i, name_at) in [0x1c0u64, 0x1c8].into_iter().enumerate() {
            let f = 0x180 + i * 24;
            put(b, f, TYPES + name_at);
            put(b, f + 8, TYPES);
            put(b, f + 16, 8 * i as u64);
        }
        b[0x1c0..0x1c3].copy_from_slice(b"\x01\x01A");
        b[0x1c8..0x1cb].copy_from_slice(b"\x01\x01B");
        put(b, 0x108, 5);
        mem
    }

    #[test]
    fn structs_are_shown_field_by_field() {
        let (n, v) = show(&struct_section(2), 0x200);
        assert_eq!(n, Ok("main.P".into()));
        assert_eq!(v, "main.P {A: -7, B: 5}");
        // A field count past the fields there are: a field of no type says
        // so, and the list ends at the first entry that cannot be read.
        let (_, v) = show(&struct_section(3), 0x200);
        assert!(
            v.starts_with("main.P {A: -7, B: 5, ") && v.contains("<partial: "),
            "{v}"
        );
        let (_, v) = show(&struct_section(1 << 40), 0x200);
        assert!(v.ends_with("of target memory at 0x11f8>}"), "{v}");
        assert!(v.matches(", ").count() < MAX_FIELDS as usize, "{v}");
    }
}
