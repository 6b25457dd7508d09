//! Finite-difference gradient checks in f64, shared by the tests and `bn-lab gradcheck`.
//!
//! For every parameter element `p` (and every input element), the central difference
//! `(L(p + h) - L(p - h)) / 2h` is compared with the hand-written backward pass. A tensor's
//! error is the norm-wise relative error
//! `||g_analytic - g_numeric|| / max(||g_analytic||, ||g_numeric||, ZERO_GRAD_NORM * max(1, |L|))`.
//!
//! Element-wise relative errors are meaningless for entries near 0, and so is a relative error
//! of a tensor whose true gradient is 0 (the bias before a BatchNorm): there the difference
//! quotient is pure rounding noise, about `eps * |L| / h` per element (~1e-11 |L| for the
//! default `h = 1e-5`, which is also small enough that a ReLU kink is rarely crossed), so norms
//! are compared against at least `ZERO_GRAD_NORM * max(1, |L|)`. A wrong gradient of a tensor
//! whose norm is below that floor still shows, as an error of `||error|| / floor`.

use ndarray::{Array2, ArrayD, ArrayView2};
use serde::Serialize;

use crate::config::{BnNoise, Loss};
use crate::data;
use crate::model::{Mlp, Mode};
use crate::spec::NetConfig;

use crate::stats::{Num, frobenius_norm};
use crate::train::Progress;

/// Gradient norms below this (times `max(1, |L|)`) count as "zero" in the relative error's denominator.
pub const ZERO_GRAD_NORM: f64 = 1e-4;

/// The check of one tensor.
#[derive(Clone, Debug, Serialize)]
pub struct TensorCheck {
    /// `layers.3.weight`, `out.bias`, `input`, ...
    pub name: String,
    pub len: usize,
    pub analytic_norm: Num,
    pub numeric_norm: Num,
    /// `||a - n|| / max(||a||, ||n||, ZERO_GRAD_NORM * max(1, |L|))`.
    pub rel_error: Num,
    /// `max_i |a_i - n_i|`.
    pub max_abs_error: Num,
}

/// Result of checking a whole network.
#[derive(Clone, Debug, Serialize)]
pub struct GradCheck {
    pub config: NetConfig,
    pub batch: usize,
    pub seed: u64,
    pub step: f64,
    pub mode: Mode,
    /// The loss function checked through (`mse` or `ce`).
    pub loss_fn: Loss,
    pub loss: f64,
    pub tensors: Vec<TensorCheck>,
}

impl GradCheck {
    /// The largest relative error over all tensors (NaN if any is NaN).
    pub fn max_rel_error(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.rel_error.0)
            .fold(0.0, |a, b| if b.is_nan() || b > a { b } else { a })
    }
}

fn loss_at(
    net: &mut Mlp<f64>,
    x: ArrayView2<f64>,
    y: ArrayView2<f64>,
    mode: Mode,
    loss_fn: Loss,
) -> f64 {
    let o = net
        .forward(x, mode)
        .expect("shapes were checked when the net was built");
    loss_fn.value(o, y)
}

/// Compare an analytic gradient with a numeric one (see the module docs for the error measure).
pub fn compare(
    name: String,
    analytic: &ArrayD<f64>,
    numeric: &ArrayD<f64>,
    loss: f64,
) -> TensorCheck {
    let diff = analytic - numeric;
    let (na, nn, nd) = (
        frobenius_norm(analytic),
        frobenius_norm(numeric),
        frobenius_norm(&diff),
    );
    let denom = na.max(nn).max(ZERO_GRAD_NORM * loss.abs().max(1.0));
    let rel = if nd == 0.0 { 0.0 } else { nd / denom };
    let max_abs = diff.iter().fold(0.0f64, |a, &d| a.max(d.abs()));
    TensorCheck {
        name,
        len: analytic.len(),
        analytic_norm: Num(na),
        numeric_norm: Num(nn),
        rel_error: Num(rel),
        max_abs_error: Num(max_abs),
    }
}

/// Elements [`check`] perturbs (every parameter and every input element), each costing two
/// forward passes: the units its progress callback counts.
pub fn perturbations(config: &NetConfig, batch: usize) -> f64 {
    config.param_count() + batch as f64 * config.d_in as f64
}

