//! The float type a network computes in (`f32` or `f64`).
//!
//! Everything numeric in the model is generic over [`Float`]; statistics and
//! norms are always accumulated in `f64` (see [`crate::stats`]), because a
//! naive `f32` sum of squares underflows to exactly 0 for the tiny gradients
//! this tool exists to show.

use std::fmt::{Debug, Display};

/// A float type the model can run in. Implemented for `f32` and `f64`.
pub trait Float:
    num_traits::Float
    + num_traits::NumAssign
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + Send
    + Sync
    + Debug
    + Display
    + Default
    + 'static
{
    /// `"f32"` or `"f64"`, as recorded in JSON output.
    const NAME: &'static str;
    /// Size in bytes, for memory estimates.
    const BYTES: usize;
    /// Round an `f64` to this type (overflow gives inf, as an `as` cast does).
    fn of(x: f64) -> Self;
    /// Widen to `f64` (exact for both implementors).
    fn f64(self) -> f64;
}

impl Float for f32 {
    const NAME: &'static str = "f32";
    const BYTES: usize = 4;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const NAME: &'static str = "f64";
    const BYTES: usize = 8;
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn f64(self) -> f64 {
        self
    }
}
