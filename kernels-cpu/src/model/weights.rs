//! The CPU engine's side of the weight map ([`shared_protocol::model::ModelWeights`]):
//! views of its tensors for the kernels, the load-time content check, and the
//! converted copies (all-F32 weights, a re-encoded output head).

use crate::{QMatrix, WeightFormat};
use shared_protocol::gguf::GgufFile;
pub use shared_protocol::model::{LayerWeights, ModelWeights, TensorRef};

use super::{CpuModelError, ModelConfig};

/// A [`TensorRef`] as the kernels read it.
pub trait MatrixView {
    /// The matrix inside `bytes`, the buffer its offset points into.
    fn view<'a>(&self, bytes: &'a [u8]) -> QMatrix<'a>;
}

impl MatrixView for TensorRef {
    fn view<'a>(&self, bytes: &'a [u8]) -> QMatrix<'a> {
        QMatrix::new(self.format, self.rows, self.cols, self.bytes(bytes))
            .expect("TensorRef shapes are validated when the model is loaded")
    }
}

/// Reads the weight map of `file` and scans every matrix's blocks with the kernels'
/// validator (no 2-bit code 3 in ternary tensors, no NaN or infinite scale).
pub fn load_weights(file: &GgufFile<'_>, cfg: &ModelConfig) -> Result<ModelWeights, CpuModelError> {
    Ok(ModelWeights::from_gguf(file, cfg, &crate::check_tensor)?)
}

/// A copy with every matrix (embedding included) converted to F32 in one
/// owned buffer: the exact-arithmetic mode, which skips activation
/// quantization so the graph can be checked tightly against a float
/// reference. Costs 4 bytes per weight.
pub(super) fn dequantized(weights: &ModelWeights, src: &[u8]) -> (Vec<u8>, ModelWeights) {
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
    let token_embd = convert(&weights.token_embd);
    let output = if weights.tied_output {
        token_embd
    } else {
        convert(&weights.output)
    };
    let layers = weights
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
    let converted = ModelWeights {
        token_embd,
        output_norm: weights.output_norm.clone(),
        output,
        tied_output: weights.tied_output,
        layers,
        rope_freqs: weights.rope_freqs.clone(),
    };
    (out, converted)
}

/// `t` re-encoded in `format`, in its own buffer (the tensor starts at offset 0): for
/// the output head ([`super::CpuOptions::output_head`]). Rows are converted in parallel.
pub(super) fn requantize(
    t: &TensorRef,
    src: &[u8],
    format: WeightFormat,
) -> Result<(Vec<u8>, TensorRef), CpuModelError> {
    use rayon::prelude::*;
    // The head is re-encoded per row; I2_S (one scale per tensor) and the ternary formats
    // (which only hold −1, 0, +1) cannot carry an embedding.
    let encode = match crate::row_encoder(format) {
        Some(encode) if !format.is_ternary() => encode,
        _ => {
            return Err(CpuModelError::OutputHeadFormat {
                reason: format!("{format:?} (supported: f32, f16, bf16, q8_0, q4_0, q4_1)"),
            });
        }
    };
    if !t.cols.is_multiple_of(format.block_len()) {
        return Err(CpuModelError::OutputHeadFormat {
            reason: format!(
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
