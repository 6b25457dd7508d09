//! Pure kernels, writing into buffers the caller owns so that a training loop allocates nothing
//! per step. [`mod@reference`] holds the readable forward/backward pairs they are tested against.
//!
//! - [`mod@linear`]: `z = x W + b` and its gradients (matrix products through
//!   [`crate::parallel::gemm`]).
//! - [`mod@activation`]: the activations, and the fused passes of a block without a normaliser
//!   (`a = act(z + b)` forward, `dz = dh * act'(a)` backward).
//! - [`mod@batch_norm`] and [`mod@layer_norm`]: the fused passes of a block with BatchNorm or
//!   LayerNorm, before or after the activation.
//! - [`mod@residual`]: the skip connection `h = h_in + scale * branch`, written once for all passes.
//! - [`mod@stream`]: the first backward pass of a standard residual block.
//! - [`mod@loss`]: MSE and softmax cross-entropy with their gradients, and [`crate::config::Loss`]'s
//!   dispatch to them.
//!
//! Shapes are row-major `(batch, features)`. Reductions over the batch are accumulated in `f64`.
//!
//! The fused passes read and write whole rows of a `(batch, c)` column block once, doing several
//! steps of the math per row while the row sits in L1 cache, and add per-column sums into f64
//! accumulators (`acc_j += ...`, never reset here). The column passes are column-local, so
//! [`crate::parallel::par_cols`] can hand disjoint column blocks to threads and the result does
//! not depend on how the columns were cut; the structs of slices they take implement
//! [`crate::parallel::Cols`] for that. Views must have contiguous rows (inner stride 1), as the
//! model's own buffers and their column blocks do.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Evaluate `$e` with `$A` bound to the index of `$act` in [`crate::config::Activation::ALL`] as a
/// constant, so that a pass is compiled once per activation and its element loop holds no
/// per-element `match` (which would stop vectorisation).
macro_rules! per_act {
    ($act:expr, $A:ident => $e:expr) => {
        match $act {
            Activation::Sigmoid => {
                const $A: usize = 0;
                $e
            }
            Activation::Tanh => {
                const $A: usize = 1;
                $e
            }
            Activation::Relu => {
                const $A: usize = 2;
                $e
            }
            Activation::LeakyRelu => {
                const $A: usize = 3;
                $e
            }
            Activation::Linear => {
                const $A: usize = 4;
                $e
            }
        }
    };
}

/// Evaluate `$body` compiled for AVX2 (8 f32 / 4 f64 lanes instead of SSE2's 4 / 2) where the
/// CPU has it, else as is: see [`avx2::run`].
macro_rules! with_avx2 {
    ($body:expr) => {
        $crate::ops::avx2::run(
            #[inline(always)]
            || $body,
        )
    };
}

/// Evaluate `$body` with `$x` an iterator over one row's `x_hat` values ([`batch_norm::XRow`]):
/// the stored row, or the row recomputed from the forward's input as the forward computed it,
/// `T::of((z - shift) * inv_std)`, so the values are the same bits. `$body` is compiled once per
/// kind of row.
macro_rules! x_values {
    ($row:expr, $x:ident => $body:expr) => {
        match $row {
            $crate::ops::batch_norm::XRow::Stored(r) => {
                let $x = r.iter().copied();
                $body
            }
            $crate::ops::batch_norm::XRow::From(z, shift, inv_std) => {
                let $x = z
                    .iter()
                    .zip(shift)
                    .zip(inv_std)
                    .map(|((&v, &m), &s)| T::of((v.f64() - m) * s));
                $body
            }
        }
    };
}

pub mod activation;
mod avx2;
pub mod batch_norm;
pub mod layer_norm;
pub mod linear;
pub mod loss;
pub mod reference;
pub mod residual;
pub mod stream;

pub use activation::{
    act_backward_add, act_backward_fused, act_grad_from_output, act_scalar, bias_act_forward,
    bias_act_forward_from, sigmoid,
};
pub use batch_norm::{
    BnCoeffs, BnGradCoeffs, BnSums, XHat, add_col_sq_dev, add_col_sums, add_col_sums_and_add,
    bn_backward_apply, bn_backward_apply_add, bn_backward_apply_add_x, bn_backward_apply_x,
    bn_backward_sums, bn_backward_sums_noisy, bn_backward_sums_x, bn_noisy_pre_forward,
    bn_post_forward, bn_pre_forward, bn_pre_forward_from, bn_pre_forward_unkept,
};
pub use layer_norm::{
    RowStats, ln_backward_apply, ln_post_forward, ln_pre_forward, ln_pre_forward_from,
};
pub use linear::{linear_backward, linear_forward};
pub use loss::{accuracy, argmax, ce_loss, ce_loss_value, mse_loss, mse_loss_value};
pub use residual::{Affine, HiddenOut, NextHead, Residual};
pub use stream::{HeadSums, stream_backward_head, stream_sum_in_place};

/// Rows of `x` as slices.
#[inline]
fn rows<'a, T>(x: &'a ArrayView2<'_, T>) -> impl Iterator<Item = &'a [T]> + 'a {
    x.rows()
        .into_iter()
        .map(|r| r.to_slice().expect("kernel buffers have contiguous rows"))
}

/// Rows of `x` as mutable slices.
#[inline]
fn rows_mut<'a, T>(x: &'a mut ArrayViewMut2<'_, T>) -> impl Iterator<Item = &'a mut [T]> + 'a {
    x.rows_mut()
        .into_iter()
        .map(|r| r.into_slice().expect("kernel buffers have contiguous rows"))
}
