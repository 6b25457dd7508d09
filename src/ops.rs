//! Pure kernels, writing into buffers the caller owns so that a training loop allocates nothing
//! per step: the linear layer, activations, the fused BatchNorm/activation/skip passes the model
//! runs, and the loss. [`mod@reference`] holds the readable forward/backward pairs they are tested
//! against.
//!
//! Shapes are row-major `(batch, features)`. Reductions over the batch are
//! accumulated in `f64`.

pub mod reference;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};

use crate::config::Activation;
use crate::float::Float;
use crate::parallel::gemm;

// ---------------------------------------------------------------- linear

/// `z = x W + b`.
///
/// `x: (batch, fan_in)`, `w: (fan_in, fan_out)`, `b: (fan_out)`, `z: (batch, fan_out)`.
pub fn linear_forward<T: Float>(
    x: ArrayView2<T>,
    w: ArrayView2<T>,
    b: ArrayView1<T>,
    mut z: ArrayViewMut2<T>,
) {
    for mut row in z.rows_mut() {
        row.assign(&b);
    }
    gemm(T::one(), &x, &w, T::one(), &mut z);
}

/// Gradients of `z = x W + b` given `dz = dL/dz`:
/// `dW = x^T dz`, `db = sum_batch dz`, and, when `dx` is given, `dx = dz W^T + skip`
/// where `skip` is `dx`'s current content if `accumulate_dx` (a residual path) and 0 otherwise.
///
/// `x: (batch, fan_in)`, `w: (fan_in, fan_out)`, `dz: (batch, fan_out)`,
/// `dw: (fan_in, fan_out)`, `db: (fan_out)`, `dx: (batch, fan_in)`.
pub fn linear_backward<T: Float>(
    x: ArrayView2<T>,
    w: ArrayView2<T>,
    dz: ArrayView2<T>,
    mut dw: ArrayViewMut2<T>,
    db: ArrayViewMut1<T>,
    dx: Option<(ArrayViewMut2<T>, bool)>,
) {
    gemm(T::one(), &x.t(), &dz, T::zero(), &mut dw);
    sum_rows_into(dz, db);
    if let Some((mut dx, accumulate_dx)) = dx {
        let beta = if accumulate_dx { T::one() } else { T::zero() };
        gemm(T::one(), &dz, &w.t(), beta, &mut dx);
    }
}

/// `out[j] = sum_i m[i, j]`, accumulated in f64 (in blocks of columns on the stack: no allocation).
fn sum_rows_into<T: Float>(m: ArrayView2<T>, mut out: ArrayViewMut1<T>) {
    const BLOCK: usize = 64;
    let n = m.ncols();
    let mut acc = [0.0f64; BLOCK];
    for c0 in (0..n).step_by(BLOCK) {
        let c1 = (c0 + BLOCK).min(n);
        let acc = &mut acc[..c1 - c0];
        acc.fill(0.0);
        for row in m.slice(ndarray::s![.., c0..c1]).rows() {
            for (a, &v) in acc.iter_mut().zip(row.iter()) {
                *a += v.f64();
            }
        }
        for (o, &a) in out
            .slice_mut(ndarray::s![c0..c1])
            .iter_mut()
            .zip(acc.iter())
        {
            *o = T::of(a);
        }
    }
}

// ----------------------------------------------------------- activations

