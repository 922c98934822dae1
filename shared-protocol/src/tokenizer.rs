//! Text ↔ token ids, built from a GGUF file's `tokenizer.ggml.*` metadata,
//! matching llama.cpp (and the HF / SentencePiece tokenizers it mirrors)
//! token for token.
//!
//! Two vocabulary kinds:
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE (SmolLM2, Llama 3, Qwen 2).
//!   Text is cut into words by the pre-tokenizer `tokenizer.ggml.pre` names
//!   ([`PreTokenizer`]), each word's UTF-8 bytes are mapped through GPT-2's
//!   byte↔unicode table, and merges from `tokenizer.ggml.merges` apply
//!   lowest rank first.
//! - `tokenizer.ggml.model = "llama"`: SentencePiece (Llama 2, Mistral v0.1,
//!   TinyLlama): spaces become `▁`, a `▁` is prefixed at the start
//!   (`tokenizer.ggml.add_space_prefix`), adjacent pieces merge by the
//!   highest score of the merged piece, and characters outside the vocabulary
//!   fall back to `<0xXX>` byte tokens (else the unknown token).
//!
//! Control tokens (type 3) written in the text become their ids only when
//! `parse_special` is set; user-defined tokens (type 4) are always split out
//! first, as in llama.cpp and HF `tokenizers`.
//!
//! Where llama.cpp and SentencePiece differ on SentencePiece vocabularies,
//! SentencePiece is followed: only normal and user-defined pieces form by
//! merging, and a run of characters with neither a piece nor byte tokens
//! becomes one unknown token (llama.cpp aborts there).
//!
//! Not done: WordPiece/Unigram/RWKV vocabularies, the model-specific
//! `lstrip`/`rstrip` token attributes llama.cpp guesses from model names, and
//! llama.cpp's `clean_up_tokenization_spaces` pass on decode (decoding here is
//! the plain concatenation of token bytes, which round-trips and streams).

mod bpe;
mod load;
mod pretokenize;
mod special;
mod spm;
mod stream;
mod unicode;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use crate::gguf::{GgufError, GgufFile};

pub use pretokenize::PreTokenizer;
pub use stream::StreamDecoder;

/// A token id: an index into the vocabulary.
pub type TokenId = u32;

/// Why a tokenizer could not be built from a file's metadata.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("missing tokenizer metadata key {0:?}")]
    MissingKey(&'static str),
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(
        "unsupported tokenizer model {0:?} (supported: \"gpt2\" byte-level BPE, \"llama\" SentencePiece)"
    )]
    UnsupportedModel(String),
    #[error("unknown pre-tokenizer {name:?} in tokenizer.ggml.pre (supported: {supported})")]
    UnknownPreTokenizer { name: String, supported: String },
    #[error("tokenizer.ggml.tokens is empty")]
    EmptyVocabulary,
    #[error("{key} has {len} entries but tokenizer.ggml.tokens has {tokens}")]
    LengthMismatch {
        key: &'static str,
        len: usize,
        tokens: usize,
    },
    #[error("duplicate token {piece:?} in the vocabulary (ids {first} and {second})")]
    DuplicateToken {
        piece: String,
        first: TokenId,
        second: TokenId,
    },
    #[error("tokenizer.ggml.merges[{index}] = {merge:?} is not two pieces separated by a space")]
    BadMerge { index: usize, merge: String },
    #[error(
        "tokenizer.ggml.merges[{index}] = {merge:?} refers to {piece:?}, which is not in the vocabulary"
    )]
    MergeUnknownToken {
        index: usize,
        merge: String,
        piece: String,
    },
    #[error("{key} = {id} is out of range for a vocabulary of {vocab_size} tokens")]
    IdOutOfRange {
        key: &'static str,
        id: i64,
        vocab_size: usize,
    },
    #[error(
        "tokenizer.ggml.add_bos_token is true but there is no BOS token (tokenizer.ggml.bos_token_id)"
    )]
    AddBosWithoutBos,
}

/// The `tokenizer.ggml.token_type` of a vocabulary entry (llama.cpp's
/// `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_gguf(v: i64) -> Self {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    /// Control and unknown tokens are hidden from plain-text output and only
    /// parsed from text when asked.
    fn is_special(self) -> bool {
        matches!(self, TokenType::Control | TokenType::Unknown)
    }
}

/// The vocabulary kind, `tokenizer.ggml.model`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerModel {
    /// `"gpt2"`: byte-level BPE.
    BytePairGpt2,
    /// `"llama"`: SentencePiece.
    SentencePiece,
}

impl fmt::Display for TokenizerModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.gguf_name())
    }
}

impl TokenizerModel {
    /// The name used in `tokenizer.ggml.model`.
    pub fn gguf_name(self) -> &'static str {
        match self {
            TokenizerModel::BytePairGpt2 => "gpt2",
            TokenizerModel::SentencePiece => "llama",
        }
    }
}

