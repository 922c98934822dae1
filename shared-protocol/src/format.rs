//! [`WeightFormat`]: the ggml tensor types Shard computes with, as both engines read
//! them (the CPU kernels in kernels-cpu, the WGSL kernels in kernels-wgsl), so a file's
//! tensors are sized and accepted the same way by both.
//!
//! Block layouts are ggml's (and bitnet.cpp's for I2_S), byte for byte; the structs that
//! decode them live in `kernels_cpu::formats`.

use crate::gguf::GgmlType;

/// Weight storage formats (ggml block layouts, byte-identical to llama.cpp's).
///
/// A row of `cols` values is `cols / block_len()` blocks of `block_bytes()` bytes each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightFormat {
    /// IEEE binary32, little-endian.
    F32,
    /// IEEE binary16, little-endian.
    F16,
    /// bfloat16 (the top half of a binary32), little-endian.
    BF16,
    /// 32 int8 values and one f16 scale: ggml's `block_q8_0`.
    Q8_0,
    /// 32 4-bit values (offset 8) and one f16 scale: ggml's `block_q4_0`.
    Q4_0,
    /// 32 4-bit values, one f16 scale and one f16 minimum: ggml's `block_q4_1`.
    Q4_1,
    /// Ternary, 256 values packed five to a byte in base 3 and one f16 scale:
    /// ggml's `block_tq1_0`.
    Tq1_0,
    /// Ternary, 256 2-bit codes and one f16 scale: ggml's `block_tq2_0`.
    Tq2_0,
    /// bitnet.cpp's ternary format: 2-bit codes in groups of 128
    /// (bitnet.cpp's `i2_s`) and one f32 scale for the whole tensor, stored
    /// in a 32-byte tail after the last row ([`WeightFormat::tensor_bytes`]).
    I2S,
}

impl WeightFormat {
    /// Every format the crate supports.
    pub const ALL: [WeightFormat; 9] = [
        WeightFormat::F32,
        WeightFormat::F16,
        WeightFormat::BF16,
        WeightFormat::Q8_0,
        WeightFormat::Q4_0,
        WeightFormat::Q4_1,
        WeightFormat::Tq1_0,
        WeightFormat::Tq2_0,
        WeightFormat::I2S,
    ];

    /// Bytes after an I2_S tensor's last row: its f32 scale, padded to 32 bytes.
    pub const I2S_TAIL_BYTES: usize = 32;

    /// The ternary formats (TQ1_0, TQ2_0, I2_S).
    pub const TERNARY: [WeightFormat; 3] =
        [WeightFormat::Tq1_0, WeightFormat::Tq2_0, WeightFormat::I2S];

    /// Values per block (1 for the plain float formats, 32 for Q8_0/Q4_0/Q4_1, 256 for
    /// TQ1_0/TQ2_0, 128 for I2_S's groups).
    pub fn block_len(self) -> usize {
        match self {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::BF16 => 1,
            WeightFormat::Q8_0 | WeightFormat::Q4_0 | WeightFormat::Q4_1 => 32,
            WeightFormat::Tq1_0 | WeightFormat::Tq2_0 => 256,
            WeightFormat::I2S => 128,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::F16 | WeightFormat::BF16 => 2,
            WeightFormat::Q8_0 => 34,
            WeightFormat::Q4_0 => 18,
            WeightFormat::Q4_1 => 20,
            WeightFormat::Tq1_0 => 54,
            WeightFormat::Tq2_0 => 66,
            WeightFormat::I2S => 32,
        }
    }

    /// Bytes of one row of `cols` values. `cols` must be a multiple of
    /// [`block_len`](Self::block_len) (a partial block is not counted).
    pub fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_len() * self.block_bytes()
    }

    /// Bytes of a whole `rows × cols` tensor as stored in GGUF: `rows · row_bytes(cols)`,
    /// plus the 32-byte tail holding the scale for I2_S: what the
    /// kernels' matrix views accept. Saturates at `usize::MAX` for shapes too large to address.
    pub fn tensor_bytes(self, rows: usize, cols: usize) -> usize {
        let body = rows.saturating_mul(self.row_bytes(cols));
        match self {
            WeightFormat::I2S => body.saturating_add(Self::I2S_TAIL_BYTES),
            _ => body,
        }
    }

    /// Whether the values are ternary (`{−1, 0, 1}` times a scale).
    pub fn is_ternary(self) -> bool {
        Self::TERNARY.contains(&self)
    }

    /// The `ggml_type` id of this format in GGUF files.
    pub fn ggml_type(self) -> u32 {
        match self {
            WeightFormat::F32 => 0,
            WeightFormat::F16 => 1,
            WeightFormat::Q4_0 => 2,
            WeightFormat::Q4_1 => 3,
            WeightFormat::Q8_0 => 8,
            WeightFormat::BF16 => 30,
            WeightFormat::Tq1_0 => 34,
            WeightFormat::Tq2_0 => 35,
            // bitnet.cpp's ggml fork. Upstream ggml once used 36 for IQ4_NL_4_4 (removed,
            // never in GGUF files it writes now); its tensors have other sizes, which
            // the tensor size checks reject.
            WeightFormat::I2S => 36,
        }
    }

    /// The format of a `ggml_type` id, if Shard computes with it.
    pub fn from_ggml_type(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.ggml_type() == id)
    }

    /// The format of a GGUF tensor type, if Shard computes with it.
    pub fn from_gguf(ty: GgmlType) -> Option<Self> {
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

    /// Whether the values come in scaled integer blocks (the CPU kernels then take
    /// integer-quantized activations; the plain float formats take f32).
    pub fn is_quantized(self) -> bool {
        self.block_len() > 1
    }
}

impl WeightFormat {
    /// The upstream type name (`"Q4_0"`, `"TQ2_0"`, `"I2_S"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            WeightFormat::F32 => "F32",
            WeightFormat::F16 => "F16",
            WeightFormat::BF16 => "BF16",
            WeightFormat::Q8_0 => "Q8_0",
            WeightFormat::Q4_0 => "Q4_0",
            WeightFormat::Q4_1 => "Q4_1",
            WeightFormat::Tq1_0 => "TQ1_0",
            WeightFormat::Tq2_0 => "TQ2_0",
            WeightFormat::I2S => "I2_S",
        }
    }
}

impl std::fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_types_and_ids_agree() {
        for f in WeightFormat::ALL {
            let ty = GgmlType::from_id(f.ggml_type()).expect("every format is a GGUF type");
            assert_eq!(WeightFormat::from_gguf(ty), Some(f));
            assert_eq!(WeightFormat::from_ggml_type(f.ggml_type()), Some(f));
            assert_eq!(
                ty.tensor_bytes(f.block_len() as u64 * 4, f.block_len() as u64 * 12),
                Some((f.tensor_bytes(3, f.block_len() * 4)) as u64),
                "{f}"
            );
        }
    }
}