/// `e^x` for `x <= 0`, branch-free so that loops over it vectorise: `x = n ln2 + r` with
/// `|r| <= ln2/2`, a degree-11 Taylor polynomial for `e^r` (truncation error below 7e-15
/// relative) and `2^n` built from its bits. Arguments below -708 are taken as -708
/// (`e^-708 ~ 3e-308`); NaN stays NaN. Meant for results rounded to f32 afterwards, where it
/// is as good as a correctly rounded `expf`.
#[inline(always)]
fn exp_nonpos_f64(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    let x = if x < -708.0 { -708.0 } else { x };
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // The low bits of t hold n; (n + 1023) << 52 are the bits of 2^n.
    let scale = f64::from_bits(t.to_bits().wrapping_add(1023) << 52);
    let mut p = 1.0 / 39_916_800.0;
    for c in [
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    p * scale
}

/// The logistic function in f64 for f32 networks: `1 / (1 + e)` or `e / (1 + e)` with
/// `e = exp(-|x|) <= 1`, so nothing overflows.
#[inline(always)]
fn sigmoid_f64_for_f32(x: f64) -> f64 {
    let e = exp_nonpos_f64(-x.abs());
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// `tanh` in f64 for f32 networks: `sign(x) (1 - e) / (1 + e)` with `e = exp(-2|x|)`, and an
/// odd Taylor polynomial below |x| = 0.02 where `1 - e` would cancel.
#[inline(always)]
fn tanh_f64_for_f32(x: f64) -> f64 {
    let a = x.abs();
    let e = exp_nonpos_f64(-2.0 * a);
    let big = (1.0 - e) / (1.0 + e);
    let x2 = x * x;
    let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
    if a < 0.02 {
        small
    } else if x < 0.0 {
        -big
    } else {
        big
    }
}

/// Numerically stable logistic function. f32 networks evaluate it in f64 with a
/// vectorisable exponential (rounded once to f32); f64 networks use the platform's `exp`.
#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    if T::BYTES == 4 {
        return T::of(sigmoid_f64_for_f32(x.f64()));
    }
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// `act(x)` for one element.
#[inline(always)]
pub fn act_scalar<T: Float>(act: Activation, x: T) -> T {
    match act {
        Activation::Sigmoid => sigmoid(x),
        // As sigmoid: f32 networks evaluate it in f64, vectorisably.
        Activation::Tanh if T::BYTES == 4 => T::of(tanh_f64_for_f32(x.f64())),
        Activation::Tanh => x.tanh(),
        Activation::Relu => {
            if x > T::zero() {
                x
            } else {
                T::zero()
            }
        }
        Activation::LeakyRelu => {
            if x > T::zero() {
                x
            } else {
                x * T::of(Activation::LEAKY_SLOPE)
            }
        }
        Activation::Linear => x,
    }
}

/// `act'(z)` written in terms of the output `a = act(z)`, so the forward pass need not keep `z`:
/// `sigmoid' = a (1 - a)`, `tanh' = 1 - a^2`, `(leaky) ReLU' = [a > 0]` (or the slope),
/// `linear' = 1`.
#[inline(always)]
pub fn act_grad_from_output<T: Float>(act: Activation, a: T) -> T {
    match act {
        Activation::Sigmoid => a * (T::one() - a),
        Activation::Tanh => T::one() - a * a,
        Activation::Relu => {
            if a > T::zero() {
                T::one()
            } else {
                T::zero()
            }
        }
        Activation::LeakyRelu => {
            if a > T::zero() {
                T::one()
            } else {
                T::of(Activation::LEAKY_SLOPE)
            }
        }
        Activation::Linear => T::one(),
    }
}

// ------------------------------------------------------- fused block passes
//
// What the model runs. Each pass reads and writes whole rows of a `(batch, c)` column block
// once, doing several steps of the math per row while the row sits in L1 cache, and adds
// per-column sums into f64 accumulators (`acc_j += ...`, never reset here). Every pass is
// column-local, so `parallel::par_cols` can hand disjoint column blocks to threads and the
// result does not depend on how the columns were cut. Views must have contiguous rows
// (inner stride 1), as the model's own buffers and their column blocks do.

/// Activations as compile-time constants, so that each pass is compiled once per activation
/// and its element loop holds no per-element `match` (which would stop vectorisation).
const ACTS: [Activation; 5] = Activation::ALL;

/// `act(x)` for the activation `ACTS[A]`, resolved at compile time.
#[inline(always)]
fn act_k<T: Float, const A: usize>(x: T) -> T {
    act_scalar(ACTS[A], x)
}

/// `act'` from the output, for the activation `ACTS[A]`, resolved at compile time.
#[inline(always)]
fn grad_k<T: Float, const A: usize>(a: T) -> T {
    act_grad_from_output(ACTS[A], a)
}

/// Evaluate `$e` with `$A` bound to the index of `$act` in [`Activation::ALL`] as a constant.
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

/// `out = d * act'(a)` for one row.
#[inline]
fn mul_act_grad_row<T: Float>(act: Activation, out: &mut [T], d: &[T], a: &[T]) {
    per_act!(act, A => {
        for ((o, &d), &a) in out.iter_mut().zip(d).zip(a) {
            *o = d * grad_k::<T, A>(a);
        }
    })
}

/// `d *= act'(a)` for one row.
#[inline]
fn mul_act_grad_row_inplace<T: Float>(act: Activation, d: &mut [T], a: &[T]) {
    per_act!(act, A => {
        for (v, &a) in d.iter_mut().zip(a) {
            *v *= grad_k::<T, A>(a);
        }
    })
}

/// `acc_j += sum_i x_ij` (f64). `x: (N, c)`, `acc: (c)`.
pub fn add_col_sums<T: Float>(x: ArrayView2<T>, acc: &mut [f64]) {
    for row in rows(&x) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v.f64();
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

/// `a = act(z + b)` in place (`z` becomes `a`); when given, `sums_j += sum_i a_ij` (f64) and
/// `h = h_in + skip_scale * a` (a skip connection; `skip_scale` is 1 but for Balduzzi's
/// beta-rescaled ResNets, and `1 * a` is `a` exactly). `z, h_in, h: (N, c)`; `b, sums: (c)`.
#[allow(clippy::type_complexity)]
pub fn bias_act_forward<T: Float>(
    act: Activation,
    mut z: ArrayViewMut2<T>,
    b: &[T],
    sums: Option<&mut [f64]>,
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { bias_act_forward_avx2(act, z, b, sums, skip, skip_scale) };
    }
    per_act!(act, A => bias_act_forward_k::<T, A>(z.view_mut(), b, sums, skip, skip_scale))
}

/// [`bias_act_forward`] compiled for AVX2 (8 f32 / 4 f64 lanes instead of SSE2's 4 / 2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::type_complexity)]
unsafe fn bias_act_forward_avx2<T: Float>(
    act: Activation,
    mut z: ArrayViewMut2<T>,
    b: &[T],
    sums: Option<&mut [f64]>,
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    per_act!(act, A => bias_act_forward_k::<T, A>(z.view_mut(), b, sums, skip, skip_scale))
}

#[inline(always)]
#[allow(clippy::type_complexity)]
fn bias_act_forward_k<T: Float, const A: usize>(
    mut z: ArrayViewMut2<T>,
    b: &[T],
    mut sums: Option<&mut [f64]>,
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    let mut skip = skip;
    let mut skip_rows = skip
        .as_mut()
        .map(|(h_in, h)| (h_in.rows().into_iter(), h.rows_mut().into_iter()));
    for row in rows_mut(&mut z) {
        for (v, &b) in row.iter_mut().zip(b) {
            *v = act_k::<T, A>(*v + b);
        }
        if let Some(sums) = sums.as_deref_mut() {
            for (s, &v) in sums.iter_mut().zip(row.iter()) {
                *s += v.f64();
            }
        }
        if let Some((h_in, h)) = skip_rows.as_mut() {
            let h_in = h_in.next().expect("same rows");
            let h = h.next().expect("same rows");
            let (h_in, h) = (
                h_in.to_slice().expect("contiguous rows"),
                h.into_slice().expect("contiguous rows"),
            );
            for ((h, &x), &a) in h.iter_mut().zip(h_in).zip(row.iter()) {
                *h = skip_scale * a + x;
            }
        }
    }
}

/// BatchNorm before the activation, after its statistics are known:
/// `x_hat = (z - shift) * inv_std` in place (`zx` holds `z` on entry and `x_hat` on exit),
/// `a = act(gamma * x_hat + beta)`, and `h = h_in + skip_scale * a` when `skip` is given.
/// `zx, a, h_in, h: (N, c)`; `shift, inv_std, gamma, beta: (c)`.
#[allow(clippy::too_many_arguments)]
pub fn bn_pre_forward<T: Float>(
    act: Activation,
    mut zx: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    shift: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    beta: &[T],
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe {
            bn_pre_forward_avx2(act, zx, a, shift, inv_std, gamma, beta, skip, skip_scale)
        };
    }
    per_act!(act, A => bn_pre_forward_k::<T, A>(
        zx.view_mut(),
        a.view_mut(),
        shift,
        inv_std,
        gamma,
        beta,
        skip,
        skip_scale
    ))
}

