//! `bn-lab landscape`: how smooth is the loss along the path training takes, with and without
//! BatchNorm (Santurkar et al. 2018, "How Does Batch Normalization Help Optimization?"), and a
//! 2-D slice of the loss around the trained weights (Li et al. 2018, "Visualizing the Loss
//! Landscape of Neural Nets").
//!
//! Probe at step t, with weights `theta`, mini-batch B and gradient `g = grad L_B(theta)`:
//! for each step size `eta_k = m_k * lr` (default `m = 0.5, 1, ..., 4`)
//!
//! ```text
//! theta_k = theta - eta_k g
//! loss variation          [min, max] of L_B over {theta, theta_1, ..., theta_K}
//! gradient predictiveness ||grad L_B(theta_k) - g||            (band over k)
//! effective beta          max_k ||grad L_B(theta_k) - g|| / (eta_k ||g||)
//! ```
//!
//! For a quadratic `L = 1/2 theta^T H theta + b^T theta` the gradient moves by `-eta H g`, so every
//! ratio equals `||H u||` with `u = g / ||g||`: the effective beta is the curvature the gradient
//! direction actually meets, a lower bound on the global Lipschitz constant of the gradient.
//!
//! BN mode of the probes: train mode (batch statistics) on the same mini-batch the training
//! step uses, so each probe measures the loss function the optimiser is descending. Probes run
//! on a copy of the network: the training run's weights, gradients and running statistics are
//! never touched, so probing does not change the trajectory.

use ndarray::{Array2, Ix2, s};
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::StandardNormal;
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{
    ConfigError, Dtype, Normaliser, at_least, at_most, at_most_values, distinct_numbers, finite_in,
};
use crate::data::{self, Batch, Stream};
use crate::experiment::TrainedArm;
use crate::experiment::pass_macs;
use crate::experiment::{ArmJob, Cost, Experiment, MeasuredTrainConfig, Plan, Progress, ToolInfo};
use crate::float::Float;
use crate::limits::MAX_PROBES;
use crate::memory::Footprint;
use crate::model::{Mlp, Mode, ParamKind};

use crate::experiment::ExperimentArgs;
use crate::flags::{MEASURED_RENAMES, MeasuredTrainArgs, NetArgs, OutputArgs, Renames, count};
use crate::limits::MAX_SAMPLES;
use crate::stats::{self, Num, fmt_num, nums};
use crate::stats::{dist, max_nan, median_nan, min_nan, norm};
use crate::train::{
    self, Tagged, Trainer, grads_flat_into, loss_and_grad, params_flat, set_params_flat,
    step_units, units,
};
use clap::Args;

/// A validated `landscape` configuration: everything needed to reproduce the numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LandscapeConfig {
    /// The training runs that are probed.
    #[serde(flatten)]
    pub run: MeasuredTrainConfig,
    /// Probe step sizes as multiples of `lr`.
    pub probe_multipliers: Vec<f64>,
    /// BN mode of every probe and of the slice: always train mode (batch statistics).
    pub probe_bn_mode: Mode,
    /// Slice grid: `slice_grid x slice_grid` points with coordinates in `[-slice_span, slice_span]`.
    pub slice_grid: usize,
    pub slice_span: f64,
    /// The slice's loss is computed on the first `slice_samples` training samples, as one batch.
    pub slice_samples: usize,
}

pub use crate::limits::MAX_SLICE_GRID;

impl LandscapeConfig {
    /// Probe step sizes `eta_k = m_k * lr`, with the learning rate after warmup: the probes
    /// keep one scale over the run, also while `--warmup-steps` shrinks the step training takes.
    pub fn step_sizes(&self) -> Vec<f64> {
        self.probe_multipliers
            .iter()
            .map(|m| m * self.run.sgd.lr)
            .collect()
    }
}

