//! [`Activations`]: a batch of input rows converted once into what a format's dot kernel
//! consumes.
//!
//! For Q4_0, Q4_1 and Q8_0 weights every run of 32 values becomes an int8 block, as ggml's
//! `quantize_row_q8_0_ref`: `d = max|x| / 127`, `q = roundf(x / d)`, except that `d` stays
//! f32 (the format is internal) and every block also carries `S = Σ q`, which the Q4_1
//! kernels need for the minimum term (ggml's `q8_1` stores `d · S` instead).
//!
//! Each row's int8 blocks are stored eight at a time in a transposed [`Q8Octet`] (each i32
//! lane of a SIMD dot product then belongs to one block, so a single conversion and FMA
//! serve eight blocks), and the last `blocks % 8` two at a time in [`Q8Pair`]s. Both are
//! 64-byte aligned; [`Q8Row::block`] gives the blocks back in plain order.
//!
//! For F32, F16 and BF16 weights the activations are the f32 rows, copied.
//!
//! [`Precision::Int16`] stores each input row as two int8 rows: the row itself and the
//! rounding error it left, quantized again (`x ≈ d₁·q₁ + d₂·q₂` with `d₂ ≈ d₁/254`). The
//! matmul sums the two partial results, so every integer kernel path computes with about
//! 15 bits of activation precision, unchanged. Measured on SmolLM2-135M: int8 rounding
//! moves the next-token distribution by a mean KL of 0.005 nats from a float64
//! reference (and flips near-tied greedy choices); the residual row brings it below
//! 1e-5, for twice the integer work.

use crate::{WeightFormat, dispatch::Kernels};

/// Values per activation block.
pub(crate) const QK: usize = 32;

/// Eight consecutive activation blocks `k = 0..8` of one row, transposed in 4-byte groups.
///
/// `qs[32·v + 4·k + i]` is value `4·v + i` of block `k`: the 32-byte vector `v` holds
/// values `4v..4v + 4` of every block, so it meets dword `v` of eight weight blocks
/// gathered into one register (for 4-bit weights, dword `v % 4` of their nibbles, low
/// nibbles for `v < 4`). `d[k]` and `s[k]` are block `k`'s scale and sum `S = Σ q`.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Q8Octet {
    pub(crate) qs: [i8; 256],
    pub(crate) d: [f32; 8],
    pub(crate) s: [f32; 8],
}

const _: () = assert!(size_of::<Q8Octet>() == 320);

impl Q8Octet {
    pub(crate) const ZERO: Q8Octet = Q8Octet {
        qs: [0; 256],
        d: [0.0; 8],
        s: [0.0; 8],
    };

    /// Index in `qs` of value `e` (0..32) of block `k` (0..8).
    #[inline]
    pub(crate) fn pos(k: usize, e: usize) -> usize {
        32 * (e / 4) + 4 * k + e % 4
    }
}

/// Two consecutive activation blocks `j = 2p` and `j + 1 = 2p + 1` of one row.
///
/// `qs` holds `a_j[0..16]`, `a_{j+1}[0..16]`, `a_j[16..32]`, `a_{j+1}[16..32]`: a 256-bit
/// load of `qs[0..32]` meets the low nibbles of weight blocks `j` and `j + 1`, a load of
/// `qs[32..64]` meets their high nibbles. `d` is `[d_j; 4] ++ [d_{j+1}; 4]` and `s` is
/// `[S_j, 0, 0, 0, S_{j+1}, 0, 0, 0]`, both ready to be used as 8-lane vectors. A row with
/// an odd number of blocks ends with a pair whose second block is all zeros.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Q8Pair {
    pub(crate) qs: [i8; 64],
    pub(crate) d: [f32; 8],
    pub(crate) s: [f32; 8],
}

const _: () = assert!(size_of::<Q8Pair>() == 128);

impl Q8Pair {
    pub(crate) const ZERO: Q8Pair = Q8Pair {
        qs: [0; 64],
        d: [0.0; 8],
        s: [0.0; 8],
    };

    /// Index in `qs` of value `e` (0..32) of half `h` (0 for block `2p`, 1 for `2p + 1`).
    #[inline]
    pub(crate) fn pos(h: usize, e: usize) -> usize {
        (e / 16) * 32 + h * 16 + e % 16
    }
}

/// One int8 activation block in plain order: the values stand for `d · qs[i]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Q8Block {
    /// Quantized values, each in −127..=127.
    pub qs: [i8; QK],
    /// Scale.
    pub d: f32,
    /// `Σ qs`.
    pub sum: i32,
}

