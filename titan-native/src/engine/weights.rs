//! Where each weight of a llama-family model lives inside the mapped file.
//!
//! Weights are not copied: a [`TensorRef`] is a byte range of the memory map
//! plus its format and shape, turned into a [`QMatrix`] view at compute time.
//! Only the small norm vectors are converted to owned `f32` at load.

use kernels_cpu::{QMatrix, WeightFormat};
use shared_protocol::gguf::{GgmlType, GgufFile, TensorInfo};

use super::{Family, ModelConfig, ModelError};

/// A weight matrix inside the mapped file: `rows` output features of `cols`
/// inputs each, in `format`'s block layout.
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
    pub fn view<'a>(&self, bytes: &'a [u8]) -> QMatrix<'a> {
        QMatrix::new(
            self.format,
            self.rows,
            self.cols,
            &bytes[self.offset..self.offset + self.len],
        )
        .expect("TensorRef shapes are validated when the model is loaded")
    }
}

#[derive(Debug)]
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

#[derive(Debug)]
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

pub fn weight_format(ty: GgmlType) -> Option<WeightFormat> {
    Some(match ty {
        GgmlType::F32 => WeightFormat::F32,
        GgmlType::F16 => WeightFormat::F16,
        GgmlType::BF16 => WeightFormat::BF16,
        GgmlType::Q8_0 => WeightFormat::Q8_0,
        GgmlType::Q4_0 => WeightFormat::Q4_0,
        GgmlType::Q4_1 => WeightFormat::Q4_1,
        GgmlType::TQ1_0 => WeightFormat::Tq1_0,
        GgmlType::TQ2_0 => WeightFormat::Tq2_0,
        GgmlType::I2_S => WeightFormat::I2S,
        _ => return None,
    })
}

