//! GGUF v3 (and v2) reader over `&[u8]`, as written by llama.cpp's converters
//! and the `gguf` Python package.
//!
//! The reader does no I/O: callers hand it the file's bytes (a `memmap2` map
//! on the titan, an `ArrayBuffer` in the browser). It is written for hostile
//! input: every count and length is checked against the bytes that remain and
//! against [`Limits`] before anything is allocated, every tensor's extent is
//! checked against the file, and nothing panics on any input (fuzzed by
//! `fuzz/fuzz_targets/gguf_parse.rs`, whose corpus replays in the tests).
//!
//! Layout: magic `GGUF`, u32 version, u64 tensor count, u64 metadata count,
//! the metadata key/value pairs, the tensor infos, padding to
//! `general.alignment` (default 32), then the tensor data.

mod reader;
mod tensor;
mod value;
mod writer;

use std::collections::HashMap;

pub use tensor::{GgmlType, TensorInfo};
pub use value::{Array, Value, ValueType};
pub use writer::{GgufWriter, MetaValue};

use reader::Reader;

pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The version this crate writes; versions 2 and 3 are read (they share the
/// little-endian layout).
pub const GGUF_VERSION: u32 = 3;
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;

/// Upper bounds applied while parsing, so that a file's claims never size an
/// allocation beyond what its own bytes could hold (mirrors the caps llama.cpp
/// added in ggml-org/llama.cpp#19856).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_tensors: u64,
    pub max_metadata: u64,
    pub max_string_len: u64,
    pub max_array_len: u64,
    pub max_array_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tensors: 1 << 20,
            max_metadata: 1 << 20,
            // Chat templates of recent models run to ~20 KB; keep room.
            max_string_len: 1 << 24,
            // Vocabularies reach ~260k tokens today.
            max_array_len: 1 << 26,
            max_array_depth: 8,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GgufError {
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: Vec<u8> },
    #[error("unsupported GGUF version {0} (supported: 2 and 3)")]
    UnsupportedVersion(u32),
    #[error(
        "file truncated while reading {what} at byte {offset}: needs {needed} bytes, {available} left"
    )]
    Truncated {
        what: &'static str,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("{what} at byte {offset} is {value}, over the limit of {limit}")]
    TooLarge {
        what: &'static str,
        offset: u64,
        value: u64,
        limit: u64,
    },
    #[error("invalid metadata value type {id} for key {key:?}")]
    InvalidValueType { key: String, id: u32 },
    #[error("metadata key {key:?} has an invalid bool byte {byte}")]
    InvalidBool { key: String, byte: u8 },
    #[error("invalid UTF-8 in {what}")]
    InvalidUtf8 { what: String },
    #[error("duplicate {what} {name:?}")]
    Duplicate { what: &'static str, name: String },
    #[error("general.alignment is {0}; it must be a non-zero power of two")]
    BadAlignment(u64),
    #[error("tensor {name:?} has {n_dims} dimensions; at most {MAX_DIMS} are allowed")]
    TooManyDims { name: String, n_dims: u32 },
    #[error("tensor {name:?} has an invalid shape {dims:?}")]
    BadShape { name: String, dims: Vec<u64> },
    #[error("tensor {name:?} has unknown tensor type id {id}")]
    UnknownTensorType { name: String, id: u32 },
    #[error("tensor {name:?} has shape {dims:?}, which does not fit {ty} blocks")]
    ShapeNotBlockAligned {
        name: String,
        dims: Vec<u64>,
        ty: GgmlType,
    },
    #[error("tensor {name:?} offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        name: String,
        offset: u64,
        alignment: u64,
    },
    #[error(
        "tensor {name:?} data ({size} bytes at file offset {start}) runs past the end of the file ({file_len} bytes)"
    )]
    TensorOutOfBounds {
        name: String,
        start: u64,
        size: u64,
        file_len: u64,
    },
    #[error("missing metadata key {0:?}")]
    MissingKey(String),
    #[error("metadata key {key:?} should be {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("missing tensor {0:?}")]
    MissingTensor(String),
}

/// A parsed GGUF file borrowing from its bytes.
#[derive(Debug)]
pub struct GgufFile<'a> {
    pub version: u32,
    pub alignment: u64,
    /// Metadata in file order.
    pub metadata: Vec<(&'a str, Value<'a>)>,
    pub tensors: Vec<TensorInfo<'a>>,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
    bytes: &'a [u8],
    metadata_index: HashMap<&'a str, usize>,
    tensor_index: HashMap<&'a str, usize>,
}

impl<'a> GgufFile<'a> {
    /// Parses a whole GGUF file with the default [`Limits`].
    pub fn parse(bytes: &'a [u8]) -> Result<Self, GgufError> {
        Self::parse_with_limits(bytes, &Limits::default())
    }