impl Plan for LandscapeConfig {
    /// Check every field and every network, with the copies the run keeps alive, before
    /// anything is allocated.
    fn validate(&self) -> Result<(), ConfigError> {
        self.run.validate()?;
        self.run
            .net
            .one_layer_blocks("compares one-layer arms layer by layer")?;
        distinct_numbers("probe_multipliers", &self.probe_multipliers)?;
        at_most_values("probe_multipliers", MAX_PROBES, &self.probe_multipliers)?;
        for &m in &self.probe_multipliers {
            finite_in(
                "probe_multipliers",
                "> 0 and at most 1000 (a multiple of lr)",
                m,
                |v| v > 0.0 && v <= crate::limits::MAX_PROBE_MULTIPLE,
            )?;
        }
        at_least("slice_grid", 3, self.slice_grid)?;
        at_most("slice_grid", MAX_SLICE_GRID, self.slice_grid)?;
        finite_in("slice_span", "> 0 and at most 1000", self.slice_span, |v| {
            v > 0.0 && v <= crate::limits::MAX_SLICE_SPAN
        })?;
        at_least("slice_samples", 1, self.slice_samples)?;
        if self.slice_samples > self.run.data.n_train {
            return Err(ConfigError::Invalid {
                field: "slice_samples",
                message: format!(
                    "must be at most the {} training samples (got {})",
                    self.run.data.n_train, self.slice_samples
                ),
            });
        }
        for &norm in &self.run.norms {
            // The slice runs one batch of slice_samples, so BN needs two of them as well.
            self.run
                .net(norm)
                .validate_as(self.slice_samples, "slice_samples")?;
        }
        Ok(())
    }

    /// Per arm: the training net, a probe copy and up to two slice copies (on up to the
    /// largest batch any of them runs), five flat f64 copies of the parameters (the probes'
    /// and the slice's directions and points), per measured step three numbers per probe
    /// step size, and the slice's grid.
    fn footprint(&self) -> Footprint {
        let jobs = self.jobs();
        let per_point = 4.0 + 3.0 * self.probe_multipliers.len() as f64;
        let arms = jobs.len() as f64;
        let params = jobs.iter().map(|j| j.net.param_count()).fold(0.0, f64::max);
        let grid = (self.slice_grid as f64).powi(2);
        self.run
            .footprint(&jobs, per_point)
            .add("networks", arms * 5.0 * 8.0 * params, &["depth", "width"])
            .records(arms * grid, &["slice_grid"])
    }

    fn costs(&self) -> Vec<Cost> {
        self.jobs().iter().map(ArmJob::cost).collect()
    }

    /// Every arm's passes: its steps, measurements and evaluations.
    fn macs(&self) -> f64 {
        let rows = self.run.net.batch;
        self.jobs()
            .iter()
            .map(|j| pass_macs(j.units, &j.net, rows))
            .sum()
    }
}

impl LandscapeConfig {
    /// Every arm [`run`] trains (side by side), in legend order: each reports its training
    /// with its probes and the slice ([`slice_units`]; an arm that diverged counts it when it
    /// skips it), and holds the training net, a probe copy and up to two slice copies (on up to
    /// the largest batch any of them runs).
    pub fn jobs(&self) -> Vec<ArmJob> {
        let samples = self
            .run
            .net
            .batch
            .max(self.slice_samples)
            .max(self.run.data.n_test);
        let units = self
            .run
            .arm_units(probe_units(self))
            .saturating_add(slice_units(self));
        self.run
            .norms
            .iter()
            .map(|&norm| self.run.arm_job(norm, units, samples, 4))
            .collect()
    }

    /// Slice coordinates, `slice_grid` values evenly from `-slice_span` to `slice_span`.
    pub fn slice_coords(&self) -> Vec<f64> {
        let n = self.slice_grid;
        (0..n)
            .map(|i| -self.slice_span + 2.0 * self.slice_span * i as f64 / (n - 1) as f64)
            .collect()
    }
}

// ------------------------------------------------------------------ the measures

/// Santurkar et al.'s three measures along one gradient path (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct PathProbe {
    /// `L(theta)`.
    pub loss_start: f64,
    /// `||g||`.
    pub grad_norm: f64,
    /// `eta_k`.
    pub step_sizes: Vec<f64>,
    /// `L(theta - eta_k g)`.
    pub losses: Vec<f64>,
    /// `||grad L(theta - eta_k g) - g||`.
    pub grad_dist: Vec<f64>,
    /// `grad_dist_k / (eta_k ||g||)`: gradient change per unit distance moved.
    pub smoothness: Vec<f64>,
}

