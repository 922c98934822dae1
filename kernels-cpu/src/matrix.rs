//! [`QMatrix`]: a weight matrix borrowed from its bytes.

use crate::{KernelError, WeightFormat, formats};

/// A row-major weight matrix borrowed from its bytes (usually a memory map).
///
/// `rows` are output features and `cols` input features (ggml `ne[1]`, `ne[0]`). Row `r`
/// is the bytes `r * row_bytes .. (r + 1) * row_bytes`. The bytes need no alignment.
#[derive(Clone, Copy)]
pub struct QMatrix<'a> {
    format: WeightFormat,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: &'a [u8],
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
    /// `data` holds exactly `rows × row_bytes(cols)` bytes.
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
        let expected =
            rows.checked_mul(row_bytes)
                .ok_or(KernelError::TooLarge { format, rows, cols })?;
        if data.len() != expected {
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
        })
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

    /// All the bytes, row after row.
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
        }
    }
}
