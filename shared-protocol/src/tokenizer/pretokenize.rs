//! Pre-tokenizers of byte-level BPE vocabularies: the regexes that cut text
//! into words before BPE runs on each word.
//!
//! The regexes need look-ahead (`\s+(?!\S)`), which the `regex` crate lacks,
//! so each is written out by hand over Unicode classes, as llama.cpp's
//! `unicode_regex_split_custom_gpt2/llama3` do. Where llama.cpp's hand-written
//! splitters and the real regex (Oniguruma, inside HF `tokenizers`) differ,
//! the regex wins: unassigned code points count as `[^\s\p{L}\p{N}]` here.

use std::ops::Range;

use super::unicode::{Class, class, is_punctuation};

/// How a byte-level BPE vocabulary splits text into words, chosen by
/// `tokenizer.ggml.pre`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizer {
    /// llama.cpp's fallback for a missing or `"default"` pre-tokenizer:
    /// punctuation runs, then GPT-2, then number runs, then ASCII digit
    /// triples, each split inside the pieces of the one before.
    Default,
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    Gpt2,
    /// Every `\p{N}` on its own, then GPT-2 inside the rest (StarCoder,
    /// SmolLM, Refact, Command-R).
    DigitsThenGpt2,
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    Llama3,
    /// Qwen 2: the Llama 3 regex with `\p{N}` instead of `\p{N}{1,3}`.
    Qwen2,
}

/// What a `tokenizer.ggml.pre` name selects, beside the splitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PreConfig {
    pub(crate) pre: PreTokenizer,
    /// A word that is itself a vocabulary entry becomes that token without
    /// running the merges (HF `BPE.ignore_merges`).
    pub(crate) ignore_merges: bool,
    /// llama.cpp's default for `add_bos` when the file does not say.
    pub(crate) add_bos: bool,
}

/// The `tokenizer.ggml.pre` names understood, grouped as llama.cpp groups them.
pub(crate) const SUPPORTED_PRE: &[(&[&str], PreTokenizer, bool, bool)] = &[
    (&["default"], PreTokenizer::Default, false, false),
    (
        &[
            "gpt2",
            "gpt-2",
            "phi-2",
            "mpt",
            "olmo",
            "jais",
            "jina-es",
            "jina-de",
            "jina-v2-es",
            "jina-v2-de",
            "gigachat",
            "mellum",
            "a.x-4.0",
            "exaone4",
            "trillion",
            "granite-docling",
        ],
        PreTokenizer::Gpt2,
        false,
        false,
    ),
    (
        &[
            "smollm",
            "starcoder",
            "refact",
            "command-r",
            "codeshell",
            "exaone",
            "minerva-7b",
            "mellum2",
        ],
        PreTokenizer::DigitsThenGpt2,
        false,
        false,
    ),
    (
        &[
            "llama-bpe",
            "llama3",
            "llama-v3",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
        ],
        PreTokenizer::Llama3,
        true,
        true,
    ),
    (&["dbrx", "smaug-bpe"], PreTokenizer::Llama3, false, false),
    (
        &["qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"],
        PreTokenizer::Qwen2,
        false,
        false,
    ),
];

pub(crate) fn supported_pre_names() -> String {
    SUPPORTED_PRE
        .iter()
        .flat_map(|(names, ..)| names.iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

impl PreConfig {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        SUPPORTED_PRE
            .iter()
            .find(|(names, ..)| names.contains(&name))
            .map(|&(_, pre, ignore_merges, add_bos)| PreConfig {
                pre,
                ignore_merges,
                add_bos,
            })
    }
}

/// One splitting pass; each pass cuts every piece the previous one produced.
#[derive(Clone, Copy)]
enum Stage {
    /// `[\p{P}\$\+<=>\^~\|]+`
    PunctuationRuns,
    /// `\p{N}+`
    NumberRuns,
    /// `\p{N}`
    EachNumber,
    /// `[0-9][0-9][0-9]`
    AsciiDigitTriples,
    Gpt2,
    Llama3 {
        max_digits: usize,
    },
}

impl PreTokenizer {
    fn stages(self) -> &'static [Stage] {
        match self {
            PreTokenizer::Default => &[
                Stage::PunctuationRuns,
                Stage::Gpt2,
                Stage::NumberRuns,
                Stage::AsciiDigitTriples,
            ],
            PreTokenizer::Gpt2 => &[Stage::Gpt2],
            PreTokenizer::DigitsThenGpt2 => &[Stage::EachNumber, Stage::Gpt2],
            PreTokenizer::Llama3 => &[Stage::Llama3 { max_digits: 3 }],
            PreTokenizer::Qwen2 => &[Stage::Llama3 { max_digits: 1 }],
        }
    }

    /// Cuts `text` into words, returned as byte ranges that cover it in order.
    pub fn split(self, text: &str) -> Vec<Range<usize>> {
        let mut chars = Vec::with_capacity(text.len());
        let mut offsets = Vec::with_capacity(text.len() + 1);
        for (i, c) in text.char_indices() {
            chars.push(c);
            offsets.push(i);
        }
        offsets.push(text.len());

        // Piece ends, in char indices.
        let mut ends = vec![chars.len()];
        let mut next = Vec::with_capacity(chars.len() / 3 + 1);
        for &stage in self.stages() {
            next.clear();
            let mut lo = 0;
            for &hi in &ends {
                split_piece(stage, &chars, lo, hi, &mut next);
                lo = hi;
            }
            std::mem::swap(&mut ends, &mut next);
        }

        let mut out = Vec::with_capacity(ends.len());
        let mut lo = 0;
        for hi in ends {
            if hi > lo {
                out.push(offsets[lo]..offsets[hi]);
            }
            lo = hi;
        }
        out
    }
}

