//! [`Activations`]: a batch of input rows converted once into what a format's dot kernel
//! consumes.
//!
//! For the quantized weight formats (Q4_0, Q4_1, Q8_0 and the ternary TQ1_0, TQ2_0, I2_S)
//! every run of 32 values becomes an integer block with an f32 scale `d` and the sum
//! `S = Σ q` of its values (the Q4_1 kernels need it for the minimum term, the ternary
//! ones to turn codes `c` into weights `c − 1` as `Σc·q − S`; ggml's `q8_1` stores `d · S`
//! instead):
//! - [`Precision::Int8`]: as ggml's `quantize_row_q8_0_ref`, `d = max|x| / 127`,
//!   `q = roundf(x / d)`, except that `d` stays f32 (the format is internal);
//! - [`Precision::Int16`]: the same with `d = max|x| /` [`Q16_MAX`] (32512), so `q` has
//!   16 bits, stored as two int8 *parts*, the balanced base-255 digits of `q = 255·h + l`
//!   (both within ±127);
//! - [`Precision::Int8PerToken`]: int8 with one `d = max|x| / 127` for the whole row, the
//!   activation quantization BitNet b1.58 was trained with (bitnet.cpp's
//!   `quantize_row_i8_s`), stored in the int8 layout.
//!
//! Each row's blocks are stored eight at a time in a transposed octet (each i32 lane of a
//! SIMD dot product then belongs to one block, so a single conversion and FMA serve eight
//! blocks), and the last `blocks % 8` two at a time in pairs; both are 64-byte aligned
//! ([`layout`] has the byte order) and [`QRow::block`] gives the blocks back in plain
//! order.
//!
//! The int16 parts are what makes the precision cheap: every integer kernel multiplies
//! each part with the weight bytes exactly as it multiplies int8 activations (`vpdpbusd`,
//! `maddubs`, SDOT), and combines the two i32 sums as `255·Σw·h + Σw·l = Σw·q` before
//! anything becomes a float, so a block costs one scale conversion and one FMA chain as in
//! int8, and twice the integer multiplies. Measured on SmolLM2-135M: int8 rounding moves
//! the next-token distribution by a mean KL of 0.005 nats from a float64 reference (and
//! flips near-tied greedy choices); 16-bit activations shrink the rounding error 256-fold.
//!
//! For F32, F16 and BF16 weights the activations are the f32 rows, copied.

mod layout;

pub use layout::{Q16_MAX, QBlock, QRow};
pub(crate) use layout::{QK, QOctet, QPair, quantize_row, row_layout};

use crate::{WeightFormat, dispatch::Kernels};

/// How precisely activations for the quantized formats are represented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// One int8 block per 32 values, `d = max|x| / 127` (llama.cpp's `q8_0`/`q8_1`).
    #[default]
    Int8,
    /// One 16-bit block per 32 values, `d = max|x| /` [`Q16_MAX`], stored as two int8
    /// parts: 256× less rounding error than int8 (the float model's results up to float
    /// rounding), for twice the integer multiplies and the same float work.
    Int16,
    /// int8 with one scale per row (token), `d = max|x| / 127` over the row: BitNet
    /// b1.58's training-time activation quantization, as bitnet.cpp computes. Coarser
    /// than [`Int8`](Self::Int8) on rows with outliers; the same kernels consume it.
    Int8PerToken,
}

impl Precision {
    /// `"int8"`, `"int16"` or `"int8-per-token"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::Int16 => "int16",
            Precision::Int8PerToken => "int8-per-token",
        }
    }

    /// The precision a name (`int8`, `int16`, `int8-per-token`) stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "int8" | "i8" | "q8" => Some(Precision::Int8),
            "int16" | "i16" | "q16" => Some(Precision::Int16),
            "int8-per-token" | "per-token" | "i8s" => Some(Precision::Int8PerToken),
            _ => None,
        }
    }
}

/// What the activations hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    F32,
    Int8,
    Int16,
}

