//! Wire messages of the mesh: the `/shard/verify/1` request-response
//! protocol ([`verify`]) and the gossipsub payloads ([`gossip`]).
//!
//! Every message is a body of `version: u8, kind: u8, fields...` with
//! little-endian integers, `u32`-counted sequences and no padding. On a
//! stream, a body travels in a frame: its length as a `u32` (little-endian)
//! and then the body; a frame longer than [`MAX_FRAME`] is refused before a
//! byte of it is read. Decoding works on `&[u8]` through a bounded
//! [`Reader`], never allocates more than the input can fill, never panics,
//! and refuses trailing bytes, so the encoding is canonical: what decodes
//! re-encodes to the same bytes (the fuzz target checks this).
//!
//! Only token ids, positions and sampling parameters cross the wire: with
//! shared randomness ([`crate::sampling`]) a drafter needs nothing else, and a
//! lying drafter cannot bias the output (DESIGN.md §3).

pub mod gossip;
pub mod verify;

/// Version byte that opens every message body.
pub const PROTOCOL_VERSION: u8 = 1;

/// Largest frame body on a stream. A work unit with the full context of a
/// 32k-token window is 128 KiB; anything larger is refused unread.
pub const MAX_FRAME: usize = 192 * 1024;

/// Why bytes are not a message.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty message")]
    Empty,
    #[error("protocol version {got} is not supported (this node speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion { got: u8 },
    #[error("unknown {what} kind {kind}")]
    UnknownKind { what: &'static str, kind: u8 },
    #[error("truncated {what}: needs {needed} more bytes, {left} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        left: usize,
    },
    #[error("{what} has {got} items, at most {max} allowed")]
    TooMany {
        what: &'static str,
        got: u64,
        max: usize,
    },
    #[error("{what}: invalid value {value}")]
    Invalid { what: &'static str, value: String },
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    #[error("frame of {got} bytes exceeds the limit of {max}")]
    FrameTooLarge { got: u64, max: usize },
}

/// A bounded cursor over a message body.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Truncated {
                what,
                needed: n,
                left: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub fn f32(&mut self, what: &'static str) -> Result<f32, DecodeError> {
        Ok(f32::from_bits(self.u32(what)?))
    }

    /// A strict boolean: 0 or 1.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::Invalid {
                what,
                value: v.to_string(),
            }),
        }
    }

    /// A count checked against `max` and against the bytes left (each item
    /// at least `item_bytes` long), so no allocation exceeds the input.
    pub fn count(
        &mut self,
        what: &'static str,
        max: usize,
        item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let n = u64::from(self.u32(what)?);
        if n > max as u64 {
            return Err(DecodeError::TooMany { what, got: n, max });
        }
        let needed = n.saturating_mul(item_bytes as u64);
        if needed > self.buf.len() as u64 {
            return Err(DecodeError::Truncated {
                what,
                needed: needed as usize,
                left: self.buf.len(),
            });
        }
        Ok(n as usize)
    }

    pub fn tokens(&mut self, what: &'static str, max: usize) -> Result<Vec<u32>, DecodeError> {
        let n = self.count(what, max, 4)?;
        (0..n).map(|_| self.u32(what)).collect()
    }

    pub fn string(&mut self, what: &'static str, max: usize) -> Result<String, DecodeError> {
        let n = self.count(what, max, 1)?;
        let bytes = self.bytes(n, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Invalid {
                what,
                value: "non-UTF-8 text".into(),
            })
    }

    pub fn blob(&mut self, what: &'static str, max: usize) -> Result<Vec<u8>, DecodeError> {
        let n = self.count(what, max, 1)?;
        Ok(self.bytes(n, what)?.to_vec())
    }

    /// The version byte; anything but [`PROTOCOL_VERSION`] is refused.
    pub fn version(&mut self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            return Err(DecodeError::Empty);
        }
        match self.u8("version")? {
            PROTOCOL_VERSION => Ok(()),
            got => Err(DecodeError::UnsupportedVersion { got }),
        }
    }

    /// Succeeds only if the whole input was consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.buf.len()))
        }
    }
}

/// Appends fields in wire order.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    /// A body opened with the version byte and `kind`.
    pub fn message(kind: u8) -> Self {
        Self {
            buf: vec![PROTOCOL_VERSION, kind],
        }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.u32(v.to_bits());
    }
    pub fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    /// Sequences longer than `u32::MAX` cannot be messages; callers bound
    /// them far below that.
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub fn tokens(&mut self, v: &[u32]) {
        self.len(v.len());
        for &t in v {
            self.u32(t);
        }
    }
    pub fn string(&mut self, s: &str) {
        self.blob(s.as_bytes());
    }
    pub fn blob(&mut self, b: &[u8]) {
        self.len(b.len());
        self.buf.extend_from_slice(b);
    }
}

/// The frame header of a body: its length, refused above `max`.
pub fn frame_len(header: [u8; 4], max: usize) -> Result<usize, DecodeError> {
    let n = u32::from_le_bytes(header);
    if n as usize > max {
        return Err(DecodeError::FrameTooLarge {
            got: u64::from(n),
            max,
        });
    }
    Ok(n as usize)
}

/// A body with its frame header.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests;