/// Appends the ends of the pieces `stage` cuts `chars[lo..hi]` into.
fn split_piece(stage: Stage, chars: &[char], lo: usize, hi: usize, ends: &mut Vec<usize>) {
    if lo >= hi {
        return;
    }
    match stage {
        Stage::PunctuationRuns => isolate_runs(chars, lo, hi, ends, |c| {
            is_punctuation(c) || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
        }),
        Stage::NumberRuns => isolate_runs(chars, lo, hi, ends, |c| class(c) == Class::Number),
        Stage::EachNumber => {
            let mut pos = lo;
            while pos < hi {
                if class(chars[pos]) == Class::Number {
                    pos += 1;
                } else {
                    while pos < hi && class(chars[pos]) != Class::Number {
                        pos += 1;
                    }
                }
                ends.push(pos);
            }
        }
        Stage::AsciiDigitTriples => {
            // Leftmost matches of exactly three ASCII digits; the text
            // between matches stays whole.
            let mut pos = lo;
            let mut prev = lo;
            while pos + 3 <= hi {
                if chars[pos..pos + 3].iter().all(char::is_ascii_digit) {
                    if pos > prev {
                        ends.push(pos);
                    }
                    pos += 3;
                    ends.push(pos);
                    prev = pos;
                } else {
                    pos += 1;
                }
            }
            if hi > prev {
                ends.push(hi);
            }
        }
        Stage::Gpt2 => split_gpt2(chars, lo, hi, ends),
        Stage::Llama3 { max_digits } => split_llama3(chars, lo, hi, max_digits, ends),
    }
}

/// Maximal runs where `pred` holds and the runs between them.
fn isolate_runs(
    chars: &[char],
    lo: usize,
    hi: usize,
    ends: &mut Vec<usize>,
    pred: impl Fn(char) -> bool,
) {
    let mut pos = lo;
    while pos < hi {
        let inside = pred(chars[pos]);
        while pos < hi && pred(chars[pos]) == inside {
            pos += 1;
        }
        ends.push(pos);
    }
}

/// The length of a contraction (`'s`, `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`)
/// at `pos`, if there is one.
fn contraction(chars: &[char], pos: usize, hi: usize, ignore_case: bool) -> Option<usize> {
    if chars[pos] != '\'' || pos + 1 >= hi {
        return None;
    }
    let fold = |c: char| {
        if !ignore_case {
            c
        } else if c == 'ſ' {
            // LATIN SMALL LETTER LONG S case-folds to 's'.
            's'
        } else {
            c.to_ascii_lowercase()
        }
    };
    let c1 = fold(chars[pos + 1]);
    if matches!(c1, 's' | 't' | 'm' | 'd') {
        return Some(2);
    }
    if pos + 2 < hi {
        let c2 = fold(chars[pos + 2]);
        if matches!((c1, c2), ('r', 'e') | ('v', 'e') | ('l', 'l')) {
            return Some(3);
        }
    }
    None
}

/// `\s+(?!\S)|\s+` at `pos`, given that `chars[pos]` is whitespace: a run
/// followed by more text leaves its last character for the next word.
fn whitespace_end(chars: &[char], pos: usize, hi: usize) -> usize {
    let mut end = pos;
    while end < hi && class(chars[end]) == Class::Whitespace {
        end += 1;
    }
    if end - pos > 1 && end < hi {
        end - 1
    } else {
        end.max(pos + 1)
    }
}

fn split_gpt2(chars: &[char], lo: usize, hi: usize, ends: &mut Vec<usize>) {
    let cls = |p: usize| (p < hi).then(|| class(chars[p]));
    let mut pos = lo;
    while pos < hi {
        if let Some(n) = contraction(chars, pos, hi, false) {
            pos += n;
            ends.push(pos);
            continue;
        }
        let c = chars[pos];
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        let (skip, k) = if c == ' ' {
            (1, cls(pos + 1))
        } else {
            (0, cls(pos))
        };
        if let Some(k @ (Class::Letter | Class::Number | Class::Other)) = k {
            pos += skip;
            while cls(pos) == Some(k) {
                pos += 1;
            }
            ends.push(pos);
            continue;
        }
        pos = whitespace_end(chars, pos, hi);
        ends.push(pos);
    }
}

