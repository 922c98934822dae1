//! Incremental detokenization for streaming output.

use super::{TokenId, Tokenizer};

/// Turns generated token ids into text as they arrive. A multi-byte
/// character split across tokens (common for emoji and CJK in byte-level
/// vocabularies) is held back until its last byte arrives; bytes that can
/// never form valid UTF-8 come out as U+FFFD.
///
/// Unlike [`Tokenizer::decode`], no leading space is stripped: streamed
/// tokens continue a prompt. Control tokens are hidden unless built with
/// [`StreamDecoder::with_special`].
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    special: bool,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that also renders control tokens as their text.
    pub fn with_special(special: bool) -> Self {
        Self {
            pending: Vec::new(),
            special,
        }
    }

    /// Adds one token; returns the text that became complete.
    pub fn push(&mut self, tok: &Tokenizer, id: TokenId) -> String {
        self.pending
            .extend_from_slice(&tok.token_bytes(id, self.special));
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // The prefix up to `valid` was just checked.
                    out.push_str(&String::from_utf8_lossy(&self.pending[start..valid]));
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + n;
                        }
                        // An incomplete character at the end: wait for more.
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// Flushes whatever is held back (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}
