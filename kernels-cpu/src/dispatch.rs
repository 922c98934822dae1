//! Runtime choice of the kernel path.
//!
//! Each path is a [`Kernels`] table of plain function pointers. An arch module hands out
//! its table only after probing every CPU feature its code is compiled for (checking a
//! subset is undefined behaviour, rust-lang/rust#155601), so a table in hand is proof the
//! CPU can run it. The active table is chosen once ([`OnceLock`]): the best available
//! path, or the one `SHARD_KERNELS=scalar|avx2|avx512|neon|neon-dotprod|simd128` names (an
//! unavailable or unknown name is logged as an error and the best path is used). The
//! binary never needs `target-cpu=native`.

use std::sync::OnceLock;

use crate::{
    KernelError, QMatrix, WeightFormat,
    activations::{Activations, QOctet, QPair},
    attention::{self, AttendFn, HeadRows},
    matmul,
};

/// The environment variable that forces a kernel path.
pub const ENV_VAR: &str = "SHARD_KERNELS";

/// A set of kernels for one instruction set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Portable Rust, the reference every other path is tested against.
    Scalar,
    /// x86_64 AVX2 + FMA + F16C.
    Avx2,
    /// x86_64 AVX-512 (F, BW, VL) with VNNI, plus the AVX2 requirements.
    Avx512Vnni,
    /// aarch64 Advanced SIMD.
    Neon,
    /// aarch64 Advanced SIMD with the `dotprod` extension (SDOT).
    NeonDotprod,
    /// wasm32 SIMD (`simd128`, chosen at compile time: wasm has no run-time detection).
    /// SIMD kernels for Q4_0, Q4_1, Q8_0 and the ternary formats; the float formats run
    /// the scalar reference.
    Simd128,
}

impl KernelPath {
    /// Every path, best first.
    pub const ALL: [KernelPath; 6] = [
        KernelPath::Avx512Vnni,
        KernelPath::Avx2,
        KernelPath::NeonDotprod,
        KernelPath::Neon,
        KernelPath::Simd128,
        KernelPath::Scalar,
    ];

    /// The name used in logs, benches and [`active_path`].
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512Vnni => "avx512-vnni",
            KernelPath::Neon => "neon",
            KernelPath::NeonDotprod => "neon-dotprod",
            KernelPath::Simd128 => "simd128",
        }
    }

    /// The path a `SHARD_KERNELS` value names (`avx512` and `avx512-vnni` both work).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" => Some(KernelPath::Avx512Vnni),
            n => Self::ALL.into_iter().find(|p| p.name() == n),
        }
    }
}

impl std::fmt::Display for KernelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Computes rows `row0 .. row0 + out[b].len()` of `w · x` for every batch row `b`:
/// `out[b][i] = Σ_c W[row0 + i, c] · x[b, c]`. `x` has been checked to feed `w`.
pub(crate) type RowsFn = fn(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]);

/// Quantizes one activation row (whole 32-value blocks) into its octets and tail pairs of
/// `P` parts per value (1: int8, 2: int16).
pub(crate) type QuantizeFn<const P: usize> =
    fn(x: &[f32], octets: &mut [QOctet<P>], pairs: &mut [QPair<P>]);

/// The kernels of one path. Get one with [`kernels`] (any available path) or
/// [`active_kernels`] (the chosen one).
#[derive(Debug)]
pub struct Kernels {
    pub(crate) path: KernelPath,
    pub(crate) quantize8: QuantizeFn<1>,
    pub(crate) quantize16: QuantizeFn<2>,
    pub(crate) f32: RowsFn,
    pub(crate) f16: RowsFn,
    pub(crate) bf16: RowsFn,
    pub(crate) q8_0: RowsFn,
    pub(crate) q4_0: RowsFn,
    pub(crate) q4_1: RowsFn,
    pub(crate) tq1_0: RowsFn,
    pub(crate) tq2_0: RowsFn,
    pub(crate) i2_s: RowsFn,
    pub(crate) attend: AttendFn,
    /// The TQ2_0 and I2_S kernels also read per-token activations in plain value order
    /// (`Activations` then keeps that copy; other paths skip it).
    pub(crate) ternary_natural: bool,
}

impl Kernels {
    /// Which path these kernels are.
    pub fn path(&self) -> KernelPath {
        self.path
    }

    pub(crate) fn rows(&self, format: WeightFormat) -> RowsFn {
        match format {
            WeightFormat::F32 => self.f32,
            WeightFormat::F16 => self.f16,
            WeightFormat::BF16 => self.bf16,
            WeightFormat::Q8_0 => self.q8_0,
            WeightFormat::Q4_0 => self.q4_0,
            WeightFormat::Q4_1 => self.q4_1,
            WeightFormat::Tq1_0 => self.tq1_0,
            WeightFormat::Tq2_0 => self.tq2_0,
            WeightFormat::I2S => self.i2_s,
        }
    }

