use super::unicode::byte_to_char_table;
use super::*;
use crate::gguf::{GgufWriter, MetaValue};

const CONTROL: i32 = 3;
const NORMAL: i32 = 1;

/// A byte-level BPE vocabulary: the 256 byte characters, a few merges, and
/// three control tokens.
fn bpe_writer(pre: Option<&str>) -> GgufWriter {
    let table = byte_to_char_table();
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    let mut types = vec![CONTROL; 3];
    tokens.extend(table.iter().map(char::to_string));
    let merges = [
        "h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d", "Ġ Ġ",
    ];
    for m in merges {
        tokens.push(m.replace(' ', ""));
    }
    types.resize(tokens.len(), NORMAL);
    let mut w = GgufWriter::new();
    w.metadata("tokenizer.ggml.model", MetaValue::String("gpt2".into()))
        .metadata("tokenizer.ggml.tokens", MetaValue::strings(tokens))
        .metadata("tokenizer.ggml.token_type", MetaValue::i32s(types))
        .metadata("tokenizer.ggml.merges", MetaValue::strings(merges))
        .metadata("tokenizer.ggml.bos_token_id", MetaValue::U32(0))
        .metadata("tokenizer.ggml.eos_token_id", MetaValue::U32(2));
    if let Some(pre) = pre {
        w.metadata("tokenizer.ggml.pre", MetaValue::String(pre.into()));
    }
    w
}

fn build(w: &GgufWriter) -> Result<Tokenizer, TokenizerError> {
    let bytes = w.to_bytes().unwrap();
    let file = GgufFile::parse(&bytes).unwrap();
    Tokenizer::from_gguf(&file)
}

fn bpe() -> Tokenizer {
    build(&bpe_writer(Some("smollm"))).unwrap()
}

fn pieces(t: &Tokenizer, ids: &[TokenId]) -> Vec<String> {
    ids.iter()
        .map(|&id| t.token_piece(id).unwrap().to_owned())
        .collect()
}

#[test]
fn bpe_merges_lowest_rank_first_within_words() {
    let t = bpe();
    let ids = t.encode("hello world", false);
    assert_eq!(pieces(&t, &ids), ["hello", "Ġworld"]);
    // "hel" stops at "he" + "l": no merge makes "hel".
    assert_eq!(pieces(&t, &t.encode("hel", false)), ["he", "l"]);
    // Digits split one by one (smollm), spaces before them stay apart.
    assert_eq!(pieces(&t, &t.encode("a 12", false)), ["a", "Ġ", "1", "2"]);
    assert!(t.encode("", true).is_empty());
}

#[test]
fn special_tokens_are_parsed_only_when_asked() {
    let t = bpe();
    let text = "<|im_start|>hello<|im_end|>";
    let ids = t.encode(text, true);
    assert_eq!(pieces(&t, &ids), ["<|im_start|>", "hello", "<|im_end|>"]);
    let plain = t.encode(text, false);
    assert!(plain.len() > 3);
    assert!(!plain.contains(&1) && !plain.contains(&2));
    assert_eq!(t.decode(&plain, false), text);
    // Control tokens are hidden unless `special`.
    assert_eq!(t.decode(&ids, false), "hello");
    assert_eq!(t.decode(&ids, true), text);
    assert_eq!(&*t.token_bytes(1, true), b"<|im_start|>");
    assert!(t.token_bytes(1, false).is_empty());
    assert!(t.token_bytes(99_999, true).is_empty());
}

#[test]
fn bpe_round_trips_any_text_through_byte_tokens() {
    let t = bpe();
    for text in [
        "hello world",
        "naïve café — 中文 😀👍🏽 \u{200d}",
        "  \t\n\r\n x  ",
        "I'M here, 12345!",
    ] {
        let ids = t.encode(text, false);
        assert_eq!(t.decode(&ids, false), text, "{text:?}");
    }
}

#[test]
fn end_of_generation_includes_eos_and_known_texts() {
    let t = bpe();
    assert!(t.is_end_of_generation(2));
    assert!(t.is_end_of_generation(0)); // <|endoftext|> by its text
    assert!(!t.is_end_of_generation(1));
    assert_eq!(t.end_of_generation_tokens(), [0, 2]);
    assert_eq!(t.eot(), Some(2)); // found by text: <|im_end|> ranks before <|endoftext|>
    assert_eq!(t.bos(), Some(0));
    assert_eq!(t.eos(), Some(2));
    assert!(!t.add_bos());
    assert_eq!(t.token_id("hello"), Some(t.encode("hello", false)[0]));
    assert_eq!(t.token_id("nope"), None);
}

