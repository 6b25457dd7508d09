//! The readable pairs of `ops::reference` as the oracle, in two steps:
//!
//! 1. every pair against central finite differences in f64, so the oracle is proven on its own;
//! 2. every fused kernel the model runs (`linear_*`, `bias_act_forward`, `bn_pre_forward`,
//!    `bn_post_forward`, `act_backward_fused`, `bn_backward_sums` + `bn_backward_apply`,
//!    LayerNorm's `ln_pre_forward`, `ln_post_forward` and `ln_backward_apply`, `mse_loss`)
//!    against the pairs in f64: each output, each gradient and each per-column sum,
//!    to within rounding;
//!
//! then a whole `Mlp` against a network composed of the pairs. This complements
//! `tests/suite/gradcheck.rs` (the model against finite differences, through the loss only) and
//! `tests/suite/reference_gradients.rs` (the model against an inline whole-network formula, also in
//! eval mode and over threads): a failure here names the kernel.
//!
//! `cargo test --test reference_kernels -- --nocapture` prints the largest error of each test.

#![allow(clippy::op_ref)] // `&a * &b` reads as the math and keeps every operand borrowed.

use bn_lab::config::{Activation, Init, NormConfig, Placement};
use bn_lab::data::{self, Stream};
use bn_lab::model::{Mlp, Mode, ParamKind};
use bn_lab::ops::{self, reference as r};
use bn_lab::spec::NetConfig;
use ndarray::{Array, Array1, Array2, ArrayView1, ArrayView2, Axis, Dimension};
use rand::Rng;
use rand_distr::StandardNormal;

/// Rows of every test batch.
const BATCH: usize = 9;
/// Columns of the kernel tests (the block's width).
const WIDTH: usize = 7;
/// BatchNorm's epsilon (the default).
const EPS: f64 = 1e-5;
/// Fused kernel vs reference pair, both in f64: the same math in another order, so only
/// rounding (~1e-16 per operation) separates them.
const ROUNDING_TOL: f64 = 1e-10;
/// Central differences with step `STEP`: truncation error ~ STEP^2 * |f'''|, rounding error
/// ~ 1e-16 * |L| / STEP, both near 1e-10 here; a wrong gradient is off by far more.
const STEP: f64 = 1e-5;
const FD_TOL: f64 = 1e-7;

// ---------------------------------------------------------------- helpers

/// Standard normal entries from stream `seed`.
fn randn(seed: u64, shape: (usize, usize)) -> Array2<f64> {
    let mut rng = data::rng(seed, Stream::Data);
    Array2::from_shape_simple_fn(shape, || rng.sample(StandardNormal))
}

fn randn1(seed: u64, n: usize) -> Array1<f64> {
    randn(seed, (1, n)).remove_axis(Axis(0))
}

/// Moves entries at least 0.1 away from 0, so that a finite-difference step never crosses the
/// kink of (leaky) ReLU.
fn away_from_kink(z: Array2<f64>) -> Array2<f64> {
    z.mapv(|v| {
        if v.abs() < 0.1 {
            v + 0.2f64.copysign(v)
        } else {
            v
        }
    })
}

/// `Some((gamma, beta))` away from 1 and 0 (so that their use is tested), or `None`.
fn scale_shift(affine: bool, seed: u64) -> Option<(Array1<f64>, Array1<f64>)> {
    affine.then(|| {
        (
            randn1(seed, WIDTH) * 0.3 + 1.0,
            randn1(seed + 1, WIDTH) * 0.5,
        )
    })
}

fn views(
    ss: &Option<(Array1<f64>, Array1<f64>)>,
) -> Option<(ArrayView1<'_, f64>, ArrayView1<'_, f64>)> {
    ss.as_ref().map(|(g, b)| (g.view(), b.view()))
}

/// Gamma and beta as the fused kernels take them: ones and zeros without scale/shift, as the
/// model's stand-ins.
fn fused_scale_shift(ss: &Option<(Array1<f64>, Array1<f64>)>) -> (Vec<f64>, Vec<f64>) {
    match ss {
        Some((g, b)) => (g.to_vec(), b.to_vec()),
        None => (vec![1.0; WIDTH], vec![0.0; WIDTH]),
    }
}

/// `||got - want|| / max(||got||, ||want||, scale)`: norm-wise, so that entries near 0 do not
/// dominate. `scale` sets what counts as small for a tensor whose true value is about 0 (the
/// column sums of BN's input gradient, a bias right before BN): the norm of what was summed.
fn rel_err<D: Dimension>(got: &Array<f64, D>, want: &Array<f64, D>, scale: f64) -> f64 {
    assert_eq!(got.shape(), want.shape());
    norm(&(got - want)) / norm(got).max(norm(want)).max(scale).max(f64::MIN_POSITIVE)
}

/// The Frobenius norm.
fn norm<D: Dimension>(m: &Array<f64, D>) -> f64 {
    m.mapv(|v| v * v).sum().sqrt()
}

/// Checks errors against one tolerance and remembers the largest, for the report at the end.
struct Worst {
    test: &'static str,
    tol: f64,
    err: f64,
    at: String,
}

impl Worst {
    fn new(test: &'static str, tol: f64) -> Self {
        Worst {
            test,
            tol,
            err: 0.0,
            at: String::new(),
        }
    }

    fn check<D: Dimension>(
        &mut self,
        what: &str,
        got: &Array<f64, D>,
        want: &Array<f64, D>,
        scale: f64,
    ) {
        let e = rel_err(got, want, scale);
        assert!(e < self.tol, "{}: {what} off by {e:e}", self.test);
        if e > self.err {
            self.err = e;
            self.at = what.to_string();
        }
    }

    fn report(&self) {
        if self.err == 0.0 {
            eprintln!("{}: every result bit for bit equal", self.test);
        } else {
            eprintln!(
                "{}: largest relative error {:.2e} ({}), tolerance {:.0e}",
                self.test, self.err, self.at, self.tol
            );
        }
    }
}

