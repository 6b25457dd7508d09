//! BatchNorm's fused passes over column blocks: the statistics (column sums, then squared
//! deviations), the forward before or after the activation (and noisy BN's), and the two
//! backward passes (sums, then the closed-form gradient through the batch statistics).

use ndarray::{ArrayView2, ArrayViewMut2};

use super::activation::{act_k, mul_act_grad_row, mul_act_grad_row_inplace};
use super::residual::{Affine, HiddenOut, NextHead, Residual};
use super::{rows, rows_mut};
use crate::config::Activation;
use crate::float::Float;
use crate::parallel::Cols;

/// BatchNorm's per-unit coefficients once its statistics are known, all `(c)`:
/// `x_hat = (z - shift) * inv_std`, then `y = gamma * x_hat + beta`.
#[derive(Clone, Copy, Debug)]
pub struct BnCoeffs<'a, T> {
    pub shift: &'a [f64],
    pub inv_std: &'a [f64],
    pub affine: Affine<'a, T>,
}

/// Pass 1's per-unit f64 accumulators, all `(c)`: `s_dy = sum_i dy`, `s_dyx = sum_i dy x_hat`,
/// `sq = sum_i dh^2`.
#[derive(Debug)]
pub struct BnSums<'a> {
    pub s_dy: &'a mut [f64],
    pub s_dyx: &'a mut [f64],
    pub sq: &'a mut [f64],
}

/// Pass 2's per-unit coefficients, all `(c)`: `k = gamma * inv_std`, and with batch statistics
/// (`batch_stats`, train mode) the means `m_dy = mean_i(dy)` and `m_dyx = mean_i(dy x_hat)`.
#[derive(Clone, Copy, Debug)]
pub struct BnGradCoeffs<'a> {
    pub k: &'a [f64],
    pub m_dy: &'a [f64],
    pub m_dyx: &'a [f64],
    pub batch_stats: bool,
}

/// `acc_j += sum_i x_ij` (f64). `x: (N, c)`, `acc: (c)`.
pub fn add_col_sums<T: Float>(x: ArrayView2<T>, acc: &mut [f64]) {
    for row in rows(&x) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v.f64();
        }
    }
}

/// [`add_col_sums`], and `out += x` in the same pass when `out` is given, with the next block's
/// head sums of the finished `out` when `next` is given too. `x, out: (N, c)`.
pub fn add_col_sums_and_add<T: Float>(
    x: ArrayView2<T>,
    acc: &mut [f64],
    out: Option<ArrayViewMut2<T>>,
    mut next: Option<NextHead>,
) {
    let Some(mut out) = out else {
        add_col_sums(x, acc);
        return;
    };
    for (row, out) in rows(&x).zip(rows_mut(&mut out)) {
        for ((a, &v), o) in acc.iter_mut().zip(row).zip(out.iter_mut()) {
            *a += v.f64();
            *o += v;
        }
        if let Some(next) = next.as_mut() {
            next.add_row(out);
        }
    }
}

/// `acc_j += sum_i (x_ij - shift_j)^2` (f64): the second pass of a two-pass variance.
/// `x: (N, c)`; `shift, acc: (c)`.
pub fn add_col_sq_dev<T: Float>(x: ArrayView2<T>, shift: &[f64], acc: &mut [f64]) {
    for row in rows(&x) {
        for ((a, &v), &m) in acc.iter_mut().zip(row).zip(shift) {
            let d = v.f64() - m;
            *a += d * d;
        }
    }
}

/// `x_hat = (v - shift) * inv_std` for one row.
#[inline(always)]
fn standardise_row<T: Float>(x_hat: &mut [T], v: &[T], shift: &[f64], inv_std: &[f64]) {
    for (((x, &v), &m), &s) in x_hat.iter_mut().zip(v).zip(shift).zip(inv_std) {
        *x = T::of((v.f64() - m) * s);
    }
}

/// Where a backward pass reads BatchNorm's `x_hat`, `(N, c)`: the buffer its forward wrote, or
/// its forward's input `z` with the `shift` and `inv_std` that forward used, from which each
/// value is recomputed as the forward computed it, `x_hat = (z - shift) * inv_std` (the same
/// bits; a pre-activation block's first normaliser keeps no `x_hat`, since `z` is the residual
/// stream, kept anyway).
#[derive(Clone, Copy, Debug)]
pub enum XHat<'a, T> {
    Stored(ArrayView2<'a, T>),
    From {
        z: ArrayView2<'a, T>,
        shift: &'a [f64],
        inv_std: &'a [f64],
    },
}