#[test]
fn llama_bpe_ignores_merges_for_whole_words_and_adds_bos() {
    let mut w = bpe_writer(Some("llama-bpe"));
    w.metadata("tokenizer.ggml.add_bos_token", MetaValue::Bool(false));
    let t = build(&w).unwrap();
    assert!(!t.add_bos());
    assert_eq!(t.pre_tokenizer(), Some(PreTokenizer::Llama3));
    assert_eq!(
        pieces(&t, &t.encode("hello 123", false)),
        ["hello", "Ġ", "1", "2", "3"]
    );
    let t = build(&bpe_writer(Some("llama-bpe"))).unwrap();
    assert!(t.add_bos(), "llama-bpe defaults to add_bos");
}

#[test]
fn missing_pre_tokenizer_means_default() {
    let t = build(&bpe_writer(None)).unwrap();
    assert_eq!(t.pre_tokenizer(), Some(PreTokenizer::Default));
    assert_eq!(t.summary().pre, "default");
}

#[test]
fn stream_decoder_holds_back_partial_characters() {
    let t = bpe();
    let ids = t.encode("a😀b", false);
    assert_eq!(ids.len(), 6); // a, four bytes, b
    let mut s = StreamDecoder::new();
    let parts: Vec<String> = ids.iter().map(|&id| s.push(&t, id)).collect();
    assert_eq!(parts, ["a", "", "", "", "😀", "b"]);
    assert_eq!(s.finish(), "");
    // A dangling lead byte comes out as U+FFFD at the end.
    let mut s = StreamDecoder::new();
    assert_eq!(s.push(&t, ids[1]), "");
    assert_eq!(s.push(&t, ids[5]), "\u{fffd}b");
    assert_eq!(s.push(&t, ids[1]), "");
    assert_eq!(s.finish(), "\u{fffd}");
    // Control tokens are hidden by default.
    let mut s = StreamDecoder::new();
    assert_eq!(s.push(&t, 2), "");
    let mut s = StreamDecoder::with_special(true);
    assert_eq!(s.push(&t, 2), "<|im_end|>");
}

#[test]
fn summary_describes_the_vocabulary() {
    let t = bpe();
    let s = t.summary();
    assert_eq!(s.model, "gpt2");
    assert_eq!(s.pre, "smollm");
    assert_eq!(t.model(), TokenizerModel::BytePairGpt2);
    assert_eq!(s.vocab_size, 269);
    assert_eq!(s.merges, 10);
    assert_eq!(s.special_tokens, 3);
    assert_eq!(s.eog, [0, 2]);
    let text = s.to_string();
    assert!(
        text.starts_with("gpt2 (pre-tokenizer smollm), 269 tokens"),
        "{text}"
    );
}

fn err(w: &GgufWriter) -> String {
    build(w).unwrap_err().to_string()
}

#[test]
fn errors_name_what_is_wrong() {
    let mut w = GgufWriter::new();
    w.metadata("tokenizer.ggml.tokens", MetaValue::strings(["a"]));
    assert_eq!(
        err(&w),
        "missing tokenizer metadata key \"tokenizer.ggml.model\""
    );

    let mut w = bpe_writer(Some("smollm"));
    w.metadata("tokenizer.ggml.model", MetaValue::String("bert".into()));
    assert!(err(&w).contains("unsupported tokenizer model \"bert\""));

    let mut w = GgufWriter::new();
    w.metadata("tokenizer.ggml.model", MetaValue::String("gpt2".into()));
    assert!(err(&w).contains("\"tokenizer.ggml.tokens\""));

    let w = bpe_writer(Some("klingon"));
    let e = err(&w);
    assert!(e.contains("unknown pre-tokenizer \"klingon\""), "{e}");
    assert!(e.contains("smollm") && e.contains("llama-bpe"), "{e}");

    let mut w = bpe_writer(Some("smollm"));
    w.metadata("tokenizer.ggml.token_type", MetaValue::i32s([1, 1]));
    assert_eq!(
        err(&w),
        "tokenizer.ggml.token_type has 2 entries but tokenizer.ggml.tokens has 269"
    );

    let mut w = bpe_writer(Some("smollm"));
    w.metadata("tokenizer.ggml.scores", MetaValue::f32s([0.0; 5]));
    assert!(err(&w).starts_with("tokenizer.ggml.scores has 5 entries"));

    let mut w = bpe_writer(Some("smollm"));
    w.metadata("tokenizer.ggml.merges", MetaValue::strings(["h e", "x yz"]));
    assert_eq!(
        err(&w),
        "tokenizer.ggml.merges[1] = \"x yz\" refers to \"yz\", which is not in the vocabulary"
    );

    let mut w = bpe_writer(Some("smollm"));
    w.metadata("tokenizer.ggml.merges", MetaValue::strings(["he"]));
    assert!(err(&w).contains("is not two pieces separated by a space"));

    let mut w = bpe_writer(Some("smollm"));
    w.metadata("tokenizer.ggml.eos_token_id", MetaValue::U32(5000));
    assert_eq!(
        err(&w),
        "tokenizer.ggml.eos_token_id = 5000 is out of range for a vocabulary of 269 tokens"
    );

    let mut w = bpe_writer(Some("smollm"));
    w.metadata("tokenizer.ggml.tokens", MetaValue::strings(["a", "b", "a"]))
        .metadata("tokenizer.ggml.token_type", MetaValue::i32s([1, 1, 1]));
    assert_eq!(
        err(&w),
        "duplicate token \"a\" in the vocabulary (ids 0 and 2)"
    );

    let mut w = bpe_writer(Some("smollm"));
    w.metadata("tokenizer.ggml.merges", MetaValue::i32s([1]));
    assert!(err(&w).contains("tokenizer.ggml.merges"));

    let mut w = bpe_writer(Some("smollm"));
    w.metadata(
        "tokenizer.ggml.merges",
        MetaValue::strings(Vec::<String>::new()),
    )
    .metadata("tokenizer.ggml.add_bos_token", MetaValue::Bool(true))
    .metadata("tokenizer.ggml.bos_token_id", MetaValue::I32(-1));
    assert!(err(&w).contains("add_bos_token is true but there is no BOS token"));
}