impl PathProbe {
    /// `[min, max]` of the loss over the start and every point of the path (NaN if any is NaN).
    pub fn loss_range(&self) -> (f64, f64) {
        let all = || std::iter::once(self.loss_start).chain(self.losses.iter().copied());
        (min_nan(all()), max_nan(all()))
    }

    /// The effective beta-smoothness: the largest gradient change per distance moved.
    pub fn beta(&self) -> f64 {
        max_nan(self.smoothness.iter().copied())
    }
}

/// Move from `theta` along `-g` by each of `step_sizes` and record the loss and the gradient
/// there. `loss_grad(theta', grad_out)` returns `L(theta')` and writes `grad L(theta')` into
/// `grad_out` (cleared and refilled); it is the only access to the function being probed, so
/// the same code measures a network or a known quadratic.
pub fn probe_path(
    theta: &[f64],
    loss_start: f64,
    g: &[f64],
    step_sizes: &[f64],
    mut loss_grad: impl FnMut(&[f64], &mut Vec<f64>) -> f64,
) -> PathProbe {
    let grad_norm = norm(g);
    let mut point = vec![0.0; theta.len()];
    let mut gk = Vec::with_capacity(g.len());
    let (mut losses, mut grad_dist, mut smoothness) = (Vec::new(), Vec::new(), Vec::new());
    for &eta in step_sizes {
        for ((p, &t), &gi) in point.iter_mut().zip(theta).zip(g) {
            *p = t - eta * gi;
        }
        losses.push(loss_grad(&point, &mut gk));
        let d = dist(&gk, g);
        grad_dist.push(d);
        smoothness.push(d / (eta * grad_norm));
    }
    PathProbe {
        loss_start,
        grad_norm,
        step_sizes: step_sizes.to_vec(),
        losses,
        grad_dist,
        smoothness,
    }
}

/// A random direction in parameter space, normalised per neuron (Li et al.'s filter
/// normalisation for fully connected layers): for every weight matrix `W: (fan_in, fan_out)`,
/// column `j` (the weights into unit `j`) of the direction is a Gaussian vector rescaled to
/// `||W[:, j]||`. Biases and BN's gamma and beta get 0 (Li et al.'s `ignore biasbn`), so the
/// slice moves only the weights, each neuron by an amount proportional to its own scale, which
/// makes nets whose weights differ in scale (BN makes its layer's loss scale-invariant)
/// comparable. Flat, in [`Mlp::params_mut`] order.
pub fn filter_normalized_direction<T: Float, R: Rng>(net: &mut Mlp<T>, rng: &mut R) -> Vec<f64> {
    let mut out = Vec::new();
    for p in net.params_mut() {
        if p.id.kind != ParamKind::Weight {
            out.extend(std::iter::repeat_n(0.0, p.value.len()));
            continue;
        }
        let w = p
            .value
            .view()
            .into_dimensionality::<Ix2>()
            .expect("weights are matrices");
        let mut d = Array2::<f64>::random_using(w.dim(), StandardNormal, rng);
        for (mut dc, wc) in d.columns_mut().into_iter().zip(w.columns()) {
            let (dn, wn) = (stats::frobenius_norm(&dc), stats::frobenius_norm(&wc));
            dc *= if dn > 0.0 { wn / dn } else { 0.0 };
        }
        out.extend(d.iter().copied());
    }
    out
}

// ------------------------------------------------------------------ results

/// One probe of one training run, at `step` (before that step's update).
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    pub step: usize,
    /// `L(theta_t)` on the step's mini-batch.
    pub loss: Num,
    /// `||g||`, the full gradient (every parameter).
    pub grad_norm: Num,
    /// `L(theta_t - eta_k g)`, one per step size.
    pub losses: Vec<Num>,
    /// Min and max of the loss over the start and the path: the loss variation.
    pub loss_min: Num,
    pub loss_max: Num,
    /// `||grad L(theta_t - eta_k g) - g||`: gradient predictiveness (smaller is more predictive).
    pub grad_dist: Vec<Num>,
    pub grad_dist_min: Num,
    pub grad_dist_max: Num,
    /// `grad_dist_k / (eta_k ||g||)`.
    pub smoothness: Vec<Num>,
    /// Effective beta-smoothness: the max of `smoothness`.
    pub beta: Num,
    pub beta_min: Num,
}

