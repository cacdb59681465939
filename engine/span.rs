//! Source positions carried by every loaded value that an error may need to point at. A
//! leaf below both `diag` (which points at them) and the format's loader (which records
//! them), so that neither has to import the other.

use std::borrow::Cow;
use std::ops::Deref;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};
use serde_saphyr::{Location, Spanned};

/// Where a value stands in its source file: 1-based line and column, byte offset and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
    pub offset: usize,
    pub len: usize,
}

impl Pos {
    pub fn from_location(loc: &Location) -> Self {
        let span = loc.span();
        Pos {
            line: loc.line() as u32,
            column: loc.column() as u32,
            offset: span.byte_offset().unwrap_or(0) as usize,
            len: span.byte_len().unwrap_or(0) as usize,
        }
    }

    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

/// A value with its position in the source file. Deserializes through `serde_saphyr::Spanned`
/// and describes itself to schemars as the bare value, so the schema stays readable.
/// Equality, order and hashing look at the value alone: two mentions of the same name are equal
/// wherever they stand.
#[derive(Clone, Debug)]
pub struct Sp<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Sp<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        Sp { value, pos }
    }
}

impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Sp<T> {}
impl<T: PartialOrd> PartialOrd for Sp<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}
impl<T: Ord> Ord for Sp<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}
impl<T: std::hash::Hash> std::hash::Hash for Sp<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state)
    }
}

impl<T> Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Spanned::<T>::deserialize(d)?;
        Ok(Sp {
            pos: Pos::from_location(&s.referenced),
            value: s.value,
        })
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}