/// A batch of activation rows converted once into what the format's dot kernel consumes
/// (integer blocks with f32 scale and block sum for Q4_0/Q4_1/Q8_0, f32 for
/// F32/F16/BF16).
///
/// Reusable: [`prepare`](Self::prepare) does not allocate when the capacity suffices.
#[derive(Clone, Default)]
pub struct Activations {
    format: Option<WeightFormat>,
    precision: Precision,
    kind: Option<Kind>,
    batch: usize,
    cols: usize,
    /// F32 rows: row `b` at `f_offset + b·f_stride`, with `f_stride` = `cols` rounded up
    /// to 16 values, so that every row starts on a 64-byte line (unaligned 32-byte loads
    /// that cross lines cost the float kernels a quarter of their speed).
    f: Vec<f32>,
    f_offset: usize,
    f_stride: usize,
    octets8: Vec<QOctet<1>>,
    pairs8: Vec<QPair<1>>,
    octets16: Vec<QOctet<2>>,
    pairs16: Vec<QPair<2>>,
    natural: Natural,
}

/// Per-token int8 rows for the 2-bit ternary formats, also kept in plain value order
/// (a 2-bit byte's four planes are four runs of 32 consecutive values, so a plain run
/// feeds a masked plane with no shuffle), with per-lane sums: the SIMD kernels that read
/// them sum a whole 256-value block in integers and convert once.
#[derive(Clone, Default)]
struct Natural {
    /// Row stride in values: `cols` rounded up to 256, the padding zero.
    stride: usize,
    /// `batch × stride` quantized values from `offset` on (64-byte aligned: unaligned
    /// 32-byte loads that cross cache lines cost a third of the kernel's speed).
    q: Vec<i8>,
    offset: usize,
    /// `batch × stride / 256 × 8`: for each 256-value block, lane `i`'s sum of values
    /// `32v + 4i .. 32v + 4i + 4` over its eight runs `v` (what one i32 lane of the
    /// integer dot product adds up).
    lane_sums: Vec<i32>,
    /// The per-token scale of each row.
    scale: Vec<f32>,
}

/// One row of [`Natural`] values ([`Activations::natural_row`]).
// Only the x86_64 AVX-512 VNNI kernels read natural rows.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct NaturalRow<'a> {
    /// Quantized values, a multiple of 256 (zero-padded).
    pub(crate) q: &'a [i8],
    /// Eight lane sums per 256 values.
    pub(crate) lane_sums: &'a [i32],
    /// The per-token scale.
    pub(crate) scale: f32,
}