    pub fn parse_with_limits(bytes: &'a [u8], limits: &Limits) -> Result<Self, GgufError> {
        let mut r = Reader::new(bytes);
        let magic = r.take(4, "magic").map_err(|_| GgufError::BadMagic {
            found: bytes[..bytes.len().min(4)].to_vec(),
        })?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = bounded_count(&mut r, "tensor count", limits.max_tensors, 24)?;
        let n_metadata = bounded_count(&mut r, "metadata count", limits.max_metadata, 13)?;

        let mut metadata = Vec::with_capacity(n_metadata);
        let mut metadata_index = HashMap::with_capacity(n_metadata);
        for _ in 0..n_metadata {
            let key_bytes = r.string("metadata key", limits.max_string_len)?;
            let key = std::str::from_utf8(key_bytes).map_err(|_| GgufError::InvalidUtf8 {
                what: format!("metadata key {}", String::from_utf8_lossy(key_bytes)),
            })?;
            let id = r.u32("metadata value type")?;
            let ty = ValueType::from_id(id).ok_or_else(|| GgufError::InvalidValueType {
                key: key.to_owned(),
                id,
            })?;
            let value = read_value(&mut r, key, ty, limits, 0)?;
            if metadata_index.insert(key, metadata.len()).is_some() {
                return Err(GgufError::Duplicate {
                    what: "metadata key",
                    name: key.to_owned(),
                });
            }
            metadata.push((key, value));
        }

        let alignment = match metadata_index.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => {
                let v = &metadata[i].1;
                let a = v.as_u64().ok_or_else(|| GgufError::WrongType {
                    key: "general.alignment".into(),
                    expected: "integer",
                    found: v.value_type().name(),
                })?;
                if a == 0 || !a.is_power_of_two() || a > 1 << 20 {
                    return Err(GgufError::BadAlignment(a));
                }
                a
            }
        };

        let mut infos = Vec::with_capacity(n_tensors);
        let mut tensor_index = HashMap::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let info = read_tensor_info(&mut r, limits)?;
            if info.offset % alignment != 0 {
                return Err(GgufError::MisalignedTensor {
                    name: info.name.to_owned(),
                    offset: info.offset,
                    alignment,
                });
            }
            if tensor_index.insert(info.name, infos.len()).is_some() {
                return Err(GgufError::Duplicate {
                    what: "tensor",
                    name: info.name.to_owned(),
                });
            }
            infos.push(info);
        }

        // The data section starts at the next multiple of the alignment. A file
        // with no tensors may end right after its header, without padding.
        if n_tensors > 0 {
            r.align(alignment, "padding before tensor data")?;
        }
        let data_offset = r.position() as u64;
        let file_len = bytes.len() as u64;
        for t in &infos {
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.size));
            if end.is_none_or(|e| e > file_len) {
                return Err(GgufError::TensorOutOfBounds {
                    name: t.name.to_owned(),
                    start: start.unwrap_or(u64::MAX),
                    size: t.size,
                    file_len,
                });
            }
        }

        Ok(Self {
            version,
            alignment,
            metadata,
            tensors: infos,
            data_offset,
            bytes,
            metadata_index,
            tensor_index,
        })
    }

    /// The metadata value for `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    pub fn require(&self, key: &str) -> Result<&Value<'a>, GgufError> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    /// An integer value of any width, if present; an error if present with
    /// another type.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.typed(key, "unsigned integer", Value::as_u64)
    }

    pub fn get_i64(&self, key: &str) -> Result<Option<i64>, GgufError> {
        self.typed(key, "integer", Value::as_i64)
    }

    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        self.typed(key, "number", Value::as_f64)
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.typed(key, "bool", Value::as_bool)
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&'a str>, GgufError> {
        self.typed(key, "UTF-8 string", Value::as_str)
    }

    pub fn get_array(&self, key: &str) -> Result<Option<&Array<'a>>, GgufError> {
        self.typed(key, "array", Value::as_array)
    }

    pub fn require_u64(&self, key: &str) -> Result<u64, GgufError> {
        self.get_u64(key)?
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    pub fn require_f64(&self, key: &str) -> Result<f64, GgufError> {
        self.get_f64(key)?
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    pub fn require_str(&self, key: &str) -> Result<&'a str, GgufError> {
        self.get_str(key)?
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    pub fn require_array(&self, key: &str) -> Result<&Array<'a>, GgufError> {
        self.get_array(key)?
            .ok_or_else(|| GgufError::MissingKey(key.to_owned()))
    }

    fn typed<'s, T>(
        &'s self,
        key: &str,
        expected: &'static str,
        f: impl FnOnce(&'s Value<'a>) -> Option<T>,
    ) -> Result<Option<T>, GgufError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => f(v).map(Some).ok_or_else(|| GgufError::WrongType {
                key: key.to_owned(),
                expected,
                found: v.value_type().name(),
            }),
        }
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo<'a>, GgufError> {
        self.tensor(name)
            .ok_or_else(|| GgufError::MissingTensor(name.to_owned()))
    }

    /// The bytes of a tensor (bounds were checked at parse time).
    pub fn tensor_data(&self, info: &TensorInfo<'_>) -> &'a [u8] {
        let start = (self.data_offset + info.offset) as usize;
        &self.bytes[start..start + info.size as usize]
    }

    /// The whole file, as given to [`GgufFile::parse`].
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The architecture name, `general.architecture`.
    pub fn architecture(&self) -> Result<&'a str, GgufError> {
        self.require_str("general.architecture")
    }
}

