//! SIMD kernels, one module per instruction set. Only these modules use `unsafe`.
//!
//! Each module's table getter returns `Some` only after probing every feature its code is
//! compiled for; the safe functions inside a table are reachable only through it.
//!
//! Style notes for the kernels: tiles are indexed loops over parallel arrays (rows ×
//! batch rows), which read better than iterator chains, hence the clippy allowance; and no
//! closures go through generic std functions (`array::map`, `array::from_fn`) inside
//! `#[target_feature]` code, because a closure inherits the target features and LLVM then
//! cannot inline it into the generic function, which calls it once per element.

#![allow(clippy::needless_range_loop)]

use crate::dispatch::Kernels;

#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
mod aarch64;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm32;

/// The AVX2 + FMA + F16C table.
pub(crate) fn avx2() -> Option<&'static Kernels> {
    #[cfg(target_arch = "x86_64")]
    return x86_64::avx2::kernels();
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The AVX-512 VNNI table.
pub(crate) fn avx512() -> Option<&'static Kernels> {
    #[cfg(target_arch = "x86_64")]
    return x86_64::avx512::kernels();
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The NEON table.
pub(crate) fn neon() -> Option<&'static Kernels> {
    #[cfg(target_arch = "aarch64")]
    return aarch64::neon::kernels();
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// The NEON + dotprod table.
pub(crate) fn neon_dotprod() -> Option<&'static Kernels> {
    #[cfg(target_arch = "aarch64")]
    return aarch64::neon::kernels_dotprod();
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// The wasm simd128 table (compiled in with `-C target-feature=+simd128`).
pub(crate) fn simd128() -> Option<&'static Kernels> {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return Some(wasm32::simd128::kernels());
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    None
}