/// [`bn_pre_forward`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn bn_pre_forward_avx2<T: Float>(
    act: Activation,
    mut zx: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    shift: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    beta: &[T],
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    per_act!(act, A => bn_pre_forward_k::<T, A>(
        zx.view_mut(),
        a.view_mut(),
        shift,
        inv_std,
        gamma,
        beta,
        skip,
        skip_scale
    ))
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bn_pre_forward_k<T: Float, const A: usize>(
    mut zx: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    shift: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    beta: &[T],
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    let mut skip = skip;
    let mut skip_rows = skip
        .as_mut()
        .map(|(h_in, h)| (h_in.rows().into_iter(), h.rows_mut().into_iter()));
    for (xh, a) in rows_mut(&mut zx).zip(rows_mut(&mut a)) {
        for ((v, &m), &s) in xh.iter_mut().zip(shift).zip(inv_std) {
            *v = T::of((v.f64() - m) * s);
        }
        for (((a, &x), &g), &b) in a.iter_mut().zip(xh.iter()).zip(gamma).zip(beta) {
            *a = act_k::<T, A>(g * x + b);
        }
        if let Some((h_in, h)) = skip_rows.as_mut() {
            let h_in = h_in.next().expect("same rows");
            let h = h.next().expect("same rows");
            let (h_in, h) = (
                h_in.to_slice().expect("contiguous rows"),
                h.into_slice().expect("contiguous rows"),
            );
            for ((h, &x), &a) in h.iter_mut().zip(h_in).zip(a.iter()) {
                *h = skip_scale * a + x;
            }
        }
    }
}

/// Noisy BN ([`crate::config::BnNoise`]): BatchNorm before the activation with noise injected
/// between the two, after the statistics are known: `x_hat = (z - shift) * inv_std` in place in
/// `zx`, `a = act(s * (gamma * x_hat + beta) + m)`, and, with a skip connection,
/// `h = h_in + skip_scale * a`. `zx, a, s, m, h_in, h: (N, c)`; `shift, inv_std, gamma, beta: (c)`.
/// With `s = 1, m = 0` every value equals [`bn_pre_forward`]'s.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn bn_noisy_pre_forward<T: Float>(
    act: Activation,
    zx: ArrayViewMut2<T>,
    a: ArrayViewMut2<T>,
    shift: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    beta: &[T],
    noise: (ArrayView2<T>, ArrayView2<T>),
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    per_act!(act, A => bn_noisy_pre_forward_k::<T, A>(
        zx, a, shift, inv_std, gamma, beta, noise, skip, skip_scale
    ))
}

