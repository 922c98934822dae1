//! SentencePiece BPE (`tokenizer.ggml.model = "llama"`), as llama.cpp's
//! `llm_tokenizer_spm_session` and SentencePiece's `bpe_model.cc` encode:
//! start from single characters, repeatedly merge the adjacent pair whose
//! concatenation is the vocabulary piece with the highest score (leftmost on
//! ties), then map characters outside the vocabulary to `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{FastMap, TokenId};

const NONE: u32 = u32::MAX;
/// SentencePiece's whitespace marker, U+2581.
pub(crate) const SPACE_MARK: char = '▁';

#[derive(Clone)]
pub(crate) struct SpmModel {
    /// The pieces merges may produce: normal and user-defined tokens, as in
    /// SentencePiece (control, unknown, byte and unused tokens never form
    /// from text).
    pieces: FastMap<Box<str>, (TokenId, f32)>,
    /// `<0xXX>` tokens (or the one-byte piece when a vocabulary has none).
    byte_tokens: [Option<TokenId>; 256],
    unk: Option<TokenId>,
}

#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
}

struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bigram {
    /// Higher score first, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        let by_score = if self.score == other.score {
            Ordering::Equal
        } else {
            self.score.total_cmp(&other.score)
        };
        by_score.then_with(|| other.left.cmp(&self.left))
    }
}

impl SpmModel {
    pub(crate) fn new(
        pieces: FastMap<Box<str>, (TokenId, f32)>,
        byte_tokens: [Option<TokenId>; 256],
        unk: Option<TokenId>,
    ) -> Self {
        Self {
            pieces,
            byte_tokens,
            unk,
        }
    }

    /// Tokenizes text that holds no special tokens; `prefix_space` prepends
    /// the `▁` of `add_space_prefix`.
    pub(crate) fn encode(&self, text: &str, prefix_space: bool, out: &mut Vec<TokenId>) {
        let mut s = String::with_capacity(text.len() + 3);
        if prefix_space {
            s.push(SPACE_MARK);
        }
        s.extend(text.chars().map(|c| if c == ' ' { SPACE_MARK } else { c }));
        if s.is_empty() {
            return;
        }

        let mut syms: Vec<Symbol> = Vec::with_capacity(s.len());
        for (i, c) in s.char_indices() {
            let n = syms.len() as u32;
            syms.push(Symbol {
                start: i as u32,
                len: c.len_utf8() as u32,
                prev: if n == 0 { NONE } else { n - 1 },
                next: n + 1,
            });
        }
        if let Some(last) = syms.last_mut() {
            last.next = NONE;
        }

        let mut heap = BinaryHeap::with_capacity(syms.len());
        let try_add = |syms: &[Symbol], heap: &mut BinaryHeap<Bigram>, left: u32, right: u32| {
            if left == NONE || right == NONE {
                return;
            }
            let (l, r) = (syms[left as usize], syms[right as usize]);
            let piece = &s[l.start as usize..(r.start + r.len) as usize];
            if let Some(&(_, score)) = self.pieces.get(piece) {
                heap.push(Bigram {
                    score,
                    left,
                    right,
                    size: l.len + r.len,
                });
            }
        };
        for i in 1..syms.len() as u32 {
            try_add(&syms, &mut heap, i - 1, i);
        }

        while let Some(b) = heap.pop() {
            let (l, r) = (b.left as usize, b.right as usize);
            // A pair is stale once either side merged with something else.
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != b.size {
                continue;
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            let after = syms[r].next;
            syms[l].next = after;
            if after != NONE {
                syms[after as usize].prev = b.left;
            }
            try_add(&syms, &mut heap, syms[l].prev, b.left);
            try_add(&syms, &mut heap, b.left, after);
        }

        // Characters outside the vocabulary: their bytes, or one unknown
        // token for a run of them (SentencePiece merges adjacent unknowns).
        let mut last_unknown = false;
        let mut i = 0;
        while i != NONE {
            let sym = syms[i as usize];
            let piece = &s[sym.start as usize..(sym.start + sym.len) as usize];
            if let Some(&(id, _)) = self.pieces.get(piece) {
                out.push(id);
                last_unknown = false;
            } else if let Some(bytes) = piece
                .bytes()
                .map(|b| self.byte_tokens[usize::from(b)])
                .collect::<Option<Vec<_>>>()
            {
                out.extend(bytes);
                last_unknown = false;
            } else if let Some(unk) = self.unk {
                if !last_unknown {
                    out.push(unk);
                }
                last_unknown = true;
            }
            i = sym.next;
        }
    }
}
