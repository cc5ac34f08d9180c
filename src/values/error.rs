//! Why a variable, an expression or a value cannot be read. The texts are
//! what goat shows (`(T) <why>`, `print`'s error), so they read as plain
//! English; no variant carries a `#[source]`, so a cause is said once.

use thiserror::Error;

use crate::process::ReadFault;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VarError {
    // Where a value lives (a `Place::Unavailable` holds one of these).
    /// No location at this pc.
    #[error("optimized out")]
    OptimizedOut,
    /// The location needs a register only the innermost frame has.
    #[error("unavailable (register not saved in this frame)")]
    RegisterNotSaved,
    /// A piece of the value is in such a register.
    #[error("unavailable (in a register not saved in this frame)")]
    PieceInRegister,
    #[error("unavailable (location expression too long)")]
    LocationTooLong,
    #[error("unavailable (unsupported location operation)")]
    UnsupportedOperation,
    #[error("unavailable (unsupported location kind)")]
    UnsupportedLocation,
    #[error("unavailable (bad location: {0})")]
    BadLocation(gimli::Error),
    /// An interface's type word points outside the type section: the slot
    /// was reused.
    #[error("unavailable (stale value: {0:#x} is not a type)")]
    StaleType(u64),
    /// Target memory could not be read.
    #[error("{0}")]
    Read(ReadFault),
    /// Bytes assembled from registers end before the type does.
    #[error("value is shorter than its type")]
    Short,

    // Types.
    #[error("unknown type")]
    UnknownType,
    #[error("array without element type")]
    ArrayWithoutElement,
    #[error("slice without element type")]
    SliceWithoutElement,
    /// A slice header Go would never make: the location is stale.
    #[error("not a valid slice header (len {len}, cap {cap}): its location is stale at this pc")]
    StaleSlice { len: u64, cap: u64 },

    // The runtime's type descriptors (types DWARF does not describe).
    #[error("short type descriptor")]
    ShortDescriptor,
    #[error("no types section")]
    NoTypesSection,
    #[error("bad name offset")]
    BadNameOffset,
    #[error("name offset out of range")]
    NameOffsetOutOfRange,
    #[error("name longer than the types section")]
    NameTooLong,
    #[error("bad name length")]
    BadNameLength,
    #[error("short field")]
    ShortField,

    // A frame's variables.
    #[error("no DWARF function contains pc {0:#x}")]
    NoFunction(u64),
    #[error("no DWARF record of the call inlined {depth} deep at pc {pc:#x}")]
    NoInlinedCall { depth: usize, pc: u64 },

    // `print` expressions: parsing (each names the whole text).
    #[error("expected a field name after '.' in {0:?}")]
    ExpectedField(String),

    // `print` expressions: evaluation.
    #[error("no variable {name:?} in {function}")]
    NoVariable { name: String, function: String },
    /// The named variable is unavailable, and the expression goes further.
    #[error("{name} is {why}")]
    VariableUnavailable { name: String, why: Box<VarError> },
    #[error("cannot dereference a {0}")]
    NotPointer(String),
    #[error("nil pointer dereference")]
    NilPointer,
    #[error("pointer to an unknown type")]
    UnknownPointee,
    #[error("{0} has no fields")]
    NoFields(String),
    #[error("no field {field:?} in {ty}")]
    NoField { field: String, ty: String },
    #[error("ambiguous selector: {ty} embeds {field:?} twice at the same depth")]
    AmbiguousField { field: String, ty: String },
    #[error("no uint8 type in DWARF")]
    NoByteType,
    #[error("cannot index a {0}")]
    NotIndexable(String),
    #[error("{0} is not a channel")]
    NotChannel(String),
    /// A channel's wait queue could not be read whole.
    #[error("the channel's {queue}: {why}")]
    WaitQueue { queue: &'static str, why: String },
    #[error("index {index} out of range [0:{len}]")]
    OutOfRange { index: i128, len: u64 },

    // The expression parser (offsets are bytes into the text).
    #[error("empty expression")]
    Empty,
    #[error("unexpected {rest:?} at {at}")]
    UnexpectedToken { at: usize, rest: String },
    #[error("unexpected end of expression")]
    UnexpectedEnd,
    #[error("expected {0}")]
    Expected(&'static str),
    #[error("unexpected character {ch:?} at {at}")]
    UnexpectedChar { at: usize, ch: char },
    #[error("unterminated literal at {0}")]
    Unterminated(usize),
    #[error("bad escape at {0}")]
    BadEscape(usize),
    #[error("bad rune literal at {0}")]
    BadRune(usize),
    #[error("bad number {0:?}")]
    BadNumber(String),
    #[error("expression nested too deeply")]
    TooDeep,
    #[error("expression too long: {tokens} tokens, at most {max} (print its parts one by one)")]
    ExpressionTooLong { tokens: usize, max: usize },

    // The evaluator.
    /// `expr` failed: the innermost failing sub-expression names itself.
    #[error("{expr}: {why}")]
    At { expr: String, why: Box<VarError> },
    #[error("key not in map")]
    KeyNotInMap,
    #[error("key not among the first {0} entries read")]
    KeyNotFound(usize),
    #[error("cannot look up a key of type {0}")]
    UnsupportedKey(String),
    #[error("key of type {have}, the map's keys are {want}")]
    KeyType { want: String, have: String },
    #[error("dynamic type is {0}")]
    DynamicType(String),
    #[error("{0} has no DWARF type: print the interface to see its value")]
    NoDwarfType(String),
    #[error("not an interface: {0}")]
    NotInterface(String),
    #[error("mismatched types {left} and {right}")]
    Mismatched { left: String, right: String },
    #[error("operator {op} not defined on {ty}")]
    BadOperand { op: &'static str, ty: String },
    /// A constant where a value in memory is needed (`*2`, `&1`).
    #[error("{ty} constant is not a value in memory")]
    ConstNotInMemory { ty: String },
    #[error("integer divide by zero")]
    DivideByZero,
    #[error("constant overflow")]
    Overflow,
    #[error("invalid shift count {0}")]
    BadShift(i128),
    #[error("{value} cannot be represented as {ty}")]
    NotRepresentable { value: String, ty: String },
    #[error("no type named {0}")]
    NoType(String),
    #[error("{0} is a type, not a value")]
    IsType(String),
    #[error("cannot convert {from} to {to}")]
    BadConversion { from: String, to: String },
    #[error("invalid slice indices {lo}:{hi} (cap {cap})")]
    SliceBounds { lo: i128, hi: i128, cap: u64 },
    #[error("no slice type []{0} in DWARF")]
    NoSliceType(String),
    #[error("{0} takes one argument")]
    Arity(String),
    #[error("invalid argument for {func}: {ty}")]
    BadArgument { func: &'static str, ty: String },
    #[error("cannot call {0}: only len, cap and conversions are evaluated")]
    NotCallable(String),
    #[error("cannot take the address of a value not in memory")]
    NoAddress,
    #[error("index must be an integer")]
    IndexNotInteger,
    #[error("value too long to compare ({0} bytes)")]
    TooLong(u64),
}

impl VarError {
    /// The value was in a register this frame does not have (a caller's
    /// spill slot may still hold it).
    pub fn is_register(&self) -> bool {
        matches!(self, VarError::RegisterNotSaved | VarError::PieceInRegister)
    }
}

impl From<ReadFault> for VarError {
    fn from(f: ReadFault) -> VarError {
        VarError::Read(f)
    }
}
