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
}

impl WeightFormat {
    /// Every format the crate supports.
    pub const ALL: [WeightFormat; 6] = [
        WeightFormat::F32,
        WeightFormat::F16,
        WeightFormat::BF16,
        WeightFormat::Q8_0,
        WeightFormat::Q4_0,
        WeightFormat::Q4_1,
    ];

    /// Values per block (1 for the plain float formats, 32 for the quantized ones).
    pub fn block_len(self) -> usize {
        match self {
            WeightFormat::F32 | WeightFormat::F16 | WeightFormat::BF16 => 1,
            WeightFormat::Q8_0 | WeightFormat::Q4_0 | WeightFormat::Q4_1 => 32,
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
        }
    }

    /// Bytes of one row of `cols` values. `cols` must be a multiple of
    /// [`block_len`](Self::block_len) (a partial block is not counted).
    pub fn row_bytes(self, cols: usize) -> usize {
        cols / self.block_len() * self.block_bytes()
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