impl ModelWeights {
    pub fn from_gguf(file: &GgufFile<'_>, cfg: &ModelConfig) -> Result<Self, ModelError> {
        let bitnet = cfg.family == Family::BitNet;
        let matrix = |name: &str, rows: usize, cols: usize| -> Result<TensorRef, ModelError> {
            let info = file.require_tensor(name)?;
            let mut t = matrix_ref(file, info, rows, cols)?;
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
        let vector = |name: &str, len: usize| -> Result<Vec<f32>, ModelError> {
            let info = file.require_tensor(name)?;
            vector_f32(file, info, len)
        };
        let d = cfg.n_embd;
        let token_embd = matrix("token_embd.weight", cfg.n_vocab, d)?;
        let (output, tied_output) = match file.tensor("output.weight") {
            Some(info) => (matrix_ref(file, info, cfg.n_vocab, d)?, false),
            None => (token_embd, true),
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |n: &str| format!("blk.{i}.{n}");
            let sub_norm = |name: &str, len: usize| -> Result<Option<Vec<f32>>, ModelError> {
                if bitnet {
                    vector(&p(name), len).map(Some)
                } else {
                    Ok(None)
                }
            };
            layers.push(LayerWeights {
                attn_norm: vector(&p("attn_norm.weight"), d)?,
                wq: matrix(&p("attn_q.weight"), cfg.n_head * cfg.head_dim, d)?,
                wk: matrix(&p("attn_k.weight"), cfg.kv_dim(), d)?,
                wv: matrix(&p("attn_v.weight"), cfg.kv_dim(), d)?,
                attn_sub_norm: sub_norm("attn_sub_norm.weight", cfg.n_head * cfg.head_dim)?,
                wo: matrix(&p("attn_output.weight"), d, cfg.n_head * cfg.head_dim)?,
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
                if f.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                    return Err(ModelError::BadTensor {
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

    /// A copy with every matrix (embedding included) converted to F32 in one
    /// owned buffer: the exact-arithmetic mode, which skips activation
    /// quantization so the graph can be checked tightly against a float
    /// reference. Costs 4 bytes per weight.
    pub fn dequantized(&self, src: &[u8]) -> (Vec<u8>, ModelWeights) {
        let mut out = Vec::new();
        let mut convert = |t: &TensorRef| -> TensorRef {
            let view = t.view(src);
            let offset = out.len();
            let mut row = vec![0f32; t.cols];
            for r in 0..t.rows {
                view.dequantize_row(r, &mut row);
                out.extend(row.iter().flat_map(|v| v.to_le_bytes()));
            }
            TensorRef {
                format: WeightFormat::F32,
                offset,
                len: out.len() - offset,
                ..*t
            }
        };
        let token_embd = convert(&self.token_embd);
        let output = if self.tied_output {
            token_embd
        } else {
            convert(&self.output)
        };
        let layers = self
            .layers
            .iter()
            .map(|l| LayerWeights {
                attn_norm: l.attn_norm.clone(),
                wq: convert(&l.wq),
                wk: convert(&l.wk),
                wv: convert(&l.wv),
                attn_sub_norm: l.attn_sub_norm.clone(),
                wo: convert(&l.wo),
                ffn_norm: l.ffn_norm.clone(),
                w_gate: convert(&l.w_gate),
                w_up: convert(&l.w_up),
                ffn_sub_norm: l.ffn_sub_norm.clone(),
                w_down: convert(&l.w_down),
            })
            .collect();
        let weights = ModelWeights {
            token_embd,
            output_norm: self.output_norm.clone(),
            output,
            tied_output: self.tied_output,
            layers,
            rope_freqs: self.rope_freqs.clone(),
        };
        (out, weights)
    }

    /// Every matrix in the order a forward pass reads it.
    pub fn matrices(&self) -> impl Iterator<Item = &TensorRef> {
        self.layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .chain(std::iter::once(&self.output))
    }
}

fn matrix_ref(
    file: &GgufFile<'_>,
    info: &TensorInfo<'_>,
    rows: usize,
    cols: usize,
) -> Result<TensorRef, ModelError> {
    let format = weight_format(info.ty).ok_or_else(|| ModelError::UnsupportedTensorType {
        name: info.name.to_owned(),
        ty: info.ty,
    })?;
    if info.dims.len() > 2 || info.row_len() != cols as u64 || info.n_rows() != rows as u64 {
        return Err(ModelError::BadShape {
            name: info.name.to_owned(),
            expected: vec![cols as u64, rows as u64],
            found: info.dims.clone(),
        });
    }
    let data = file.tensor_data(info);
    let bad = |e: kernels_cpu::KernelError| ModelError::BadTensor {
        name: info.name.to_owned(),
        reason: e.to_string(),
    };
    // Block alignment and byte length against the kernels' view, then every block: no
    // 2-bit code 3 in ternary tensors, no NaN or infinite scale. Whole-tensor scans,
    // but at memory speed, so paid once at load rather than trusted.
    QMatrix::new(format, rows, cols, data)
        .and_then(|m| m.validate())
        .map_err(bad)?;
    Ok(TensorRef {
        format,
        rows,
        cols,
        offset: (file.data_offset + info.offset) as usize,
        len: data.len(),
        scale: None,
    })
}

fn vector_f32(
    file: &GgufFile<'_>,
    info: &TensorInfo<'_>,
    len: usize,
) -> Result<Vec<f32>, ModelError> {
    if info.n_elements() != len as u64 || info.row_len() != len as u64 {
        return Err(ModelError::BadShape {
            name: info.name.to_owned(),
            expected: vec![len as u64],
            found: info.dims.clone(),
        });
    }
    let m = matrix_ref(file, info, 1, len)?;
    let mut out = vec![0f32; len];
    m.view(file.bytes()).dequantize_row(0, &mut out);
    if out.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::BadTensor {
            name: info.name.to_owned(),
            reason: "contains NaN or infinity".into(),
        });
    }
    Ok(out)
}

/// `t` re-encoded in `format`, in its own buffer (the tensor starts at offset 0): for
/// the output head ([`super::LoadOptions::output_head`]). Rows are converted in parallel.
pub(super) fn requantize(
    t: &TensorRef,
    src: &[u8],
    format: WeightFormat,
) -> Result<(Vec<u8>, TensorRef), ModelError> {
    use rayon::prelude::*;
    // The head is re-encoded per row; I2_S (one scale per tensor) and the ternary formats
    // (which only hold −1, 0, +1) cannot carry an embedding.
    let encode = match format.row_encoder() {
        Some(encode) if !format.is_ternary() => encode,
        _ => {
            return Err(ModelError::BadHyperparameter {
                key: "output head format".into(),
                value: format!("{format:?} (supported: f32, f16, bf16, q8_0, q4_0, q4_1)"),
            });
        }
    };
    if !t.cols.is_multiple_of(format.block_len()) {
        return Err(ModelError::BadHyperparameter {
            key: "output head format".into(),
            value: format!(
                "{format:?} needs rows of whole {}-value blocks; the head's are {} long",
                format.block_len(),
                t.cols
            ),
        });
    }
    let view = t.view(src);
    let row_bytes = format.row_bytes(t.cols);
    let mut out = vec![0u8; t.rows * row_bytes];
    out.par_chunks_mut(row_bytes).enumerate().for_each_init(
        || vec![0f32; t.cols],
        |row, (r, o)| {
            view.dequantize_row(r, row);
            encode(row, o);
        },
    );
    let head = TensorRef {
        format,
        offset: 0,
        len: out.len(),
        ..*t
    };
    Ok((out, head))
}
