//! The titan: holds the big model and runs it on the CPU.
//!
//! What it holds today: the llama-architecture engine ([`engine`]: GGUF
//! through a memory map, batched forward pass with a KV cache on
//! `kernels-cpu`), generation ([`generate`]) and the `titan` command line
//! ([`cli`]: inspect, generate, chat, perplexity, bench).
//!
//! Speculative decoding ([`speculative`]), the OpenAI-compatible server
//! ([`server`]) and the libp2p mesh ([`mesh`]: the titan's node, remote
//! drafting, the native scout) came with later issues.
//!
//! [`device`] runs generation and benchmarks on a GPU instead (`--device gpu`)
//! through kernels-wgsl's GPU model.
//!
//! What it does not hold yet: trust and pipeline stages. Later issues add them
//! here, each as its own module.

pub mod cli;
pub mod commands;
pub mod device;
pub mod engine;
pub mod generate;
pub mod logging;
pub mod mesh;
pub mod model_name;
pub mod server;
pub mod speculative;