/// One row of an [`XHat`] (see the `x_values!` macro).
pub(super) enum XRow<'r, T> {
    Stored(&'r [T]),
    From(&'r [T], &'r [f64], &'r [f64]),
}

impl<T> XHat<'_, T> {
    /// Row by row, in step with the pass's other buffers.
    #[inline]
    fn rows(&self) -> impl Iterator<Item = XRow<'_, T>> + '_ {
        let (view, stats) = match self {
            XHat::Stored(x) => (x, None),
            XHat::From { z, shift, inv_std } => (z, Some((*shift, *inv_std))),
        };
        rows(view).map(move |r| match stats {
            None => XRow::Stored(r),
            Some((shift, inv_std)) => XRow::From(r, shift, inv_std),
        })
    }
}

impl<T: Sync> Cols for XHat<'_, T> {
    fn ncols(&self) -> usize {
        match self {
            XHat::Stored(x) => x.ncols(),
            XHat::From { z, .. } => z.ncols(),
        }
    }
    fn split(self, at: usize) -> (Self, Self) {
        match self {
            XHat::Stored(x) => {
                let (l, r) = x.split(at);
                (XHat::Stored(l), XHat::Stored(r))
            }
            XHat::From { z, shift, inv_std } => {
                let ((z0, s0, i0), (z1, s1, i1)) = (z, shift, inv_std).split(at);
                (
                    XHat::From {
                        z: z0,
                        shift: s0,
                        inv_std: i0,
                    },
                    XHat::From {
                        z: z1,
                        shift: s1,
                        inv_std: i1,
                    },
                )
            }
        }
    }
}

/// [`bn_pre_forward_from`] that keeps no `x_hat`: `a = act(gamma x_hat + beta)` with
/// `x_hat = (src - shift) * inv_std` computed on the way (a pre-activation block's first
/// normaliser, whose backward recomputes `x_hat` from the stream, [`XHat::From`]). The values
/// are those [`bn_pre_forward_from`] writes. `src, a: (N, c)`. Compiled for AVX2 where the CPU
/// has it.
pub fn bn_pre_forward_unkept<T: Float>(
    act: Activation,
    src: ArrayView2<T>,
    mut a: ArrayViewMut2<T>,
    coeffs: BnCoeffs<T>,
) {
    let BnCoeffs {
        shift,
        inv_std,
        affine: Affine { gamma, beta },
    } = coeffs;
    with_avx2!(per_act!(act, A => {
        for (z, a) in rows(&src).zip(rows_mut(&mut a)) {
            for (((((a, &v), &m), &s), &g), &b) in a
                .iter_mut()
                .zip(z)
                .zip(shift)
                .zip(inv_std)
                .zip(gamma)
                .zip(beta)
            {
                let x = T::of((v.f64() - m) * s);
                *a = act_k::<T, A>(g * x + b);
            }
        }
    }))
}

/// BatchNorm before the activation, after its statistics are known:
/// `x_hat = (z - shift) * inv_std` in place (`zx` holds `z` on entry and `x_hat` on exit),
/// `a = act(gamma * x_hat + beta)`, and `h = h_in + scale * a` when `skip` is given.
/// `zx, a, h_in, h: (N, c)`. Compiled for AVX2 where the CPU has it.
pub fn bn_pre_forward<T: Float>(
    act: Activation,
    zx: ArrayViewMut2<T>,
    a: ArrayViewMut2<T>,
    coeffs: BnCoeffs<T>,
    skip: Option<Residual<T>>,
) {
    bn_pre_forward_from(act, None, zx, a, coeffs, skip);
}

/// [`bn_pre_forward`] reading `z` from `src` when given (`x_hat = (src - shift) * inv_std` into
/// `zx`, which then need not hold a copy of `src` first), else from `zx` itself.
/// `src: (N, c)`.
pub fn bn_pre_forward_from<T: Float>(
    act: Activation,
    src: Option<ArrayView2<T>>,
    mut zx: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    coeffs: BnCoeffs<T>,
    mut skip: Option<Residual<T>>,
) {
    let BnCoeffs {
        shift,
        inv_std,
        affine: Affine { gamma, beta },
    } = coeffs;
    with_avx2!(per_act!(act, A => {
        let mut out = skip.as_mut().map(|r| r.rows());
        let mut src_rows = src.as_ref().map(|s| rows(s));
        for (xh, a) in rows_mut(&mut zx).zip(rows_mut(&mut a)) {
            match src_rows.as_mut() {
                Some(src) => standardise_row(xh, src.next().expect("same rows"), shift, inv_std),
                None => {
                    for ((v, &m), &s) in xh.iter_mut().zip(shift).zip(inv_std) {
                        *v = T::of((v.f64() - m) * s);
                    }
                }
            }
            for (((a, &x), &g), &b) in a.iter_mut().zip(xh.iter()).zip(gamma).zip(beta) {
                *a = act_k::<T, A>(g * x + b);
            }
            if let Some(out) = out.as_mut() {
                out.next().expect("same rows").write(a.iter().copied());
            }
        }
    }))
}

