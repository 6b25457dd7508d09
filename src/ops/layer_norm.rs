//! LayerNorm's fused passes, one pass over rows each: the forward before or after the
//! activation and the second backward pass.
//!
//! LayerNorm (Ba et al. 2016) standardises each sample (row) over its `c` units, so its
//! statistics are row-local: these passes are split over threads by *rows* (the model hands
//! [`crate::parallel::par_cols`] transposed views), and their per-row results do not depend on
//! the cut. Per-column sums (`dgamma`, `dbeta`, `db`, `sum dh^2`) are left to the column passes
//! of [`super::batch_norm`] and [`super::activation`], which keeps every sum in one fixed order
//! whatever the thread count.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::activation::{act_k, mul_act_grad_row_inplace};
use super::residual::{Affine, HiddenOut, Residual};
use super::{rows, rows_mut};
use crate::config::Activation;
use crate::float::Float;
use crate::parallel::Cols;

/// The per-row statistics a LayerNorm forward computes, in f64, both `(N)`: `mean_i` and
/// `inv_std_i = 1 / sqrt(var_i + eps)` (biased variance over the row).
#[derive(Debug)]
pub struct RowStats<'a> {
    pub eps: f64,
    pub mean: &'a mut [f64],
    pub inv_std: &'a mut [f64],
}

