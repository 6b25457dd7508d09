//! The activations (`act(x)`, and `act'` from the output), and the fused passes of a block
//! without a normaliser: `a = act(z + b)` forward (with the skip connection and column sums), and
//! `dz = dh * act'(a)` backward.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::residual::{NextHead, Residual};
use super::{rows, rows_mut};
use crate::config::Activation;
use crate::float::Float;

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

/// Activations as compile-time constants (see `per_act!`).
const ACTS: [Activation; 5] = Activation::ALL;

/// `act(x)` for the activation `ACTS[A]`, resolved at compile time.
#[inline(always)]
pub(super) fn act_k<T: Float, const A: usize>(x: T) -> T {
    act_scalar(ACTS[A], x)
}

/// `act'` from the output, for the activation `ACTS[A]`, resolved at compile time.
#[inline(always)]
fn grad_k<T: Float, const A: usize>(a: T) -> T {
    act_grad_from_output(ACTS[A], a)
}

/// `out = d * act'(a)` for one row.
#[inline(always)]
pub(super) fn mul_act_grad_row<T: Float>(act: Activation, out: &mut [T], d: &[T], a: &[T]) {
    per_act!(act, A => {
        for ((o, &d), &a) in out.iter_mut().zip(d).zip(a) {
            *o = d * grad_k::<T, A>(a);
        }
    })
}

/// `d *= act'(a)` for one row.
#[inline(always)]
pub(super) fn mul_act_grad_row_inplace<T: Float>(act: Activation, d: &mut [T], a: &[T]) {
    per_act!(act, A => {
        for (v, &a) in d.iter_mut().zip(a) {
            *v *= grad_k::<T, A>(a);
        }
    })
}

/// `a = act(z + b)` in place (`z` becomes `a`); when given, `sums_j += sum_i a_ij` (f64) and
/// `h = h_in + scale * a` (a skip connection). `z, h_in, h: (N, c)`; `b, sums: (c)`.
/// Compiled for AVX2 where the CPU has it.
pub fn bias_act_forward<T: Float>(
    act: Activation,
    z: ArrayViewMut2<T>,
    b: &[T],
    sums: Option<&mut [f64]>,
    skip: Option<Residual<T>>,
) {
    bias_act_forward_from(act, None, z, b, sums, skip);
}

/// [`bias_act_forward`] reading `z` from `src` when given (`a = act(src + b)` into `a`, which
/// then need not hold a copy of `src` first), else from `a` itself. `src, a: (N, c)`.
pub fn bias_act_forward_from<T: Float>(
    act: Activation,
    src: Option<ArrayView2<T>>,
    mut a: ArrayViewMut2<T>,
    b: &[T],
    mut sums: Option<&mut [f64]>,
    mut skip: Option<Residual<T>>,
) {
    with_avx2!(per_act!(act, A => {
        let mut out = skip.as_mut().map(|r| r.rows());
        let mut src_rows = src.as_ref().map(|s| rows(s));
        for row in rows_mut(&mut a) {
            match src_rows.as_mut() {
                Some(src) => {
                    let src = src.next().expect("same rows");
                    for ((v, &x), &b) in row.iter_mut().zip(src).zip(b) {
                        *v = act_k::<T, A>(x + b);
                    }
                }
                None => {
                    for (v, &b) in row.iter_mut().zip(b) {
                        *v = act_k::<T, A>(*v + b);
                    }
                }
            }
            if let Some(sums) = sums.as_deref_mut() {
                for (s, &v) in sums.iter_mut().zip(row.iter()) {
                    *s += v.f64();
                }
            }
            if let Some(out) = out.as_mut() {
                out.next().expect("same rows").write(row.iter().copied());
            }
        }
    }))
}

/// Backward through `a = act(z + b)` (no BatchNorm): `dz = dh * act'(a)`, `db_j += sum_i dz_ij`
/// and `sq_j += sum_i dh_ij^2` (f64, for `||dL/dh||`), and `copy = dh` when given (the identity
/// path of a skip connection). `dh, a, dz, copy: (N, c)`; `db, sq: (c)`. Compiled for AVX2
/// where the CPU has it.
pub fn act_backward_fused<T: Float>(
    act: Activation,
    dh: ArrayView2<T>,
    a: ArrayView2<T>,
    mut dz: ArrayViewMut2<T>,
    db: &mut [f64],
    sq: &mut [f64],
    mut copy: Option<ArrayViewMut2<T>>,
) {
    with_avx2!(per_act!(act, A => {
        let mut copy_rows = copy.as_mut().map(|c| rows_mut(c));
        for ((dh, a), dz) in rows(&dh).zip(rows(&a)).zip(rows_mut(&mut dz)) {
            for ((dz, &d), &a) in dz.iter_mut().zip(dh).zip(a) {
                *dz = d * grad_k::<T, A>(a);
            }
            for ((s, q), (&d, &g)) in db.iter_mut().zip(sq.iter_mut()).zip(dz.iter().zip(dh)) {
                *s += d.f64();
                *q += g.f64() * g.f64();
            }
            if let Some(c) = copy_rows.as_mut() {
                c.next().expect("same rows").copy_from_slice(dh);
            }
        }
    }))
}

/// [`act_backward_fused`] adding its result to `out` instead of writing it (the input gradient
/// of an identity linear, accumulated onto the residual stream's): `out += dh * act'(a)`,
/// `db_j += sum_i dh_ij act'(a_ij)` and `sq_j += sum_i dh_ij^2` (f64), and the next block's
/// head sums of the finished `out` when `next` is given. `dh, a, out: (N, c)`; `db, sq: (c)`.
pub fn act_backward_add<T: Float>(
    act: Activation,
    dh: ArrayView2<T>,
    a: ArrayView2<T>,
    mut out: ArrayViewMut2<T>,
    db: &mut [f64],
    sq: &mut [f64],
    mut next: Option<NextHead>,
) {
    with_avx2!(per_act!(act, A => {
        for ((dh, a), out) in rows(&dh).zip(rows(&a)).zip(rows_mut(&mut out)) {
            for ((((o, &d), &a), s), q) in out
                .iter_mut()
                .zip(dh)
                .zip(a)
                .zip(db.iter_mut())
                .zip(sq.iter_mut())
            {
                let g = d * grad_k::<T, A>(a);
                *o += g;
                *s += g.f64();
                *q += d.f64() * d.f64();
            }
            if let Some(next) = next.as_mut() {
                next.add_row(out);
            }
        }
    }))
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