/// Central differences `(f(x + h e_i) - f(x - h e_i)) / 2h` for every element `i` of `x`.
fn numeric_grad<D: Dimension>(
    x: &Array<f64, D>,
    f: impl Fn(&Array<f64, D>) -> f64,
) -> Array<f64, D> {
    let mut g = Array::zeros(x.raw_dim());
    let mut xp = x.clone();
    let x0 = x.as_slice().expect("owned arrays are contiguous");
    for (i, gi) in g.iter_mut().enumerate() {
        let mut at = |v: f64| {
            xp.as_slice_mut().expect("owned arrays are contiguous")[i] = v;
            f(&xp)
        };
        let up = at(x0[i] + STEP);
        let down = at(x0[i] - STEP);
        at(x0[i]);
        *gi = (up - down) / (2.0 * STEP);
    }
    g
}

/// Batch statistics as the model computes them for the fused passes (`BatchNorm::batch_stats_of`):
/// `shift = mean_i(z)` with `ops::add_col_sums`, the biased variance with `ops::add_col_sq_dev`,
/// `inv_std = 1 / sqrt(var + eps)`.
fn fused_batch_stats(z: &Array2<f64>) -> (Vec<f64>, Vec<f64>) {
    let n = z.nrows() as f64;
    let mut shift = vec![0.0; z.ncols()];
    ops::add_col_sums(z.view(), &mut shift);
    shift.iter_mut().for_each(|s| *s /= n);
    let mut var = vec![0.0; z.ncols()];
    ops::add_col_sq_dev(z.view(), &shift, &mut var);
    let inv_std = var.iter().map(|v| 1.0 / (v / n + EPS).sqrt()).collect();
    (shift, inv_std)
}

fn arr(v: &[f64]) -> Array1<f64> {
    Array1::from(v.to_vec())
}

// ------------------------------------ 1. reference pairs vs finite differences

#[test]
fn linear_pair_matches_finite_differences() {
    let mut worst = Worst::new("linear vs finite differences", FD_TOL);
    let (x, w, b) = (randn(1, (BATCH, 5)), randn(2, (5, 4)), randn1(3, 4));
    // L = sum(z * g): its gradient with respect to z is g.
    let g = randn(4, (BATCH, 4));
    let loss = |x: &Array2<f64>, w: &Array2<f64>, b: &Array1<f64>| {
        (r::linear_forward(x.view(), w.view(), b.view()).0 * &g).sum()
    };
    let (_, cache) = r::linear_forward(x.view(), w.view(), b.view());
    let grads = r::linear_backward(g.view(), &cache);
    worst.check("dx", &grads.dx, &numeric_grad(&x, |x| loss(x, &w, &b)), 0.0);
    worst.check("dw", &grads.dw, &numeric_grad(&w, |w| loss(&x, w, &b)), 0.0);
    worst.check("db", &grads.db, &numeric_grad(&b, |b| loss(&x, &w, b)), 0.0);
    worst.report();
}

#[test]
fn activation_pair_matches_finite_differences_for_every_activation() {
    let mut worst = Worst::new("activation vs finite differences", FD_TOL);
    let z = away_from_kink(randn(5, (BATCH, WIDTH)) * 2.0);
    let g = randn(6, (BATCH, WIDTH));
    for act in Activation::ALL {
        let loss = |z: &Array2<f64>| (r::activation_forward(act, z.view()).0 * &g).sum();
        let (_, cache) = r::activation_forward(act, z.view());
        let dz = r::activation_backward(g.view(), &cache);
        worst.check(&format!("{act} dz"), &dz, &numeric_grad(&z, loss), 0.0);
    }
    worst.report();
}

/// BN's input with a mean and spread far from 0 and 1, so that normalising does something.
fn bn_input(seed: u64, batch: usize) -> Array2<f64> {
    randn(seed, (batch, WIDTH)) * 3.0 + 1.5
}

#[test]
fn batchnorm_pair_matches_finite_differences_with_affine() {
    let mut worst = Worst::new("batchnorm (affine) vs finite differences", FD_TOL);
    // Batch 3 is the smallest whose x_hat still depends on x (with 2 rows x_hat = +-1).
    for batch in [3, BATCH] {
        let x = bn_input(7, batch);
        let (gamma, beta) = scale_shift(true, 8).expect("affine");
        let g = randn(10, (batch, WIDTH));
        let loss = |x: &Array2<f64>, gamma: &Array1<f64>, beta: &Array1<f64>| {
            (r::batchnorm_forward(x.view(), Some((gamma.view(), beta.view())), EPS).0 * &g).sum()
        };
        let (_, cache) = r::batchnorm_forward(x.view(), Some((gamma.view(), beta.view())), EPS);
        let grads = r::batchnorm_backward(g.view(), &cache);
        let (dgamma, dbeta) = (grads.dgamma.expect("affine"), grads.dbeta.expect("affine"));
        let at = |what: &str| format!("{what}, batch {batch}");
        worst.check(
            &at("dx"),
            &grads.dx,
            &numeric_grad(&x, |x| loss(x, &gamma, &beta)),
            0.0,
        );
        worst.check(
            &at("dgamma"),
            &dgamma,
            &numeric_grad(&gamma, |gm| loss(&x, gm, &beta)),
            0.0,
        );
        worst.check(
            &at("dbeta"),
            &dbeta,
            &numeric_grad(&beta, |bt| loss(&x, &gamma, bt)),
            0.0,
        );
    }
    worst.report();
}

#[test]
fn batchnorm_pair_matches_finite_differences_without_affine() {
    let mut worst = Worst::new("batchnorm (no affine) vs finite differences", FD_TOL);
    for batch in [3, BATCH] {
        let x = bn_input(11, batch);
        let g = randn(12, (batch, WIDTH));
        let loss = |x: &Array2<f64>| (r::batchnorm_forward(x.view(), None, EPS).0 * &g).sum();
        let (_, cache) = r::batchnorm_forward(x.view(), None, EPS);
        let grads = r::batchnorm_backward(g.view(), &cache);
        assert!(grads.dgamma.is_none() && grads.dbeta.is_none());
        worst.check(
            &format!("dx, batch {batch}"),
            &grads.dx,
            &numeric_grad(&x, loss),
            0.0,
        );
    }
    worst.report();
}

