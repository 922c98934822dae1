//! [`WeightFormat`]: which ggml tensor types the kernels read.

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
    /// 32 int8 values and one f16 scale: [`crate::formats::q8_0::BlockQ8_0`].
    Q8_0,
    /// 32 4-bit values (offset 8) and one f16 scale: [`crate::formats::q4_0::BlockQ4_0`].
    Q4_0,
    /// 32 4-bit values, one f16 scale and one f16 minimum: [`crate::formats::q4_1::BlockQ4_1`].
    Q4_1,
    /// Ternary, 256 values packed five to a byte in base 3 and one f16 scale:
    /// [`crate::formats::tq1_0::BlockTQ1_0`].
    Tq1_0,
    /// Ternary, 256 2-bit codes and one f16 scale: [`crate::formats::tq2_0::BlockTQ2_0`].
    Tq2_0,
    /// bitnet.cpp's ternary format: 2-bit codes in groups of 128
    /// ([`crate::formats::i2_s::BlockI2S`]) and one f32 scale for the whole tensor, stored
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
            WeightFormat::I2S => crate::formats::i2_s::BLOCK_LEN,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::F16 | WeightFormat::BF16 => 2,
            WeightFormat::Q8_0 => crate::formats::q8_0::BLOCK_BYTES,
            WeightFormat::Q4_0 => crate::formats::q4_0::BLOCK_BYTES,
            WeightFormat::Q4_1 => crate::formats::q4_1::BLOCK_BYTES,
            WeightFormat::Tq1_0 => crate::formats::tq1_0::BLOCK_BYTES,
            WeightFormat::Tq2_0 => crate::formats::tq2_0::BLOCK_BYTES,
            WeightFormat::I2S => crate::formats::i2_s::BLOCK_BYTES,
        }
    }

    /// Bytes of one row of `cols` values. `cols` must be a multiple of
    /// [`block_len`](Self::block_len) (a partial block is not counted).
    pub fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_len() * self.block_bytes()
    }

    /// Bytes of a whole `rows × cols` tensor as stored in GGUF: `rows · row_bytes(cols)`,
    /// plus the 32-byte tail holding the scale for I2_S: what [`crate::QMatrix::new`]
    /// accepts. Saturates at `usize::MAX` for shapes too large to address.
    pub fn tensor_bytes(self, rows: usize, cols: usize) -> usize {
        let body = rows.saturating_mul(self.row_bytes(cols));
        match self {
            WeightFormat::I2S => body.saturating_add(crate::formats::i2_s::TAIL_BYTES),
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
            // `QMatrix::new` rejects.
            WeightFormat::I2S => 36,
        }
    }

    /// The format of a `ggml_type` id, if the kernels support it.
    pub fn from_ggml_type(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.ggml_type() == id)
    }

    /// Whether the dot kernel consumes int8-quantized activations (as opposed to f32).
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

/// Encodes one row of f32 values into a format's bytes (`x`, `out`).
pub type RowEncoder = fn(&[f32], &mut [u8]);

impl WeightFormat {
    /// The reference encoder of one row of this format (`x.len()` a multiple of
    /// [`block_len`](Self::block_len), `out` [`row_bytes`](Self::row_bytes) long), or
    /// `None` for I2_S, whose scale belongs to the whole tensor
    /// ([`crate::formats::i2_s::quantize_tensor`]).
    pub fn row_encoder(self) -> Option<RowEncoder> {
        use crate::formats::{float, q4_0, q4_1, q8_0, tq1_0, tq2_0};
        Some(match self {
            WeightFormat::F32 => float::quantize_row_f32,
            WeightFormat::F16 => float::quantize_row_f16,
            WeightFormat::BF16 => float::quantize_row_bf16,
            WeightFormat::Q8_0 => q8_0::quantize_row_bytes,
            WeightFormat::Q4_0 => q4_0::quantize_row_bytes,
            WeightFormat::Q4_1 => q4_1::quantize_row_bytes,
            WeightFormat::Tq1_0 => |x, out| out.copy_from_slice(&tq1_0::quantize_row_bytes(x)),
            WeightFormat::Tq2_0 => |x, out| out.copy_from_slice(&tq2_0::quantize_row_bytes(x)),
            WeightFormat::I2S => return None,
        })
    }
}