impl Probe {
    fn new(step: usize, p: &PathProbe) -> Self {
        let (lo, hi) = p.loss_range();
        Probe {
            step,
            loss: Num(p.loss_start),
            grad_norm: Num(p.grad_norm),
            losses: nums(&p.losses),
            loss_min: Num(lo),
            loss_max: Num(hi),
            grad_dist: nums(&p.grad_dist),
            grad_dist_min: Num(min_nan(p.grad_dist.iter().copied())),
            grad_dist_max: Num(max_nan(p.grad_dist.iter().copied())),
            smoothness: nums(&p.smoothness),
            beta: Num(p.beta()),
            beta_min: Num(min_nan(p.smoothness.iter().copied())),
        }
    }
}

/// The loss on a 2-D slice around the trained weights.
#[derive(Clone, Debug, Serialize)]
pub struct Slice {
    /// Coordinates along both directions (the same list for alpha and beta).
    pub coords: Vec<f64>,
    /// `loss[j][i]` = `L(theta + coords[i] d1 + coords[j] d2)` on the slice batch, train mode.
    pub loss: Vec<Vec<Num>>,
    /// `L(theta)` at the centre.
    pub center_loss: Num,
    pub min: Num,
    pub max: Num,
    /// `max / center_loss`: how far the loss climbs within the slice.
    pub max_ratio_to_center: Num,
    /// Median over the grid of `loss / center_loss` (NaN if any point's loss is NaN).
    pub median_ratio_to_center: Num,
}

/// Medians over the probes of one run (robust to the first steps, where an untrained net can
/// be orders of magnitude rougher). Nothing is skipped: an inf (the loss or gradient overflowed
/// along the path) takes part in the order as the largest value, and a NaN at any probe makes
/// the median NaN, so a comparison on it is `undetermined`.
#[derive(Clone, Debug, Serialize)]
pub struct LandscapeSummary {
    pub probes: usize,
    /// Median of `loss_max - loss_min`.
    pub median_loss_variation: Num,
    /// Median of `(loss_max - loss_min) / loss`: the variation relative to the current loss.
    pub median_relative_loss_variation: Num,
    /// Median of `grad_dist_max`.
    pub median_grad_dist: Num,
    /// Median of `grad_dist_max / grad_norm`: gradient change relative to the gradient itself.
    pub median_relative_grad_dist: Num,
    /// Median and max of `beta` (NaN if any probe's is).
    pub median_beta: Num,
    pub max_beta: Num,
    pub median_grad_norm: Num,
}

impl LandscapeSummary {
    fn of(probes: &[Probe]) -> Self {
        let m = |f: &dyn Fn(&Probe) -> f64| Num(median_nan(probes.iter().map(f)));
        LandscapeSummary {
            probes: probes.len(),
            median_loss_variation: m(&|p| p.loss_max.0 - p.loss_min.0),
            median_relative_loss_variation: m(&|p| (p.loss_max.0 - p.loss_min.0) / p.loss.0),
            median_grad_dist: m(&|p| p.grad_dist_max.0),
            median_relative_grad_dist: m(&|p| p.grad_dist_max.0 / p.grad_norm.0),
            median_beta: m(&|p| p.beta.0),
            max_beta: Num(max_nan(probes.iter().map(|p| p.beta.0))),
            median_grad_norm: m(&|p| p.grad_norm.0),
        }
    }
}

/// One training run (BN off or on).
#[derive(Clone, Debug, Serialize)]
pub struct LandscapeArm {
    /// The run itself: label, network, losses, divergence.
    #[serde(flatten)]
    pub run: TrainedArm,
    pub probes: Vec<Probe>,
    pub summary: LandscapeSummary,
    /// `None` if the run diverged (no trained weights to look around).
    pub slice: Option<Slice>,
}

/// Everything `landscape` computed; written to `landscape.json` and drawn in `landscape.png`
/// and `landscape_slice.png`.
#[derive(Clone, Debug, Serialize)]
pub struct LandscapeReport {
    pub tool: ToolInfo,
    pub config: LandscapeConfig,
    /// `eta_k = probe_multipliers[k] * lr`.
    pub step_sizes: Vec<f64>,
    pub arms: Vec<LandscapeArm>,
    /// The first BN arm against BN off, when both ran.
    pub comparison: Option<LandscapeComparison>,
}

