//! Command-line interface of the `titan` binary.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::commands;

#[derive(Parser, Debug)]
#[command(
    name = "titan",
    version,
    about = "Shard titan: holds the big model and verifies drafts on the CPU"
)]
pub struct Cli {
    /// Log filter for stderr (e.g. info, debug, titan_native=trace); also RUST_LOG.
    #[arg(long, global = true)]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Architecture, shapes, tensor types and tokenizer of a GGUF file.
    Inspect(InspectArgs),
    /// Complete a prompt (stdout: the completion; stderr: logs).
    Generate(GenerateArgs),
    /// Chat interactively on the terminal.
    Chat(ChatArgs),
    /// Perplexity over a text file, as llama.cpp's llama-perplexity computes it.
    Perplexity(PerplexityArgs),
    /// Prefill, decode and verify-pass speed on this machine.
    Bench(BenchArgs),
    /// Serve the OpenAI-compatible HTTP API and join the mesh.
    Serve(ServeArgs),
    /// Write a BitNet b1.58 GGUF with seeded random ternary weights (for tests and speed).
    GenBitnet(GenBitnetArgs),
    /// Draft tokens for titans with a small model (a native scout).
    Scout(ScoutArgs),
    /// Measure a titan's verify protocol (round trips, connection setup) and
    /// optionally throw bad input at it; prints JSON.
    Probe(ProbeArgs),
}

#[derive(Args, Debug)]
pub struct ModelArgs {
    /// A GGUF file, or a short name (smollm2-135m).
    #[arg(long, short)]
    pub model: String,
    /// Compute threads (default: one per core).
    #[arg(long, short = 't', default_value_t = 0)]
    pub threads: usize,
    /// Activation precision of the integer kernels: int16 keeps the float
    /// model's answers; int8 (llama.cpp's choice) is faster on batches;
    /// int8-per-token is BitNet's trained quantization. Default: int8-per-token
    /// for BitNet models, int16 otherwise.
    #[arg(long, value_parser = parse_precision)]
    pub activations: Option<kernels_cpu::Precision>,
    /// Re-encode the output head at load (q8_0, q4_0, q4_1, f16, bf16, f32): fewer
    /// bytes per token when the file stores it wide (e.g. a tied F16 embedding), at a
    /// small change in the logits. Default: as stored.
    #[arg(long, value_parser = parse_head_format)]
    pub output_head: Option<kernels_cpu::WeightFormat>,
}

fn parse_head_format(s: &str) -> Result<kernels_cpu::WeightFormat, String> {
    kernels_cpu::WeightFormat::ALL
        .into_iter()
        .find(|f| !f.is_ternary() && f.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("{s:?} is not one of q8_0, q4_0, q4_1, f16, bf16, f32"))
}

fn parse_precision(s: &str) -> Result<kernels_cpu::Precision, String> {
    kernels_cpu::Precision::from_name(s)
        .ok_or_else(|| format!("{s:?} is not int8, int16 or int8-per-token"))
}

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// 0 is greedy decoding.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// 0 disables top-k.
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Seed of the sampler (default: random; printed in --json stats).
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A GGUF file, or a short name (smollm2-135m).
    pub model: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, short)]
    pub prompt: String,
    /// Wrap the prompt in the model's chat template as a user message.
    #[arg(long)]
    pub chat: bool,
    /// System message for --chat (default: the template's own).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// A draft model (path or short name) that proposes tokens for the
    /// target to verify; the output is the same as without it.
    #[arg(long)]
    pub draft: Option<String>,
    /// Where the draft model runs: cpu, gpu or auto (as --device).
    #[arg(long, value_enum, default_value_t = crate::device::Device::Cpu, requires = "draft")]
    pub draft_device: crate::device::Device,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Print one JSON object with text, tokens and stats instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Where the passes run: cpu, gpu (wgpu: Vulkan, Metal, DX12), or auto (a discrete
    /// GPU if there is one, else the CPU).
    #[arg(long, value_enum, default_value_t = crate::device::Device::Cpu)]
    pub device: crate::device::Device,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub system: Option<String>,
    /// A draft model that proposes tokens for the target to verify.
    #[arg(long)]
    pub draft: Option<String>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// UTF-8 text file to score.
    #[arg(long, short)]
    pub file: PathBuf,
    /// Window size in tokens; each window is scored on its second half.
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Score at most this many windows (default: all).
    #[arg(long)]
    pub chunks: Option<usize>,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompt length for the prefill measurement and the verify-pass context.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens decoded for the decode measurement.
    #[arg(long, default_value_t = 64)]
    pub gen_tokens: usize,
    /// Repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    #[arg(long)]
    pub json: bool,
    /// Where the passes run: cpu, gpu (wgpu: Vulkan, Metal, DX12), or auto (a discrete
    /// GPU if there is one, else the CPU).
    #[arg(long, value_enum, default_value_t = crate::device::Device::Cpu)]
    pub device: crate::device::Device,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A draft model that proposes tokens for the target to verify.
    #[arg(long)]
    pub draft: Option<String>,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: std::net::SocketAddr,
    /// Where the titan keeps its state (identity and ledger, in later versions).
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// The model id clients name (default: the short name or the file stem).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Sessions generated at once; more requests get 429.
    #[arg(long, default_value_t = 64)]
    pub max_sessions: usize,
    /// Largest max_tokens a request may ask for.
    #[arg(long, default_value_t = 4096)]
    pub max_tokens: usize,
    /// libp2p listen addresses (default: TCP 4101, WebSocket 4102,
    /// webrtc-direct UDP 9090 on all interfaces).
    #[arg(long, num_args = 1.., value_name = "MULTIADDR")]
    pub listen: Vec<libp2p::Multiaddr>,
    /// Peers to join the mesh through (their multiaddr with /p2p/ID).
    #[arg(long, num_args = 1.., value_name = "MULTIADDR")]
    pub bootstrap: Vec<libp2p::Multiaddr>,
    /// Serve the HTTP API without joining the mesh.
    #[arg(long, conflicts_with_all = ["listen", "bootstrap"])]
    pub no_mesh: bool,
    /// Milliseconds a scout may take to answer a work unit before the titan
    /// drafts on its own.
    #[arg(long, default_value_t = 1000)]
    pub draft_deadline_ms: u64,
    /// The built scout app (Trunk's `dist/`), served at `/`. Without it, `/`
    /// says how to build it.
    #[arg(long, value_name = "DIR")]
    pub app: Option<PathBuf>,
    /// The model file browser scouts download to draft with (path or short
    /// name; default: the `--draft` model, else the target itself).
    #[arg(long, value_name = "MODEL", conflicts_with = "no_scout_model")]
    pub scout_model: Option<String>,
    /// Offer no model file to browser scouts.
    #[arg(long)]
    pub no_scout_model: bool,
}