#[test]
fn finite_differences_reject_a_batchnorm_backward_that_ignores_the_batch_statistics() {
    // The check must be able to fail: dx = gamma * inv_std * dy (treating the mean and variance
    // as constants, the eval-mode gradient) is wrong in train mode by a large margin.
    let x = bn_input(13, BATCH);
    let g = randn(14, (BATCH, WIDTH));
    let (_, cache) = r::batchnorm_forward(x.view(), None, EPS);
    let wrong = &g * &cache.inv_std;
    let numeric = numeric_grad(&x, |x| {
        (r::batchnorm_forward(x.view(), None, EPS).0 * &g).sum()
    });
    let e = rel_err(&wrong, &numeric, 0.0);
    assert!(e > 0.1, "a wrong gradient passed with relative error {e:e}");
}

#[test]
fn mse_pair_matches_finite_differences() {
    let mut worst = Worst::new("mse vs finite differences", FD_TOL);
    let (o, y) = (randn(15, (BATCH, 3)), randn(16, (BATCH, 3)));
    let (_, cache) = r::mse_forward(o.view(), y.view());
    let d_o = r::mse_backward(&cache);
    let numeric = numeric_grad(&o, |o| r::mse_forward(o.view(), y.view()).0);
    worst.check("do", &d_o, &numeric, 0.0);
    worst.report();
}

// ------------------------------------------ 2. fused kernels vs reference pairs

#[test]
fn linear_kernels_match_reference() {
    let mut worst = Worst::new("ops::linear_* vs reference", ROUNDING_TOL);
    let (x, w, b) = (
        randn(20, (BATCH, 5)),
        randn(21, (5, WIDTH)),
        randn1(22, WIDTH),
    );
    let dz = randn(23, (BATCH, WIDTH));
    let (z_ref, cache) = r::linear_forward(x.view(), w.view(), b.view());
    let grads = r::linear_backward(dz.view(), &cache);

    let mut z = Array2::zeros((BATCH, WIDTH));
    ops::linear_forward(x.view(), w.view(), b.view(), z.view_mut());
    worst.check("z", &z, &z_ref, 0.0);

    let (mut dw, mut db, mut dx) = (
        Array2::zeros(w.dim()),
        Array1::zeros(WIDTH),
        Array2::zeros(x.dim()),
    );
    ops::linear_backward(
        x.view(),
        w.view(),
        dz.view(),
        dw.view_mut(),
        db.view_mut(),
        Some((dx.view_mut(), false)),
    );
    worst.check("dw", &dw, &grads.dw, 0.0);
    worst.check("db", &db, &grads.db, 0.0);
    worst.check("dx", &dx, &grads.dx, 0.0);

    // A skip connection's path already in dx is added to, not overwritten.
    let skip = randn(24, x.dim());
    let mut dx_acc = skip.clone();
    ops::linear_backward(
        x.view(),
        w.view(),
        dz.view(),
        dw.view_mut(),
        db.view_mut(),
        Some((dx_acc.view_mut(), true)),
    );
    worst.check("dx + skip", &dx_acc, &(&grads.dx + &skip), 0.0);
    worst.report();
}

/// Balduzzi et al.'s residual branch scale beta, not 1, so that the kernels' use of it is tested.
const SKIP_SCALE: f64 = 0.7;

/// The skip connection `h = h_in + SKIP_SCALE * branch`.
fn residual<'a>(h_in: &'a Array2<f64>, h: &'a mut Array2<f64>) -> ops::Residual<'a, f64> {
    ops::Residual {
        h_in: h_in.view(),
        h: h.view_mut(),
        scale: SKIP_SCALE,
    }
}

/// A normaliser after the activation writes `y` into `h`, through the skip connection if `skip`.
fn hidden_out<'a>(
    h_in: &'a Array2<f64>,
    h: &'a mut Array2<f64>,
    skip: bool,
) -> ops::HiddenOut<'a, f64> {
    if skip {
        ops::HiddenOut::Residual(residual(h_in, h))
    } else {
        ops::HiddenOut::Plain(h.view_mut())
    }
}

/// LayerNorm's per-row statistics, written into `mean` and `inv_std`.
fn row_stats<'a>(mean: &'a mut [f64], inv_std: &'a mut [f64]) -> ops::RowStats<'a> {
    ops::RowStats {
        eps: EPS,
        mean,
        inv_std,
    }
}

#[test]
fn bias_act_forward_matches_reference_for_every_activation() {
    let mut worst = Worst::new("ops::bias_act_forward vs reference", ROUNDING_TOL);
    // A square block, so that the skip connection h = h_in + beta a applies.
    let (h_in, w, b) = (
        randn(30, (BATCH, WIDTH)),
        randn(31, (WIDTH, WIDTH)),
        randn1(32, WIDTH),
    );
    for act in Activation::ALL {
        for skip in [false, true] {
            let at = |what: &str| format!("{act}, skip {skip}: {what}");
            let (z, _) = r::linear_forward(h_in.view(), w.view(), b.view());
            let (a_ref, _) = r::activation_forward(act, z.view());

            // The fused pass gets h W without the bias, as the model's matrix product leaves it.
            let mut a = h_in.dot(&w);
            let mut sums = vec![0.0; WIDTH];
            let mut h = Array2::zeros((BATCH, WIDTH));
            let skip_io = skip.then(|| residual(&h_in, &mut h));
            ops::bias_act_forward(
                act,
                a.view_mut(),
                b.as_slice().expect("contiguous"),
                Some(&mut sums),
                skip_io,
            );
            worst.check(&at("a"), &a, &a_ref, 0.0);
            worst.check(
                &at("sum_i a"),
                &arr(&sums),
                &a_ref.sum_axis(Axis(0)),
                norm(&a_ref),
            );
            if skip {
                worst.check(&at("h"), &h, &(&h_in + &(&a_ref * SKIP_SCALE)), 0.0);
            }
        }
    }
    worst.report();
}