/// Which way a measure goes with BN, relative to BN off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// The BN arm's median is below BN off's.
    Smaller,
    /// At or above.
    Larger,
    /// A median is NaN (a NaN probe is no evidence), or both are inf or both 0.
    Undetermined,
}

/// One measure with BN against without: the two medians and `ratio` = BN / BN off. An inf
/// median (the loss or gradient overflowed along the path) or a 0 one is a result and decides
/// the direction against a finite one; a NaN decides nothing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    pub off: Num,
    pub on: Num,
    pub ratio: Num,
    pub verdict: Direction,
    /// Why the verdict is `undetermined` (`null` otherwise).
    pub reason: Option<String>,
}

impl Comparison {
    fn of(off: (&str, f64), on: (&str, f64)) -> Self {
        let ratio = on.1 / off.1;
        let nan: Vec<String> = [off, on]
            .iter()
            .filter(|(_, v)| v.is_nan())
            .map(|(label, _)| {
                format!("the {label} median is NaN (from a NaN probe, or no probe at all)")
            })
            .collect();
        let reason = if !nan.is_empty() {
            Some(nan.join(" and "))
        } else if ratio.is_nan() {
            Some(format!("both medians are {}", fmt_num(on.1)))
        } else {
            None
        };
        let verdict = match (&reason, ratio < 1.0) {
            (Some(_), _) => Direction::Undetermined,
            (None, true) => Direction::Smaller,
            (None, false) => Direction::Larger,
        };
        Comparison {
            off: Num(off.1),
            on: Num(on.1),
            ratio: Num(ratio),
            verdict,
            reason,
        }
    }
}

/// The three measures (absolute and relative) of the first BN arm against BN off.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LandscapeComparison {
    /// Labels of the two arms compared.
    pub off: String,
    pub on: String,
    pub loss_variation: Comparison,
    pub relative_loss_variation: Comparison,
    pub grad_dist: Comparison,
    pub relative_grad_dist: Comparison,
    pub beta: Comparison,
}

impl LandscapeComparison {
    fn of(off: &LandscapeArm, on: &LandscapeArm) -> Self {
        let (o, n) = (&off.summary, &on.summary);
        let c = |f: fn(&LandscapeSummary) -> Num| {
            Comparison::of((&off.run.label, f(o).0), (&on.run.label, f(n).0))
        };
        LandscapeComparison {
            off: off.run.label.clone(),
            on: on.run.label.clone(),
            loss_variation: c(|s| s.median_loss_variation),
            relative_loss_variation: c(|s| s.median_relative_loss_variation),
            grad_dist: c(|s| s.median_grad_dist),
            relative_grad_dist: c(|s| s.median_relative_grad_dist),
            beta: c(|s| s.median_beta),
        }
    }
}

// ------------------------------------------------------------------ running

/// Work units of one probe: a forward and backward pass on the step's batch per step size (see
/// [`crate::train::FORWARD_BACKWARD`]).
pub fn probe_units(cfg: &LandscapeConfig) -> u64 {
    units(cfg.probe_multipliers.len(), step_units(cfg.run.net.batch))
}

/// Work units of one row of the slice: `slice_grid` forward passes on `slice_samples` samples.
pub fn slice_row_units(cfg: &LandscapeConfig) -> u64 {
    units(cfg.slice_grid, cfg.slice_samples as u64)
}

/// Work units of the slice: `slice_grid` rows and the centre (one more forward pass).
pub fn slice_units(cfg: &LandscapeConfig) -> u64 {
    units(cfg.slice_grid, slice_row_units(cfg)).saturating_add(cfg.slice_samples as u64)
}