    /// [`crate::matmul()`] with these kernels.
    pub fn matmul(
        &self,
        w: &QMatrix<'_>,
        x: &Activations,
        y: &mut [f32],
    ) -> Result<(), KernelError> {
        matmul::matmul(self, w, x, y)
    }

    /// [`crate::attend`] with these kernels.
    ///
    /// # Errors
    /// As [`crate::attend`].
    pub fn attend(
        &self,
        q: &[f32],
        k: HeadRows<'_>,
        v: HeadRows<'_>,
        scale: f32,
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        attention::check(q, &k, &v, scores, out)?;
        (self.attend)(q, k, v, scale, scores, out);
        Ok(())
    }

    /// [`crate::matmul_many`] with these kernels.
    pub fn matmul_many(
        &self,
        jobs: &mut [(&QMatrix<'_>, &mut [f32])],
        x: &Activations,
    ) -> Result<(), KernelError> {
        matmul::matmul_many(self, jobs, x)
    }
}

/// The kernels of `path`, if this CPU can run them.
pub fn kernels(path: KernelPath) -> Option<&'static Kernels> {
    match path {
        KernelPath::Scalar => Some(&crate::reference::KERNELS),
        KernelPath::Avx2 => crate::arch::avx2(),
        KernelPath::Avx512Vnni => crate::arch::avx512(),
        KernelPath::Neon => crate::arch::neon(),
        KernelPath::NeonDotprod => crate::arch::neon_dotprod(),
        KernelPath::Simd128 => crate::arch::simd128(),
    }
}

/// Every path this CPU can run, best first (always ends with [`KernelPath::Scalar`]).
pub fn available_paths() -> Vec<KernelPath> {
    KernelPath::ALL
        .into_iter()
        .filter(|&p| kernels(p).is_some())
        .collect()
}

/// The kernels in use: chosen on first call, logged once at info.
pub fn active_kernels() -> &'static Kernels {
    static ACTIVE: OnceLock<&'static Kernels> = OnceLock::new();
    ACTIVE.get_or_init(choose)
}

/// Which SIMD path is in use, for logs and benches ("avx2", "avx512-vnni", "neon",
/// "neon-dotprod", "simd128", "scalar").
pub fn active_path() -> &'static str {
    active_kernels().path.name()
}

fn choose() -> &'static Kernels {
    let wanted = std::env::var(ENV_VAR).ok();
    let (k, err) = select(wanted.as_deref());
    match (err, wanted) {
        (Some(err), _) => tracing::error!("kernels-cpu: {err}; using the {} path", k.path),
        (None, Some(_)) => tracing::info!(
            path = k.path.name(),
            "kernels-cpu: path forced by {ENV_VAR}"
        ),
        (None, None) => tracing::info!(path = k.path.name(), "kernels-cpu: best path for this CPU"),
    }
    k
}

/// The table for a `SHARD_KERNELS` value (`None`: unset): the named path, or the best
/// available one plus the reason the named one cannot be used.
fn select(wanted: Option<&str>) -> (&'static Kernels, Option<String>) {
    let best = KernelPath::ALL
        .into_iter()
        .find_map(kernels)
        .unwrap_or(&crate::reference::KERNELS);
    let Some(wanted) = wanted else {
        return (best, None);
    };
    match KernelPath::from_name(wanted) {
        Some(p) => match kernels(p) {
            Some(k) => (k, None),
            None => (
                best,
                Some(format!(
                    "{ENV_VAR}={wanted}, but this CPU cannot run the {p} path"
                )),
            ),
        },
        None => (
            best,
            Some(format!(
                "unknown {ENV_VAR}={wanted:?} (expected scalar, avx2, avx512, neon, neon-dotprod or simd128)"
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_variable_forces_a_path_or_falls_back_with_a_reason() {
        let best = select(None).0.path();
        assert_eq!(Some(best), available_paths().first().copied());
        let (k, err) = select(Some("scalar"));
        assert_eq!((k.path(), err), (KernelPath::Scalar, None));
        let (k, err) = select(Some("sse9"));
        assert_eq!(k.path(), best);
        assert!(err.is_some_and(|e| e.contains("unknown")));
        for p in KernelPath::ALL {
            let (k, err) = select(Some(p.name()));
            match kernels(p) {
                Some(_) => assert_eq!((k.path(), err), (p, None)),
                None => assert_eq!((k.path(), err.is_some()), (best, true)),
            }
        }
    }
}