#[test]
fn bn_pre_forward_matches_reference_with_and_without_affine() {
    let mut worst = Worst::new("ops::bn_pre_forward vs reference", ROUNDING_TOL);
    let (h_in, w, b) = (
        randn(40, (BATCH, WIDTH)),
        randn(41, (WIDTH, WIDTH)) * 2.0,
        randn1(42, WIDTH),
    );
    for act in Activation::ALL {
        for affine in [false, true] {
            for skip in [false, true] {
                let at = |what: &str| format!("{act}, affine {affine}, skip {skip}: {what}");
                let ss = scale_shift(affine, 43);
                // a = act(BN(h W + b)), h = h_in + a.
                let (z, _) = r::linear_forward(h_in.view(), w.view(), b.view());
                let (y, bn) = r::batchnorm_forward(z.view(), views(&ss), EPS);
                let (a_ref, _) = r::activation_forward(act, y.view());

                // The model leaves the bias out of z: it only shifts the mean, which BN removes.
                let mut zx = h_in.dot(&w);
                let (shift, inv_std) = fused_batch_stats(&zx);
                let (gamma, beta) = fused_scale_shift(&ss);
                let mut a = Array2::zeros((BATCH, WIDTH));
                let mut h = Array2::zeros((BATCH, WIDTH));
                let skip_io = skip.then(|| residual(&h_in, &mut h));
                let coeffs = ops::BnCoeffs {
                    shift: &shift,
                    inv_std: &inv_std,
                    affine: ops::Affine {
                        gamma: &gamma,
                        beta: &beta,
                    },
                };
                ops::bn_pre_forward(act, zx.view_mut(), a.view_mut(), coeffs, skip_io);
                worst.check(&at("inv_std"), &arr(&inv_std), &bn.inv_std, 0.0);
                worst.check(&at("x_hat"), &zx, &bn.x_hat, 0.0);
                worst.check(&at("a"), &a, &a_ref, 0.0);
                if skip {
                    worst.check(&at("h"), &h, &(&h_in + &(&a_ref * SKIP_SCALE)), 0.0);
                }
            }
        }
    }
    worst.report();
}

#[test]
fn bn_post_forward_matches_reference_with_and_without_affine() {
    let mut worst = Worst::new("ops::bn_post_forward vs reference", ROUNDING_TOL);
    let (h_in, w, b) = (
        randn(50, (BATCH, WIDTH)),
        randn(51, (WIDTH, WIDTH)) * 2.0,
        randn1(52, WIDTH),
    );
    for act in Activation::ALL {
        for affine in [false, true] {
            for skip in [false, true] {
                let at = |what: &str| format!("{act}, affine {affine}, skip {skip}: {what}");
                let ss = scale_shift(affine, 53);
                // h = BN(act(h W + b)) (+ h_in).
                let (z, _) = r::linear_forward(h_in.view(), w.view(), b.view());
                let (a_ref, _) = r::activation_forward(act, z.view());
                let (y, bn) = r::batchnorm_forward(a_ref.view(), views(&ss), EPS);
                let h_ref = if skip { &h_in + &(&y * SKIP_SCALE) } else { y };

                let mut a = h_in.dot(&w);
                ops::bias_act_forward(
                    act,
                    a.view_mut(),
                    b.as_slice().expect("contiguous"),
                    None,
                    None,
                );
                let (shift, inv_std) = fused_batch_stats(&a);
                let (gamma, beta) = fused_scale_shift(&ss);
                let mut x_hat = Array2::zeros((BATCH, WIDTH));
                // As the model: a separate h only where it is not x_hat itself.
                let has_h = affine || skip;
                let mut h = Array2::zeros((BATCH, WIDTH));
                let h_out = has_h.then(|| hidden_out(&h_in, &mut h, skip));
                let coeffs = ops::BnCoeffs {
                    shift: &shift,
                    inv_std: &inv_std,
                    affine: ops::Affine {
                        gamma: &gamma,
                        beta: &beta,
                    },
                };
                ops::bn_post_forward(a.view(), x_hat.view_mut(), coeffs, h_out);
                worst.check(&at("a"), &a, &a_ref, 0.0);
                worst.check(&at("inv_std"), &arr(&inv_std), &bn.inv_std, 0.0);
                worst.check(&at("x_hat"), &x_hat, &bn.x_hat, 0.0);
                worst.check(&at("h"), if has_h { &h } else { &x_hat }, &h_ref, 0.0);
            }
        }
    }
    worst.report();
}

#[test]
fn act_backward_fused_matches_reference_for_every_activation() {
    let mut worst = Worst::new("ops::act_backward_fused vs reference", ROUNDING_TOL);
    let z = randn(60, (BATCH, WIDTH)) * 2.0;
    let dh = randn(61, (BATCH, WIDTH));
    for act in Activation::ALL {
        for skip in [false, true] {
            let at = |what: &str| format!("{act}, skip {skip}: {what}");
            let (a, cache) = r::activation_forward(act, z.view());
            let dz_ref = r::activation_backward(dh.view(), &cache);

            let mut dz = Array2::zeros((BATCH, WIDTH));
            let (mut db, mut sq) = (vec![0.0; WIDTH], vec![0.0; WIDTH]);
            let mut copy = Array2::zeros((BATCH, WIDTH));
            let copy_out = skip.then(|| copy.view_mut());
            ops::act_backward_fused(
                act,
                dh.view(),
                a.view(),
                dz.view_mut(),
                &mut db,
                &mut sq,
                copy_out,
            );
            worst.check(&at("dz"), &dz, &dz_ref, 0.0);
            worst.check(
                &at("db = sum_i dz"),
                &arr(&db),
                &dz_ref.sum_axis(Axis(0)),
                norm(&dz_ref),
            );
            worst.check(
                &at("sum_i dh^2"),
                &arr(&sq),
                &dh.mapv(|v| v * v).sum_axis(Axis(0)),
                0.0,
            );
            if skip {
                assert_eq!(copy, dh, "{}", at("the identity path copies dh"));
            }
        }
    }
    worst.report();
}