/// Noisy BN ([`crate::config::BnNoise`]): BatchNorm before the activation with noise injected
/// between the two, after the statistics are known: `x_hat = (z - shift) * inv_std` in place in
/// `zx`, `a = act(s * (gamma * x_hat + beta) + m)`, and, with a skip connection,
/// `h = h_in + scale * a`. `zx, a, s, m, h_in, h: (N, c)`.
/// With `s = 1, m = 0` every value equals [`bn_pre_forward`]'s.
pub fn bn_noisy_pre_forward<T: Float>(
    act: Activation,
    mut zx: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    coeffs: BnCoeffs<T>,
    (s, m): (ArrayView2<T>, ArrayView2<T>),
    mut skip: Option<Residual<T>>,
) {
    let BnCoeffs {
        shift,
        inv_std,
        affine: Affine { gamma, beta },
    } = coeffs;
    per_act!(act, A => {
        let mut out = skip.as_mut().map(|r| r.rows());
        let noise_rows = s.rows().into_iter().zip(m.rows());
        for ((xh, a), (s, m)) in rows_mut(&mut zx).zip(rows_mut(&mut a)).zip(noise_rows) {
            for ((v, &mu), &is) in xh.iter_mut().zip(shift).zip(inv_std) {
                *v = T::of((v.f64() - mu) * is);
            }
            for ((((a, &x), (&g, &b)), &s), &m) in a
                .iter_mut()
                .zip(xh.iter())
                .zip(gamma.iter().zip(beta))
                .zip(s.iter())
                .zip(m.iter())
            {
                *a = act_k::<T, A>(s * (g * x + b) + m);
            }
            if let Some(out) = out.as_mut() {
                out.next().expect("same rows").write(a.iter().copied());
            }
        }
    })
}

/// BatchNorm after the activation, after its statistics are known:
/// `x_hat = (a - shift) * inv_std` into `x_hat`, and, when `h` is given, `y = gamma * x_hat +
/// beta` into it ([`HiddenOut`]: `h = y`, or `h = h_in + scale * y` with a skip connection).
/// `a, x_hat, h, h_in: (N, c)`.
pub fn bn_post_forward<T: Float>(
    a: ArrayView2<T>,
    mut x_hat: ArrayViewMut2<T>,
    coeffs: BnCoeffs<T>,
    mut h: Option<HiddenOut<T>>,
) {
    let BnCoeffs {
        shift,
        inv_std,
        affine: Affine { gamma, beta },
    } = coeffs;
    let mut out = h.as_mut().map(|h| h.rows());
    for (a, xh) in rows(&a).zip(rows_mut(&mut x_hat)) {
        standardise_row(xh, a, shift, inv_std);
        if let Some(out) = out.as_mut() {
            let y = xh
                .iter()
                .zip(gamma)
                .zip(beta)
                .map(|((&x, &g), &b)| g * x + b);
            out.next().expect("same rows").write(y);
        }
    }
}

/// First backward pass through BatchNorm: `dy = dL/dy` where `y = gamma x_hat + beta` is BN's
/// output, that is `dy = dh * act'(a)` for BN before the activation (`act` given) and `dy = dh`
/// after it; `s_dy_j += sum_i dy_ij`, `s_dyx_j += sum_i dy_ij x_hat_ij`, `sq_j += sum_i dh_ij^2`
/// (all f64, into `sums`), and `copy = dh` when given (a skip connection's identity path).
/// `dh, a, x_hat, dy, copy: (N, c)`.
pub fn bn_backward_sums<T: Float>(
    act: Option<(Activation, ArrayView2<T>)>,
    dh: ArrayView2<T>,
    x_hat: ArrayView2<T>,
    dy: ArrayViewMut2<T>,
    sums: BnSums,
    copy: Option<ArrayViewMut2<T>>,
) {
    bn_backward_sums_noisy(act, dh, x_hat, dy, None, sums, copy)
}