/// Reads a u64 count and checks it against `limit` and against the bytes
/// left, given that each counted item takes at least `min_item_bytes`.
fn bounded_count(
    r: &mut Reader<'_>,
    what: &'static str,
    limit: u64,
    min_item_bytes: u64,
) -> Result<usize, GgufError> {
    let offset = r.position() as u64;
    let count = r.u64(what)?;
    if count > limit {
        return Err(GgufError::TooLarge {
            what,
            offset,
            value: count,
            limit,
        });
    }
    let needed = count.saturating_mul(min_item_bytes);
    if needed > r.remaining() as u64 {
        return Err(GgufError::Truncated {
            what,
            offset,
            needed,
            available: r.remaining() as u64,
        });
    }
    Ok(count as usize)
}

fn read_value<'a>(
    r: &mut Reader<'a>,
    key: &str,
    ty: ValueType,
    limits: &Limits,
    depth: u32,
) -> Result<Value<'a>, GgufError> {
    if let Some(size) = ty.scalar_size() {
        let raw = r.take(size as u64, "metadata value")?;
        if ty == ValueType::Bool && raw[0] > 1 {
            return Err(GgufError::InvalidBool {
                key: key.to_owned(),
                byte: raw[0],
            });
        }
        return Ok(value::decode_scalar(ty, raw));
    }
    match ty {
        ValueType::String => Ok(Value::String(
            r.string("metadata string", limits.max_string_len)?,
        )),
        _ => read_array(r, key, limits, depth).map(Value::Array),
    }
}

fn read_array<'a>(
    r: &mut Reader<'a>,
    key: &str,
    limits: &Limits,
    depth: u32,
) -> Result<Array<'a>, GgufError> {
    if depth >= limits.max_array_depth {
        return Err(GgufError::TooLarge {
            what: "array nesting depth",
            offset: r.position() as u64,
            value: u64::from(depth) + 1,
            limit: limits.max_array_depth.into(),
        });
    }
    let id = r.u32("array element type")?;
    let elem = ValueType::from_id(id).ok_or_else(|| GgufError::InvalidValueType {
        key: key.to_owned(),
        id,
    })?;
    // Minimum encoded size per element, so the count is bounded by the bytes
    // left before any Vec is sized by it.
    let min_size = match elem.scalar_size() {
        Some(s) => s as u64,
        None if elem == ValueType::String => 8,
        None => 12,
    };
    let count = bounded_count(r, "array length", limits.max_array_len, min_size)?;
    match elem {
        ValueType::String => {
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(r.string("array string", limits.max_string_len)?);
            }
            Ok(Array::Strings(items))
        }
        ValueType::Array => {
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(read_array(r, key, limits, depth + 1)?);
            }
            Ok(Array::Arrays(items))
        }
        scalar => {
            let bytes = r.take(count as u64 * min_size, "array data")?;
            if scalar == ValueType::Bool
                && let Some(&byte) = bytes.iter().find(|&&b| b > 1)
            {
                return Err(GgufError::InvalidBool {
                    key: key.to_owned(),
                    byte,
                });
            }
            Ok(Array::Scalars {
                ty: scalar,
                count,
                bytes,
            })
        }
    }
}

fn read_tensor_info<'a>(r: &mut Reader<'a>, limits: &Limits) -> Result<TensorInfo<'a>, GgufError> {
    let name_bytes = r.string("tensor name", limits.max_string_len)?;
    let name = std::str::from_utf8(name_bytes).map_err(|_| GgufError::InvalidUtf8 {
        what: format!("tensor name {}", String::from_utf8_lossy(name_bytes)),
    })?;
    let n_dims = r.u32("tensor dimension count")?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            name: name.to_owned(),
            n_dims,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(r.u64("tensor dimension")?);
    }
    let id = r.u32("tensor type")?;
    let offset = r.u64("tensor offset")?;
    let ty = GgmlType::from_id(id).ok_or_else(|| GgufError::UnknownTensorType {
        name: name.to_owned(),
        id,
    })?;
    // ggml requires every dimension to be at least 1 and the element count
    // to fit in i64.
    let n_elements = dims
        .iter()
        .try_fold(
            1u64,
            |acc, &d| if d == 0 { None } else { acc.checked_mul(d) },
        )
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| GgufError::BadShape {
            name: name.to_owned(),
            dims: dims.clone(),
        })?;
    let row_len = dims.first().copied().unwrap_or(1);
    // Types whose block layout we do not know still get a size check where
    // possible; otherwise they are kept with size 0 and refused by whoever
    // tries to compute with them (the type is named in that error).
    let size = match (ty.block_layout(), ty) {
        (None, t) if t != GgmlType::I2_S => 0,
        _ => {
            ty.tensor_bytes(row_len, n_elements)
                .ok_or_else(|| GgufError::ShapeNotBlockAligned {
                    name: name.to_owned(),
                    dims: dims.clone(),
                    ty,
                })?
        }
    };
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        size,
    })
}

#[cfg(test)]
mod tests;