/// Scale and shift as the reference pairs take them.
type ScaleShift<'a> = Option<(ArrayView1<'a, f64>, ArrayView1<'a, f64>)>;

/// A reference normaliser's forward: `(x, scale/shift, eps) -> (y, cache)`.
type NormForward<C> = fn(ArrayView2<f64>, ScaleShift, f64) -> (Array2<f64>, C);

/// A reference normaliser pair (BatchNorm's or LayerNorm's): forward with its cache, backward.
struct NormPair<C> {
    forward: NormForward<C>,
    backward: fn(ArrayView2<f64>, &C) -> r::BatchNormGrads,
}

const BN_PAIR: NormPair<r::BatchNormCache> = NormPair {
    forward: r::batchnorm_forward,
    backward: r::batchnorm_backward,
};

const LN_PAIR: NormPair<r::LayerNormCache> = NormPair {
    forward: r::layernorm_forward,
    backward: r::layernorm_backward,
};

/// One block's normaliser and activation run forward and backward through the reference pairs.
struct RefBlock<C> {
    /// The branch's output: the activation's (pre) or the normaliser's (post).
    branch: Array2<f64>,
    /// The activation's output.
    a: Array2<f64>,
    /// The normaliser's cache.
    norm: C,
    /// The gradient reaching the normaliser's output.
    dy: Array2<f64>,
    grads: r::BatchNormGrads,
    /// The gradient reaching the block's pre-activation `z`.
    dz: Array2<f64>,
}

/// `act(norm(z))` (pre) or `norm(act(z))` (post), forward, then backward from `dh`.
fn reference_block<C>(
    pair: &NormPair<C>,
    (act, placement): (Activation, Placement),
    z: &Array2<f64>,
    dh: &Array2<f64>,
    ss: &Option<(Array1<f64>, Array1<f64>)>,
) -> RefBlock<C> {
    match placement {
        Placement::Pre => {
            let (y, norm) = (pair.forward)(z.view(), views(ss), EPS);
            let (a, act_cache) = r::activation_forward(act, y.view());
            let dy = r::activation_backward(dh.view(), &act_cache);
            let grads = (pair.backward)(dy.view(), &norm);
            RefBlock {
                branch: a.clone(),
                a,
                norm,
                dy,
                dz: grads.dx.clone(),
                grads,
            }
        }
        Placement::Post => {
            let (a, act_cache) = r::activation_forward(act, z.view());
            let (y, norm) = (pair.forward)(a.view(), views(ss), EPS);
            let grads = (pair.backward)(dh.view(), &norm);
            let dz = r::activation_backward(grads.dx.view(), &act_cache);
            RefBlock {
                branch: y,
                a,
                norm,
                dy: dh.clone(),
                grads,
                dz,
            }
        }
    }
}

/// One case of the fused BatchNorm backward against the reference: pass 1 (`dy`, its column
/// sums, the identity path's copy) and pass 2 (`dz`, `db`).
fn check_bn_backward_case(
    worst: &mut Worst,
    (act, affine, placement, skip): (Activation, bool, Placement, bool),
    z: &Array2<f64>,
    dh: &Array2<f64>,
) {
    let n = BATCH as f64;
    let at = |what: &str| format!("{act}, affine {affine}, {placement}, skip {skip}: {what}");
    let ss = scale_shift(affine, 72);
    let RefBlock {
        a,
        norm: bn,
        dy: dy_ref,
        grads,
        dz: dz_ref,
        ..
    } = reference_block(&BN_PAIR, (act, placement), z, dh, &ss);

    // Pass 1: dy and its column sums.
    let (pre_act, post_act) = match placement {
        Placement::Pre => (Some((act, a.view())), None),
        Placement::Post => (None, Some((act, a.view()))),
    };
    let mut d = Array2::zeros((BATCH, WIDTH));
    let (mut s_dy, mut s_dyx, mut sq) = (vec![0.0; WIDTH], vec![0.0; WIDTH], vec![0.0; WIDTH]);
    let mut copy = Array2::zeros((BATCH, WIDTH));
    let copy_out = skip.then(|| copy.view_mut());
    let sums = ops::BnSums {
        s_dy: &mut s_dy,
        s_dyx: &mut s_dyx,
        sq: &mut sq,
    };
    ops::bn_backward_sums(
        pre_act,
        dh.view(),
        bn.x_hat.view(),
        d.view_mut(),
        sums,
        copy_out,
    );
    worst.check(&at("dy"), &d, &dy_ref, 0.0);
    worst.check(
        &at("sum_i dh^2"),
        &arr(&sq),
        &dh.mapv(|v| v * v).sum_axis(Axis(0)),
        0.0,
    );
    if skip {
        assert_eq!(&copy, dh, "{}", at("the identity path copies dh"));
    }
    if affine {
        // The model reads dgamma and dbeta straight off the two sums.
        worst.check(
            &at("dgamma"),
            &arr(&s_dyx),
            grads.dgamma.as_ref().expect("affine"),
            0.0,
        );
        worst.check(
            &at("dbeta"),
            &arr(&s_dy),
            grads.dbeta.as_ref().expect("affine"),
            0.0,
        );
    }

    // Pass 2, with the coefficients the model forms between the passes.
    let (gamma, _) = fused_scale_shift(&ss);
    let k: Vec<f64> = gamma.iter().zip(&bn.inv_std).map(|(g, s)| g * s).collect();
    let m_dy: Vec<f64> = s_dy.iter().map(|s| s / n).collect();
    let m_dyx: Vec<f64> = s_dyx.iter().map(|s| s / n).collect();
    let mut db = vec![0.0; WIDTH];
    let coeffs = ops::BnGradCoeffs {
        k: &k,
        m_dy: &m_dy,
        m_dyx: &m_dyx,
        batch_stats: true,
    };
    ops::bn_backward_apply(d.view_mut(), bn.x_hat.view(), coeffs, post_act, &mut db);
    worst.check(&at("dz"), &d, &dz_ref, 0.0);
    worst.check(
        &at("db = sum_i dz"),
        &arr(&db),
        &dz_ref.sum_axis(Axis(0)),
        norm(&dz_ref),
    );
}