/// What `titan inspect` shows about a tokenizer.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenizerSummary {
    /// `tokenizer.ggml.model`: `"gpt2"` or `"llama"`.
    pub model: &'static str,
    /// The `tokenizer.ggml.pre` name of a BPE vocabulary (`"default"` when
    /// the file has none); `"none"` for SentencePiece.
    pub pre: String,
    pub vocab_size: usize,
    pub merges: usize,
    /// Control, user-defined and unknown tokens.
    pub special_tokens: usize,
    pub bos: Option<TokenId>,
    pub eos: Option<TokenId>,
    pub eot: Option<TokenId>,
    pub unk: Option<TokenId>,
    pub pad: Option<TokenId>,
    /// Every end-of-generation token, ascending.
    pub eog: Vec<TokenId>,
    pub add_bos: bool,
    pub add_space_prefix: bool,
}

impl fmt::Display for TokenizerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = |v: Option<TokenId>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        write!(
            f,
            "{} (pre-tokenizer {}), {} tokens, {} merges, {} special; bos {}, eos {}, eot {}, unk {}, pad {}, eog {:?}; add_bos {}, add_space_prefix {}",
            self.model,
            self.pre,
            self.vocab_size,
            self.merges,
            self.special_tokens,
            id(self.bos),
            id(self.eos),
            id(self.eot),
            id(self.unk),
            id(self.pad),
            self.eog,
            self.add_bos,
            self.add_space_prefix
        )
    }
}

#[derive(Clone)]
enum Model {
    Bpe(bpe::BpeModel),
    Spm(spm::SpmModel),
}

/// A tokenizer built from GGUF metadata. Cheap to share: `Send + Sync`, and
/// `encode` takes `&self`.
#[derive(Clone)]
pub struct Tokenizer {
    model: Model,
    pieces: Vec<Box<str>>,
    types: Vec<TokenType>,
    ids: FastMap<Box<str>, TokenId>,
    /// Control, user-defined and unknown tokens, longest text first.
    specials: Vec<TokenId>,
    /// Each token's bytes as decoded with `special = true`.
    decoded: Vec<Box<[u8]>>,
    bos: Option<TokenId>,
    eos: Option<TokenId>,
    eot: Option<TokenId>,
    unk: Option<TokenId>,
    pad: Option<TokenId>,
    /// Ascending.
    eog: Vec<TokenId>,
    add_bos: bool,
    add_space_prefix: bool,
    pre_name: Option<String>,
}

impl Tokenizer {
    /// Builds the tokenizer described by `file`'s `tokenizer.ggml.*` keys.
    pub fn from_gguf(file: &GgufFile<'_>) -> Result<Self, TokenizerError> {
        load::from_gguf(file)
    }

    /// A prompt's ids as a model sees it: BOS first where the model wants it
    /// ([`Tokenizer::add_bos`]), then the text with special tokens recognised (as
    /// chat templates write them). The titan's API and CLI and the browser scout
    /// all tokenize prompts this way.
    pub fn encode_prompt(&self, text: &str) -> Vec<TokenId> {
        let mut tokens = Vec::new();
        if self.add_bos()
            && let Some(bos) = self.bos()
        {
            tokens.push(bos);
        }
        tokens.extend(self.encode(text, true));
        tokens
    }

