//! [`QMatrix`]: a weight matrix borrowed from its bytes.

use crate::{KernelError, WeightFormat, formats};

/// A row-major weight matrix borrowed from its bytes (usually a memory map).
///
/// `rows` are output features and `cols` input features (ggml `ne[1]`, `ne[0]`). Row `r`
/// is the bytes `r * row_bytes .. (r + 1) * row_bytes`. The bytes need no alignment.
///
/// I2_S tensors end with a 32-byte tail holding the per-tensor f32 scale: [`Self::new`]
/// takes the whole tensor ([`WeightFormat::tensor_bytes`]), reads the scale
/// ([`Self::tensor_scale`]), and [`Self::data`] is the rows without the tail.
#[derive(Clone, Copy)]
pub struct QMatrix<'a> {
    format: WeightFormat,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: &'a [u8],
    /// I2_S's per-tensor scale; 1 for the other formats.
    scale: f32,
}

impl std::fmt::Debug for QMatrix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QMatrix")
            .field("format", &self.format)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl<'a> QMatrix<'a> {
    /// Wraps `data`, checking that `cols` is a multiple of the block length and that
    /// `data` holds exactly [`WeightFormat::tensor_bytes`]`(rows, cols)` bytes
    /// (`rows × row_bytes(cols)`, plus the scale tail for I2_S, whose scale must be
    /// finite). Cheap: the values are not looked at; [`Self::validate`] scans them.
    ///
    /// # Errors
    /// [`KernelError::ColsNotBlockMultiple`], [`KernelError::TooLarge`],
    /// [`KernelError::DataSize`], and for I2_S [`KernelError::NonFiniteTensorScale`].
    pub fn new(
        format: WeightFormat,
        rows: usize,
        cols: usize,
        data: &'a [u8],
    ) -> Result<Self, KernelError> {
        let block_len = format.block_len();
        if !cols.is_multiple_of(block_len) {
            return Err(KernelError::ColsNotBlockMultiple {
                format,
                cols,
                block_len,
            });
        }
        let row_bytes = format.row_bytes(cols);
        let body = rows
            .checked_mul(row_bytes)
            .filter(|b| b.checked_add(formats::i2_s::TAIL_BYTES).is_some())
            .ok_or(KernelError::TooLarge { format, rows, cols })?;
        let mut scale = 1.0;
        let mut data = data;
        if format == WeightFormat::I2S {
            scale = formats::i2_s::tensor_scale(data, rows, cols)?;
            data = &data[..body];
        }
        let expected = format.tensor_bytes(rows, cols);
        if format != WeightFormat::I2S && data.len() != expected {
            return Err(KernelError::DataSize {
                format,
                rows,
                cols,
                expected,
                got: data.len(),
            });
        }
        Ok(Self {
            format,
            rows,
            cols,
            row_bytes,
            data,
            scale,
        })
    }

    /// I2_S's per-tensor scale (`None` for the other formats).
    pub fn tensor_scale(&self) -> Option<f32> {
        (self.format == WeightFormat::I2S).then_some(self.scale)
    }

    /// The per-tensor weight scale the kernels apply: I2_S's scale, 1 otherwise.
    pub(crate) fn scale(&self) -> f32 {
        self.scale
    }

    /// Scans every byte for values the format cannot hold: a 2-bit code 3 (TQ2_0, I2_S)
    /// and NaN or infinite f16 block scales (Q8_0, Q4_0, Q4_1, TQ1_0, TQ2_0). Float
    /// formats and TQ1_0's codes (every byte is valid) have nothing to check.
    ///
    /// Meant for load time, separate from [`Self::new`] because it reads every byte:
    /// word-at-a-time, parallel over rows on the current rayon pool (several GB/s).
    ///
    /// # Errors
    /// The first problem found: [`KernelError::InvalidTernaryCode`] or
    /// [`KernelError::NonFiniteScale`], naming the row (the lowest one with a problem).
    pub fn validate(&self) -> Result<(), KernelError> {
        crate::validate::validate(self)
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Storage format.
    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// All the bytes, row after row (without I2_S's tail).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// The bytes of row `row`.
    ///
    /// # Panics
    /// If `row >= rows()`.
    pub fn row_data(&self, row: usize) -> &'a [u8] {
        &self.data[row * self.row_bytes..(row + 1) * self.row_bytes]
    }

    /// Writes row `row` as f32 values into `out[..cols]` (for embedding lookups).
    ///
    /// # Panics
    /// If `row >= rows()` or `out.len() < cols()`.
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        let out = &mut out[..self.cols];
        let bytes = self.row_data(row);
        match self.format {
            WeightFormat::F32 => formats::float::dequantize_row_f32(bytes, out),
            WeightFormat::F16 => formats::float::dequantize_row_f16(bytes, out),
            WeightFormat::BF16 => formats::float::dequantize_row_bf16(bytes, out),
            WeightFormat::Q8_0 => formats::q8_0::dequantize_row_bytes(bytes, out),
            WeightFormat::Q4_0 => formats::q4_0::dequantize_row_bytes(bytes, out),
            WeightFormat::Q4_1 => formats::q4_1::dequantize_row_bytes(bytes, out),
            WeightFormat::Tq1_0 => formats::tq1_0::dequantize_row(bytes, out),
            WeightFormat::Tq2_0 => formats::tq2_0::dequantize_row(bytes, out),
            WeightFormat::I2S => formats::i2_s::dequantize_row(bytes, self.scale, out),
        }
    }
}