/// Train every arm (in parallel), probing as configured, then slice around the final weights.
pub fn run(cfg: &LandscapeConfig, progress: Progress) -> LandscapeReport {
    let arms: Vec<LandscapeArm> = cfg
        .jobs()
        .par_iter()
        .map(|job| {
            let arm = Tagged::new(progress, job.norm.label().to_string());
            match cfg.run.net.dtype {
                Dtype::F32 => run_arm::<f32>(cfg, job.norm, &arm),
                Dtype::F64 => run_arm::<f64>(cfg, job.norm, &arm),
            }
        })
        .collect();
    let comparison = match (
        arms.iter().find(|a| !a.run.norm.is_on()),
        arms.iter().find(|a| a.run.norm.is_batch()),
    ) {
        (Some(off), Some(on)) => Some(LandscapeComparison::of(off, on)),
        _ => None,
    };
    LandscapeReport {
        tool: ToolInfo::current(),
        config: cfg.clone(),
        step_sizes: cfg.step_sizes(),
        arms,
        comparison,
    }
}

/// Probe the trainer's current point along its current gradient, on a copy of the network.
fn probe<T: Float>(tr: &mut Trainer<'_, T>, loss: f64, step_sizes: &[f64]) -> PathProbe {
    let theta = params_flat(tr.net);
    let g = train::grads_flat(tr.net);
    let mut copy = tr.net.clone();
    let mut d_o = Array2::zeros(tr.y.dim());
    let (x, y, loss_fn) = (&tr.x, &tr.y, tr.loss);
    probe_path(&theta, loss, &g, step_sizes, |point, grad| {
        set_params_flat(&mut copy, point);
        let l = loss_and_grad(&mut copy, x, y, &mut d_o, loss_fn);
        grads_flat_into(&mut copy, grad);
        l
    })
}

fn run_arm<T: Float>(cfg: &LandscapeConfig, norm: Normaliser, progress: Progress) -> LandscapeArm {
    let step_sizes = cfg.step_sizes();
    let mut probes = Vec::new();
    let data = cfg.run.dataset::<T>();
    let mut net = cfg.run.initial_net::<T>(norm);
    let run = cfg.run.train_measured(
        norm,
        &mut net,
        &data,
        progress,
        probe_units(cfg),
        |tr, step, loss| {
            probes.push(Probe::new(step, &probe(tr, loss, &step_sizes)));
        },
    );
    let slice = if run.diverged_at.is_none() {
        Some(slice(&mut net, &data.train, cfg, progress))
    } else {
        progress.units(slice_units(cfg));
        None
    };
    LandscapeArm {
        run,
        summary: LandscapeSummary::of(&probes),
        probes,
        slice,
    }
}

/// The loss on the plane `theta + a d1 + b d2` through the trained weights, with two
/// filter-normalised directions from the `Directions` stream of the seed.
fn slice<T: Float>(
    net: &mut Mlp<T>,
    train: &Batch<T>,
    cfg: &LandscapeConfig,
    progress: Progress,
) -> Slice {
    let theta = params_flat(net);
    let mut rng = data::rng(cfg.run.net.seed, Stream::Directions);
    let d1 = filter_normalized_direction(net, &mut rng);
    let d2 = filter_normalized_direction(net, &mut rng);
    let x = train.x.slice(s![..cfg.slice_samples, ..]).to_owned();
    let y = train.y.slice(s![..cfg.slice_samples, ..]).to_owned();
    let loss_at = |copy: &mut Mlp<T>, point: &[f64]| {
        set_params_flat(copy, point);
        let o = copy
            .forward(x.view(), Mode::Train)
            .expect("slice samples have the net's input width");
        cfg.run.data.loss.value(o, y.view())
    };
    let center_loss = loss_at(&mut net.clone(), &theta);
    progress.units(cfg.slice_samples as u64);
    let row_units = slice_row_units(cfg);
    let coords = cfg.slice_coords();
    let loss: Vec<Vec<f64>> = coords
        .par_iter()
        .map_init(
            || (net.clone(), vec![0.0; theta.len()]),
            |(copy, point), &b| {
                let row = coords
                    .iter()
                    .map(|&a| {
                        for (((p, &t), &u), &v) in point.iter_mut().zip(&theta).zip(&d1).zip(&d2) {
                            *p = t + a * u + b * v;
                        }
                        loss_at(copy, point)
                    })
                    .collect();
                progress.units(row_units);
                row
            },
        )
        .collect();
    let flat: Vec<f64> = loss.iter().flatten().copied().collect();
    Slice {
        coords,
        loss: loss.iter().map(|r| nums(r)).collect(),
        center_loss: Num(center_loss),
        min: Num(min_nan(flat.iter().copied())),
        max: Num(max_nan(flat.iter().copied())),
        max_ratio_to_center: Num(max_nan(flat.iter().copied()) / center_loss),
        median_ratio_to_center: Num(median_nan(flat.iter().map(|l| l / center_loss))),
    }
}