#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn bn_noisy_pre_forward_k<T: Float, const A: usize>(
    mut zx: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    shift: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    beta: &[T],
    (s, m): (ArrayView2<T>, ArrayView2<T>),
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    let mut skip = skip;
    let mut skip_rows = skip
        .as_mut()
        .map(|(h_in, h)| (h_in.rows().into_iter(), h.rows_mut().into_iter()));
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
        if let Some((h_in, h)) = skip_rows.as_mut() {
            let h_in = h_in.next().expect("same rows");
            let mut h = h.next().expect("same rows");
            for ((h, &x), &a) in h.iter_mut().zip(h_in.iter()).zip(a.iter()) {
                *h = skip_scale * a + x;
            }
        }
    }
}

/// BatchNorm after the activation, after its statistics are known:
/// `x_hat = (a - shift) * inv_std` into `x_hat`, and, when `h` is given,
/// `h = gamma * x_hat + beta`, or `h = h_in + skip_scale * (gamma * x_hat + beta)` when `h_in` is
/// given (a skip connection).
/// `a, x_hat, h, h_in: (N, c)`; `shift, inv_std, gamma, beta: (c)`.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn bn_post_forward<T: Float>(
    a: ArrayView2<T>,
    mut x_hat: ArrayViewMut2<T>,
    shift: &[f64],
    inv_std: &[f64],
    gamma: &[T],
    beta: &[T],
    h: Option<(ArrayViewMut2<T>, Option<ArrayView2<T>>)>,
    skip_scale: T,
) {
    let mut h = h;
    let mut h_rows = h.as_mut().map(|(h, h_in)| {
        (
            h.rows_mut().into_iter(),
            h_in.as_ref().map(|x| x.rows().into_iter()),
        )
    });
    for (a, xh) in rows(&a).zip(rows_mut(&mut x_hat)) {
        for (((v, &a), &m), &s) in xh.iter_mut().zip(a).zip(shift).zip(inv_std) {
            *v = T::of((a.f64() - m) * s);
        }
        if let Some((h, h_in)) = h_rows.as_mut() {
            let h = h
                .next()
                .expect("same rows")
                .into_slice()
                .expect("contiguous rows");
            for (((h, &x), &g), &b) in h.iter_mut().zip(xh.iter()).zip(gamma).zip(beta) {
                *h = g * x + b;
            }
            if let Some(h_in) = h_in.as_mut() {
                let h_in = h_in.next().expect("same rows");
                for (h, &x) in h.iter_mut().zip(h_in.to_slice().expect("contiguous rows")) {
                    *h = skip_scale * *h + x;
                }
            }
        }
    }
}

/// Backward through `a = act(z + b)` (no BatchNorm): `dz = dh * act'(a)`, `db_j += sum_i dz_ij`
/// and `sq_j += sum_i dh_ij^2` (f64, for `||dL/dh||`), and `copy = dh` when given (the identity
/// path of a skip connection). `dh, a, dz, copy: (N, c)`; `db, sq: (c)`.
pub fn act_backward_fused<T: Float>(
    act: Activation,
    dh: ArrayView2<T>,
    a: ArrayView2<T>,
    mut dz: ArrayViewMut2<T>,
    db: &mut [f64],
    sq: &mut [f64],
    copy: Option<ArrayViewMut2<T>>,
) {
    per_act!(act, A => act_backward_fused_k::<T, A>(dh, a, dz.view_mut(), db, sq, copy))
}

#[inline(always)]
fn act_backward_fused_k<T: Float, const A: usize>(
    dh: ArrayView2<T>,
    a: ArrayView2<T>,
    mut dz: ArrayViewMut2<T>,
    db: &mut [f64],
    sq: &mut [f64],
    copy: Option<ArrayViewMut2<T>>,
) {
    let mut copy = copy;
    let mut copy_rows = copy.as_mut().map(|c| c.rows_mut().into_iter());
    for ((dh, a), dz) in rows(&dh).zip(rows(&a)).zip(rows_mut(&mut dz)) {
        for ((dz, &d), &a) in dz.iter_mut().zip(dh).zip(a) {
            *dz = d * grad_k::<T, A>(a);
        }
        for ((s, q), (&d, &g)) in db.iter_mut().zip(sq.iter_mut()).zip(dz.iter().zip(dh)) {
            *s += d.f64();
            *q += g.f64() * g.f64();
        }
        if let Some(c) = copy_rows.as_mut() {
            let c = c.next().expect("same rows");
            c.into_slice().expect("contiguous rows").copy_from_slice(dh);
        }
    }
}

