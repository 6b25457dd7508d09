//! Run-time dispatch to AVX2 builds of the hottest passes, in one place.
//!
//! A pass written as `with_avx2!(body)` runs `body` inside a function compiled with
//! `#[target_feature(enable = "avx2")]` when the CPU has AVX2 (checked once per call, a cached
//! load), and as ordinary code otherwise. The macro wraps `body` in an `#[inline(always)]`
//! closure, and the kernels it calls are `#[inline(always)]` too, so all of them are inlined into
//! the AVX2 function and compiled with its features. Only AVX2 is enabled, not FMA: a separate
//! multiply and add round as before, so results are the same bits on every path.

/// `kernel()` compiled with AVX2 where the CPU has it. Call it through `with_avx2!`, which makes
/// the closure `#[inline(always)]` (a closure left out of line would run without AVX2).
#[inline(always)]
pub(super) fn run<R>(kernel: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { run_avx2(kernel) };
    }
    kernel()
}

/// `kernel()` in a function compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_avx2<R>(kernel: impl FnOnce() -> R) -> R {
    kernel()
}