/// [`bn_backward_sums`] through noisy BN's `y' = s * y + m` ([`bn_noisy_pre_forward`]): with
/// `noise_scale = Some(s)`, `dy = dh * act'(a) * s` (the gradient reaching BN's output `y`), and
/// the sums are taken of that. `None` is [`bn_backward_sums`]. `s: (N, c)`.
pub fn bn_backward_sums_noisy<T: Float>(
    act: Option<(Activation, ArrayView2<T>)>,
    dh: ArrayView2<T>,
    x_hat: ArrayView2<T>,
    dy: ArrayViewMut2<T>,
    noise_scale: Option<ArrayView2<T>>,
    sums: BnSums,
    copy: Option<ArrayViewMut2<T>>,
) {
    let x_hat = XHat::Stored(x_hat);
    bn_backward_sums_x(act, dh, x_hat, dy, noise_scale, sums, copy)
}

/// [`bn_backward_sums_noisy`] reading `x_hat` from an [`XHat`].
pub fn bn_backward_sums_x<T: Float>(
    act: Option<(Activation, ArrayView2<T>)>,
    dh: ArrayView2<T>,
    x_hat: XHat<T>,
    mut dy: ArrayViewMut2<T>,
    noise_scale: Option<ArrayView2<T>>,
    sums: BnSums,
    mut copy: Option<ArrayViewMut2<T>>,
) {
    let BnSums { s_dy, s_dyx, sq } = sums;
    with_avx2!({
        let mut copy_rows = copy.as_mut().map(|c| rows_mut(c));
        let mut act_rows = act.as_ref().map(|(act, a)| (*act, rows(a)));
        let mut noise_rows = noise_scale.as_ref().map(|s| s.rows().into_iter());
        for ((dh, xh), dy) in rows(&dh).zip(x_hat.rows()).zip(rows_mut(&mut dy)) {
            match act_rows.as_mut() {
                Some((act, a_rows)) => {
                    let a = a_rows.next().expect("same rows");
                    mul_act_grad_row(*act, dy, dh, a);
                }
                None => dy.copy_from_slice(dh),
            }
            if let Some(s_rows) = noise_rows.as_mut() {
                let s = s_rows.next().expect("same rows");
                for (d, &s) in dy.iter_mut().zip(s.iter()) {
                    *d *= s;
                }
            }
            x_values!(xh, xh => {
                for ((((s, sx), q), (&y, x)), &g) in s_dy
                    .iter_mut()
                    .zip(s_dyx.iter_mut())
                    .zip(sq.iter_mut())
                    .zip(dy.iter().zip(xh))
                    .zip(dh)
                {
                    let y = y.f64();
                    *s += y;
                    *sx += y * x.f64();
                    *q += g.f64() * g.f64();
                }
            });
            if let Some(c) = copy_rows.as_mut() {
                c.next().expect("same rows").copy_from_slice(dh);
            }
        }
    })
}

/// Second backward pass through BatchNorm, in place on `d` (`dy` on entry, `dL/dz` on exit).
/// With batch statistics (train mode):
///
/// `dx = k * (dy - m_dy - x_hat * m_dyx)`, `k = gamma * inv_std`,
///
/// (the closed form of the gradient through the batch mean and biased variance), and
/// `dx = k * dy` with running statistics (eval mode). For BN after the activation (`post_act`
/// given), `dz = dx * act'(a)`, else `dz = dx`. Then `db_j += sum_i dz_ij` (f64).
/// `d, x_hat, a: (N, c)`; `db: (c)`.
pub fn bn_backward_apply<T: Float>(
    d: ArrayViewMut2<T>,
    x_hat: ArrayView2<T>,
    coeffs: BnGradCoeffs,
    post_act: Option<(Activation, ArrayView2<T>)>,
    db: &mut [f64],
) {
    bn_backward_apply_x(d, XHat::Stored(x_hat), coeffs, post_act, db);
}

/// [`bn_backward_apply`] reading `x_hat` from an [`XHat`].
pub fn bn_backward_apply_x<T: Float>(
    mut d: ArrayViewMut2<T>,
    x_hat: XHat<T>,
    coeffs: BnGradCoeffs,
    post_act: Option<(Activation, ArrayView2<T>)>,
    db: &mut [f64],
) {
    let BnGradCoeffs {
        k,
        m_dy,
        m_dyx,
        batch_stats,
    } = coeffs;
    with_avx2!({
        let mut act_rows = post_act.as_ref().map(|(act, a)| (*act, rows(a)));
        for (d, xh) in rows_mut(&mut d).zip(x_hat.rows()) {
            if batch_stats {
                x_values!(xh, xh => {
                    for ((((v, x), &k), &m), &mx) in d.iter_mut().zip(xh).zip(k).zip(m_dy).zip(m_dyx) {
                        *v = T::of(k * (v.f64() - m - x.f64() * mx));
                    }
                });
            } else {
                for (v, &k) in d.iter_mut().zip(k) {
                    *v = T::of(k * v.f64());
                }
            }
            if let Some((act, a_rows)) = act_rows.as_mut() {
                mul_act_grad_row_inplace(*act, d, a_rows.next().expect("same rows"));
            }
            for (s, &v) in db.iter_mut().zip(d.iter()) {
                *s += v.f64();
            }
        }
    })
}