/// First backward pass through BatchNorm: `dy = dL/dy` where `y = gamma x_hat + beta` is BN's
/// output, that is `dy = dh * act'(a)` for BN before the activation (`act` given) and `dy = dh`
/// after it; `s_dy_j += sum_i dy_ij`, `s_dyx_j += sum_i dy_ij x_hat_ij`, `sq_j += sum_i dh_ij^2`
/// (all f64), and `copy = dh` when given (a skip connection's identity path).
/// `dh, a, x_hat, dy, copy: (N, c)`; `s_dy, s_dyx, sq: (c)`.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward_sums<T: Float>(
    act: Option<(Activation, ArrayView2<T>)>,
    dh: ArrayView2<T>,
    x_hat: ArrayView2<T>,
    dy: ArrayViewMut2<T>,
    s_dy: &mut [f64],
    s_dyx: &mut [f64],
    sq: &mut [f64],
    copy: Option<ArrayViewMut2<T>>,
) {
    bn_backward_sums_noisy(act, dh, x_hat, dy, None, s_dy, s_dyx, sq, copy)
}

/// [`bn_backward_sums`] through noisy BN's `y' = s * y + m` ([`bn_noisy_pre_forward`]): with
/// `noise_scale = Some(s)`, `dy = dh * act'(a) * s` (the gradient reaching BN's output `y`), and
/// the sums are taken of that. `None` is [`bn_backward_sums`]. `s: (N, c)`.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward_sums_noisy<T: Float>(
    act: Option<(Activation, ArrayView2<T>)>,
    dh: ArrayView2<T>,
    x_hat: ArrayView2<T>,
    mut dy: ArrayViewMut2<T>,
    noise_scale: Option<ArrayView2<T>>,
    s_dy: &mut [f64],
    s_dyx: &mut [f64],
    sq: &mut [f64],
    copy: Option<ArrayViewMut2<T>>,
) {
    let mut copy = copy;
    let mut copy_rows = copy.as_mut().map(|c| c.rows_mut().into_iter());
    let mut act_rows = act.as_ref().map(|(act, a)| (*act, a.rows().into_iter()));
    let mut noise_rows = noise_scale.as_ref().map(|s| s.rows().into_iter());
    for ((dh, xh), dy) in rows(&dh).zip(rows(&x_hat)).zip(rows_mut(&mut dy)) {
        match act_rows.as_mut() {
            Some((act, a_rows)) => {
                let a = a_rows
                    .next()
                    .expect("same rows")
                    .to_slice()
                    .expect("contiguous rows");
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
        for ((((s, sx), q), (&y, &x)), &g) in s_dy
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
        if let Some(c) = copy_rows.as_mut() {
            let c = c.next().expect("same rows");
            c.into_slice().expect("contiguous rows").copy_from_slice(dh);
        }
    }
}

/// Second backward pass through BatchNorm, in place on `d` (`dy` on entry, `dL/dz` on exit).
/// With batch statistics (train mode):
///
/// `dx = k * (dy - mean_i(dy) - x_hat * mean_i(dy x_hat))`, `k = gamma * inv_std`,
///
/// (the closed form of the gradient through the batch mean and biased variance; `m_dy` and
/// `m_dyx` are those two means), and `dx = k * dy` with running statistics (eval mode). For BN
/// after the activation (`post_act` given), `dz = dx * act'(a)`, else `dz = dx`. Then
/// `db_j += sum_i dz_ij` (f64). `d, x_hat, a: (N, c)`; `k, m_dy, m_dyx, db: (c)`.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward_apply<T: Float>(
    mut d: ArrayViewMut2<T>,
    x_hat: ArrayView2<T>,
    k: &[f64],
    m_dy: &[f64],
    m_dyx: &[f64],
    batch_stats: bool,
    post_act: Option<(Activation, ArrayView2<T>)>,
    db: &mut [f64],
) {
    let mut act_rows = post_act
        .as_ref()
        .map(|(act, a)| (*act, a.rows().into_iter()));
    for (d, xh) in rows_mut(&mut d).zip(rows(&x_hat)) {
        if batch_stats {
            for ((((v, &x), &k), &m), &mx) in d.iter_mut().zip(xh).zip(k).zip(m_dy).zip(m_dyx) {
                *v = T::of(k * (v.f64() - m - x.f64() * mx));
            }
        } else {
            for (v, &k) in d.iter_mut().zip(k) {
                *v = T::of(k * v.f64());
            }
        }
        if let Some((act, a_rows)) = act_rows.as_mut() {
            let a = a_rows
                .next()
                .expect("same rows")
                .to_slice()
                .expect("contiguous rows");
            mul_act_grad_row_inplace(*act, d, a);
        }
        for (s, &v) in db.iter_mut().zip(d.iter()) {
            *s += v.f64();
        }
    }
}

// ------------------------------------------------------- LayerNorm passes
//
// LayerNorm (Ba et al. 2016) standardises each sample (row) over its `c` units, so its
// statistics are row-local: these passes are split over threads by *rows* (the model hands
// `parallel::par_cols` transposed views), and their per-row results do not depend on the cut.
// Per-column sums (`dgamma`, `dbeta`, `db`, `sum dh^2`) are left to the column passes above,
// which keeps every sum in one fixed order whatever the thread count.

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
/// is added in place, in `T`, as `nn.Linear` adds it), `mu_i`, `inv_std_i = 1 / sqrt(var_i +
/// eps)` (biased variance over the row), `x_hat = (z - mu_i) inv_std_i` in place (`zx` holds
/// `h W` on entry and `x_hat` on exit), `a = act(gamma * x_hat + beta)`, and `h = h_in +
/// skip_scale * a` when `skip` is given.
/// `zx, a, h_in, h: (N, c)`; `b, gamma, beta: (c)`; `mean, inv_std: (N)`.
#[allow(clippy::too_many_arguments)]
pub fn ln_pre_forward<T: Float>(
    act: Activation,
    zx: ArrayViewMut2<T>,
    a: ArrayViewMut2<T>,
    b: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f64,
    mean: &mut [f64],
    inv_std: &mut [f64],
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe {
            ln_pre_forward_avx2(
                act, zx, a, b, gamma, beta, eps, mean, inv_std, skip, skip_scale,
            )
        };
    }
    per_act!(act, A => ln_pre_forward_k::<T, A>(
        zx, a, b, gamma, beta, eps, mean, inv_std, skip, skip_scale
    ))
}