#[test]
fn bn_backward_passes_match_reference_for_both_placements_with_and_without_affine() {
    let mut worst = Worst::new(
        "ops::bn_backward_sums + bn_backward_apply vs reference",
        ROUNDING_TOL,
    );
    let z = randn(70, (BATCH, WIDTH)) * 2.0 + 0.5;
    let dh = randn(71, (BATCH, WIDTH));
    for act in Activation::ALL {
        for affine in [false, true] {
            for placement in [Placement::Pre, Placement::Post] {
                for skip in [false, true] {
                    check_bn_backward_case(&mut worst, (act, affine, placement, skip), &z, &dh);
                }
            }
        }
    }
    worst.report();
}

#[test]
fn mse_loss_matches_reference() {
    let mut worst = Worst::new("ops::mse_loss vs reference", ROUNDING_TOL);
    let (o, y) = (randn(80, (BATCH, 3)), randn(81, (BATCH, 3)));
    let (loss_ref, cache) = r::mse_forward(o.view(), y.view());
    let mut d_o = Array2::zeros(o.dim());
    let loss = ops::mse_loss(o.view(), y.view(), d_o.view_mut());
    worst.check("L", &arr(&[loss]), &arr(&[loss_ref]), 0.0);
    worst.check(
        "L (value only)",
        &arr(&[ops::mse_loss_value(o.view(), y.view())]),
        &arr(&[loss_ref]),
        0.0,
    );
    worst.check("do", &d_o, &r::mse_backward(&cache), 0.0);
    worst.report();
}

// ------------------------------------------ 3. a whole network of reference pairs

/// What the backward of one block needs from its forward, built from the pairs' caches.
struct BlockTape {
    linear: r::LinearCache,
    act: r::ActivationCache,
    bn: Option<r::BatchNormCache>,
    placement: Placement,
    skip: bool,
    /// `h = h_in + scale * branch` where `skip`.
    scale: f64,
}

/// Gradients of one block, in `Mlp::params_mut` order.
struct BlockGrads {
    linear: r::LinearGrads,
    bn: Option<r::BatchNormGrads>,
}

/// Forward and backward of `net`'s architecture and weights on `(x, y)`, composed of the
/// reference pairs (train mode): every parameter gradient in `params_mut` order, `dL/dX`, and
/// `||dL/dh_l||` per block.
fn reference_network(
    net: &Mlp<f64>,
    x: &Array2<f64>,
    y: &Array2<f64>,
) -> (Vec<Array2<f64>>, Array2<f64>, Vec<f64>) {
    let eps = net.config.norm.map_or(EPS, |bn| bn.eps);
    let mut h = x.clone();
    let mut tapes = Vec::new();
    for block in &net.blocks {
        let (z, linear) = r::linear_forward(h.view(), block.linear.w.view(), block.linear.b.view());
        let affine = block
            .bn
            .as_ref()
            .and_then(|bn| bn.affine.as_ref())
            .map(|ss| (ss.gamma.view(), ss.beta.view()));
        let (branch, act, bn) = match (&block.bn, block.placement) {
            (None, _) => {
                let (a, act) = r::activation_forward(block.act, z.view());
                (a, act, None)
            }
            (Some(_), Placement::Pre) => {
                let (y, bn) = r::batchnorm_forward(z.view(), affine, eps);
                let (a, act) = r::activation_forward(block.act, y.view());
                (a, act, Some(bn))
            }
            (Some(_), Placement::Post) => {
                let (a, act) = r::activation_forward(block.act, z.view());
                let (y, bn) = r::batchnorm_forward(a.view(), affine, eps);
                (y, act, Some(bn))
            }
        };
        h = if block.skip {
            &h + &(&branch * block.skip_scale)
        } else {
            branch
        };
        tapes.push(BlockTape {
            linear,
            act,
            bn,
            placement: block.placement,
            skip: block.skip,
            scale: block.skip_scale,
        });
    }
    let (o, out) = r::linear_forward(h.view(), net.out.w.view(), net.out.b.view());
    let (_, mse) = r::mse_forward(o.view(), y.view());

    let out_grads = r::linear_backward(r::mse_backward(&mse).view(), &out);
    let mut dh = out_grads.dx.clone();
    let mut signal = vec![0.0; tapes.len()];
    let mut block_grads = Vec::new();
    for (l, tape) in tapes.iter().enumerate().rev() {
        signal[l] = norm(&dh);
        // The branch's share of dL/dh: scaled by beta on a skip block.
        let dbranch = if tape.skip {
            &dh * tape.scale
        } else {
            dh.clone()
        };
        let (dz, bn) = match (&tape.bn, tape.placement) {
            (None, _) => (r::activation_backward(dbranch.view(), &tape.act), None),
            (Some(bn), Placement::Pre) => {
                let g = r::batchnorm_backward(
                    r::activation_backward(dbranch.view(), &tape.act).view(),
                    bn,
                );
                (g.dx.clone(), Some(g))
            }
            (Some(bn), Placement::Post) => {
                let g = r::batchnorm_backward(dbranch.view(), bn);
                (r::activation_backward(g.dx.view(), &tape.act), Some(g))
            }
        };
        let linear = r::linear_backward(dz.view(), &tape.linear);
        dh = if tape.skip {
            &linear.dx + &dh
        } else {
            linear.dx.clone()
        };
        block_grads.push(BlockGrads { linear, bn });
    }
    block_grads.reverse();

    let row = |v: &Array1<f64>| v.clone().insert_axis(Axis(0));
    let mut grads = Vec::new();
    for g in &block_grads {
        grads.push(g.linear.dw.clone());
        grads.push(row(&g.linear.db));
        if let Some(bn) = &g.bn {
            if let (Some(dgamma), Some(dbeta)) = (&bn.dgamma, &bn.dbeta) {
                grads.push(row(dgamma));
                grads.push(row(dbeta));
            }
        }
    }
    grads.push(out_grads.dw.clone());
    grads.push(row(&out_grads.db));
    (grads, dh, signal)
}

