//! A cursor over untrusted bytes that can never read past its frame.
//!
//! Every length that comes from the file is checked against the bytes that are
//! actually left before anything is sliced or allocated (the rustls `Reader`
//! pattern), so a hostile header cannot make us allocate by its own claims.

use super::GgufError;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Takes the next `len` bytes, or fails naming `what` was being read.
    pub(crate) fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], GgufError> {
        let available = self.remaining();
        if len > available as u64 {
            return Err(GgufError::Truncated {
                what,
                offset: self.pos as u64,
                needed: len,
                available: available as u64,
            });
        }
        let len = len as usize;
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: u64 length then that many bytes.
    pub(crate) fn string(
        &mut self,
        what: &'static str,
        max_len: u64,
    ) -> Result<&'a [u8], GgufError> {
        let offset = self.pos as u64;
        let len = self.u64(what)?;
        if len > max_len {
            return Err(GgufError::TooLarge {
                what,
                offset,
                value: len,
                limit: max_len,
            });
        }
        self.take(len, what)
    }

    /// Skips padding so that the position is a multiple of `alignment`.
    pub(crate) fn align(&mut self, alignment: u64, what: &'static str) -> Result<(), GgufError> {
        let pos = self.pos as u64;
        let padded = pos.div_ceil(alignment) * alignment;
        self.take(padded - pos, what).map(|_| ())
    }
}