/// [`ln_pre_forward`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn ln_pre_forward_avx2<T: Float>(
    act: Activation,
    zx: ArrayViewMut2<T>,
    a: ArrayViewMut2<T>,
    b: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f64,
    mean: &mut [f64],
    inv_std: &mut [f64],
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    per_act!(act, A => ln_pre_forward_k::<T, A>(
        zx, a, b, gamma, beta, eps, mean, inv_std, skip, skip_scale
    ))
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ln_pre_forward_k<T: Float, const A: usize>(
    mut zx: ArrayViewMut2<T>,
    mut a: ArrayViewMut2<T>,
    b: &[T],
    gamma: &[T],
    beta: &[T],
    eps: f64,
    mean: &mut [f64],
    inv_std: &mut [f64],
    skip: Option<(ArrayView2<T>, ArrayViewMut2<T>)>,
    skip_scale: T,
) {
    let mut skip = skip;
    let mut skip_rows = skip
        .as_mut()
        .map(|(h_in, h)| (h_in.rows().into_iter(), h.rows_mut().into_iter()));
    for (((xh, a), m), s) in rows_mut(&mut zx)
        .zip(rows_mut(&mut a))
        .zip(mean.iter_mut())
        .zip(inv_std.iter_mut())
    {
        for (v, &b) in xh.iter_mut().zip(b) {
            *v += b;
        }
        (*m, *s) = ln_row_stats(xh, eps);
        let (mu, is) = (*m, *s);
        for v in xh.iter_mut() {
            *v = T::of((v.f64() - mu) * is);
        }
        for (((a, &x), &g), &be) in a.iter_mut().zip(xh.iter()).zip(gamma).zip(beta) {
            *a = act_k::<T, A>(g * x + be);
        }
        if let Some((h_in, h)) = skip_rows.as_mut() {
            let h_in = h_in.next().expect("same rows");
            let h = h.next().expect("same rows");
            let (h_in, h) = (
                h_in.to_slice().expect("contiguous rows"),
                h.into_slice().expect("contiguous rows"),
            );
            for ((h, &x), &a) in h.iter_mut().zip(h_in).zip(a.iter()) {
                *h = skip_scale * a + x;
            }
        }
    }
}

/// LayerNorm after the activation, one pass over rows: per row of `a`, `mu_i`, `inv_std_i`,
/// `x_hat = (a - mu_i) inv_std_i` into `x_hat`, and, when `h` is given, `h = gamma * x_hat +
/// beta`, or `h = h_in + skip_scale * (gamma * x_hat + beta)` when `h_in` is given.
/// `a, x_hat, h, h_in: (N, c)`; `gamma, beta: (c)`; `mean, inv_std: (N)`.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn ln_post_forward<T: Float>(
    a: ArrayView2<T>,
    x_hat: ArrayViewMut2<T>,
    gamma: &[T],
    beta: &[T],
    eps: f64,
    mean: &mut [f64],
    inv_std: &mut [f64],
    h: Option<(ArrayViewMut2<T>, Option<ArrayView2<T>>)>,
    skip_scale: T,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe {
            ln_post_forward_avx2(a, x_hat, gamma, beta, eps, mean, inv_std, h, skip_scale)
        };
    }
    ln_post_forward_k(a, x_hat, gamma, beta, eps, mean, inv_std, h, skip_scale)
}