/// `(mean, 1 / sqrt(var + eps))` of one row, biased variance, two passes in f64.
#[inline(always)]
fn ln_row_stats<T: Float>(x: &[T], eps: f64) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|v| v.f64()).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|v| {
            let d = v.f64() - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// LayerNorm before the activation, one pass over rows: per row `i` of `z = zx + b` (the bias
/// is added in place, in `T`, as `nn.Linear` adds it), its [`RowStats`], `x_hat = (z - mu_i)
/// inv_std_i` in place (`zx` holds `h W` on entry and `x_hat` on exit), `a = act(gamma * x_hat +
/// beta)`, and `h = h_in + scale * a` when `skip` is given.
/// `zx, a, h_in, h: (N, c)`; `b: (c)`. Compiled for AVX2 where the CPU has it.
pub fn ln_pre_forward<T: Float>(
    act: Activation,
    zx: ArrayViewMut2<T>,
    a: ArrayViewMut2<T>,
    b: &[T],
    affine: Affine<T>,
    stats: RowStats,
    skip: Option<Residual<T>>,
) {
    ln_pre_forward_from(act, (None, b), zx, a, affine, stats, skip);
}

/// [`ln_pre_forward`] with `z = src + b` read from `src` when given (written into `zx`, which
/// then need not hold a copy of `src` first), else `z = zx + b` in place. `src: (N, c)`.
pub fn ln_pre_forward_from<T: Float>(
    act: Activation,
    (src, b): (Option<ArrayView2<T>>, &[T]),
    mut zx: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    Affine { gamma, beta }: Affine<T>,
    stats: RowStats,
    mut skip: Option<Residual<T>>,
) {
    let RowStats { eps, mean, inv_std } = stats;
    with_avx2!(per_act!(act, A => {
        let mut out = skip.as_mut().map(|r| r.rows());
        let mut src_rows = src.as_ref().map(|s| rows(s));
        for (((xh, a), m), s) in rows_mut(&mut zx)
            .zip(rows_mut(&mut a))
            .zip(mean.iter_mut())
            .zip(inv_std.iter_mut())
        {
            match src_rows.as_mut() {
                Some(src) => {
                    for ((v, &x), &b) in xh.iter_mut().zip(src.next().expect("same rows")).zip(b) {
                        *v = x + b;
                    }
                }
                None => {
                    for (v, &b) in xh.iter_mut().zip(b) {
                        *v += b;
                    }
                }
            }
            (*m, *s) = ln_row_stats(xh, eps);
            let (mu, is) = (*m, *s);
            for v in xh.iter_mut() {
                *v = T::of((v.f64() - mu) * is);
            }
            for (((a, &x), &g), &be) in a.iter_mut().zip(xh.iter()).zip(gamma).zip(beta) {
                *a = act_k::<T, A>(g * x + be);
            }
            if let Some(out) = out.as_mut() {
                out.next().expect("same rows").write(a.iter().copied());
            }
        }
    }))
}

/// LayerNorm after the activation, one pass over rows: per row of `a`, its [`RowStats`],
/// `x_hat = (a - mu_i) inv_std_i` into `x_hat`, and, when `h` is given, `y = gamma * x_hat +
/// beta` into it ([`HiddenOut`]: `h = y`, or `h = h_in + scale * y` with a skip connection).
/// `a, x_hat, h, h_in: (N, c)`. Compiled for AVX2 where the CPU has it.
pub fn ln_post_forward<T: Float>(
    a: ArrayView2<T>,
    mut x_hat: ArrayViewMut2<T>,
    Affine { gamma, beta }: Affine<T>,
    stats: RowStats,
    mut h: Option<HiddenOut<T>>,
) {
    let RowStats { eps, mean, inv_std } = stats;
    with_avx2!({
        let mut out = h.as_mut().map(|h| h.rows());
        for (((a, xh), m), s) in rows(&a)
            .zip(rows_mut(&mut x_hat))
            .zip(mean.iter_mut())
            .zip(inv_std.iter_mut())
        {
            (*m, *s) = ln_row_stats(a, eps);
            let (mu, is) = (*m, *s);
            for (v, &a) in xh.iter_mut().zip(a) {
                *v = T::of((a.f64() - mu) * is);
            }
            if let Some(out) = out.as_mut() {
                let y = xh
                    .iter()
                    .zip(gamma)
                    .zip(beta)
                    .map(|((&x, &g), &b)| g * x + b);
                out.next().expect("same rows").write(y);
            }
        }
    })
}

/// Second backward pass through LayerNorm, in place on `d` (`dy = dL/dy`, `y = gamma x_hat +
/// beta`, on entry; `dL/dz` on exit), one pass over rows: with `g = gamma * dy`,
///
/// `dx_i = inv_std_i (g_i - mean_j(g_ij) - x_hat_i mean_j(g_ij x_hat_ij))`
///
/// (the closed form through the row's mean and biased variance), then `dz = dx * act'(a)` for
/// LayerNorm after the activation (`post_act` given), else `dz = dx`.
/// `d, x_hat, a: (N, c)`; `gamma: (c)`; `inv_std: (N)`. Compiled for AVX2 where the CPU has it.
pub fn ln_backward_apply<T: Float>(
    mut d: ArrayViewMut2<T>,
    x_hat: ArrayView2<T>,
    gamma: &[T],
    inv_std: &[f64],
    post_act: Option<(Activation, ArrayView2<T>)>,
) {
    with_avx2!({
        let n = x_hat.ncols() as f64;
        let mut act_rows = post_act.as_ref().map(|(act, a)| (*act, rows(a)));
        for ((d, xh), &is) in rows_mut(&mut d).zip(rows(&x_hat)).zip(inv_std) {
            // g = gamma * dy, kept in `d` (in `T`), then its two row sums in f64.
            for (v, &g) in d.iter_mut().zip(gamma) {
                *v *= g;
            }
            let (mut s_g, mut s_gx) = (0.0f64, 0.0f64);
            for (&g, &x) in d.iter().zip(xh) {
                s_g += g.f64();
                s_gx += g.f64() * x.f64();
            }
            let (m, mx) = (s_g / n, s_gx / n);
            for (v, &x) in d.iter_mut().zip(xh) {
                *v = T::of(is * (v.f64() - m - x.f64() * mx));
            }
            if let Some((act, a_rows)) = act_rows.as_mut() {
                mul_act_grad_row_inplace(*act, d, a_rows.next().expect("same rows"));
            }
        }
    })
}

/// Split by rows: LayerNorm's passes run on transposed views, whose columns are the samples.
impl Cols for RowStats<'_> {
    fn ncols(&self) -> usize {
        self.mean.len()
    }
    fn split(self, at: usize) -> (Self, Self) {
        let eps = self.eps;
        let ((mean0, inv_std0), (mean1, inv_std1)) = (self.mean, self.inv_std).split(at);
        (
            RowStats {
                eps,
                mean: mean0,
                inv_std: inv_std0,
            },
            RowStats {
                eps,
                mean: mean1,
                inv_std: inv_std1,
            },
        )
    }
}