// ------------------------------------------------------------------ reporting

/// A subtitle describing the shared settings.
pub fn title(cfg: &LandscapeConfig) -> String {
    cfg.run.title()
}

/// A comparison in words: `smaller with BN (0.5x of BN off)`, or why it is undetermined.
fn ratio_words(c: &Comparison, lower: &str, higher: &str) -> String {
    let r = c.ratio.0;
    let how = if r.is_finite() && r > 0.0 {
        format!("{}x of BN off", fmt_num(r))
    } else {
        // 0 or inf: one median is 0 or inf (an overflow along the path); show both.
        format!(
            "{} with BN vs {} without",
            fmt_num(c.on.0),
            fmt_num(c.off.0)
        )
    };
    match c.verdict {
        Direction::Smaller => format!("{lower} with BN ({how})"),
        Direction::Larger => format!("{higher} with BN ({how})"),
        Direction::Undetermined => format!(
            "undetermined: {}",
            c.reason.as_deref().unwrap_or("no finite evidence")
        ),
    }
}

/// The stdout summary: settings, one row per arm, the column key, and BN against no BN.
pub fn table(report: &LandscapeReport) -> String {
    let cfg = &report.config;
    let mut out = format!("landscape: {}\n", title(cfg));
    out.push_str(&format!(
        "probes every {} steps at step sizes {} x lr, BN in train mode on the step's batch\n",
        cfg.run.every,
        cfg.probe_multipliers
            .iter()
            .map(|m| format!("{m}"))
            .collect::<Vec<_>>()
            .join(",")
    ));
    let lw = report
        .arms
        .iter()
        .map(|a| a.run.label.len())
        .max()
        .unwrap_or(6)
        .max(6);
    out.push_str(&format!(
        "{:<lw$}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}\n",
        "config",
        "final loss",
        "test loss",
        "|g|",
        "loss var",
        "rel var",
        "|dg|",
        "|dg|/|g|",
        "beta",
        "slice max"
    ));
    for a in &report.arms {
        out.push_str(&arm_row(a, lw));
    }
    out.push_str(
        "columns: medians over probes of |g| (gradient norm), loss var (max - min of the loss along the path),\n\
         rel var (loss var / loss), |dg| (largest gradient change along the path), |dg|/|g|, beta (effective\n\
         beta-smoothness: largest |dg| per distance moved); slice max: largest loss on the 2-D slice / loss at its centre.\n",
    );
    if let (Some(c), Some(off), Some(on)) = (
        &report.comparison,
        report.arms.iter().find(|a| !a.run.norm.is_on()),
        report.arms.iter().find(|a| a.run.norm.is_batch()),
    ) {
        out.push_str(&bn_against_no_bn(c, off, on));
    }
    out
}

/// The final test loss, with the test accuracy beside it on a classification task.
fn test_cell(run: &crate::experiment::TrainedArm) -> String {
    match run.final_test_accuracy {
        Some(a) => format!(
            "{} ({})",
            fmt_num(run.final_test_loss.0),
            crate::train::percent(a.0)
        ),
        None => fmt_num(run.final_test_loss.0),
    }
}

/// One arm's row of the table (and a line if it diverged).
fn arm_row(a: &LandscapeArm, lw: usize) -> String {
    let s = &a.summary;
    let last = a.run.train_loss.last().map_or(f64::NAN, |l| l.0);
    let mut out = format!(
        "{:<lw$}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}\n",
        a.run.label,
        fmt_num(last),
        test_cell(&a.run),
        fmt_num(s.median_grad_norm.0),
        fmt_num(s.median_loss_variation.0),
        fmt_num(s.median_relative_loss_variation.0),
        fmt_num(s.median_grad_dist.0),
        fmt_num(s.median_relative_grad_dist.0),
        fmt_num(s.median_beta.0),
        a.slice.as_ref().map_or("-".into(), |sl| format!(
            "{}x",
            fmt_num(sl.max_ratio_to_center.0)
        )),
    );
    if let Some(step) = a.run.diverged_at {
        out.push_str(&format!(
            "  {}: diverged at step {step} (loss inf/NaN or 1e6x the first); no slice\n",
            a.run.label
        ));
    }
    out
}