/// [`ln_post_forward`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
unsafe fn ln_post_forward_avx2<T: Float>(
    a: ArrayView2<T>,
    x_hat: ArrayViewMut2<T>,
    gamma: &[T],
    beta: &[T],
    eps: f64,
    mean: &mut [f64],
    inv_std: &mut [f64],
    h: Option<(ArrayViewMut2<T>, Option<ArrayView2<T>>)>,
    skip_scale: T,
) {
    ln_post_forward_k(a, x_hat, gamma, beta, eps, mean, inv_std, h, skip_scale)
}

#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn ln_post_forward_k<T: Float>(
    a: ArrayView2<T>,
    mut x_hat: ArrayViewMut2<T>,
    gamma: &[T],
    beta: &[T],
    eps: f64,
    mean: &mut [f64],
    inv_std: &mut [f64],
    h: Option<(ArrayViewMut2<T>, Option<ArrayView2<T>>)>,
    skip_scale: T,
) {
    let mut h = h;
    let mut h_rows = h.as_mut().map(|(h, h_in)| {
        (
            h.rows_mut().into_iter(),
            h_in.as_ref().map(|x| x.rows().into_iter()),
        )
    });
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
        if let Some((h, h_in)) = h_rows.as_mut() {
            let h = h
                .next()
                .expect("same rows")
                .into_slice()
                .expect("contiguous rows");
            for (((h, &x), &g), &b) in h.iter_mut().zip(xh.iter()).zip(gamma).zip(beta) {
                *h = g * x + b;
            }
            if let Some(h_in) = h_in.as_mut() {
                let h_in = h_in.next().expect("same rows");
                for (h, &x) in h.iter_mut().zip(h_in.to_slice().expect("contiguous rows")) {
                    *h = skip_scale * *h + x;
                }
            }
        }
    }
}

/// Second backward pass through LayerNorm, in place on `d` (`dy = dL/dy`, `y = gamma x_hat +
/// beta`, on entry; `dL/dz` on exit), one pass over rows: with `g = gamma * dy`,
///
/// `dx_i = inv_std_i (g_i - mean_j(g_ij) - x_hat_i mean_j(g_ij x_hat_ij))`
///
/// (the closed form through the row's mean and biased variance), then `dz = dx * act'(a)` for
/// LayerNorm after the activation (`post_act` given), else `dz = dx`.
/// `d, x_hat, a: (N, c)`; `gamma: (c)`; `inv_std: (N)`.
pub fn ln_backward_apply<T: Float>(
    d: ArrayViewMut2<T>,
    x_hat: ArrayView2<T>,
    gamma: &[T],
    inv_std: &[f64],
    post_act: Option<(Activation, ArrayView2<T>)>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { ln_backward_apply_avx2(d, x_hat, gamma, inv_std, post_act) };
    }
    ln_backward_apply_k(d, x_hat, gamma, inv_std, post_act)
}

/// [`ln_backward_apply`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn ln_backward_apply_avx2<T: Float>(
    d: ArrayViewMut2<T>,
    x_hat: ArrayView2<T>,
    gamma: &[T],
    inv_std: &[f64],
    post_act: Option<(Activation, ArrayView2<T>)>,
) {
    ln_backward_apply_k(d, x_hat, gamma, inv_std, post_act)
}

#[inline(always)]
fn ln_backward_apply_k<T: Float>(
    mut d: ArrayViewMut2<T>,
    x_hat: ArrayView2<T>,
    gamma: &[T],
    inv_std: &[f64],
    post_act: Option<(Activation, ArrayView2<T>)>,
) {
    let n = x_hat.ncols() as f64;
    let mut act_rows = post_act
        .as_ref()
        .map(|(act, a)| (*act, a.rows().into_iter()));
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
            let a = a_rows
                .next()
                .expect("same rows")
                .to_slice()
                .expect("contiguous rows");
            mul_act_grad_row_inplace(*act, d, a);
        }
    }
}

// ------------------------------------------------------------------ loss

/// `L = 1/(2N) sum_{i,k} (o_ik - y_ik)^2` (the diary's 1/2 (O - Y)^2 averaged over the batch)
/// and `dL/do = (o - y) / N` written into `d_o`. `o, y, d_o: (N, d_out)`. The loss is summed in f64.
pub fn mse_loss<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>, mut d_o: ArrayViewMut2<T>) -> f64 {
    let n = o.nrows() as f64;
    let inv_n = T::of(1.0 / n);
    let mut sum = 0.0f64;
    Zip::from(&mut d_o).and(&o).and(&y).for_each(|d, &o, &y| {
        let r = o - y;
        sum += r.f64() * r.f64();
        *d = r * inv_n;
    });
    0.5 * sum / n
}

/// The loss alone, in f64, without a gradient buffer.
pub fn mse_loss_value<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>) -> f64 {
    let n = o.nrows() as f64;
    let mut sum = 0.0f64;
    Zip::from(&o).and(&y).for_each(|&o, &y| {
        let r = o.f64() - y.f64();
        sum += r * r;
    });
    0.5 * sum / n
}