/// Work of one layer's forward beyond its arithmetic (kernel calls, small buffers), in
/// floating-point operations of equal time: measured, a deep narrow net's forward costs about
/// this per layer.
const LAYER_OVERHEAD_OPS: f64 = 2e4;

/// Cost of a check in floating-point operations (or their time's worth): two forward passes
/// per perturbation, each `2 * batch * params` in its matrix products plus a fixed cost per
/// layer. About 1e10 per second here.
pub fn cost_ops(config: &NetConfig, batch: usize) -> f64 {
    let forward = 2.0 * batch as f64 * config.param_count()
        + LAYER_OVERHEAD_OPS * (config.depth as f64 + 1.0);
    2.0 * perturbations(config, batch) * forward
}

/// Check every parameter tensor and the input of a net built from `config` on the
/// linear-teacher batch of `seed`, with central differences of step `step` (SkipInit's and
/// Fixup's gains set to [`CHECK_GAIN`] first; Fixup's net at its He draws, see `drawn`).
/// The config must have been validated.
pub fn check(config: &NetConfig, batch: usize, seed: u64, step: f64, mode: Mode) -> GradCheck {
    check_with_progress(config, batch, seed, step, mode, Loss::Mse, &|_| {})
}

/// [`check`] through `loss_fn` (cross-entropy: the teacher's argmax as the class, see
/// [`data::teacher_batch`]).
pub fn check_loss(
    config: &NetConfig,
    batch: usize,
    seed: u64,
    step: f64,
    mode: Mode,
    loss_fn: Loss,
) -> GradCheck {
    check_with_progress(config, batch, seed, step, mode, loss_fn, &|_| {})
}

/// [`check`], calling `progress.units(1)` after each perturbed element (parameters first, then the
/// input): [`perturbations`] units in all. The progress calls change no number.
pub fn check_with_progress(
    config: &NetConfig,
    batch: usize,
    seed: u64,
    step: f64,
    mode: Mode,
    loss_fn: Loss,
    progress: Progress,
) -> GradCheck {
    check_impl(config, batch, seed, step, mode, loss_fn, None, progress)
}

/// [`check`] on noisy BN ([`BnNoise`], drawn from the `Noise` stream of `seed`): in train mode
/// every forward of the check uses the one set of noise drawn by the first (as within one
/// training step), in eval mode its mean. `config` must have BatchNorm before the activation.
pub fn check_noisy(
    config: &NetConfig,
    batch: usize,
    seed: u64,
    step: f64,
    mode: Mode,
    noise: BnNoise,
) -> GradCheck {
    check_impl(
        config,
        batch,
        seed,
        step,
        mode,
        Loss::Mse,
        Some(noise),
        &|_| {},
    )
}

/// SkipInit's gain at which [`check`] differentiates. At its initial 0 every branch gradient is
/// exactly 0 and agrees with any difference quotient, which would check nothing but the gain.
pub const CHECK_GAIN: f64 = 0.5;

/// Set every branch gain of `net` (SkipInit's or Fixup's) to [`CHECK_GAIN`] (nothing to do
/// without one).
fn set_gains(net: &mut Mlp<f64>) {
    for unit in &mut net.units {
        if let Some(g) = &mut unit.gain {
            g.alpha.fill(CHECK_GAIN);
        }
    }
}

/// The config whose net [`check`] differentiates: Fixup's model (the gain on each branch) at
/// its He draws, before Fixup zeroes each branch's last matrix and the head. At Fixup's own
/// starting point every gradient below the zero head is exactly 0 and agrees with any
/// difference quotient, which would check nothing but the head.
fn drawn(config: &NetConfig) -> std::borrow::Cow<'_, NetConfig> {
    if config.init != crate::config::Init::Fixup {
        return std::borrow::Cow::Borrowed(config);
    }
    // SkipInit's net is Fixup's with another starting gain; `set_gains` sets it either way.
    std::borrow::Cow::Owned(NetConfig {
        init: crate::config::Init::He,
        skip_init: true,
        ..config.clone()
    })
}