/// The three measures with BN relative to without, in words.
fn bn_against_no_bn(c: &LandscapeComparison, off: &LandscapeArm, on: &LandscapeArm) -> String {
    let pair = |what: &str, abs: &Comparison, rel: &Comparison| {
        format!(
            "{what}: {}; relative: {}\n",
            ratio_words(abs, "smaller", "LARGER"),
            ratio_words(rel, "smaller", "LARGER"),
        )
    };
    let mut out = pair(
        "loss variation",
        &c.loss_variation,
        &c.relative_loss_variation,
    );
    out.push_str(&pair(
        "gradient change",
        &c.grad_dist,
        &c.relative_grad_dist,
    ));
    out.push_str(&format!(
        "effective beta-smoothness: {}\n",
        ratio_words(&c.beta, "smaller (smoother)", "LARGER (rougher)")
    ));
    if off.run.diverged_at.is_some() || on.run.diverged_at.is_some() {
        out.push_str(
            "note: a diverged run's medians cover only its probes before divergence, so these ratios compare unequal stretches of training\n",
        );
    }
    out
}

/// `bn-lab landscape`.
pub struct Landscape;

impl Experiment for Landscape {
    type Config = LandscapeConfig;
    type Report = LandscapeReport;
    const NAME: &'static str = "landscape";
    const STEM: &'static str = "landscape";

    fn run(cfg: &LandscapeConfig, progress: Progress) -> LandscapeReport {
        run(cfg, progress)
    }

    fn summary(report: &LandscapeReport) -> String {
        table(report)
    }
}

// The command line: the flags of `bn-lab landscape` and the config they describe.

/// Loss landscape while training, BN off vs on (Santurkar et al. 2018): loss variation,
/// gradient predictiveness and effective beta-smoothness along the gradient, and a 2-D
/// slice of the loss around the trained weights (Li et al. 2018). Writes landscape.png,
/// landscape_slice.png and landscape.json.
// ReLU with He init by default: deep sigmoid nets without BN barely move on these tasks, and
// Santurkar et al. measured ReLU networks.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.default_value("128")),
    mut_arg("batch", |a| a.default_value("128")),
    mut_arg("n_train", |a| a.help(crate::flags::MEASURED_N_TRAIN_HELP))
)]
pub struct LandscapeArgs {
    #[command(flatten)]
    pub train: MeasuredTrainArgs,
    /// Probe step sizes as multiples of the learning rate, comma-separated.
    #[arg(
        allow_hyphen_values = true,
        long,
        value_delimiter = ',',
        default_value = "0.5,1,1.5,2,2.5,3,3.5,4",
        allow_negative_numbers = true
    )]
    pub probe_steps: Vec<f64>,
    /// Points per side of the 2-D slice grid.
    #[arg(allow_hyphen_values = true, value_parser = count::<3, MAX_SLICE_GRID>, long, default_value_t = 25)]
    pub slice_grid: usize,
    /// The slice covers [-S, S] along each filter-normalised direction.
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "S",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub slice_span: f64,
    /// Training samples the slice's loss is computed on (one batch, BN in train mode).
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_SAMPLES>, long, default_value_t = 512)]
    pub slice_samples: usize,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ExperimentArgs for LandscapeArgs {
    type Experiment = Landscape;
    const QUICK: &'static str = "--depth 3 --width 8 --batch 8 --d-out 2 --steps 12 --every 4 --n-train 64 --n-test 16 --slice-grid 5 --slice-samples 16 --lr 0.05";
    const RENAMES: Renames = MEASURED_RENAMES;
    fn config(&self) -> anyhow::Result<LandscapeConfig> {
        Ok(LandscapeConfig {
            run: MeasuredTrainConfig::from_flags(&self.train, &self.net)?,
            probe_multipliers: self.probe_steps.clone(),
            probe_bn_mode: Mode::Train,
            slice_grid: self.slice_grid,
            slice_span: self.slice_span,
            slice_samples: self.slice_samples,
        })
    }
    fn output(&self) -> &OutputArgs {
        &self.output
    }
}
