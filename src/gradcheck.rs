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
//!
//! A check costs two forward passes per perturbed element, so it grows with the square of the
//! network's size: [`cost`] estimates it before anything runs and the CLI refuses a check above
//! [`MAX_OPS`]; [`check_with_progress`] reports one unit per perturbed element.

use ndarray::{Array2, ArrayD, ArrayView2};
use serde::Serialize;

use crate::config::NetConfig;
use crate::data;
use crate::model::{Mlp, Mode};
use crate::ops;
use crate::stats::{Num, frobenius_norm};
use crate::train::Progress;

/// Gradient norms below this (times `max(1, |L|)`) count as "zero" in the relative error's denominator.
pub const ZERO_GRAD_NORM: f64 = 1e-4;

/// Most work a check may take, in the operations [`cost`] counts: about two to three minutes on
/// one core of the machine the model was calibrated on, where the default depth 3 at width 140
/// (8e10 operations) takes 11 to 14 s. Width 300 (1.4e12) and depth 2000 (5e12) are refused.
pub const MAX_OPS: f64 = 1e12;

/// Fixed cost of one layer's forward pass, in multiply-adds: the time a small forward spends per
/// layer besides its matrix product (measured: about 1.6 us, 9,000 multiply-adds' worth).
pub const LAYER_OVERHEAD_OPS: f64 = 9e3;
/// Cost of the element-wise work (bias, BatchNorm, activation, loss) per hidden value of a
/// forward pass, in multiply-adds.
pub const ELEMENT_OVERHEAD_OPS: f64 = 50.0;

/// What a check costs, estimated from the network's shape alone (in `f64`, so absurd sizes do
/// not overflow).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cost {
    /// Elements perturbed: every trainable parameter and every input element.
    pub elements: f64,
    /// Trainable parameters.
    pub params: f64,
    /// Forward passes: two per perturbed element (the analytic pass is negligible beside them).
    pub forward_passes: f64,
    /// Operations of one forward pass: `batch * params` multiply-adds plus
    /// [`LAYER_OVERHEAD_OPS`] per layer and [`ELEMENT_OVERHEAD_OPS`] per hidden value.
    pub ops_per_pass: f64,
    /// `forward_passes * ops_per_pass`.
    pub ops: f64,
}

/// Estimate the cost of [`check`] on `config` with `batch` samples.
pub fn cost(config: &NetConfig, batch: usize) -> Cost {
    let (b, w, din, dout, depth) = (
        batch as f64,
        config.width as f64,
        config.d_in as f64,
        config.d_out as f64,
        config.depth as f64,
    );
    let mut params = din * w + w + (depth - 1.0) * (w * w + w) + w * dout + dout;
    if config.bn.is_some_and(|bn| bn.affine) {
        params += 2.0 * w * depth;
    }
    let elements = params + b * din;
    let forward_passes = 2.0 * elements;
    let ops_per_pass =
        b * params + (depth + 1.0) * LAYER_OVERHEAD_OPS + b * w * depth * ELEMENT_OVERHEAD_OPS;
    Cost {
        elements,
        params,
        forward_passes,
        ops_per_pass,
        ops: forward_passes * ops_per_pass,
    }
}

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

fn loss_at(net: &mut Mlp<f64>, x: ArrayView2<f64>, y: ArrayView2<f64>, mode: Mode) -> f64 {
    let o = net
        .forward(x, mode)
        .expect("shapes were checked when the net was built");
    ops::mse_loss_value(o, y)
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

/// Check every parameter tensor and the input of a net built from `config` on the
/// linear-teacher batch of `seed`, with central differences of step `step`.
/// The config must have been validated.
pub fn check(config: &NetConfig, batch: usize, seed: u64, step: f64, mode: Mode) -> GradCheck {
    check_with_progress(config, batch, seed, step, mode, &|_| {})
}

/// [`check`], calling `progress(1)` after each perturbed element (parameters first, then the
/// input): `cost(config, batch).elements` units in all. The progress calls change no number.
pub fn check_with_progress(
    config: &NetConfig,
    batch: usize,
    seed: u64,
    step: f64,
    mode: Mode,
    progress: Progress,
) -> GradCheck {
    let data = data::linear_teacher::<f64>(seed, batch, config.d_in, config.d_out);
    let mut net = Mlp::<f64>::new(config, &mut data::rng(seed, data::Stream::Weights));
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
    let loss = ops::mse_loss(o.view(), y, d_o.view_mut());
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
            let lp = loss_at(&mut net, x, y, mode);
            flat_set(&mut net, i, k, orig - step);
            let lm = loss_at(&mut net, x, y, mode);
            flat_set(&mut net, i, k, orig);
            numeric.as_slice_mut().expect("fresh arrays are contiguous")[k] =
                (lp - lm) / (2.0 * step);
            progress(1);
        }
        tensors.push(compare(name.clone(), grad, &numeric, loss));
    }

    let mut x_pert = data.x.clone();
    let mut numeric = Array2::zeros(x_pert.dim());
    for idx in ndarray::indices(x_pert.dim()) {
        let orig = x_pert[idx];
        x_pert[idx] = orig + step;
        let lp = loss_at(&mut net, x_pert.view(), y, mode);
        x_pert[idx] = orig - step;
        let lm = loss_at(&mut net, x_pert.view(), y, mode);
        x_pert[idx] = orig;
        numeric[idx] = (lp - lm) / (2.0 * step);
        progress(1);
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
        loss,
        tensors,
    }
}

fn flat_get(net: &mut Mlp<f64>, i: usize, k: usize) -> f64 {
    let ps = net.params_mut();
    *ps[i].value.iter().nth(k).expect("index within the tensor")
}

fn flat_set(net: &mut Mlp<f64>, i: usize, k: usize, v: f64) {
    let mut ps = net.params_mut();
    *ps[i]
        .value
        .iter_mut()
        .nth(k)
        .expect("index within the tensor") = v;
}
