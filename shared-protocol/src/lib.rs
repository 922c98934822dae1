//! The one crate both sides of Shard compile: titans natively, scouts to wasm.
//!
//! What it holds:
//! - [`gguf`]: a GGUF v2/v3 reader over `&[u8]` (no I/O), bounded against
//!   hostile sizes, and a writer for generated files.
//! - [`tokenizer`]: byte-level BPE and SentencePiece tokenizers built from a
//!   GGUF file's metadata, matching llama.cpp token for token, with a
//!   streaming detokenizer.
//! - [`chat`]: chat templates recognised from `tokenizer.chat_template`
//!   (ChatML, Llama 3) and rendered without a Jinja engine.
//! - [`format`]: the ggml tensor formats Shard computes with and their sizes.
//! - [`mesh`]: node roles and protocol names, and (feature `libp2p`) the
//!   `/shard/verify/1` codec for libp2p's request-response.
//! - [`model`]: a llama-family model's recipe (llama and BitNet b1.58):
//!   hyperparameters from GGUF metadata, where each weight lives, and RoPE
//!   tables, shared by the CPU and GPU engines.
//! - [`drafting`]: both halves of remote drafting (the scout's and the
//!   titan's view of `/shard/verify/1`) as sans-IO state machines.
//! - [`sampling`]: temperature/top-k/top-p sampling with shared randomness
//!   (counter-based Gumbel-max), so drafts and verdicts agree bit for bit.
//! - [`speculative`]: the verify step of speculative decoding as a pure
//!   function of the target's logits, the drafts and the sampler.
//! - [`wire`]: the mesh's wire messages (`/shard/verify/1` and gossip
//!   payloads): versioned, size-bounded, canonical, fuzzed.
//!
//! What it does not hold: anything that touches files, sockets, threads or the
//! GPU. Those live in `titan-native`, `kernels-*` and `scout-wasm`.

#![forbid(unsafe_code)]

pub mod chat;
pub mod drafting;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod gguf;
pub mod mesh;
pub mod model;
pub mod sampling;
pub mod speculative;
pub mod tokenizer;
pub mod wire;
