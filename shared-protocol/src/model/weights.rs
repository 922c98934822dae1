//! Where each weight of a llama-family model lives in a GGUF file: the second part of
//! the recipe both engines read (tensor names, shapes and formats, BitNet's sub-norms
//! and per-tensor scales), so the CPU engine and the GPU model take the same tensors
//! from a file and refuse the same files.
//!
//! Nothing is copied: a [`TensorRef`] is a byte range of the file plus its format and
//! shape. Only the small norm vectors become owned `f32` here.

use crate::format::WeightFormat;
use crate::gguf::{GgmlType, GgufError, GgufFile, TensorInfo};

use super::{Family, ModelConfig};

/// Why a file's tensors do not make the model its metadata describes.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("invalid GGUF")]
    Gguf(#[from] GgufError),
    #[error(
        "tensor {name:?} has type {ty}, which Shard cannot compute with (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, TQ1_0, TQ2_0, I2_S)"
    )]
    UnsupportedTensorType { name: String, ty: GgmlType },
    #[error("tensor {name:?} has shape {found:?}, expected {expected:?}")]
    BadShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error("tensor {name:?}: {reason}")]
    BadTensor { name: String, reason: String },
}

/// A weight matrix inside the file: `rows` output features of `cols` inputs each, in
/// `format`'s block layout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorRef {
    pub format: WeightFormat,
    pub rows: usize,
    pub cols: usize,
    /// Absolute byte offset in the file.
    pub offset: usize,
    pub len: usize,
    /// A scalar the product is multiplied by (llama.cpp's optional
    /// `blk.N.*.scale` tensors of `bitnet` files).
    pub scale: Option<f32>,
}

impl TensorRef {
    /// The tensor's bytes in `file` (the bytes the offsets were read from).
    ///
    /// # Panics
    /// If `file` is shorter than the tensor's end: it is not the file the map was read
    /// from.
    pub fn bytes<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        &file[self.offset..self.offset + self.len]
    }
}

/// One transformer block's weights.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub wq: TensorRef,
    pub wk: TensorRef,
    pub wv: TensorRef,
    /// BitNet: RMSNorm weights of the attention output, before `wo`.
    pub attn_sub_norm: Option<Vec<f32>>,
    pub wo: TensorRef,
    pub ffn_norm: Vec<f32>,
    pub w_gate: TensorRef,
    pub w_up: TensorRef,
    /// BitNet: RMSNorm weights of the gated product, before `w_down`.
    pub ffn_sub_norm: Option<Vec<f32>>,
    pub w_down: TensorRef,
}

impl LayerWeights {
    /// The block's matrices in the order a forward pass reads them.
    pub fn matrices(&self) -> [&TensorRef; 7] {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w_gate,
            &self.w_up,
            &self.w_down,
        ]
    }
}

/// Every weight of the model.
#[derive(Clone, Debug)]
pub struct ModelWeights {
    pub token_embd: TensorRef,
    pub output_norm: Vec<f32>,
    /// The output head; the same bytes as `token_embd` when the embedding is tied.
    pub output: TensorRef,
    pub tied_output: bool,
    pub layers: Vec<LayerWeights>,
    /// Per-dimension RoPE frequency divisors (`rope_freqs.weight`, Llama 3.1+).
    pub rope_freqs: Option<Vec<f32>>,
}

/// An engine's check of a matrix's contents (ternary codes, block scales), run once per
/// tensor at load: `Err(reason)` refuses the file.
pub type ContentCheck<'c> = &'c dyn Fn(&TensorRef, &[u8]) -> Result<(), String>;