#[test]
fn mlp_gradients_match_a_network_composed_of_reference_pairs() {
    let mut worst = Worst::new(
        "Mlp::backward vs a network of reference pairs",
        ROUNDING_TOL,
    );
    let bns = [
        None,
        Some((true, Placement::Pre)),
        Some((false, Placement::Pre)),
        Some((true, Placement::Post)),
        Some((false, Placement::Post)),
    ];
    for act in Activation::ALL {
        for bn in bns {
            for residual in [false, true] {
                // d_in != width: the first block has no skip connection, the others do.
                let cfg = NetConfig {
                    d_in: 5,
                    width: 6,
                    d_out: 3,
                    depth: 3,
                    act,
                    init: Init::Xavier,
                    norm: bn.map(|(affine, placement)| NormConfig {
                        kind: bn_lab::config::NormKind::Batch,
                        affine,
                        placement,
                        ..NormConfig::default()
                    }),
                    residual,
                    // Balduzzi's beta-rescaled branch, so that its backward is tested too.
                    residual_scale: if residual { 0.6 } else { 1.0 },
                    block: None,
                    skip_init: false,
                };
                let d = data::linear_teacher::<f64>(3, 8, cfg.d_in, cfg.d_out);
                let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(3, Stream::Weights));
                let mut k = 0.0f64;
                for p in net.params_mut() {
                    if matches!(p.id.kind, ParamKind::Gamma | ParamKind::Beta) {
                        for v in p.value {
                            k += 1.0;
                            *v += 0.3 * (0.7 * k).sin();
                        }
                    }
                }
                let (grads_ref, dx_ref, signal_ref) = reference_network(&net, &d.x, &d.y);

                let o = net
                    .forward(d.x.view(), Mode::Train)
                    .expect("shapes match")
                    .to_owned();
                let mut d_o = Array2::zeros(o.dim());
                ops::mse_loss(o.view(), d.y.view(), d_o.view_mut());
                let dx = net
                    .backward_with_input_grad(d_o.view())
                    .expect("after forward")
                    .to_owned();
                let what = format!("{act}, {bn:?}, residual {residual}");
                worst.check(&format!("{what}: dL/dX"), &dx, &dx_ref, 0.0);
                worst.check(
                    &format!("{what}: ||dL/dh_l||"),
                    &Array1::from(net.grad_signal_norm.clone()),
                    &Array1::from(signal_ref),
                    0.0,
                );
                let params = net.params_mut();
                assert_eq!(params.len(), grads_ref.len(), "{what}");
                // Some true gradients are 0 and come out as rounding noise in both: a bias right
                // before BN, and beta of a linear block followed by BN (BN removes any shift). So
                // a block's biases, gammas and betas are measured against at least the norm of
                // its weight gradient (params_mut lists the weight first).
                let mut layer_scale = 0.0;
                for (p, g_ref) in params.iter().zip(&grads_ref) {
                    let g = p
                        .grad
                        .to_owned()
                        .into_shape_with_order(g_ref.dim())
                        .expect("same length");
                    if p.id.kind == ParamKind::Weight {
                        layer_scale = norm(g_ref);
                    }
                    let scale = if p.id.kind == ParamKind::Weight {
                        0.0
                    } else {
                        layer_scale
                    };
                    worst.check(&format!("{what}: {}", p.id), &g, g_ref, scale);
                }
            }
        }
    }
    worst.report();
}

#[test]
fn layernorm_pair_matches_finite_differences_with_and_without_affine() {
    let mut worst = Worst::new("layernorm vs finite differences", FD_TOL);
    // A batch of 1 is fine for LayerNorm: every row is standardised over its own units.
    for (batch, affine) in [(1, true), (BATCH, true), (BATCH, false)] {
        let x = bn_input(80, batch);
        let ss = scale_shift(affine, 81);
        let g = randn(82, (batch, WIDTH));
        let loss = |x: &Array2<f64>, ss: &Option<(Array1<f64>, Array1<f64>)>| {
            (r::layernorm_forward(x.view(), views(ss), EPS).0 * &g).sum()
        };
        let (y, cache) = r::layernorm_forward(x.view(), views(&ss), EPS);
        // Without scale/shift every row has mean 0 and (biased) variance var / (var + eps).
        if !affine {
            for row in y.rows() {
                assert!(row.mean().unwrap().abs() < 1e-12);
            }
        }
        let grads = r::layernorm_backward(g.view(), &cache);
        let at = |what: &str| format!("{what}, batch {batch}, affine {affine}");
        worst.check(
            &at("dx"),
            &grads.dx,
            &numeric_grad(&x, |x| loss(x, &ss)),
            0.0,
        );
        if let Some((gamma, beta)) = &ss {
            let dgamma = numeric_grad(gamma, |gm| loss(&x, &Some((gm.clone(), beta.clone()))));
            let dbeta = numeric_grad(beta, |bt| loss(&x, &Some((gamma.clone(), bt.clone()))));
            worst.check(&at("dgamma"), grads.dgamma.as_ref().unwrap(), &dgamma, 0.0);
            worst.check(&at("dbeta"), grads.dbeta.as_ref().unwrap(), &dbeta, 0.0);
        }
    }
    worst.report();
}

/// What the fused LayerNorm forward writes.
struct LnFused {
    a: Array2<f64>,
    x_hat: Array2<f64>,
    h: Array2<f64>,
    inv_std: Vec<f64>,
}

