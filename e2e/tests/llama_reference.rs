//! The titan's forward pass against an independent numpy implementation
//! (`e2e/reference/llama_forward.py`: reads the file with llama.cpp's `gguf`
//! package, dequantizes with `gguf.quants`, computes in float64), with the
//! tolerances of `e2e::reference_check`.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

use e2e::{default_model, reference_check::check_model, tiny::TinyLlama};
use kernels_cpu::WeightFormat;
use shared_protocol::gguf::GgufFile;

const PROMPTS: [&str; 4] = [
    "The capital of France is",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Émile a mangé 3 croissants 🥐 à Paris, puis 12 autres.",
];

#[test]
fn default_model_logits_match_numpy_reference() {
    check_model(&default_model().unwrap(), &PROMPTS);
}

/// Every weight format in every role, GQA, MHA, a separate output head: tiny
/// random models checked against the same reference.
#[test]
fn every_weight_format_matches_numpy_reference() {
    let source_bytes = std::fs::read(default_model().unwrap()).unwrap();
    let source = GgufFile::parse(&source_bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        TinyLlama {
            formats: vec![
                WeightFormat::Q4_0,
                WeightFormat::Q4_1,
                WeightFormat::Q8_0,
                WeightFormat::F16,
                WeightFormat::BF16,
                WeightFormat::F32,
            ],
            embedding: WeightFormat::F16,
            output: Some(WeightFormat::Q4_1),
            n_layer: 3,
            ..TinyLlama::default()
        },
        TinyLlama {
            formats: vec![WeightFormat::Q8_0],
            embedding: WeightFormat::Q4_0,
            output: None,
            n_head: 2,
            n_head_kv: 2,
            seed: 2,
            ..TinyLlama::default()
        },
    ];
    for (i, spec) in specs.iter().enumerate() {
        let path = dir.path().join(format!("tiny{i}.gguf"));
        std::fs::write(&path, spec.to_gguf(&source).unwrap()).unwrap();
        check_model(&path, &["Hello tiny world, 1234 🙂 and more words"]);
    }
}

/// The BitNet graphs (NEOX RoPE, sub-norms, relu² or SiLU gates, optional
/// output scales) on tiny random models in ordinary formats; the ternary
/// formats are checked against the same reference in `bitnet_models.rs`.
#[test]
fn bitnet_graphs_match_numpy_reference() {
    let source_bytes = std::fs::read(default_model().unwrap()).unwrap();
    let source = GgufFile::parse(&source_bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        TinyLlama {
            arch: "bitnet-b1.58",
            formats: vec![WeightFormat::F32, WeightFormat::Q8_0, WeightFormat::F16],
            embedding: WeightFormat::F16,
            ..TinyLlama::default()
        },
        TinyLlama {
            arch: "bitnet",
            scales: true,
            formats: vec![WeightFormat::Q8_0],
            seed: 3,
            ..TinyLlama::default()
        },
        TinyLlama {
            arch: "bitnet-25",
            n_head: 4,
            n_head_kv: 1,
            seed: 4,
            ..TinyLlama::default()
        },
    ];
    for (i, spec) in specs.iter().enumerate() {
        let path = dir.path().join(format!("bitnet{i}.gguf"));
        std::fs::write(&path, spec.to_gguf(&source).unwrap()).unwrap();
        check_model(&path, &["Ternary weights, one pass: 42 🙂"]);
    }
}
