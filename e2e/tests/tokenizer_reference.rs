//! Our tokenizers and chat templates against the reference implementations,
//! token for token:
//! - SmolLM2's byte-level BPE (`pre = smollm`) against HF `tokenizers` built
//!   from the same GGUF vocabulary and merges;
//! - the same vocabulary with `pre = llama-bpe` (Llama 3's splitter) against
//!   HF `tokenizers` with the Llama 3 split regex;
//! - SentencePiece: a tiny BPE model trained by the `sentencepiece` package,
//!   written to GGUF by the `gguf` package, against `sentencepiece` itself;
//! - SmolLM2's ChatML template against jinja2 rendering the GGUF's template.
//!
//! The expectations are computed at test time by `e2e/reference/*.py` in the
//! reference venv; the tests fail (never skip) when it is missing.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

use std::path::Path;
use std::time::Instant;

use e2e::{default_model, run_reference};
use serde_json::Value;
use shared_protocol::chat::{ChatMessage, ChatTemplate};
use shared_protocol::gguf::{GgufFile, GgufWriter, MetaValue};
use shared_protocol::tokenizer::{TokenId, Tokenizer};

/// A paragraph of about 5 KB: prose, numbers, punctuation, a little unicode.
fn long_paragraph() -> String {
    let mut s = String::new();
    let mut i = 0u32;
    while s.len() < 5000 {
        s.push_str(&format!(
            "In {year}, the committee's report (section {i}.{j}) noted that {pct}% of the \
             {n} participants — roughly {k} people — didn't renew; costs rose to ${cost}.{cents:02} \
             per unit, while Zoë's café in Zürich served {n2} croissants. ",
            year = 1990 + i,
            j = i * 7 % 10,
            pct = 10 + i * 3 % 80,
            n = 1000 + i * 137,
            k = 300 + i * 11,
            cost = 12 + i,
            cents = i * 17 % 100,
            n2 = i * i,
        ));
        i += 1;
    }
    s
}

fn texts() -> Vec<String> {
    let mut t: Vec<String> = [
        "",
        " ",
        "Hello world",
        "Hello, world! How are you today?",
        "  leading and trailing spaces  ",
        "multiple     spaces between    words",
        "tabs\tand\t\ttabs\t",
        "new\nlines\n\nand\n\n\nmore\n",
        "windows\r\nline\r\nendings\r\n\r\n",
        "mixed \t\n \r\n\t  whitespace \n ",
        "\n\n\n",
        "digits 0123456789 and 3.14159 and 1,000,000 and 12345678901234567890",
        "phone +1 (555) 010-9999, year 2024, v1.2.3",
        "I'm you're he's we've they'll she'd can't won't",
        "I'M YOU'RE HE'S WE'VE THEY'LL SHE'D CAN'T",
        "'s 't 're 've 'm 'll 'd ''quoted'' 'ſ 'ſt x'ﬅ 'RE'S it'ſt",
        "café naïve résumé über Straße façade",
        "e\u{301} decomposed accents a\u{308}",
        "中文分词测试，日本語のテキスト、한국어 텍스트",
        "العربية نص تجريبي مع أرقام ١٢٣",
        "Ελληνικά και русский текст",
        "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷",
        "zero\u{200b}width\u{200d}joiner\u{feff}bom",
        "math ∑∫√∞ ≤≥ ½ ² ³ Ⅻ",
        "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
        "def f(a, b=2):\n\treturn a ** b  # comment\n",
        "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "text<|endoftext|>more text",
        "<|im_start|><|im_end|><|im_start|>",
        "partial <|im_start and <|im_end| and <<|im_end|>>",
        "<repo_name>x<file_sep>y<jupyter_code>",
        "a\u{a0}b\u{3000}c\u{2028}d",
        "\u{85}next line and \u{b}vertical tab \u{c}form feed",
        "unassigned \u{378} \u{e0080} \u{40000} private \u{e000} \u{10fffd}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    t.push("word ".repeat(200));
    t.push("x".repeat(3000));
    t.push(long_paragraph());
    t
}

fn ids_of(v: &Value) -> Vec<Vec<TokenId>> {
    v.as_array()
        .expect("array of id lists")
        .iter()
        .map(|ids| {
            ids.as_array()
                .expect("id list")
                .iter()
                .map(|i| i.as_u64().expect("id") as TokenId)
                .collect()
        })
        .collect()
}

fn describe(tok: &Tokenizer, ids: &[TokenId]) -> String {
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| format!("{id}:{:?}", tok.token_piece(id).unwrap_or("?")))
        .collect();
    pieces.join(" ")
}

