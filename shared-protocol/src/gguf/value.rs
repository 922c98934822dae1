//! GGUF metadata values: the thirteen value types of the GGUF v3 spec, borrowed
//! from the file's bytes.
//!
//! Arrays of numbers are kept as the raw little-endian bytes they occupy in the
//! file (decoded on access), so a metadata array costs no allocation beyond its
//! own bytes; arrays of strings and nested arrays hold one slice per element.

use super::GgufError;

/// `gguf_metadata_value_type` from the GGUF spec, with the same ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<Self> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Size in bytes of a fixed-size scalar; `None` for strings and arrays.
    pub fn scalar_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    /// GGUF strings are specified as UTF-8 but not guaranteed to be; the bytes
    /// are kept as they are and checked when read as text.
    String(&'a [u8]),
    Array(Array<'a>),
}

/// A metadata array. Element type is uniform, as the spec requires.
#[derive(Clone, Debug, PartialEq)]
pub enum Array<'a> {
    /// Fixed-size scalars, `count` of them, stored little-endian in `bytes`.
    Scalars {
        ty: ValueType,
        count: usize,
        bytes: &'a [u8],
    },
    Strings(Vec<&'a [u8]>),
    Arrays(Vec<Array<'a>>),
}

impl<'a> Value<'a> {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F32(_) => ValueType::F32,
            Value::F64(_) => ValueType::F64,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
        }
    }

    /// Any integer type, if it fits in `u64` (writers disagree on u32/i32/u64).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer type, if it fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any float or integer type as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array<'a>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl<'a> Array<'a> {
    pub fn len(&self) -> usize {
        match self {
            Array::Scalars { count, .. } => *count,
            Array::Strings(v) => v.len(),
            Array::Arrays(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn element_type(&self) -> ValueType {
        match self {
            Array::Scalars { ty, .. } => *ty,
            Array::Strings(_) => ValueType::String,
            Array::Arrays(_) => ValueType::Array,
        }
    }

    /// Element `i` as a [`Value`].
    pub fn get(&self, i: usize) -> Option<Value<'a>> {
        match self {
            Array::Scalars { ty, count, bytes } => {
                if i >= *count {
                    return None;
                }
                let size = ty.scalar_size()?;
                let raw = &bytes[i * size..(i + 1) * size];
                Some(decode_scalar(*ty, raw))
            }
            Array::Strings(v) => v.get(i).map(|s| Value::String(s)),
            Array::Arrays(v) => v.get(i).map(|a| Value::Array(a.clone())),
        }
    }

    /// The elements as UTF-8 strings; fails on the first non-string or invalid one.
    pub fn to_strs(&self, key: &str) -> Result<Vec<&'a str>, GgufError> {
        let Array::Strings(v) = self else {
            return Err(GgufError::WrongType {
                key: key.to_owned(),
                expected: "array of string",
                found: self.element_type().name(),
            });
        };
        v.iter()
            .enumerate()
            .map(|(i, s)| {
                std::str::from_utf8(s).map_err(|_| GgufError::InvalidUtf8 {
                    what: format!("{key}[{i}]"),
                })
            })
            .collect()
    }

    /// The elements as raw byte strings.
    pub fn to_byte_strs(&self, key: &str) -> Result<&[&'a [u8]], GgufError> {
        match self {
            Array::Strings(v) => Ok(v),
            _ => Err(GgufError::WrongType {
                key: key.to_owned(),
                expected: "array of string",
                found: self.element_type().name(),
            }),
        }
    }

    /// Numeric elements as `f32` (any float or integer element type).
    pub fn to_f32s(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        self.map_scalars(key, "array of number", |v| v.as_f64().map(|x| x as f32))
    }

    /// Integer elements as `i64`.
    pub fn to_i64s(&self, key: &str) -> Result<Vec<i64>, GgufError> {
        self.map_scalars(key, "array of integer", |v| v.as_i64())
    }

    fn map_scalars<T>(
        &self,
        key: &str,
        expected: &'static str,
        f: impl Fn(&Value<'a>) -> Option<T>,
    ) -> Result<Vec<T>, GgufError> {
        let wrong = || GgufError::WrongType {
            key: key.to_owned(),
            expected,
            found: self.element_type().name(),
        };
        let Array::Scalars { count, .. } = self else {
            return Err(wrong());
        };
        (0..*count)
            .map(|i| self.get(i).as_ref().and_then(&f).ok_or_else(wrong))
            .collect()
    }
}

pub(crate) fn decode_scalar(ty: ValueType, raw: &[u8]) -> Value<'static> {
    fn arr<const N: usize>(raw: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&raw[..N]);
        out
    }
    match ty {
        ValueType::U8 => Value::U8(raw[0]),
        ValueType::I8 => Value::I8(raw[0] as i8),
        ValueType::Bool => Value::Bool(raw[0] != 0),
        ValueType::U16 => Value::U16(u16::from_le_bytes(arr(raw))),
        ValueType::I16 => Value::I16(i16::from_le_bytes(arr(raw))),
        ValueType::U32 => Value::U32(u32::from_le_bytes(arr(raw))),
        ValueType::I32 => Value::I32(i32::from_le_bytes(arr(raw))),
        ValueType::F32 => Value::F32(f32::from_le_bytes(arr(raw))),
        ValueType::U64 => Value::U64(u64::from_le_bytes(arr(raw))),
        ValueType::I64 => Value::I64(i64::from_le_bytes(arr(raw))),
        ValueType::F64 => Value::F64(f64::from_le_bytes(arr(raw))),
        ValueType::String | ValueType::Array => {
            unreachable!("decode_scalar is only called with fixed-size types")
        }
    }
}