impl ModelWeights {
    /// Finds and checks every tensor `cfg` calls for. Shapes, formats and byte lengths
    /// are checked here; `check` looks inside each matrix (the engines' kernels own the
    /// block layouts, so they say what a block may hold).
    pub fn from_gguf(
        file: &GgufFile<'_>,
        cfg: &ModelConfig,
        check: ContentCheck<'_>,
    ) -> Result<Self, WeightError> {
        let bitnet = cfg.family == Family::BitNet;
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<TensorRef, WeightError> {
            let info = file.require_tensor(name)?;
            let mut t = matrix_ref(file, info, rows, cols, check)?;
            // `blk.N.attn_q.weight` → `blk.N.attn_q.scale`, a {1} F32 tensor.
            if bitnet
                && let Some(scale) = name
                    .strip_suffix(".weight")
                    .and_then(|base| file.tensor(&format!("{base}.scale")))
            {
                let v = vector_f32(file, scale, 1)?;
                t.scale = Some(v[0]);
            }
            Ok(t)
        };
        let vector = |name: &str, len: usize| -> Result<Vec<f32>, WeightError> {
            let info = file.require_tensor(name)?;
            vector_f32(file, info, len)
        };
        let d = cfg.n_embd;
        let q_dim = cfg.n_head * cfg.head_dim;
        let token_embd = matrix("token_embd.weight", cfg.n_vocab, d)?;
        let (output, tied_output) = match file.tensor("output.weight") {
            Some(info) => (matrix_ref(file, info, cfg.n_vocab, d, check)?, false),
            None => (token_embd, true),
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |n: &str| format!("blk.{i}.{n}");
            let sub_norm = |name: &str, len: usize| -> Result<Option<Vec<f32>>, WeightError> {
                if bitnet {
                    vector(&p(name), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(LayerWeights {
                attn_norm: vector(&p("attn_norm.weight"), d)?,
                wq: matrix(&p("attn_q.weight"), q_dim, d)?,
                wk: matrix(&p("attn_k.weight"), cfg.kv_dim(), d)?,
                wv: matrix(&p("attn_v.weight"), cfg.kv_dim(), d)?,
                attn_sub_norm: sub_norm("attn_sub_norm.weight", q_dim)?,
                wo: matrix(&p("attn_output.weight"), d, q_dim)?,
                ffn_norm: vector(&p("ffn_norm.weight"), d)?,
                w_gate: matrix(&p("ffn_gate.weight"), cfg.n_ff, d)?,
                w_up: matrix(&p("ffn_up.weight"), cfg.n_ff, d)?,
                ffn_sub_norm: sub_norm("ffn_sub_norm.weight", cfg.n_ff)?,
                w_down: matrix(&p("ffn_down.weight"), d, cfg.n_ff)?,
            });
        }
        let rope_freqs = match file.tensor("rope_freqs.weight") {
            Some(info) => {
                let f = vector_f32(file, info, cfg.n_rot / 2)?;
                if f.iter().any(|v| *v <= 0.0) {
                    return Err(WeightError::BadTensor {
                        name: info.name.to_owned(),
                        reason: "RoPE frequency factors must be finite and positive".into(),
                    });
                }
                Some(f)
            }
            None => None,
        };
        Ok(Self {
            token_embd,
            output_norm: vector("output_norm.weight", d)?,
            output,
            tied_output,
            layers,
            rope_freqs,
        })
    }

    /// Every matrix in the order a forward pass reads it, the output head last (the
    /// embedding is read one row per token and is not listed unless it is the head).
    pub fn matrices(&self) -> impl Iterator<Item = &TensorRef> {
        self.layers
            .iter()
            .flat_map(LayerWeights::matrices)
            .chain(std::iter::once(&self.output))
    }
}

fn matrix_ref(
    file: &GgufFile<'_>,
    info: &TensorInfo<'_>,
    rows: usize,
    cols: usize,
    check: ContentCheck<'_>,
) -> Result<TensorRef, WeightError> {
    let format =
        WeightFormat::from_gguf(info.ty).ok_or_else(|| WeightError::UnsupportedTensorType {
            name: info.name.to_owned(),
            ty: info.ty,
        })?;
    if info.dims.len() > 2 || info.row_len() != cols as u64 || info.n_rows() != rows as u64 {
        return Err(WeightError::BadShape {
            name: info.name.to_owned(),
            expected: vec![cols as u64, rows as u64],
            found: info.dims.clone(),
        });
    }
    let bad = |reason: String| WeightError::BadTensor {
        name: info.name.to_owned(),
        reason,
    };
    let data = file.tensor_data(info);
    if !cols.is_multiple_of(format.block_len()) {
        return Err(bad(format!(
            "rows of {cols} values are not whole {}-value {format} blocks",
            format.block_len()
        )));
    }
    let expected = format.tensor_bytes(rows, cols);
    if data.len() != expected {
        return Err(bad(format!(
            "{} bytes where a {rows}×{cols} {format} tensor has {expected}",
            data.len()
        )));
    }
    let t = TensorRef {
        format,
        rows,
        cols,
        offset: (file.data_offset + info.offset) as usize,
        len: data.len(),
        scale: None,
    };
    // Whole-tensor scans, but at memory speed, so paid once at load rather than trusted.
    check(&t, data).map_err(bad)?;
    Ok(t)
}

/// A 1-D float tensor (norm weights, scales, RoPE factors) as owned `f32`, refusing NaN
/// and infinity.
fn vector_f32(
    file: &GgufFile<'_>,
    info: &TensorInfo<'_>,
    len: usize,
) -> Result<Vec<f32>, WeightError> {
    if info.n_elements() != len as u64 || info.row_len() != len as u64 {
        return Err(WeightError::BadShape {
            name: info.name.to_owned(),
            expected: vec![len as u64],
            found: info.dims.clone(),
        });
    }
    let bad = |reason: &str| WeightError::BadTensor {
        name: info.name.to_owned(),
        reason: reason.into(),
    };
    let data = file.tensor_data(info);
    let out: Vec<f32> = match info.ty {
        GgmlType::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        ty => {
            return Err(WeightError::UnsupportedTensorType {
                name: info.name.to_owned(),
                ty,
            });
        }
    };
    if out.len() != len {
        return Err(bad("byte length does not match its shape"));
    }
    if out.iter().any(|v| !v.is_finite()) {
        return Err(bad("contains NaN or infinity"));
    }
    Ok(out)
}
