//! Splitting special tokens out of the text before pre-tokenization
//! (llama.cpp's `tokenizer_st_partition`).

use std::ops::Range;

use super::{TokenId, Tokenizer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    /// A byte range of the input text, still to be tokenized.
    Text(Range<usize>),
    Token(TokenId),
}

/// Cuts `text` at every occurrence of a special token. Tokens are tried
/// longest first, each over all the text fragments that remain, so a longer
/// token wins over a shorter one it contains. Control and unknown tokens take
/// part only with `parse_special`; user-defined tokens always do.
pub(crate) fn partition(tok: &Tokenizer, text: &str, parse_special: bool) -> Vec<Fragment> {
    let mut frags = Vec::new();
    if text.is_empty() {
        return frags;
    }
    frags.push(Fragment::Text(0..text.len()));
    let mut next = Vec::new();
    for &id in &tok.specials {
        let i = id as usize;
        if !parse_special && tok.types[i].is_special() {
            continue;
        }
        let needle = &*tok.pieces[i];
        if needle.is_empty() {
            continue;
        }
        // Cheap pre-check: most special tokens never occur.
        if !frags.iter().any(|f| match f {
            Fragment::Text(r) => text[r.clone()].contains(needle),
            Fragment::Token(_) => false,
        }) {
            continue;
        }
        next.clear();
        for frag in frags.drain(..) {
            let Fragment::Text(r) = frag else {
                next.push(frag);
                continue;
            };
            let mut start = r.start;
            while let Some(found) = text[start..r.end].find(needle) {
                let at = start + found;
                if at > start {
                    next.push(Fragment::Text(start..at));
                }
                next.push(Fragment::Token(id));
                start = at + needle.len();
            }
            if start < r.end {
                next.push(Fragment::Text(start..r.end));
            }
        }
        std::mem::swap(&mut frags, &mut next);
    }
    frags
}