/// One prepared int8 activation row: `blocks / 8` octets, then the remaining blocks in
/// pairs.
#[derive(Clone, Copy, Debug)]
pub struct Q8Row<'a> {
    octets: &'a [Q8Octet],
    pairs: &'a [Q8Pair],
    blocks: usize,
}

impl<'a> Q8Row<'a> {
    /// Number of 32-value blocks.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Block `j`.
    ///
    /// # Panics
    /// If `j >= blocks()`.
    pub fn block(&self, j: usize) -> Q8Block {
        assert!(j < self.blocks, "block {j} of {}", self.blocks);
        if j < 8 * self.octets.len() {
            let (o, k) = (&self.octets[j / 8], j % 8);
            return Q8Block {
                qs: std::array::from_fn(|e| o.qs[Q8Octet::pos(k, e)]),
                d: o.d[k],
                sum: o.s[k] as i32,
            };
        }
        let j = j - 8 * self.octets.len();
        let (pair, h) = (&self.pairs[j / 2], j % 2);
        Q8Block {
            qs: std::array::from_fn(|e| pair.qs[Q8Pair::pos(h, e)]),
            d: pair.d[4 * h],
            sum: pair.s[4 * h] as i32,
        }
    }

    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    pub(crate) fn octets(&self) -> &'a [Q8Octet] {
        self.octets
    }

    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    pub(crate) fn pairs(&self) -> &'a [Q8Pair] {
        self.pairs
    }
}

/// Number of octets and of tail pairs in a row of `blocks` blocks.
pub(crate) fn row_layout(blocks: usize) -> (usize, usize) {
    (blocks / 8, (blocks % 8).div_ceil(2))
}

/// One block quantized: values, scale, sum. `d = max|x| / 127`, `q = roundf(x / d)`.
pub(crate) fn quantize_block(x: &[f32; QK]) -> ([i8; QK], f32, i32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = x.map(|v| crate::formats::round_half_away(v * id) as i8);
    (q, d, q.iter().map(|&q| i32::from(q)).sum())
}

/// Scalar activation quantizer: one row of `x` (whole blocks) into its octets and tail
/// pairs ([`row_layout`]). Every SIMD quantizer must write the same bits.
pub(crate) fn quantize_row_q8(x: &[f32], octets: &mut [Q8Octet], pairs: &mut [Q8Pair]) {
    let blocks = x.as_chunks::<QK>().0;
    debug_assert_eq!((octets.len(), pairs.len()), row_layout(blocks.len()));
    let (head, tail) = blocks.split_at(8 * octets.len());
    for (o, blks) in octets.iter_mut().zip(head.chunks_exact(8)) {
        for (k, blk) in blks.iter().enumerate() {
            let (q, d, sum) = quantize_block(blk);
            for (e, q) in q.into_iter().enumerate() {
                o.qs[Q8Octet::pos(k, e)] = q;
            }
            o.d[k] = d;
            o.s[k] = sum as f32;
        }
    }
    for (p, pair) in pairs.iter_mut().enumerate() {
        *pair = Q8Pair::ZERO;
        for h in 0..2 {
            let Some(blk) = tail.get(2 * p + h) else {
                continue;
            };
            let (q, d, sum) = quantize_block(blk);
            for (e, q) in q.into_iter().enumerate() {
                pair.qs[Q8Pair::pos(h, e)] = q;
            }
            pair.d[4 * h..4 * h + 4].fill(d);
            pair.s[4 * h] = sum as f32;
        }
    }
}

/// How precisely activations for the quantized formats are represented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// One int8 block per 32 values, `d = max|x| / 127` (llama.cpp's `q8_0`/`q8_1`).
    #[default]
    Int8,
    /// The int8 blocks plus an int8 block of their rounding error: about 15 bits, the
    /// float model's results up to float rounding, for twice the integer work.
    Int16,
}

impl Precision {
    /// `"int8"` or `"int16"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::Int16 => "int16",
        }
    }

    /// The precision a name (`int8`, `int16`) stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "int8" | "i8" | "q8" => Some(Precision::Int8),
            "int16" | "i16" | "q16" => Some(Precision::Int16),
            _ => None,
        }
    }
}

/// What the activations hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    F32,
    Q8,
}