/// [`bn_backward_apply`] for BatchNorm before the activation, adding `dL/dz` to `out` instead of
/// writing it over `d` (the input gradient of an identity linear, accumulated onto the residual
/// stream's): `out += k * (dy - m_dy - x_hat * m_dyx)` (or `k * dy`), `db_j += sum_i` of the
/// same (f64), and the next block's head sums of the finished `out` when `next` is given. `d`
/// (`dy`) is only read. `d, x_hat, out: (N, c)`; `db: (c)`.
pub fn bn_backward_apply_add<T: Float>(
    d: ArrayView2<T>,
    x_hat: ArrayView2<T>,
    coeffs: BnGradCoeffs,
    out: ArrayViewMut2<T>,
    db: &mut [f64],
    next: Option<NextHead>,
) {
    bn_backward_apply_add_x(d, XHat::Stored(x_hat), coeffs, out, db, next);
}

/// [`bn_backward_apply_add`] reading `x_hat` from an [`XHat`].
pub fn bn_backward_apply_add_x<T: Float>(
    d: ArrayView2<T>,
    x_hat: XHat<T>,
    coeffs: BnGradCoeffs,
    mut out: ArrayViewMut2<T>,
    db: &mut [f64],
    mut next: Option<NextHead>,
) {
    let BnGradCoeffs {
        k,
        m_dy,
        m_dyx,
        batch_stats,
    } = coeffs;
    with_avx2!({
        for ((d, xh), out) in rows(&d).zip(x_hat.rows()).zip(rows_mut(&mut out)) {
            if batch_stats {
                x_values!(xh, xh => {
                    for (((((o, &v), x), &k), &m), (&mx, s)) in out
                        .iter_mut()
                        .zip(d)
                        .zip(xh)
                        .zip(k)
                        .zip(m_dy)
                        .zip(m_dyx.iter().zip(db.iter_mut()))
                    {
                        let g = T::of(k * (v.f64() - m - x.f64() * mx));
                        *o += g;
                        *s += g.f64();
                    }
                });
            } else {
                for (((o, &v), &k), s) in out.iter_mut().zip(d).zip(k).zip(db.iter_mut()) {
                    let g = T::of(k * v.f64());
                    *o += g;
                    *s += g.f64();
                }
            }
            if let Some(next) = next.as_mut() {
                next.add_row(out);
            }
        }
    })
}

impl<T: Sync> Cols for BnCoeffs<'_, T> {
    fn ncols(&self) -> usize {
        self.shift.len()
    }
    fn split(self, at: usize) -> (Self, Self) {
        let ((shift0, inv_std0, affine0), (shift1, inv_std1, affine1)) =
            (self.shift, self.inv_std, self.affine).split(at);
        (
            BnCoeffs {
                shift: shift0,
                inv_std: inv_std0,
                affine: affine0,
            },
            BnCoeffs {
                shift: shift1,
                inv_std: inv_std1,
                affine: affine1,
            },
        )
    }
}

impl Cols for BnSums<'_> {
    fn ncols(&self) -> usize {
        self.s_dy.len()
    }
    fn split(self, at: usize) -> (Self, Self) {
        let ((s_dy0, s_dyx0, sq0), (s_dy1, s_dyx1, sq1)) =
            (self.s_dy, self.s_dyx, self.sq).split(at);
        (
            BnSums {
                s_dy: s_dy0,
                s_dyx: s_dyx0,
                sq: sq0,
            },
            BnSums {
                s_dy: s_dy1,
                s_dyx: s_dyx1,
                sq: sq1,
            },
        )
    }
}

impl Cols for BnGradCoeffs<'_> {
    fn ncols(&self) -> usize {
        self.k.len()
    }
    fn split(self, at: usize) -> (Self, Self) {
        let batch_stats = self.batch_stats;
        let ((k0, m_dy0, m_dyx0), (k1, m_dy1, m_dyx1)) = (self.k, self.m_dy, self.m_dyx).split(at);
        (
            BnGradCoeffs {
                k: k0,
                m_dy: m_dy0,
                m_dyx: m_dyx0,
                batch_stats,
            },
            BnGradCoeffs {
                k: k1,
                m_dy: m_dy1,
                m_dyx: m_dyx1,
                batch_stats,
            },
        )
    }
}