/// Softmax cross-entropy, `L = -1/N sum_i sum_k y_ik log softmax(o_i)_k` with
/// `log softmax(o_i)_k = o_ik - m_i - log sum_j exp(o_ij - m_i)`, `m_i = max_j o_ij` (the
/// log-sum-exp shift: no `exp` overflows, and the largest term is exactly 1), and
/// `dL/do_ik = (softmax(o_i)_k sum_j y_ij - y_ik) / N` (`softmax - y` for one-hot rows) written
/// into `d_o`. `o, y, d_o: (N, classes)`; `y` holds target distributions (one-hot labels).
/// Computed per row in f64. A row with an inf or NaN logit has a NaN loss (a divergence).
pub fn ce_loss<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>, mut d_o: ArrayViewMut2<T>) -> f64 {
    let n = o.nrows() as f64;
    let mut sum = 0.0f64;
    for ((o, y), mut d) in o.rows().into_iter().zip(y.rows()).zip(d_o.rows_mut()) {
        let row = ce_row(o, y);
        sum += row.loss;
        let scale = row.y_sum / row.z;
        for ((d, &o), &y) in d.iter_mut().zip(o.iter()).zip(y.iter()) {
            *d = T::of(((o.f64() - row.max).exp() * scale - y.f64()) / n);
        }
    }
    sum / n
}

/// The cross-entropy alone, in f64, without a gradient buffer.
pub fn ce_loss_value<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>) -> f64 {
    let n = o.nrows() as f64;
    let sum: f64 = o
        .rows()
        .into_iter()
        .zip(y.rows())
        .map(|(o, y)| ce_row(o, y).loss)
        .sum();
    sum / n
}

/// One row's cross-entropy with the shift `max` and `z = sum_j exp(o_j - max)` its gradient reuses.
struct CeRow {
    loss: f64,
    max: f64,
    z: f64,
    y_sum: f64,
}

fn ce_row<T: Float>(o: ndarray::ArrayView1<T>, y: ndarray::ArrayView1<T>) -> CeRow {
    let max = o.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v.f64()));
    let z: f64 = o.iter().map(|&v| (v.f64() - max).exp()).sum();
    let log_z = max + z.ln();
    let (mut loss, mut y_sum) = (0.0, 0.0);
    for (&o, &y) in o.iter().zip(y.iter()) {
        let y = y.f64();
        if y != 0.0 {
            loss -= y * (o.f64() - log_z);
        }
        y_sum += y;
    }
    // f64::max ignores NaN: a NaN logit must still make the loss NaN.
    if o.iter().any(|v| v.f64().is_nan()) {
        loss = f64::NAN;
    }
    CeRow {
        loss,
        max,
        z,
        y_sum,
    }
}

/// Share of rows whose largest output is at the target's class (`y`'s largest entry, i.e. the
/// label of a one-hot row). A row with a NaN output counts as wrong; ties go to the first index.
pub fn accuracy<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>) -> f64 {
    let n = o.nrows();
    if n == 0 {
        return f64::NAN;
    }
    let correct = o
        .rows()
        .into_iter()
        .zip(y.rows())
        .filter(|(o, y)| !o.iter().any(|v| v.f64().is_nan()) && argmax(*o) == argmax(*y))
        .count();
    correct as f64 / n as f64
}

/// Index of the first largest entry.
pub fn argmax<T: Float>(v: ndarray::ArrayView1<T>) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x.f64() > v[best].f64() {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorisable f32 sigmoid and tanh agree with the platform's f64 functions rounded to
    /// f32 (within one f32 ulp, almost always exactly), including extremes, inf and NaN.
    #[test]
    fn f32_sigmoid_and_tanh_match_f64_libm_rounded() {
        let mut xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 1e-3).collect();
        xs.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            1e-8,
            -0.019_99,
            0.020_01,
            87.0,
            -87.0,
            -103.0,
            -104.0,
            -120.0,
            -800.0,
            800.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]);
        let (mut exact, mut total) = (0usize, 0usize);
        for &x in &xs {
            let xd = x as f64;
            let want_s = (1.0 / (1.0 + (-xd).exp())) as f32;
            let want_t = xd.tanh() as f32;
            for (got, want) in [
                (sigmoid(x), want_s),
                (act_scalar(Activation::Tanh, x), want_t),
            ] {
                total += 1;
                if got == want {
                    exact += 1;
                } else {
                    let ulp = (want.abs() * f32::EPSILON).max(f32::from_bits(1));
                    assert!((got - want).abs() <= ulp, "x = {x:e}: {got:e} vs {want:e}");
                }
            }
        }
        assert!(
            exact as f64 >= 0.999 * total as f64,
            "{exact} of {total} exact"
        );
        assert!(sigmoid(f32::NAN).is_nan());
        assert!(act_scalar(Activation::Tanh, f32::NAN).is_nan());
        assert_eq!(sigmoid(-200.0f32), 0.0);
        assert!(sigmoid(-100.0f32) > 0.0, "f32 subnormal results are kept");
    }
}