/// A batch of activation rows converted once into what the format's dot kernel consumes
/// (int8 blocks with f32 scale and block sum for Q4_0/Q4_1/Q8_0, f32 for F32/F16/BF16).
///
/// Reusable: [`prepare`](Self::prepare) does not allocate when the capacity suffices.
#[derive(Clone, Default)]
pub struct Activations {
    format: Option<WeightFormat>,
    precision: Precision,
    /// Stored rows per input row: 2 for int8 blocks with a residual row, else 1.
    parts: usize,
    batch: usize,
    cols: usize,
    f: Vec<f32>,
    octets: Vec<Q8Octet>,
    pairs: Vec<Q8Pair>,
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
        match Self::kind(format) {
            Kind::F32 => {
                self.parts = 1;
                self.f.clear();
                self.f.extend_from_slice(x);
            }
            Kind::Q8 => {
                self.parts = match self.precision {
                    Precision::Int8 => 1,
                    Precision::Int16 => 2,
                };
                let rows = batch * self.parts;
                let (no, np) = row_layout(cols / QK);
                self.octets.resize(rows * no, Q8Octet::ZERO);
                self.pairs.resize(rows * np, Q8Pair::ZERO);
                let mut residual = Vec::new();
                for b in 0..batch {
                    let xb = &x[b * cols..(b + 1) * cols];
                    let r = b * self.parts;
                    (kernels.quantize)(
                        xb,
                        &mut self.octets[r * no..(r + 1) * no],
                        &mut self.pairs[r * np..(r + 1) * np],
                    );
                    if self.parts == 2 {
                        // The error left by the stored blocks, read back from them so
                        // it is exact whichever quantizer wrote them.
                        residual.clear();
                        let stored = self.q8(r);
                        for (j, chunk) in xb.chunks_exact(QK).enumerate() {
                            let blk = stored.block(j);
                            residual.extend(
                                chunk
                                    .iter()
                                    .zip(blk.qs)
                                    .map(|(v, q)| v - blk.d * f32::from(q)),
                            );
                        }
                        (kernels.quantize)(
                            &residual,
                            &mut self.octets[(r + 1) * no..(r + 2) * no],
                            &mut self.pairs[(r + 1) * np..(r + 2) * np],
                        );
                    }
                }
            }
        }
    }

    fn kind(format: WeightFormat) -> Kind {
        if format.is_quantized() {
            Kind::Q8
        } else {
            Kind::F32
        }
    }

    /// Number of input rows.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of stored rows the kernels run over: `batch × parts`, where an int16 row
    /// is stored as its int8 row followed by its residual row.
    pub(crate) fn rows(&self) -> usize {
        self.batch * self.parts
    }

    /// Stored rows per input row (1, or 2 with a residual row).
    pub(crate) fn parts(&self) -> usize {
        self.parts
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The format the activations were last prepared for.
    pub fn format(&self) -> Option<WeightFormat> {
        self.format
    }

    /// Whether these activations feed a matrix of `format`.
    pub fn feeds(&self, format: WeightFormat) -> bool {
        self.format
            .is_some_and(|f| Self::kind(f) == Self::kind(format))
    }

    /// Row `b` as int8 blocks; the caller has checked the kind ([`Self::feeds`]).
    pub(crate) fn q8(&self, b: usize) -> Q8Row<'_> {
        debug_assert!(self.format.is_some_and(|f| Self::kind(f) == Kind::Q8));
        let (no, np) = row_layout(self.cols / QK);
        Q8Row {
            octets: &self.octets[b * no..(b + 1) * no],
            pairs: &self.pairs[b * np..(b + 1) * np],
            blocks: self.cols / QK,
        }
    }

    /// Row `b` as f32; the caller has checked the kind ([`Self::feeds`]).
    pub(crate) fn f32s(&self, b: usize) -> &[f32] {
        debug_assert!(self.format.is_some_and(|f| Self::kind(f) == Kind::F32));
        &self.f[b * self.cols..(b + 1) * self.cols]
    }

    /// Stored row `r` as int8 blocks, if prepared for a quantized format. With
    /// [`Precision::Int16`] input row `b` is stored as rows `2b` (its blocks) and `2b + 1`
    /// (their rounding error).
    ///
    /// # Panics
    /// If `r` is not a stored row.
    pub fn q8_row(&self, r: usize) -> Option<Q8Row<'_>> {
        let b = r;
        assert!(b < self.rows(), "row {b} of {}", self.rows());
        let f = self.format?;
        (Self::kind(f) == Kind::Q8).then(|| self.q8(b))
    }

    /// Row `b` as f32 values, if prepared for a float format.
    ///
    /// # Panics
    /// If `b >= batch()`.
    pub fn f32_row(&self, b: usize) -> Option<&[f32]> {
        assert!(b < self.batch, "row {b} of {}", self.batch);
        let f = self.format?;
        (Self::kind(f) == Kind::F32).then(|| self.f32s(b))
    }
}
