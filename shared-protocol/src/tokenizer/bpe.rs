//! Byte-level BPE: pre-tokenized words are mapped byte by byte through GPT-2's
//! table, then adjacent pieces merge, lowest merge rank first (leftmost on
//! ties), as llama.cpp's `llm_tokenizer_bpe_session` and HF `tokenizers` do.
//!
//! Pieces are token ids and merges are looked up by id pair, so a merge step
//! costs one hash of two `u32`s and nothing is allocated per step.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::pretokenize::PreTokenizer;
use super::unicode::byte_to_char_table;
use super::{FastMap, TokenId, TokenizerError};

/// Marks a byte whose mapped character is not in the vocabulary: it never
/// merges and produces no token (as in llama.cpp).
const NO_TOKEN: TokenId = TokenId::MAX;
const NONE: u32 = u32::MAX;

#[derive(Clone)]
pub(crate) struct BpeModel {
    pre: PreTokenizer,
    ignore_merges: bool,
    byte_table: [char; 256],
    /// The token of each single byte's mapped character.
    byte_tokens: [TokenId; 256],
    /// (left, right) → (rank, merged token).
    merges: FastMap<(TokenId, TokenId), (u32, TokenId)>,
    merge_count: usize,
}

/// Buffers reused across the words of one `encode` call.
#[derive(Default)]
pub(crate) struct Scratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Reverse<(u32, u32)>>,
    mapped: String,
}

#[derive(Clone, Copy)]
struct Symbol {
    id: TokenId,
    prev: u32,
    next: u32,
    alive: bool,
}

impl BpeModel {
    pub(crate) fn new(
        pre: PreTokenizer,
        ignore_merges: bool,
        ids: &FastMap<Box<str>, TokenId>,
        merges: &[&str],
    ) -> Result<Self, TokenizerError> {
        let byte_table = byte_to_char_table();
        let mut byte_tokens = [NO_TOKEN; 256];
        let mut buf = [0u8; 4];
        for (b, c) in byte_table.iter().enumerate() {
            if let Some(&id) = ids.get(&*c.encode_utf8(&mut buf)) {
                byte_tokens[b] = id;
            }
        }

        let mut map = FastMap::default();
        map.reserve(merges.len());
        let mut joined = String::new();
        for (index, &merge) in merges.iter().enumerate() {
            // Split at the first space after the first byte, as llama.cpp does.
            let split = merge
                .as_bytes()
                .iter()
                .skip(1)
                .position(|&b| b == b' ')
                .map(|p| p + 1)
                .ok_or_else(|| TokenizerError::BadMerge {
                    index,
                    merge: merge.to_owned(),
                })?;
            let (left, right) = (&merge[..split], &merge[split + 1..]);
            joined.clear();
            joined.push_str(left);
            joined.push_str(right);
            let lookup = |piece: &str| {
                ids.get(piece)
                    .copied()
                    .ok_or_else(|| TokenizerError::MergeUnknownToken {
                        index,
                        merge: merge.to_owned(),
                        piece: piece.to_owned(),
                    })
            };
            let key = (lookup(left)?, lookup(right)?);
            let merged = lookup(&joined)?;
            // A repeated pair keeps its first (lowest) rank.
            map.entry(key).or_insert((index as u32, merged));
        }
        Ok(Self {
            pre,
            ignore_merges,
            byte_table,
            byte_tokens,
            merges: map,
            merge_count: merges.len(),
        })
    }

    pub(crate) fn pre(&self) -> PreTokenizer {
        self.pre
    }

    pub(crate) fn merge_count(&self) -> usize {
        self.merge_count
    }

    /// Tokenizes text that holds no special tokens.
    pub(crate) fn encode(
        &self,
        ids: &FastMap<Box<str>, TokenId>,
        text: &str,
        scratch: &mut Scratch,
        out: &mut Vec<TokenId>,
    ) {
        for word in self.pre.split(text) {
            self.encode_word(ids, text[word].as_bytes(), scratch, out);
        }
    }

    fn encode_word(
        &self,
        ids: &FastMap<Box<str>, TokenId>,
        word: &[u8],
        scratch: &mut Scratch,
        out: &mut Vec<TokenId>,
    ) {
        if word.is_empty() {
            return;
        }
        if let [b] = word {
            let id = self.byte_tokens[usize::from(*b)];
            if id != NO_TOKEN {
                out.push(id);
            }
            return;
        }
        if self.ignore_merges {
            scratch.mapped.clear();
            scratch
                .mapped
                .extend(word.iter().map(|&b| self.byte_table[usize::from(b)]));
            if let Some(&id) = ids.get(scratch.mapped.as_str()) {
                out.push(id);
                return;
            }
        }

        let syms = &mut scratch.symbols;
        syms.clear();
        let n = word.len() as u32;
        syms.extend(word.iter().enumerate().map(|(i, &b)| Symbol {
            id: self.byte_tokens[usize::from(b)],
            prev: if i == 0 { NONE } else { i as u32 - 1 },
            next: if i as u32 + 1 == n {
                NONE
            } else {
                i as u32 + 1
            },
            alive: true,
        }));

        let heap = &mut scratch.heap;
        heap.clear();
        for i in 1..syms.len() {
            if let Some(rank) = self.rank(syms[i - 1].id, syms[i].id) {
                heap.push(Reverse((rank, i as u32 - 1)));
            }
        }

        while let Some(Reverse((rank, left))) = heap.pop() {
            let l = left as usize;
            let right = syms[l].next;
            // Skip entries made stale by an earlier merge: ranks are unique
            // per pair, so an unchanged pair still has this rank.
            if !syms[l].alive || right == NONE {
                continue;
            }
            let r = right as usize;
            let Some(&(current, merged)) = self.merges.get(&(syms[l].id, syms[r].id)) else {
                continue;
            };
            if current != rank {
                continue;
            }
            syms[l].id = merged;
            syms[r].alive = false;
            let after = syms[r].next;
            syms[l].next = after;
            if after != NONE {
                syms[after as usize].prev = left;
                if let Some(rank) = self.rank(merged, syms[after as usize].id) {
                    heap.push(Reverse((rank, left)));
                }
            }
            let before = syms[l].prev;
            if before != NONE
                && let Some(rank) = self.rank(syms[before as usize].id, merged)
            {
                heap.push(Reverse((rank, before)));
            }
        }

        let mut i = 0;
        while i != NONE {
            let s = syms[i as usize];
            if s.id != NO_TOKEN {
                out.push(s.id);
            }
            i = s.next;
        }
    }

    #[inline]
    fn rank(&self, left: TokenId, right: TokenId) -> Option<u32> {
        if left == NO_TOKEN || right == NO_TOKEN {
            return None;
        }
        self.merges.get(&(left, right)).map(|&(rank, _)| rank)
    }
}