#[allow(clippy::too_many_arguments)]
fn check_impl(
    config: &NetConfig,
    batch: usize,
    seed: u64,
    step: f64,
    mode: Mode,
    loss_fn: Loss,
    noise: Option<BnNoise>,
    progress: Progress,
) -> GradCheck {
    let data = data::teacher_batch::<f64>(loss_fn, seed, batch, config.d_in, config.d_out);
    let mut net = Mlp::<f64>::new(&drawn(config), &mut data::rng(seed, data::Stream::Weights));
    set_gains(&mut net);
    if let Some(noise) = noise {
        net.set_bn_noise(noise, data::rng(seed, data::Stream::Noise))
            .expect("noisy BN needs BatchNorm before the activation");
    }
    if mode == Mode::Eval {
        // Give the running statistics realistic values: one train-mode pass over a different batch.
        let warm =
            data::linear_teacher::<f64>(seed.wrapping_add(1), batch, config.d_in, config.d_out);
        net.forward(warm.x.view(), Mode::Train)
            .expect("shapes match the config");
    }
    let (x, y) = (data.x.view(), data.y.view());

    // Analytic gradients.
    let o = net
        .forward(x, mode)
        .expect("shapes match the config")
        .to_owned();
    let mut d_o = Array2::zeros(o.dim());
    let loss = loss_fn.loss_and_grad(o.view(), y, d_o.view_mut());
    let dx = net
        .backward_with_input_grad(d_o.view())
        .expect("forward was called")
        .to_owned();
    let analytic: Vec<(String, ArrayD<f64>)> = net
        .params_mut()
        .into_iter()
        .map(|p| (p.id.to_string(), p.grad.to_owned()))
        .collect();

    // Central differences, parameter by parameter. The forward in between does not change
    // gradients' meaning: in train mode BN uses batch statistics, so running statistics do not
    // enter the loss; in eval mode they are not updated.
    let mut tensors = Vec::new();
    for (i, (name, grad)) in analytic.iter().enumerate() {
        let mut numeric = ArrayD::zeros(grad.raw_dim());
        for k in 0..grad.len() {
            let orig = flat_get(&mut net, i, k);
            flat_set(&mut net, i, k, orig + step);
            let lp = loss_at(&mut net, x, y, mode, loss_fn);
            flat_set(&mut net, i, k, orig - step);
            let lm = loss_at(&mut net, x, y, mode, loss_fn);
            flat_set(&mut net, i, k, orig);
            numeric.as_slice_mut().expect("fresh arrays are contiguous")[k] =
                (lp - lm) / (2.0 * step);
            progress.units(1);
        }
        tensors.push(compare(name.clone(), grad, &numeric, loss));
    }

    let mut x_pert = data.x.clone();
    let mut numeric = Array2::zeros(x_pert.dim());
    for idx in ndarray::indices(x_pert.dim()) {
        let orig = x_pert[idx];
        x_pert[idx] = orig + step;
        let lp = loss_at(&mut net, x_pert.view(), y, mode, loss_fn);
        x_pert[idx] = orig - step;
        let lm = loss_at(&mut net, x_pert.view(), y, mode, loss_fn);
        x_pert[idx] = orig;
        numeric[idx] = (lp - lm) / (2.0 * step);
        progress.units(1);
    }
    tensors.push(compare(
        "input".to_string(),
        &dx.into_dyn(),
        &numeric.into_dyn(),
        loss,
    ));

    GradCheck {
        config: config.clone(),
        batch,
        seed,
        step,
        mode,
        loss_fn,
        loss,
        tensors,
    }
}

/// Element `k` (row-major) of parameter tensor `i`: direct indexing for the contiguous
/// tensors the model holds (walking an iterator to `k` made a check quadratic in its size).
fn flat_get(net: &mut Mlp<f64>, i: usize, k: usize) -> f64 {
    let mut ps = net.params_mut();
    match ps[i].value.as_slice_mut() {
        Some(v) => v[k],
        None => *ps[i].value.iter().nth(k).expect("index within the tensor"),
    }
}

fn flat_set(net: &mut Mlp<f64>, i: usize, k: usize, v: f64) {
    let mut ps = net.params_mut();
    let value = &mut ps[i].value;
    match value.as_slice_mut() {
        Some(s) => s[k] = v,
        None => *value.iter_mut().nth(k).expect("index within the tensor") = v,
    }
}