/// The fused LayerNorm forward of one block: `ln_pre_forward` from `h_in W` (the bias and the
/// skip fused in), or `ln_post_forward` from the activation of `z`.
fn ln_fused_forward(
    (act, placement, skip): (Activation, Placement, bool),
    (h_in, w, b): (&Array2<f64>, &Array2<f64>, &Array1<f64>),
    z: &Array2<f64>,
    gamma_beta: ops::Affine<f64>,
) -> LnFused {
    let (mut mean, mut inv_std) = (vec![0.0; BATCH], vec![0.0; BATCH]);
    let mut a = Array2::zeros((BATCH, WIDTH));
    let mut x_hat = Array2::zeros((BATCH, WIDTH));
    let mut h = Array2::zeros((BATCH, WIDTH));
    match placement {
        Placement::Pre => {
            x_hat.assign(&h_in.dot(w));
            ops::ln_pre_forward(
                act,
                x_hat.view_mut(),
                a.view_mut(),
                b.as_slice().unwrap(),
                gamma_beta,
                row_stats(&mut mean, &mut inv_std),
                skip.then(|| residual(h_in, &mut h)),
            );
        }
        Placement::Post => {
            a.assign(&z.mapv(|v| r::activation(act, v)));
            ops::ln_post_forward(
                a.view(),
                x_hat.view_mut(),
                gamma_beta,
                row_stats(&mut mean, &mut inv_std),
                Some(hidden_out(h_in, &mut h, skip)),
            );
        }
    }
    LnFused {
        a,
        x_hat,
        h,
        inv_std,
    }
}

/// One case of the fused LayerNorm kernels against [`reference_block`] with [`LN_PAIR`]: the
/// forward (`h`, `x_hat`, `a`), then the backward (`dy`, `dgamma`, `dbeta`, `dz`, `db`).
fn check_ln_case(
    worst: &mut Worst,
    (act, affine, placement, skip): (Activation, bool, Placement, bool),
    (h_in, w, b): (&Array2<f64>, &Array2<f64>, &Array1<f64>),
    dh: &Array2<f64>,
) {
    let at = |what: &str| format!("{act}, affine {affine}, {placement}, skip {skip}: {what}");
    let ss = scale_shift(affine, 94);
    let (gamma, beta) = fused_scale_shift(&ss);
    let gamma_beta = ops::Affine {
        gamma: &gamma,
        beta: &beta,
    };
    let (z, _) = r::linear_forward(h_in.view(), w.view(), b.view());
    let RefBlock {
        branch,
        a: a_ref,
        norm: ln,
        dy: dy_ref,
        dz: dz_ref,
        grads: ln_grads,
    } = reference_block(&LN_PAIR, (act, placement), &z, dh, &ss);
    let x_hat_ref = ln.x_hat;
    let h_ref = if skip {
        h_in + &(&branch * SKIP_SCALE)
    } else {
        branch.clone()
    };

    // Fused forward: `h` is written with a skip, and always after the activation.
    let LnFused {
        a,
        x_hat,
        h,
        inv_std,
    } = ln_fused_forward((act, placement, skip), (h_in, w, b), &z, gamma_beta);
    if skip || placement == Placement::Post {
        worst.check(&at("h"), &h, &h_ref, 0.0);
    }
    worst.check(&at("x_hat"), &x_hat, &x_hat_ref, 0.0);
    worst.check(&at("a"), &a, &a_ref, 0.0);

    // Fused backward: pass 1 (BN's column sums), the row pass, the bias sums.
    let (pre_act, post_act) = match placement {
        Placement::Pre => (Some((act, a.view())), None),
        Placement::Post => (None, Some((act, a.view()))),
    };
    let mut d = Array2::zeros((BATCH, WIDTH));
    let (mut s_dy, mut s_dyx, mut sq) = (vec![0.0; WIDTH], vec![0.0; WIDTH], vec![0.0; WIDTH]);
    let sums = ops::BnSums {
        s_dy: &mut s_dy,
        s_dyx: &mut s_dyx,
        sq: &mut sq,
    };
    ops::bn_backward_sums(pre_act, dh.view(), x_hat.view(), d.view_mut(), sums, None);
    worst.check(&at("dy"), &d, &dy_ref, 0.0);
    if affine {
        worst.check(
            &at("dgamma"),
            &arr(&s_dyx),
            ln_grads.dgamma.as_ref().unwrap(),
            0.0,
        );
        worst.check(
            &at("dbeta"),
            &arr(&s_dy),
            ln_grads.dbeta.as_ref().unwrap(),
            0.0,
        );
    }
    ops::ln_backward_apply(d.view_mut(), x_hat.view(), &gamma, &inv_std, post_act);
    worst.check(&at("dz"), &d, &dz_ref, norm(&dz_ref));
    let mut db = vec![0.0; WIDTH];
    ops::add_col_sums(d.view(), &mut db);
    worst.check(
        &at("db = sum_i dz"),
        &arr(&db),
        &dz_ref.sum_axis(Axis(0)),
        norm(&dz_ref),
    );
}

/// The fused LayerNorm kernels (`ln_pre_forward`, `ln_post_forward`, and the backward of
/// `bn_backward_sums` + `ln_backward_apply` + the bias column sums) against the reference pair,
/// for every activation, with and without scale/shift, both placements, with and without a skip.
#[test]
fn ln_kernels_match_reference_for_both_placements_with_and_without_affine() {
    let mut worst = Worst::new("ops::ln_* vs reference", ROUNDING_TOL);
    let (h_in, w, b) = (
        randn(90, (BATCH, WIDTH)),
        randn(91, (WIDTH, WIDTH)) * 2.0,
        randn1(92, WIDTH),
    );
    let dh = randn(93, (BATCH, WIDTH));
    for act in Activation::ALL {
        for affine in [false, true] {
            for placement in [Placement::Pre, Placement::Post] {
                for skip in [false, true] {
                    check_ln_case(
                        &mut worst,
                        (act, affine, placement, skip),
                        (&h_in, &w, &b),
                        &dh,
                    );
                }
            }
        }
    }
    worst.report();
}