impl std::fmt::Debug for Activations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activations")
            .field("format", &self.format)
            .field("precision", &self.precision)
            .field("batch", &self.batch)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl Activations {
    /// Empty activations (prepared for nothing, no memory) with the default
    /// [`Precision`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty activations that will be prepared with `precision`.
    pub fn with_precision(precision: Precision) -> Self {
        Self {
            precision,
            ..Self::default()
        }
    }

    /// The precision used by the next [`prepare`](Self::prepare) for quantized formats.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Sets the precision used by the next [`prepare`](Self::prepare).
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// Converts `x`, `batch × cols` values row-major, for matrices of `format`, with the
    /// active kernel path.
    ///
    /// # Panics
    /// If `x.len() != batch * cols` or `cols` is not a multiple of `format.block_len()`.
    pub fn prepare(&mut self, format: WeightFormat, x: &[f32], batch: usize, cols: usize) {
        self.prepare_with(crate::dispatch::active_kernels(), format, x, batch, cols);
    }

    /// [`prepare`](Self::prepare) with a given kernel table (every table writes the same
    /// bits; tests check it).
    ///
    /// # Panics
    /// As [`prepare`](Self::prepare).
    pub fn prepare_with(
        &mut self,
        kernels: &Kernels,
        format: WeightFormat,
        x: &[f32],
        batch: usize,
        cols: usize,
    ) {
        assert_eq!(
            Some(x.len()),
            batch.checked_mul(cols),
            "activations: x has {} values, expected batch {batch} × cols {cols}",
            x.len()
        );
        assert_eq!(
            cols % format.block_len(),
            0,
            "activations: cols {cols} is not a multiple of {format:?}'s block length"
        );
        self.format = Some(format);
        self.batch = batch;
        self.cols = cols;
        let kind = self.kind_for(format);
        self.kind = Some(kind);
        self.natural.stride = 0;
        let (no, np) = row_layout(cols / QK);
        let rows = x.chunks_exact(cols.max(1)).take(batch);
        match kind {
            Kind::F32 => {
                let stride = cols.next_multiple_of(16);
                self.f.clear();
                self.f.resize(batch * stride + 16, 0.0);
                self.f_offset = self.f.as_ptr().align_offset(64).min(16);
                self.f_stride = stride;
                for (b, row) in rows.enumerate() {
                    self.f[self.f_offset + b * stride..][..cols].copy_from_slice(row);
                }
            }
            Kind::Int8 => {
                self.octets8.resize(batch * no, QOctet::ZERO);
                self.pairs8.resize(batch * np, QPair::ZERO);
                // One pass over the row either way; per-token scaling is O(cols), next to
                // the O(rows·cols) matmul, so it keeps the scalar quantizer.
                let quantize = if self.precision == Precision::Int8PerToken {
                    layout::quantize_row_per_token
                } else {
                    kernels.quantize8
                };
                for (b, xb) in rows.enumerate() {
                    let o = &mut self.octets8[b * no..(b + 1) * no];
                    let p = &mut self.pairs8[b * np..(b + 1) * np];
                    quantize(xb, o, p);
                }
                if kernels.ternary_natural
                    && self.precision == Precision::Int8PerToken
                    && matches!(format, WeightFormat::Tq2_0 | WeightFormat::I2S)
                {
                    self.fill_natural();
                }
            }
            Kind::Int16 => {
                self.octets16.resize(batch * no, QOctet::ZERO);
                self.pairs16.resize(batch * np, QPair::ZERO);
                for (b, xb) in rows.enumerate() {
                    let o = &mut self.octets16[b * no..(b + 1) * no];
                    let p = &mut self.pairs16[b * np..(b + 1) * np];
                    (kernels.quantize16)(xb, o, p);
                }
            }
        }
    }

    /// Copies the per-token int8 rows into [`Natural`] order, with their lane sums.
    fn fill_natural(&mut self) {
        let (batch, cols) = (self.batch, self.cols);
        let stride = cols.next_multiple_of(256);
        let mut n = std::mem::take(&mut self.natural);
        n.stride = stride;
        n.q.clear();
        n.q.resize(batch * stride + 64, 0);
        n.offset = n.q.as_ptr().align_offset(64).min(64);
        n.lane_sums.clear();
        n.lane_sums.resize(batch * stride / 32, 0);
        n.scale.clear();
        let blocks = cols / QK;
        for b in 0..batch {
            let row = QRow::int8(
                Parts::<1>::octets(self, b),
                Parts::<1>::pairs(self, b),
                blocks,
            );
            let q = &mut n.q[n.offset + b * stride..][..stride];
            for j in 0..blocks {
                let blk = row.block(j);
                for (dst, &v) in q[j * QK..(j + 1) * QK].iter_mut().zip(&blk.qs) {
                    // Per-token values are int8 (|q| ≤ 127).
                    *dst = v as i8;
                }
            }
            n.scale.push(if blocks > 0 { row.block(0).d } else { 0.0 });
            let sums = &mut n.lane_sums[b * stride / 32..(b + 1) * stride / 32];
            for (blk, s) in q.chunks_exact(256).zip(sums.chunks_exact_mut(8)) {
                for (i, s) in s.iter_mut().enumerate() {
                    *s = (0..8)
                        .flat_map(|v| &blk[32 * v + 4 * i..32 * v + 4 * i + 4])
                        .map(|&v| i32::from(v))
                        .sum();
                }
            }
        }
        self.natural = n;
    }

    /// Row `b` in plain value order, if these are per-token activations prepared for
    /// TQ2_0 or I2_S.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn natural_row(&self, b: usize) -> Option<NaturalRow<'_>> {
        let n = &self.natural;
        if n.stride == 0 || b >= self.batch {
            return None;
        }
        Some(NaturalRow {
            q: &n.q[n.offset + b * n.stride..][..n.stride],
            lane_sums: &n.lane_sums[b * n.stride / 32..(b + 1) * n.stride / 32],
            scale: n.scale[b],
        })
    }

    fn kind_for(&self, format: WeightFormat) -> Kind {
        match (format.is_quantized(), self.precision) {
            (false, _) => Kind::F32,
            (true, Precision::Int8 | Precision::Int8PerToken) => Kind::Int8,
            (true, Precision::Int16) => Kind::Int16,
        }
    }

    /// Number of input rows.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Int8 parts per stored value (1, or 2 for int16 blocks; 1 for f32 rows): the
    /// integer work per weight byte, for chunk sizing.
    pub(crate) fn parts(&self) -> usize {
        match self.kind {
            Some(Kind::Int16) => 2,
            _ => 1,
        }
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The format the activations were last prepared for.
    pub fn format(&self) -> Option<WeightFormat> {
        self.format
    }

    /// The precision the quantized rows were prepared with, if any.
    pub fn prepared_precision(&self) -> Option<Precision> {
        match self.kind? {
            Kind::F32 => None,
            Kind::Int8 if self.precision == Precision::Int8PerToken => {
                Some(Precision::Int8PerToken)
            }
            Kind::Int8 => Some(Precision::Int8),
            Kind::Int16 => Some(Precision::Int16),
        }
    }

    /// Whether these activations feed a matrix of `format`.
    pub fn feeds(&self, format: WeightFormat) -> bool {
        self.kind
            .is_some_and(|k| (k == Kind::F32) != format.is_quantized())
    }

    /// Row `b` as f32; the caller has checked the kind ([`Self::feeds`]).
    pub(crate) fn f32s(&self, b: usize) -> &[f32] {
        debug_assert_eq!(self.kind, Some(Kind::F32));
        &self.f[self.f_offset + b * self.f_stride..][..self.cols]
    }

    /// Row `b` as integer blocks, if prepared for a quantized format.
    ///
    /// # Panics
    /// If `b >= batch()`.
    pub fn quantized_row(&self, b: usize) -> Option<QRow<'_>> {
        assert!(b < self.batch, "row {b} of {}", self.batch);
        let blocks = self.cols / QK;
        match self.kind? {
            Kind::F32 => None,
            Kind::Int8 => Some(QRow::int8(
                Parts::<1>::octets(self, b),
                Parts::<1>::pairs(self, b),
                blocks,
            )),
            Kind::Int16 => Some(QRow::int16(
                Parts::<2>::octets(self, b),
                Parts::<2>::pairs(self, b),
                blocks,
            )),
        }
    }

    /// Row `b` as f32 values, if prepared for a float format.
    ///
    /// # Panics
    /// If `b >= batch()`.
    pub fn f32_row(&self, b: usize) -> Option<&[f32]> {
        assert!(b < self.batch, "row {b} of {}", self.batch);
        (self.kind? == Kind::F32).then(|| self.f32s(b))
    }
}

/// The stored octets and pairs of rows with `P` parts per value (empty if the
/// activations hold the other precision).
pub(crate) trait Parts<const P: usize> {
    /// Row `b`'s octets.
    fn octets(&self, b: usize) -> &[QOctet<P>];
    /// Row `b`'s tail pairs.
    fn pairs(&self, b: usize) -> &[QPair<P>];
}

macro_rules! parts {
    ($p:literal, $kind:ident, $octets:ident, $pairs:ident) => {
        impl Parts<$p> for Activations {
            fn octets(&self, b: usize) -> &[QOctet<$p>] {
                if self.kind != Some(Kind::$kind) {
                    return &[];
                }
                let no = row_layout(self.cols / QK).0;
                &self.$octets[b * no..(b + 1) * no]
            }

            fn pairs(&self, b: usize) -> &[QPair<$p>] {
                if self.kind != Some(Kind::$kind) {
                    return &[];
                }
                let np = row_layout(self.cols / QK).1;
                &self.$pairs[b * np..(b + 1) * np]
            }
        }
    };
}

parts!(1, Int8, octets8, pairs8);
parts!(2, Int16, octets16, pairs16);