/// A SentencePiece vocabulary: unk, bos, eos, 256 byte tokens and a few
/// pieces whose scores make "▁hello" and "▁world" form.
fn spm_writer(byte_tokens: bool) -> GgufWriter {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, CONTROL, CONTROL];
    let mut scores = vec![0.0f32; 3];
    if byte_tokens {
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
            scores.push(0.0);
        }
    }
    let pieces = [
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("w", -2.0),
        ("r", -2.0),
        ("d", -2.0),
        ("ll", -3.0),
        ("▁h", -4.0),
        ("▁he", -5.0),
        ("▁hell", -6.0),
        ("▁hello", -7.0),
        ("or", -8.0),
        ("▁w", -9.0),
        ("▁wor", -10.0),
        ("▁worl", -11.0),
        ("▁world", -12.0),
        ("he", -20.0),
    ];
    for (p, s) in pieces {
        tokens.push(p.into());
        types.push(NORMAL);
        scores.push(s);
    }
    let mut w = GgufWriter::new();
    w.metadata("tokenizer.ggml.model", MetaValue::String("llama".into()))
        .metadata("tokenizer.ggml.tokens", MetaValue::strings(tokens))
        .metadata("tokenizer.ggml.token_type", MetaValue::i32s(types))
        .metadata("tokenizer.ggml.scores", MetaValue::f32s(scores));
    w
}

#[test]
fn spm_merges_by_score_and_falls_back_to_bytes() {
    let t = build(&spm_writer(true)).unwrap();
    assert!(t.add_bos());
    assert_eq!((t.bos(), t.eos(), t.unk()), (Some(1), Some(2), Some(0)));
    let ids = t.encode("hello world", false);
    assert_eq!(pieces(&t, &ids), ["▁hello", "▁world"]);
    assert_eq!(t.decode(&ids, false), "hello world");
    // "he" scores lower than "▁h", so "▁h" + "e" forms first.
    assert_eq!(pieces(&t, &t.encode("he", false)), ["▁he"]);
    let ids = t.encode("hello 中", false);
    assert_eq!(
        pieces(&t, &ids),
        ["▁hello", "▁", "<0xE4>", "<0xB8>", "<0xAD>"]
    );
    assert_eq!(t.decode(&ids, false), "hello 中");
    // A space is prefixed after special tokens too.
    let ids = t.encode("<s>hello</s>world", true);
    assert_eq!(pieces(&t, &ids), ["<s>", "▁hello", "</s>", "▁world"]);
    assert_eq!(t.decode(&ids, false), "hello world");
    assert_eq!(t.decode(&ids, true), "<s>hello</s> world");
    assert!(t.is_end_of_generation(2));
    assert_eq!(t.model(), TokenizerModel::SentencePiece);
    assert_eq!(
        (t.summary().model, t.summary().pre.as_str()),
        ("llama", "none")
    );
}

#[test]
fn spm_without_byte_tokens_uses_one_unknown_per_run() {
    let t = build(&spm_writer(false)).unwrap();
    let ids = t.encode("hello 中文 world", false);
    assert_eq!(pieces(&t, &ids), ["▁hello", "▁", "<unk>", "▁world"]);
}

#[test]
fn spm_add_space_prefix_can_be_turned_off() {
    let mut w = spm_writer(true);
    w.metadata("tokenizer.ggml.add_space_prefix", MetaValue::Bool(false));
    let t = build(&w).unwrap();
    let ids = t.encode("hello", false);
    assert_eq!(pieces(&t, &ids), ["he", "ll", "o"]);
    assert_eq!(t.decode(&t.encode(" hello", false), false), " hello");
}

#[test]
fn tokenizer_is_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Tokenizer>();
    check::<StreamDecoder>();
}