fn split_llama3(chars: &[char], lo: usize, hi: usize, max_digits: usize, ends: &mut Vec<usize>) {
    let cls = |p: usize| (p < hi).then(|| class(chars[p]));
    let is_newline = |p: usize| p < hi && matches!(chars[p], '\r' | '\n');
    let mut pos = lo;
    while pos < hi {
        if let Some(n) = contraction(chars, pos, hi, true) {
            pos += n;
            ends.push(pos);
            continue;
        }
        let c = chars[pos];
        let k = class(c);
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if !is_newline(pos)
            && k != Class::Number
            && (k == Class::Letter || cls(pos + 1) == Some(Class::Letter))
        {
            pos += 1;
            while cls(pos) == Some(Class::Letter) {
                pos += 1;
            }
            ends.push(pos);
            continue;
        }
        // `\p{N}{1,max_digits}`
        if k == Class::Number {
            let mut run = 0;
            while cls(pos) == Some(Class::Number) {
                pos += 1;
                run += 1;
                if run == max_digits {
                    ends.push(pos);
                    run = 0;
                }
            }
            if run > 0 {
                ends.push(pos);
            }
            continue;
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let (skip, k2) = if c == ' ' {
            (1, cls(pos + 1))
        } else {
            (0, Some(k))
        };
        if k2 == Some(Class::Other) {
            pos += skip;
            while cls(pos) == Some(Class::Other) {
                pos += 1;
            }
            while is_newline(pos) {
                pos += 1;
            }
            ends.push(pos);
            continue;
        }
        // `\s*[\r\n]+`: through the last newline of the whitespace run.
        let mut end = pos;
        let mut last_newline = None;
        while cls(end) == Some(Class::Whitespace) {
            if is_newline(end) {
                last_newline = Some(end + 1);
            }
            end += 1;
        }
        pos = match last_newline {
            Some(e) => e,
            None => whitespace_end(chars, pos, hi),
        };
        ends.push(pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreTokenizer, text: &str) -> Vec<&str> {
        pre.split(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn gpt2_splits_words_contractions_and_whitespace() {
        let p = PreTokenizer::Gpt2;
        assert_eq!(
            words(p, "Hello world's 123 foo!!  bar   \n\tbaz  "),
            [
                "Hello", " world", "'s", " 123", " foo", "!!", " ", " bar", "   \n", "\t", "baz",
                "  "
            ]
        );
        assert_eq!(words(p, "I'M 'll"), ["I", "'", "M", " '", "ll"]);
        assert_eq!(words(p, "\r\n"), ["\r\n"]);
        assert_eq!(words(p, " "), [" "]);
        assert_eq!(words(p, "e\u{301}"), ["e", "\u{301}"]);
        assert!(words(p, "").is_empty());
    }

    #[test]
    fn digits_are_isolated_before_gpt2() {
        let p = PreTokenizer::DigitsThenGpt2;
        assert_eq!(words(p, "ab 123c"), ["ab", " ", "1", "2", "3", "c"]);
        assert_eq!(words(p, "x  ²"), ["x", "  ", "²"]);
    }

    #[test]
    fn llama3_splits_like_its_regex() {
        let p = PreTokenizer::Llama3;
        assert_eq!(
            words(p, "I'M here: 1234567 \"quoted\"\n\n  next\tword"),
            [
                "I", "'M", " here", ":", " ", "123", "456", "7", " \"", "quoted", "\"\n\n", " ",
                " next", "\tword"
            ]
        );
        assert_eq!(words(p, "a  \n  b"), ["a", "  \n", " ", " b"]);
        assert_eq!(words(p, "x\r\n\r\ny"), ["x", "\r\n\r\n", "y"]);
        // (?i:'s) also matches 'ſ (LONG S case-folds to s), as in Oniguruma.
        assert_eq!(words(p, "'ſt"), ["'ſ", "t"]);
    }

    #[test]
    fn qwen2_keeps_single_digits() {
        assert_eq!(
            words(PreTokenizer::Qwen2, "a 123"),
            ["a", " ", "1", "2", "3"]
        );
    }

    #[test]
    fn default_runs_llama_cpp_stage_sequence() {
        let p = PreTokenizer::Default;
        assert_eq!(words(p, "a+=b 12345"), ["a", "+=", "b", " ", "123", "45"]);
    }

    #[test]
    fn pieces_cover_the_text() {
        let text = "Mixed: café 中文 😀👍🏽 \u{200d} 12,345.6 \t\n end  ";
        for pre in [
            PreTokenizer::Default,
            PreTokenizer::Gpt2,
            PreTokenizer::DigitsThenGpt2,
            PreTokenizer::Llama3,
            PreTokenizer::Qwen2,
        ] {
            assert_eq!(words(pre, text).concat(), text, "{pre:?}");
        }
    }
}