    /// Text → ids. With `parse_special`, control tokens written in the text
    /// (e.g. `"<|im_start|>"`) become their ids; otherwise they are tokenized
    /// as plain text. User-defined tokens are always matched. Never adds BOS:
    /// prepend [`Tokenizer::bos`] when [`Tokenizer::add_bos`] says so.
    pub fn encode(&self, text: &str, parse_special: bool) -> Vec<TokenId> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let fragments = special::partition(self, text, parse_special);
        match &self.model {
            Model::Bpe(m) => {
                let mut scratch = bpe::Scratch::default();
                for frag in fragments {
                    match frag {
                        special::Fragment::Text(r) => {
                            m.encode(&self.ids, &text[r], &mut scratch, &mut out);
                        }
                        special::Fragment::Token(id) => out.push(id),
                    }
                }
            }
            Model::Spm(m) => {
                // A space is prefixed to text at the start and after every
                // special token, as llama.cpp does.
                let mut after_special = true;
                for frag in fragments {
                    match frag {
                        special::Fragment::Text(r) => {
                            m.encode(&text[r], self.add_space_prefix && after_special, &mut out);
                            after_special = false;
                        }
                        special::Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether a BOS token should start every prompt
    /// (`tokenizer.ggml.add_bos_token`, else llama.cpp's default for the
    /// vocabulary: true for SentencePiece and Llama 3, false for other BPE).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// `tokenizer.ggml.bos_token_id`; when absent, 1 for SentencePiece and
    /// none for BPE (llama.cpp's legacy BPE default of 11 is not copied).
    pub fn bos(&self) -> Option<TokenId> {
        self.bos
    }

    /// `tokenizer.ggml.eos_token_id`; when absent, 2 for SentencePiece and
    /// none for BPE.
    pub fn eos(&self) -> Option<TokenId> {
        self.eos
    }

    /// End-of-turn token (`tokenizer.ggml.eot_token_id`, else found by text).
    pub fn eot(&self) -> Option<TokenId> {
        self.eot
    }

    pub fn unk(&self) -> Option<TokenId> {
        self.unk
    }

    /// End-of-generation tokens: eos, eot, eom, and the tokens llama.cpp
    /// treats as end of generation by their text (`<|im_end|>`,
    /// `<|eot_id|>`, `<|endoftext|>`, `<end_of_turn>`, ...).
    pub fn is_end_of_generation(&self, id: TokenId) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation tokens, ascending.
    pub fn end_of_generation_tokens(&self) -> &[TokenId] {
        &self.eog
    }

    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The id of the vocabulary entry whose text is exactly `piece`.
    pub fn token_id(&self, piece: &str) -> Option<TokenId> {
        self.ids.get(piece).copied()
    }

    /// The vocabulary text of `id` as stored in the file (`Ġ`/`▁` and all).
    pub fn token_piece(&self, id: TokenId) -> Option<&str> {
        self.pieces.get(id as usize).map(|p| &**p)
    }

    pub fn token_type(&self, id: TokenId) -> Option<TokenType> {
        self.types.get(id as usize).copied()
    }

    /// The bytes `id` stands for when detokenized: byte-level BPE pieces are
    /// unmapped through GPT-2's byte↔unicode table; SentencePiece `▁` becomes
    /// a space and `<0xXX>` tokens their byte. Control and unknown tokens
    /// give their text only when `special` is true. Empty for ids out of range.
    pub fn token_bytes(&self, id: TokenId, special: bool) -> Cow<'_, [u8]> {
        let i = id as usize;
        match (self.types.get(i), self.decoded.get(i)) {
            (Some(t), Some(bytes)) if special || !t.is_special() => Cow::Borrowed(bytes),
            _ => Cow::Borrowed(&[]),
        }
    }

    /// Ids → text, invalid UTF-8 replaced by U+FFFD. Like llama.cpp's
    /// detokenizer, the first token (the one after a leading BOS) loses one
    /// leading space when the vocabulary adds a space prefix.
    pub fn decode(&self, ids: &[TokenId], special: bool) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let first = usize::from(ids.first().is_some_and(|&id| Some(id) == self.bos));
        for (i, &id) in ids.iter().enumerate() {
            let b = self.token_bytes(id, special);
            match b.split_first() {
                Some((b' ', rest)) if i == first && self.add_space_prefix => {
                    bytes.extend_from_slice(rest);
                }
                _ => bytes.extend_from_slice(&b),
            }
        }
        match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    pub fn summary(&self) -> TokenizerSummary {
        let (model, merges) = match &self.model {
            Model::Bpe(m) => (TokenizerModel::BytePairGpt2, m.merge_count()),
            Model::Spm(_) => (TokenizerModel::SentencePiece, 0),
        };
        TokenizerSummary {
            model: model.gguf_name(),
            pre: self.pre_name.clone().unwrap_or_else(|| "none".to_owned()),
            vocab_size: self.vocab_size(),
            merges,
            special_tokens: self.specials.len(),
            bos: self.bos,
            eos: self.eos,
            eot: self.eot,
            unk: self.unk,
            pad: self.pad,
            eog: self.eog.clone(),
            add_bos: self.add_bos,
            add_space_prefix: self.add_space_prefix,
        }
    }

    pub fn model(&self) -> TokenizerModel {
        match &self.model {
            Model::Bpe(_) => TokenizerModel::BytePairGpt2,
            Model::Spm(_) => TokenizerModel::SentencePiece,
        }
    }

    /// The pre-tokenizer of a byte-level BPE vocabulary.
    pub fn pre_tokenizer(&self) -> Option<PreTokenizer> {
        match &self.model {
            Model::Bpe(m) => Some(m.pre()),
            Model::Spm(_) => None,
        }
    }
}

impl fmt::Debug for Tokenizer {
    /// The summary, not the whole vocabulary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Tokenizer").field(&self.summary()).finish()
    }
}

/// FxHash (rustc's hasher): the vocabulary maps are hit for every merge, and
/// SipHash would dominate encoding time. Keys come from the model file and
/// lookups never insert, so flooding is not a concern.
#[derive(Clone, Copy, Default)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests;
