//! The crate's one error type.

use crate::WeightFormat;

/// A shape or size mismatch between a kernel's arguments, or weight bytes that do not
/// hold a valid tensor. Every variant carries the offending values, so the message alone
/// says what to fix.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// The number of columns is not a multiple of the format's block length.
    #[error("{format} needs cols to be a multiple of {block_len}, got cols = {cols}")]
    ColsNotBlockMultiple {
        format: WeightFormat,
        cols: usize,
        block_len: usize,
    },
    /// The weight bytes do not hold exactly
    /// [`WeightFormat::tensor_bytes`]`(rows, cols)` bytes (`rows × row_bytes(cols)`, plus
    /// the 32-byte scale tail for I2_S).
    #[error("{format} matrix {rows}×{cols} needs {expected} bytes, got {got}")]
    DataSize {
        format: WeightFormat,
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
    /// `rows × row_bytes(cols)` does not fit in `usize`.
    #[error("{format} matrix {rows}×{cols} is too large to address")]
    TooLarge {
        format: WeightFormat,
        rows: usize,
        cols: usize,
    },
    /// The activations have a different number of columns than the matrix.
    #[error("matrix has {matrix_cols} cols but the activations have {activation_cols}")]
    ColsMismatch {
        matrix_cols: usize,
        activation_cols: usize,
    },
    /// The activations were prepared for a format whose dot kernel consumes a different
    /// representation (integer blocks for Q4_0/Q4_1/Q8_0 and the ternary formats, f32 for
    /// F32/F16/BF16).
    #[error("activations were prepared for {prepared:?}, which does not feed a {matrix:?} matrix")]
    ActivationFormat {
        prepared: Option<WeightFormat>,
        matrix: WeightFormat,
    },
    /// The output slice does not hold `batch × rows` values.
    #[error("output needs batch {batch} × rows {rows} = {expected} values, got {got}")]
    OutputSize {
        batch: usize,
        rows: usize,
        expected: usize,
        got: usize,
    },
    /// I2_S's per-tensor scale (the first 4 bytes of the tail) is NaN or infinite.
    #[error("{format} tensor scale is {} (bits {bits:#010x}), not a finite number", f32::from_bits(*bits))]
    NonFiniteTensorScale { format: WeightFormat, bits: u32 },
    /// A block scale is NaN or infinite ([`crate::QMatrix::validate`]).
    #[error(
        "{format} row {row} block {block} has scale {} (f16 bits {bits:#06x}), not a finite number",
        half::f16::from_bits(*bits)
    )]
    NonFiniteScale {
        format: WeightFormat,
        row: usize,
        block: usize,
        bits: u16,
    },
    /// A 2-bit code of a ternary format is 3, which stands for no value in {−1, 0, 1}
    /// ([`crate::QMatrix::validate`]).
    #[error(
        "{format} row {row} column {col} holds the 2-bit code 3; ternary codes are 0, 1 and 2 (−1, 0, +1)"
    )]
    InvalidTernaryCode {
        format: WeightFormat,
        row: usize,
        col: usize,
    },
    /// A [`crate::HeadRows`] view that does not fit its data: an empty head, a head past
    /// the end of a row, or rows past the end of the slice.
    #[error(
        "head rows do not fit: {rows} rows of stride {stride} with a head of {head_dim} at offset {offset} in {len} values"
    )]
    HeadRows {
        len: usize,
        stride: usize,
        offset: usize,
        head_dim: usize,
        rows: usize,
    },
    /// [`crate::attend`] arguments that disagree: query, output, key and value head
    /// dimensions must be equal, and there must be as many keys as values, at least one.
    #[error(
        "attention shapes disagree: query {query}, out {out}, key dim {key_dim}, value dim {value_dim}, {keys} keys, {values} values"
    )]
    AttentionShape {
        query: usize,
        out: usize,
        key_dim: usize,
        value_dim: usize,
        keys: usize,
        values: usize,
    },
}