/// Compares ours with the reference for every text; reports all mismatches.
/// `unrepresentable` says which texts use bytes the vocabulary has no token
/// for, so cannot survive a round trip (the reference drops them too).
fn compare(
    label: &str,
    tok: &Tokenizer,
    texts: &[String],
    parse_special: bool,
    expected: &[Vec<TokenId>],
    unrepresentable: fn(&str) -> bool,
) {
    assert_eq!(expected.len(), texts.len());
    let mut failures = Vec::new();
    for (text, want) in texts.iter().zip(expected) {
        let got = tok.encode(text, parse_special);
        if &got != want {
            failures.push(format!(
                "{label} (parse_special={parse_special}) {text:?}\n  ours: {}\n  ref:  {}",
                describe(tok, &got),
                describe(tok, want)
            ));
        }
        let round_trip = tok.decode(&got, parse_special);
        if !unrepresentable(text) && &round_trip != text {
            failures.push(format!(
                "{label}: decode(encode({text:?})) = {round_trip:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// SmolLM2's vocabulary lacks the byte tokens for 0x04, 0x06, 0x13, 0x14,
/// 0x16, 0x1d, 0xf1 and 0xf2 (plus bytes that never occur in UTF-8): the
/// control characters and code points U+40000..U+BFFFF cannot be encoded.
fn smollm2_lacks_bytes(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(
            c,
            '\u{4}' | '\u{6}' | '\u{13}' | '\u{14}' | '\u{16}' | '\u{1d}'
        ) || ('\u{40000}'..'\u{c0000}').contains(&c)
    })
}

struct BpeReference {
    special: Vec<Vec<TokenId>>,
    plain: Vec<Vec<TokenId>>,
    /// The pre-tokenizer's words, byte-level mapped.
    words: Vec<Vec<String>>,
}

/// Runs a reference script on JSON input and parses its JSON output; fails
/// with the helper's message (e.g. how to set up the venv) when it cannot.
fn reference(script: &str, args: &[&str], input: &Value) -> Value {
    let input = serde_json::to_vec(input).expect("serializing the reference input");
    let out = run_reference(script, args, &input).unwrap_or_else(|e| panic!("{e:#}"));
    serde_json::from_slice(&out).expect("the reference script prints JSON")
}

fn bpe_reference(model: &Path, mode: &str, texts: &[String]) -> BpeReference {
    let v = reference(
        "hf_bpe_tokenize.py",
        &[&model.to_string_lossy(), mode],
        &serde_json::json!(texts),
    );
    BpeReference {
        special: ids_of(&v["special"]),
        plain: ids_of(&v["plain"]),
        words: serde_json::from_value(v["words"].clone()).expect("words: lists of strings"),
    }
}

/// GPT-2's byte → char table, written out independently of the tokenizer's.
fn gpt2_byte_char(b: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
    if printable(b) {
        return char::from(b);
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u8;
    char::from_u32(256 + u32::from(n)).unwrap_or('?')
}

/// Our pre-tokenizer's words against the reference's, before any merge.
fn compare_words(label: &str, tok: &Tokenizer, texts: &[String], expected: &[Vec<String>]) {
    let pre = tok.pre_tokenizer().expect("a byte-level BPE tokenizer");
    let mut failures = Vec::new();
    for (text, want) in texts.iter().zip(expected) {
        let got: Vec<String> = pre
            .split(text)
            .into_iter()
            .map(|r| text[r].bytes().map(gpt2_byte_char).collect())
            .collect();
        if &got != want {
            failures.push(format!(
                "{label} {text:?}\n  ours: {got:?}\n  ref:  {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} pre-tokenizer mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smollm2_bpe_matches_hf_tokenizers() {
    let path = default_model().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = GgufFile::parse(&bytes).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    assert_eq!(tok.summary().pre, "smollm");
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(
        (tok.bos(), tok.eos(), tok.add_bos()),
        (Some(1), Some(2), false)
    );
    assert!(tok.is_end_of_generation(2) && tok.is_end_of_generation(0));

    let texts = texts();
    let r = bpe_reference(&path, "smollm", &texts);
    compare_words("smollm", &tok, &texts, &r.words);
    compare(
        "smollm",
        &tok,
        &texts,
        true,
        &r.special,
        smollm2_lacks_bytes,
    );
    compare("smollm", &tok, &texts, false, &r.plain, smollm2_lacks_bytes);

    // Speed: the ~5 KB paragraph.
    let paragraph = long_paragraph();
    let start = Instant::now();
    let runs = 20;
    let mut n = 0;
    for _ in 0..runs {
        n = tok.encode(&paragraph, false).len();
    }
    let per = start.elapsed() / runs;
    eprintln!(
        "encoding {} bytes -> {n} tokens takes {per:?} ({:.1} MB/s)",
        paragraph.len(),
        paragraph.len() as f64 / per.as_secs_f64() / 1e6
    );
    assert!(per.as_millis() < 50, "encoding 5 KB took {per:?}");
}

#[test]
fn llama_bpe_pre_tokenizer_matches_hf_tokenizers() {
    // SmolLM2's vocabulary and merges, split the Llama 3 way.
    let model = std::fs::read(default_model().unwrap()).unwrap();
    let src = GgufFile::parse(&model).unwrap();
    let mut w = GgufWriter::new();
    for (key, value) in &src.metadata {
        if key.starts_with("tokenizer.ggml.") {
            w.metadata(*key, MetaValue::from(value.clone()));
        }
    }
    w.metadata("tokenizer.ggml.pre", MetaValue::String("llama-bpe".into()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llama-bpe.gguf");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    let tok = Tokenizer::from_gguf(&GgufFile::parse(&bytes).unwrap()).unwrap();
    assert_eq!(tok.summary().pre, "llama-bpe");

    let texts = texts();
    let r = bpe_reference(&path, "llama3", &texts);
    compare_words("llama-bpe", &tok, &texts, &r.words);
    compare(
        "llama-bpe",
        &tok,
        &texts,
        true,
        &r.special,
        smollm2_lacks_bytes,
    );
    compare(
        "llama-bpe",
        &tok,
        &texts,
        false,
        &r.plain,
        smollm2_lacks_bytes,
    );
}

#[test]
fn sentencepiece_matches_sentencepiece() {
    let mut texts = texts();
    // SentencePiece knows nothing of SmolLM2's special tokens; they are text.
    texts.push("<s>control</s> tokens <unk> as text".into());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spm.gguf");
    let v = reference(
        "spm_tokenize.py",
        &[&path.to_string_lossy()],
        &serde_json::json!(texts),
    );
    let expected = ids_of(&v["ids"]);

    let bytes = std::fs::read(&path).unwrap();
    let tok = Tokenizer::from_gguf(&GgufFile::parse(&bytes).unwrap()).unwrap();
    assert_eq!(tok.vocab_size(), 500);
    assert!(tok.add_bos());
    // Byte fallback covers every byte: everything round-trips.
    compare("sentencepiece", &tok, &texts, false, &expected, |_| false);

    // Decoding agrees with sentencepiece's too.
    for ((text, ids), want) in texts
        .iter()
        .zip(&expected)
        .zip(v["decoded"].as_array().unwrap())
    {
        assert_eq!(tok.decode(ids, false), want.as_str().unwrap(), "{text:?}");
    }
    // Characters the model never saw fall back to bytes.
    let ids = tok.encode("中", false);
    assert_eq!(
        ids.iter()
            .map(|&i| tok.token_piece(i).unwrap())
            .collect::<Vec<_>>(),
        ["▁", "<0xE4>", "<0xB8>", "<0xAD>"]
    );
}

#[test]
fn chatml_rendering_matches_jinja2() {
    let path = default_model().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let file = GgufFile::parse(&bytes).unwrap();
    let template = ChatTemplate::from_gguf(&file).unwrap();
    assert!(
        matches!(&template, ChatTemplate::ChatMl { default_system: Some(s) } if s.contains("SmolLM"))
    );

    let conversations: Vec<(Vec<ChatMessage>, bool)> = vec![
        (vec![ChatMessage::user("What is 2+2?")], true),
        (vec![ChatMessage::user("What is 2+2?")], false),
        (
            vec![
                ChatMessage::system("You are terse."),
                ChatMessage::user("Hi!"),
            ],
            true,
        ),
        (
            vec![
                ChatMessage::user("Name a color."),
                ChatMessage::assistant("Blue."),
                ChatMessage::user("Another one,\nplease. 🙂"),
                ChatMessage::assistant("  Red.  "),
                ChatMessage::user(""),
            ],
            true,
        ),
        (
            vec![
                ChatMessage::system("S"),
                ChatMessage::user("u1"),
                ChatMessage::assistant("a1"),
                ChatMessage::system("mid-conversation system"),
                ChatMessage::user("u2"),
            ],
            false,
        ),
        (vec![], true),
    ];
    let cases: Vec<Value> = conversations
        .iter()
        .map(|(msgs, gen_prompt)| {
            serde_json::json!({
                "messages": msgs
                    .iter()
                    .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                    .collect::<Vec<_>>(),
                "add_generation_prompt": gen_prompt,
            })
        })
        .collect();
    let out = reference(
        "chat_template.py",
        &[&path.to_string_lossy()],
        &Value::Array(cases),
    );
    let expected: Vec<String> = serde_json::from_value(out).unwrap();
    for ((msgs, gen_prompt), want) in conversations.iter().zip(&expected) {
        assert_eq!(&template.render(msgs, *gen_prompt), want, "{msgs:?}");
    }
}
