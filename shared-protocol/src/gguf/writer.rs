//! A GGUF v3 writer, for generated models (`titan gen-bitnet`) and for tests
//! that need files with exact contents.

use std::io::{self, Write};

use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgmlType, ValueType};

/// An owned metadata value for writing.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
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
    String(String),
    /// Elements must all have the same type; `elem` is used for empty arrays.
    Array {
        elem: ValueType,
        items: Vec<MetaValue>,
    },
}

impl MetaValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::F64(_) => ValueType::F64,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array { .. } => ValueType::Array,
        }
    }

    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Self {
        MetaValue::Array {
            elem: ValueType::String,
            items: items
                .into_iter()
                .map(|s| MetaValue::String(s.into()))
                .collect(),
        }
    }

    pub fn f32s(items: impl IntoIterator<Item = f32>) -> Self {
        MetaValue::Array {
            elem: ValueType::F32,
            items: items.into_iter().map(MetaValue::F32).collect(),
        }
    }

    pub fn i32s(items: impl IntoIterator<Item = i32>) -> Self {
        MetaValue::Array {
            elem: ValueType::I32,
            items: items.into_iter().map(MetaValue::I32).collect(),
        }
    }
}

impl From<super::Value<'_>> for MetaValue {
    /// Copies a parsed value, so a file can be re-written with changes.
    fn from(v: super::Value<'_>) -> Self {
        use super::Value as V;
        match v {
            V::U8(x) => MetaValue::U8(x),
            V::I8(x) => MetaValue::I8(x),
            V::U16(x) => MetaValue::U16(x),
            V::I16(x) => MetaValue::I16(x),
            V::U32(x) => MetaValue::U32(x),
            V::I32(x) => MetaValue::I32(x),
            V::U64(x) => MetaValue::U64(x),
            V::I64(x) => MetaValue::I64(x),
            V::F32(x) => MetaValue::F32(x),
            V::F64(x) => MetaValue::F64(x),
            V::Bool(x) => MetaValue::Bool(x),
            V::String(s) => MetaValue::String(String::from_utf8_lossy(s).into_owned()),
            V::Array(a) => MetaValue::Array {
                elem: a.element_type(),
                items: (0..a.len())
                    .filter_map(|i| a.get(i))
                    .map(Into::into)
                    .collect(),
            },
        }
    }
}

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// Collects metadata and tensors, then writes a GGUF v3 file.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, MetaValue)>,
    tensors: Vec<PendingTensor>,
    alignment: Option<u64>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn metadata(&mut self, key: impl Into<String>, value: MetaValue) -> &mut Self {
        let key = key.into();
        if key == "general.alignment"
            && let Some(a) = match &value {
                MetaValue::U32(a) => Some(u64::from(*a)),
                MetaValue::U64(a) => Some(*a),
                _ => None,
            }
        {
            self.alignment = Some(a);
        }
        self.metadata.retain(|(k, _)| *k != key);
        self.metadata.push((key, value));
        self
    }

    /// Adds a tensor. `dims` are in ggml order (`dims[0]` contiguous); `data`
    /// must already be in the type's byte layout.
    pub fn tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> io::Result<&mut Self> {
        let name = name.into();
        let n: u64 = dims.iter().product();
        let expected = ty.tensor_bytes(dims.first().copied().unwrap_or(1), n);
        if expected != Some(data.len() as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "tensor {name}: {} bytes given, {ty} with dims {dims:?} needs {expected:?}",
                    data.len()
                ),
            ));
        }
        self.tensors.push(PendingTensor {
            name,
            dims: dims.to_vec(),
            ty,
            data,
        });
        Ok(self)
    }

    /// Writes the whole file.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let alignment = self.alignment.unwrap_or(DEFAULT_ALIGNMENT);
        let mut header = Vec::new();
        header.extend_from_slice(&GGUF_MAGIC);
        header.extend_from_slice(&GGUF_VERSION.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_string(&mut header, key);
            header.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            put_value(&mut header, value)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut header, &t.name);
            header.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&t.ty.id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + t.data.len() as u64).div_ceil(alignment) * alignment;
        }
        if !self.tensors.is_empty() {
            pad(&mut header, alignment);
        }
        w.write_all(&header)?;
        let mut written = 0u64;
        for t in &self.tensors {
            w.write_all(&t.data)?;
            written += t.data.len() as u64;
            let padded = written.div_ceil(alignment) * alignment;
            w.write_all(&vec![0u8; (padded - written) as usize])?;
            written = padded;
        }
        Ok(())
    }

    /// Writes the whole file into a new buffer.
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(out)
    }
}

fn pad(buf: &mut Vec<u8>, alignment: u64) {
    let len = buf.len() as u64;
    let padded = len.div_ceil(alignment) * alignment;
    buf.resize(padded as usize, 0);
}

fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn put_value(buf: &mut Vec<u8>, v: &MetaValue) -> io::Result<()> {
    match v {
        MetaValue::U8(x) => buf.push(*x),
        MetaValue::I8(x) => buf.push(*x as u8),
        MetaValue::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        MetaValue::Bool(x) => buf.push(u8::from(*x)),
        MetaValue::String(s) => put_string(buf, s),
        MetaValue::Array { elem, items } => {
            if let Some(bad) = items.iter().find(|i| i.value_type() != *elem) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "array of {} holds a {}",
                        elem.name(),
                        bad.value_type().name()
                    ),
                ));
            }
            buf.extend_from_slice(&(*elem as u32).to_le_bytes());
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            // Nested arrays carry their own element type and length.
            for item in items {
                put_value(buf, item)?;
            }
        }
    }
    Ok(())
}