#[derive(Args, Debug)]
pub struct ScoutArgs {
    /// A titan to connect to (multiaddr, ideally with /p2p/ID); others
    /// serving the same model are found through the DHT.
    #[arg(long, num_args = 1.., required = true, value_name = "MULTIADDR")]
    pub connect: Vec<libp2p::Multiaddr>,
    /// The draft model (path or short name); must share the titans' tokenizer.
    #[arg(long)]
    pub draft: String,
    /// The model id titans serve (default: the draft's short name or file stem).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Compute threads (default: one per core).
    #[arg(long, short = 't', default_value_t = 0)]
    pub threads: usize,
    /// Activation precision (default: int8-per-token for BitNet, int16 otherwise).
    #[arg(long, value_parser = parse_precision)]
    pub activations: Option<kernels_cpu::Precision>,
    /// Keep the scout's identity in this directory (default: a new one each run).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Largest draft the scout offers to make.
    #[arg(long, default_value_t = 16)]
    pub max_k: u8,
    /// Where the draft model runs: cpu, gpu or auto (as `generate --device`).
    #[arg(long, value_enum, default_value_t = crate::device::Device::Cpu)]
    pub device: crate::device::Device,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The titan's multiaddr (TCP, /ws or /webrtc-direct/certhash/...).
    #[arg(long)]
    pub connect: libp2p::Multiaddr,
    /// Round trips to time.
    #[arg(long, default_value_t = 200)]
    pub rounds: usize,
    /// Draft tokens per round trip.
    #[arg(long, default_value_t = 8)]
    pub k: usize,
    /// Also send garbage, oversized and wrong-version frames and floods.
    #[arg(long)]
    pub abuse: bool,
    #[arg(long, default_value_t = 300)]
    pub flood_streams: usize,
    #[arg(long, default_value_t = 200)]
    pub flood_connections: usize,
}

/// `$SHARD_DATA_DIR`, else `$XDG_DATA_HOME/shard`, else `~/.local/share/shard`.
fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SHARD_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("shard");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home)
        .join(".local")
        .join("share")
        .join("shard")
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Generate(a) => commands::generate::run(a),
        Command::Chat(a) => commands::chat::run(a),
        Command::Perplexity(a) => commands::perplexity::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Serve(a) => commands::serve::run(a),
        Command::GenBitnet(a) => commands::gen_bitnet::run(a),
        Command::Scout(a) => commands::scout::run(a),
        Command::Probe(a) => commands::probe::run(a),
    }
}

/// Shapes `titan gen-bitnet` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitnetShape {
    /// 2 layers, hidden 256: small enough for the default test run.
    Tiny,
    /// BitNet b1.58 2B4T's shapes: hidden 2560, 30 layers, 20 heads, 5 KV heads, FFN 6912.
    #[value(name = "2b4t")]
    B2b4t,
}

impl BitnetShape {
    pub fn name(self) -> &'static str {
        match self {
            BitnetShape::Tiny => "tiny",
            BitnetShape::B2b4t => "2b4t",
        }
    }
}

/// Ternary tensor types `titan gen-bitnet` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TernaryType {
    /// llama.cpp's 2-bit ternary blocks (ggml type 35).
    #[value(name = "tq2_0")]
    Tq2_0,
    /// llama.cpp's base-3 ternary blocks, 1.69 bits per weight (ggml type 34).
    #[value(name = "tq1_0")]
    Tq1_0,
    /// bitnet.cpp's 2-bit codes with one f32 scale per tensor (ggml type 36).
    #[value(name = "i2_s")]
    I2S,
}

#[derive(Args, Debug)]
pub struct GenBitnetArgs {
    #[arg(long, value_enum, default_value = "tiny")]
    pub shape: BitnetShape,
    #[arg(long = "type", value_enum, default_value = "tq2_0")]
    pub ty: TernaryType,
    /// Seed of the weights: the same seed writes the same ternary values in every type.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `general.architecture`: bitnet-b1.58 (bitnet.cpp), bitnet-25 or bitnet (llama.cpp).
    #[arg(long, default_value = "bitnet-b1.58")]
    pub arch: String,
    /// The model whose tokenizer is copied (a path or a short name).
    #[arg(long, default_value = "smollm2-135m")]
    pub vocab_from: String,
    #[arg(long)]
    pub out: std::path::PathBuf,
}
