//! `bn-lab sweep`: one axis (weight scale, batch size or depth) against the normalisers, over
//! seeds. Every (value, arm, seed) point is one independent run of [`measure_point`], a pure
//! function of the config and the point, so a sweep can run here on rayon's pool, or one point
//! per process under a scheduler (`--plan`, `--point`, `--collect`) with the same numbers.
//!
//! ```text
//! per point:  fresh net (weights of the point's seed)  -> one forward/backward on the batch of
//!             grad-norms -> grad_ratio = ||dW_1|| / ||dW_L||, growth_per_layer of ||dL/dh_l||
//!             [steps > 0] SGD on the task (the config seed's data, the point seed's batch
//!             order) -> final train/test loss (eval mode), diverged_at
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{
    Activation, ConfigError, Dtype, Init, Normaliser, between, distinct, distinct_numbers,
};
use crate::data::{self, Stream};
use crate::experiment::{Cost, Experiment, Plan, Progress, ToolInfo, largest_alive, pass_macs};
use crate::flags::{DataArgs, NetArgs, NormChoice, OutputArgs, count};
use crate::flags::{Renames, distinct_norms};
use crate::float::Float;
use crate::limits::{MAX_BATCH, MAX_DEPTH, MAX_SEEDS, MAX_STEPS};
use crate::memory::Footprint;
use crate::model::Mlp;
use crate::optim::PlainSgdSpec;
use crate::spec::{DataSpec, NetConfig, NetSpec};
use crate::stats::{self, Num, fmt_num};
use crate::train::{
    DIVERGENCE_FACTOR, Observer, PartialsOnly, Tagged, Trainer, eval_loss, fit, step_units, units,
};
use clap::Args;
use std::path::PathBuf;

/// The axis a sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Vary {
    /// The std s of the weights, N(0, s^2) in every layer (CS231n's weight-scale experiment).
    WeightScale,
    /// The mini-batch size B (BatchNorm's statistics; Yang et al.'s lambda(B)).
    Batch,
    /// The number of hidden layers.
    Depth,
}

impl Vary {
    /// The flag value: `weight-scale`, `batch`, `depth`.
    pub fn name(self) -> &'static str {
        match self {
            Vary::WeightScale => "weight-scale",
            Vary::Batch => "batch",
            Vary::Depth => "depth",
        }
    }

    /// The axis' symbol in tables and figures.
    pub fn symbol(self) -> &'static str {
        match self {
            Vary::WeightScale => "s",
            Vary::Batch => "B",
            Vary::Depth => "depth",
        }
    }

    /// The default grid: s log-spaced 1e-4 .. 1 (10 points), B 2 .. 512, depths 1 .. 200.
    pub fn default_values(self) -> Vec<f64> {
        match self {
            Vary::WeightScale => (0..10)
                .map(|i| 10f64.powf(-4.0 + 4.0 * i as f64 / 9.0))
                .collect(),
            Vary::Batch => [2, 4, 8, 16, 32, 64, 128, 256, 512]
                .iter()
                .map(|&b| b as f64)
                .collect(),
            Vary::Depth => [1, 2, 3, 5, 10, 20, 50, 100, 200]
                .iter()
                .map(|&d| d as f64)
                .collect(),
        }
    }

    /// Hidden layers of the axes that do not vary the depth: 8 (the CS231n net) for the weight
    /// scale, 32 for the batch size (deep enough for BN's lambda(B)^32 to show).
    pub fn default_depth(self) -> Option<usize> {
        match self {
            Vary::WeightScale => Some(8),
            Vary::Batch => Some(32),
            Vary::Depth => None,
        }
    }

    /// SGD steps of each point's training run (0: none; the depth axis measures at init only).
    pub fn default_steps(self) -> usize {
        match self {
            Vary::WeightScale => 300,
            Vary::Batch => 150,
            Vary::Depth => 0,
        }
    }
}

impl std::fmt::Display for Vary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The default learning rate of the training runs.
pub const DEFAULT_LR: f64 = 0.01;

/// A validated sweep: every number its points depend on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepConfig {
    pub vary: Vary,
    /// The axis' values in run order (whole numbers for `batch` and `depth`).
    pub values: Vec<f64>,
    /// Hidden layers (`null` when the depth is the axis).
    pub depth: Option<usize>,
    pub act: Activation,
    /// The arms, in legend order.
    pub norms: Vec<Normaliser>,
    /// Seeds `seed .. seed + seeds`: weights and batch order change, the data set does not.
    pub seeds: usize,
    /// Network settings; with `vary` `weight-scale` the init is `normal:s` and `init` is not
    /// used, with `batch` each point's batch replaces `batch`.
    #[serde(flatten)]
    pub net: NetSpec,
    #[serde(flatten)]
    pub data: DataSpec,
    /// Each point's training run: steps (0: no training), learning rate and warmup (JSON
    /// keys `steps`, `lr`, `warmup_steps`).
    #[serde(flatten)]
    pub sgd: PlainSgdSpec,
    /// Compute only this point (an index into [`SweepConfig::points`]): `--point`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<usize>,
}

/// One point of a sweep: which value, arm and seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointId {
    pub index: usize,
    pub value: f64,
    pub norm: Normaliser,
    pub seed: u64,
}

impl SweepConfig {
    pub fn seed_list(&self) -> Vec<u64> {
        self.net.seed_list(self.seeds)
    }

    /// Every point in the fixed order of `points[]`: values as given, then arms, then seeds.
    pub fn points(&self) -> Vec<PointId> {
        let seeds = self.seed_list();
        let mut out = Vec::with_capacity(self.values.len() * self.norms.len() * seeds.len());
        for &value in &self.values {
            for &norm in &self.norms {
                for &seed in &seeds {
                    out.push(PointId {
                        index: out.len(),
                        value,
                        norm,
                        seed,
                    });
                }
            }
        }
        out
    }

    /// Number of points.
    pub fn point_count(&self) -> usize {
        self.values
            .len()
            .saturating_mul(self.norms.len())
            .saturating_mul(self.seeds)
    }

    /// The batch of a point at `value`.
    pub fn batch(&self, value: f64) -> usize {
        match self.vary {
            Vary::Batch => value as usize,
            _ => self.net.batch,
        }
    }

    /// The network of a point at `value` with normaliser `norm`.
    pub fn net(&self, value: f64, norm: Normaliser) -> NetConfig {
        let depth = match self.vary {
            Vary::Depth => value as usize,
            _ => self.depth.unwrap_or(1),
        };
        let mut net = self.net.net(depth, self.act, norm);
        if self.vary == Vary::WeightScale {
            net.init = Init::Normal(value);
        }
        net
    }

    /// Whether the points train.
    pub fn trains(&self) -> bool {
        self.sgd.steps > 0
    }

    /// The points [`run`] measures (every point, or only `point`), in the order of
    /// [`SweepConfig::points`]: what `run` executes, [`Plan::work_units`] counts and
    /// [`Plan::footprint`] sizes.
    pub fn jobs(&self) -> Vec<SweepJob> {
        let all = self.points();
        let todo = match self.point {
            Some(i) => all.get(i).copied().into_iter().collect(),
            None => all,
        };
        let bytes = self.net.dtype.bytes();
        todo.into_iter()
            .map(|point| SweepJob {
                point,
                units: self.point_units(point.value),
                bytes: self
                    .net(point.value, point.norm)
                    .memory_estimate_bytes(self.batch(point.value), bytes),
            })
            .collect()
    }
}

/// One point [`run`] measures.
#[derive(Clone, Copy, Debug)]
pub struct SweepJob {
    pub point: PointId,
    /// Progress units ([`SweepConfig::point_units`]).
    pub units: u64,
    /// The point's network's memory estimate on its batch.
    pub bytes: f64,
}

impl Plan for SweepConfig {
    /// Check the axis, the arms, every network and its data before anything is allocated.
    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_values()?;
        match (self.vary, self.depth) {
            (Vary::Depth, Some(d)) => {
                return Err(ConfigError::Invalid {
                    field: "depth",
                    message: format!("--vary depth takes the depths from --values (got {d})"),
                });
            }
            (Vary::Depth, None) => {}
            (_, None) => return Err(ConfigError::Empty { field: "depth" }),
            (_, Some(d)) => between("depth", 1, MAX_DEPTH, d)?,
        }
        if self.vary == Vary::WeightScale && self.net.init != Init::Auto {
            return Err(ConfigError::Invalid {
                field: "init",
                message: format!(
                    "--vary weight-scale draws the weights from N(0, s^2) with s from --values (got init {})",
                    self.net.init
                ),
            });
        }
        distinct("norms", &self.norms)?;
        between("seeds", 1, MAX_SEEDS, self.seeds)?;
        self.net.validate()?;
        self.sgd.validate(0)?;
        self.validate_points()?;
        if let Some(p) = self.point {
            let n = self.point_count();
            if p >= n {
                return Err(ConfigError::Invalid {
                    field: "point",
                    message: format!("this sweep has points 0 to {} (got {p})", n - 1),
                });
            }
        }
        Ok(())
    }

    /// As many networks alive as run side by side (the largest ones), each with its data set
    /// when the points train; the numbers and the figure.
    fn footprint(&self) -> Footprint {
        let jobs = self.jobs();
        let alive = crate::parallel::side_by_side(jobs.len());
        let live = largest_alive(jobs.iter().map(|j| j.bytes));
        let mut fp = Footprint::new().add("networks", live, &["depth", "width", "values"]);
        if self.trains() {
            fp = self.data.footprint(fp, &self.net, alive, alive, false);
        }
        fp.records(self.point_count() as f64 * 12.0, &["values", "seeds"])
            .figures()
    }

    fn costs(&self) -> Vec<Cost> {
        self.jobs()
            .iter()
            .map(|j| Cost::new(j.units, j.bytes))
            .collect()
    }

    /// Every point's passes through its network.
    fn macs(&self) -> f64 {
        let net = |j: &SweepJob| self.net(j.point.value, j.point.norm);
        let rows = |j: &SweepJob| self.batch(j.point.value);
        self.jobs()
            .iter()
            .map(|j| pass_macs(j.units, &net(j), rows(j)))
            .sum()
    }
}

impl SweepConfig {
    /// [`SweepConfig::validate`] on `--values`: distinct, finite and above 0, whole numbers
    /// unless the axis is the weight scale, and within the axis's bound.
    fn validate_values(&self) -> Result<(), ConfigError> {
        distinct_numbers("values", &self.values)?;
        for &v in &self.values {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::Invalid {
                    field: "values",
                    message: format!(
                        "every value must be a finite number > 0 (got {})",
                        stats::Short(v)
                    ),
                });
            }
            if self.vary != Vary::WeightScale && v.fract() != 0.0 {
                return Err(ConfigError::Invalid {
                    field: "values",
                    message: format!(
                        "--vary {} takes whole numbers (got {})",
                        self.vary,
                        stats::Short(v)
                    ),
                });
            }
        }
        // Compared as floats, so a value beyond `usize` is echoed as typed (`1e300`).
        let (max, bound) = match self.vary {
            Vary::Batch => (MAX_BATCH as f64, MAX_BATCH.to_string()),
            Vary::Depth => (MAX_DEPTH as f64, MAX_DEPTH.to_string()),
            Vary::WeightScale => (crate::limits::MAX_WEIGHT_SCALE, "1e8".to_string()),
        };
        for &v in &self.values {
            if v > max {
                return Err(ConfigError::Invalid {
                    field: "values",
                    message: format!(
                        "--vary {} takes values up to {bound} (got {})",
                        self.vary,
                        stats::Short(v)
                    ),
                });
            }
        }
        Ok(())
    }

    /// [`SweepConfig::validate`] on every point: its batch with each arm, its network and its
    /// data.
    fn validate_points(&self) -> Result<(), ConfigError> {
        for &value in &self.values {
            let batch = self.batch(value);
            let batch_field = if self.vary == Vary::Batch {
                "values"
            } else {
                "batch"
            };
            for &norm in &self.norms {
                if norm.is_batch() && batch < 2 {
                    return Err(ConfigError::Invalid {
                        field: batch_field,
                        message: format!(
                            "a batch of {batch} with BatchNorm (--norm batch): the variance of one sample is 0, so BN is undefined; drop the value or the arm"
                        ),
                    });
                }
                self.net(value, norm).validate_as(batch, batch_field)?;
            }
            if self.trains() {
                self.data.validate(batch, self.net.d_in, self.net.d_out).map_err(|e| match e {
                    ConfigError::BelowOther { min, got, .. } if self.vary == Vary::Batch => {
                        ConfigError::Invalid {
                            field: "n_train",
                            message: format!(
                                "must be at least the largest batch in --values ({min}) (got {got})"
                            ),
                        }
                    }
                    e => e,
                })?;
            }
        }
        Ok(())
    }

    /// Work units of the point at `value`: a forward and backward per sample of the batch (as
    /// `grad-norms` counts a layer, here a whole pass), its training steps and the two final
    /// evaluations.
    pub fn point_units(&self, value: f64) -> u64 {
        let batch = self.batch(value);
        let mut u = step_units(batch);
        if self.trains() {
            u = u
                .saturating_add(units(self.sgd.steps, step_units(batch)))
                .saturating_add((self.data.n_train as u64).saturating_add(self.data.n_test as u64));
        }
        u
    }

    /// `relu, width 64, batch 64, f32, 3 seeds from 0, 300 SGD steps at lr 0.01 on the non-linear task`.
    pub fn title(&self) -> String {
        let mut s = String::new();
        if let Some(d) = self.depth {
            s.push_str(&format!("depth {d}, "));
        }
        s.push_str(&format!("{}", self.act));
        if self.vary == Vary::WeightScale {
            s.push_str(" (weights N(0, s²))");
        } else {
            s.push_str(&format!(" ({} init)", self.net.init.resolve(self.act)));
        }
        s.push_str(&format!(", width {}", self.net.width));
        if self.vary != Vary::Batch {
            s.push_str(&format!(", batch {}", self.net.batch));
        }
        if let Some(r) = crate::spec::residual_label(self.net.residual, self.net.residual_scale) {
            s.push_str(&format!(", {r}"));
        }
        s.push_str(&format!(", {}", self.net.dtype));
        if self.seeds > 1 {
            s.push_str(&format!(", {} seeds from {}", self.seeds, self.net.seed));
        } else {
            s.push_str(&format!(", seed {}", self.net.seed));
        }
        if self.trains() {
            s.push_str(&format!(
                "; {} SGD steps at lr {}{} on the {} task",
                self.sgd.steps,
                stats::Short(self.sgd.lr),
                crate::optim::warmup_label(self.sgd.warmup_steps)
                    .map_or(String::new(), |w| format!(" ({w})")),
                self.data.task
            ));
        }
        s
    }
}

/// What one point measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub value: f64,
    /// The normaliser's text form (`off`, `on`, `layer`, ...).
    pub arm: Normaliser,
    /// [`Normaliser::label`].
    pub label: String,
    pub seed: u64,
    /// `||dL/dW_1||_F / ||dL/dW_L||_F` at initialisation (first / last hidden layer; with
    /// `--block basic|preact` the stem's over the last block's `W2`, which SkipInit's zero gain
    /// leaves without a gradient at initialisation, so the ratio is inf there).
    pub grad_ratio: Num,
    /// `exp(-slope)` of `ln ||dL/dh_l||` against `l` over the hidden layers: the factor the
    /// backprop signal is multiplied by per layer towards the input (`grad-norms`' fit); `null`
    /// with fewer than two usable layers.
    pub growth_per_layer: Option<Num>,
    /// The same for `||dL/dh_l||^2` (the square of `growth_per_layer`), to compare with
    /// `theory_rate`.
    pub growth_rate: Option<Num>,
    /// The mean-field rate of `||dL/dh_l||^2` per layer for a normaliser before the activation
    /// without skips: Yang et al.'s `lambda(B)` for BatchNorm at this point's batch (`null` below
    /// B = 4), `E[phi'^2] / E[phi^2]` for LayerNorm (`theory::ln_rate`); `null` otherwise.
    pub theory_rate: Option<Num>,
    /// Loss on the training set after training (eval mode); `null` without training.
    pub final_train_loss: Option<Num>,
    /// Loss on the test set after training (eval mode); `null` without training.
    pub final_test_loss: Option<Num>,
    /// Accuracy on the test set after training (classification tasks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_test_accuracy: Option<Num>,
    /// Step at which training diverged (loss inf/NaN or grown 1e6-fold), `null` if it did not.
    pub diverged_at: Option<usize>,
}

/// The means of one (value, arm) over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mean {
    pub value: f64,
    pub arm: Normaliser,
    pub label: String,
    /// Seeds averaged.
    pub seeds: usize,
    /// Geometric means over seeds (ratios and rates).
    pub grad_ratio: Num,
    pub growth_per_layer: Option<Num>,
    pub growth_rate: Option<Num>,
    pub theory_rate: Option<Num>,
    /// Arithmetic means over seeds (losses; an inf or NaN seed makes the mean inf or NaN).
    pub final_train_loss: Option<Num>,
    pub final_test_loss: Option<Num>,
    /// Arithmetic mean of the test accuracies (classification tasks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_test_accuracy: Option<Num>,
    /// The median over seeds of the final test loss, a diverged seed (or an inf/NaN loss)
    /// counted as `inf`: the typical run, which one blow-up does not move (the mean is
    /// inf or huge as soon as one seed diverges); `null` without training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_final_test_loss: Option<Num>,
    /// Seeds whose training diverged.
    pub diverged: usize,
}

/// Everything a sweep computed; written to `sweep.json`, drawn in `sweep.png`.
#[derive(Clone, Debug, Serialize)]
pub struct SweepReport {
    pub tool: ToolInfo,
    pub config: SweepConfig,
    /// With `--point`: the index of the one point computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point: Option<usize>,
    pub points: Vec<Point>,
    pub means: Vec<Mean>,
    /// The test loss of predicting 0 for every sample (`1/(2n) sum y^2` for MSE, `ln(classes)`
    /// for cross-entropy) on the sweep's data set: the level of a network that learned
    /// nothing. `null` without training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_predictor_test_loss: Option<Num>,
    /// The final test loss a run must end below to have learned: the zero predictor's less 3
    /// standard errors of its mean over the test samples (as `train`'s, see
    /// [`crate::experiment::train::loss_ceiling`]). `null` without training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_loss_ceiling: Option<Num>,
}

/// Rows per forward of the final evaluations.
const EVAL_CHUNK: usize = 256;

/// No hooks: the sweep only needs the loop's divergence check.
struct Quiet;

impl<T: Float> Observer<T> for Quiet {}

/// The one pure function of a sweep: the measurements of point `p` of `cfg`.
/// `partials` gets the training's partial results (not its work units: [`run`] counts the
/// point's units when it is done).
pub fn measure_point(cfg: &SweepConfig, p: &PointId, partials: Progress) -> Point {
    match cfg.net.dtype {
        Dtype::F32 => measure_typed::<f32>(cfg, p, partials),
        Dtype::F64 => measure_typed::<f64>(cfg, p, partials),
    }
}

fn measure_typed<T: Float>(cfg: &SweepConfig, p: &PointId, partials: Progress) -> Point {
    let net_cfg = cfg.net(p.value, p.norm);
    let batch = cfg.batch(p.value);
    let (init, _) =
        crate::experiment::grad_norms::measure::<T>(&net_cfg, batch, p.seed, cfg.data.loss, false);
    let w = &init.weight_grad_norm;
    let grad_ratio = w[0].0 / w[w.len() - 1].0;
    let signal: Vec<f64> = init.activation_grad_norm.iter().map(|v| v.0).collect();
    let growth = stats::log_slope(&signal).map(|s| (-s).exp());
    // The mean-field rates hold for a plain (no skip) stack with the normaliser before the
    // activation; `None` elsewhere (standard blocks too: `normalised_rate` refuses them) and
    // without a normaliser.
    let theory_rate = net_cfg
        .norm
        .as_ref()
        .and_then(|bn| crate::theory::normalised_rate(&net_cfg, bn, batch).ok())
        .map(Num);
    let (mut train_loss, mut test_loss, mut diverged_at) = (None, None, None);
    let mut test_accuracy = None;
    if cfg.trains() {
        let data = cfg.data.task_for::<T>(&cfg.net);
        let mut net = Mlp::<T>::new(&net_cfg, &mut data::rng(p.seed, Stream::Weights));
        let mut tr = Trainer::new(&mut net, &data, cfg.sgd.sgd(), batch, p.seed, cfg.data.loss);
        let d = fit(
            &mut tr,
            cfg.sgd.steps,
            DIVERGENCE_FACTOR,
            partials,
            &mut Quiet,
        );
        diverged_at = d.map(|d| d.step);
        // Eval mode does not depend on the batch: chunks only bound the memory.
        let chunk = batch.max(EVAL_CHUNK);
        train_loss = Some(Num(eval_loss(&mut net, &data.train, chunk, cfg.data.loss)));
        let test = crate::train::evaluate(&mut net, &data.test, chunk, cfg.data.loss);
        test_loss = Some(Num(test.loss));
        test_accuracy = data.classes.map(|_| Num(test.accuracy));
    }
    Point {
        value: p.value,
        arm: p.norm,
        label: p.norm.label().to_string(),
        seed: p.seed,
        grad_ratio: Num(grad_ratio),
        growth_per_layer: growth.map(Num),
        growth_rate: growth.map(|g| Num(g * g)),
        theory_rate,
        final_train_loss: train_loss,
        final_test_loss: test_loss,
        final_test_accuracy: test_accuracy,
        diverged_at,
    }
}

/// Geometric mean of per-seed values, `None` if any seed has none.
fn gmean(v: &[Option<Num>]) -> Option<Num> {
    let v: Option<Vec<f64>> = v.iter().map(|x| x.map(|n| n.0)).collect();
    v.map(|v| Num(stats::geometric_mean(&v)))
}

/// Arithmetic mean of per-seed values, `None` if any seed has none.
fn amean(v: &[Option<Num>]) -> Option<Num> {
    let v: Option<Vec<f64>> = v.iter().map(|x| x.map(|n| n.0)).collect();
    v.map(|v| Num(v.iter().sum::<f64>() / v.len() as f64))
}

/// The median final test loss of `group`, a diverged or inf/NaN seed counted as `inf`;
/// `None` if some seed did not train.
fn median_loss(group: &[&Point]) -> Option<Num> {
    let losses: Option<Vec<f64>> = group
        .iter()
        .map(|p| {
            p.final_test_loss.map(|l| {
                if p.diverged_at.is_some() || !l.0.is_finite() {
                    f64::INFINITY
                } else {
                    l.0
                }
            })
        })
        .collect();
    losses.map(|v| Num(stats::median_nan(v)))
}

/// The test loss of predicting 0 on the data set of `cfg` and the loss a run must end below to
/// have learned ([`crate::experiment::train::loss_ceiling`]); `None` without training.
pub fn zero_predictor(cfg: &SweepConfig) -> Option<(Num, Num)> {
    if !cfg.trains() {
        return None;
    }
    let data = cfg.data.task_for::<f64>(&cfg.net);
    let per_sample = crate::experiment::train::zero_losses(&data.test, cfg.data.loss);
    let mean = per_sample.iter().sum::<f64>() / per_sample.len().max(1) as f64;
    let ceiling = crate::experiment::train::loss_ceiling(&per_sample);
    Some((Num(mean), Num(ceiling)))
}

/// The means per (value, arm) of `points`, in the order they first appear (the config's).
pub fn means(points: &[Point]) -> Vec<Mean> {
    let mut keys: Vec<(f64, Normaliser)> = Vec::new();
    for p in points {
        if !keys.contains(&(p.value, p.arm)) {
            keys.push((p.value, p.arm));
        }
    }
    keys.into_iter()
        .map(|(value, arm)| {
            let group: Vec<&Point> = points
                .iter()
                .filter(|p| p.value == value && p.arm == arm)
                .collect();
            let pick = |f: &dyn Fn(&Point) -> Option<Num>| -> Vec<Option<Num>> {
                group.iter().map(|p| f(p)).collect()
            };
            Mean {
                value,
                arm,
                label: arm.label().to_string(),
                seeds: group.len(),
                grad_ratio: gmean(&pick(&|p| Some(p.grad_ratio))).unwrap_or(Num(f64::NAN)),
                growth_per_layer: gmean(&pick(&|p| p.growth_per_layer)),
                growth_rate: gmean(&pick(&|p| p.growth_rate)),
                theory_rate: gmean(&pick(&|p| p.theory_rate)),
                final_train_loss: amean(&pick(&|p| p.final_train_loss)),
                final_test_loss: amean(&pick(&|p| p.final_test_loss)),
                final_test_accuracy: amean(&pick(&|p| p.final_test_accuracy)),
                median_final_test_loss: median_loss(&group),
                diverged: group.iter().filter(|p| p.diverged_at.is_some()).count(),
            }
        })
        .collect()
}

/// The report of `points` (in the config's order) of `cfg`.
pub fn report(cfg: &SweepConfig, points: Vec<Point>) -> SweepReport {
    let means = means(&points);
    let zero = zero_predictor(cfg);
    SweepReport {
        tool: ToolInfo::current(),
        config: SweepConfig {
            point: None,
            ..cfg.clone()
        },
        point: cfg.point,
        points,
        means,
        zero_predictor_test_loss: zero.map(|z| z.0),
        learned_loss_ceiling: zero.map(|z| z.1),
    }
}

/// Run every point (or only `cfg.point`) on rayon's pool; `progress` is told of each point's
/// [`SweepConfig::point_units`] when it is done.
pub fn run(cfg: &SweepConfig, progress: Progress) -> SweepReport {
    let points: Vec<Point> = cfg
        .jobs()
        .par_iter()
        .map(|job| {
            // Told of nothing first: a cancelled run (`bn-lab serve`'s client left) stops here,
            // before the job's work, instead of finishing every job still queued on the pool.
            progress.units(0);
            let p = &job.point;
            let seed = if cfg.seed_list().len() > 1 {
                format!(" seed={}", p.seed)
            } else {
                String::new()
            };
            let value = fmt_value(cfg.vary, p.value);
            let key = format!("{} {}={value}{seed}", p.norm.label(), cfg.vary.name());
            let r = measure_point(cfg, p, &Tagged::new(&PartialsOnly(progress), key));
            progress.units(job.units);
            r
        })
        .collect();
    report(cfg, points)
}

/// An axis value as the table writes it: `1e-4`, `0.0028`, `64`.
pub fn fmt_value(vary: Vary, v: f64) -> String {
    match vary {
        Vary::WeightScale => {
            if (1e-2..1e3).contains(&v) {
                format!("{}", (v * 1e4).round() / 1e4)
            } else {
                format!("{v:.2e}")
            }
        }
        _ => format!("{v}"),
    }
}

fn opt(v: Option<Num>) -> String {
    v.map_or("-".to_string(), |n| fmt_num(n.0))
}

/// The band `grad-norms` calls neither vanishing nor exploding.
pub const HEALTHY: (f64, f64) = (
    crate::experiment::grad_norms::VANISHING_BELOW,
    crate::experiment::grad_norms::EXPLODING_ABOVE,
);

/// The stdout table: one line per (value, arm) with its means, then a sentence per arm.
pub fn table(r: &SweepReport) -> String {
    let cfg = &r.config;
    let mut out = format!("sweep --vary {}: {}\n", cfg.vary, cfg.title());
    let lw = r
        .means
        .iter()
        .map(|m| m.label.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let classes = cfg.trains() && cfg.data.task.is_classification();
    let acc_cell = |a: Option<Num>| {
        if classes {
            format!(
                "  {:>8}",
                a.map_or("-".into(), |a| crate::train::percent(a.0))
            )
        } else {
            String::new()
        }
    };
    out.push_str(&format!(
        "{:>9}  {:<lw$}  {:>10}  {:>12}  {:>11}  {:>9}  {:>10}  {:>10}{}  {:>8}\n",
        cfg.vary.symbol(),
        "arm",
        "grad ratio",
        "growth/layer",
        "|dL/dh|^2 x",
        "theory",
        "train loss",
        "test loss",
        if classes {
            format!("  {:>8}", "test acc")
        } else {
            String::new()
        },
        "diverged"
    ));
    for m in &r.means {
        out.push_str(&format!(
            "{:>9}  {:<lw$}  {:>10}  {:>12}  {:>11}  {:>9}  {:>10}  {:>10}{}  {:>8}\n",
            fmt_value(cfg.vary, m.value),
            m.label,
            fmt_num(m.grad_ratio.0),
            opt(m.growth_per_layer),
            m.growth_rate.map_or("-".into(), |g| stats::fmt_rate(g.0)),
            m.theory_rate.map_or("-".into(), |g| stats::fmt_rate(g.0)),
            opt(m.final_train_loss),
            opt(m.final_test_loss),
            acc_cell(m.final_test_accuracy),
            if cfg.trains() {
                format!("{}/{}", m.diverged, m.seeds)
            } else {
                "-".into()
            }
        ));
    }
    out.push_str(
        "grad ratio = |dL/dW_1| / |dL/dW_L| at init; growth/layer = factor of |dL/dh_l| per layer towards the input,\n\
         |dL/dh|^2 x its square beside the mean-field rate (BN: Yang et al.'s lambda(B); LN: E[phi'^2]/E[phi^2]);\n\
         ratios and rates are geometric means over seeds, losses\n\
         arithmetic means (eval mode, after training); diverged = seeds whose loss became inf/NaN or grew 1e6-fold.\n",
    );
    if let (Some(z), Some(c)) = (r.zero_predictor_test_loss, r.learned_loss_ceiling) {
        out.push_str(&format!(
            "predicting 0 (a net that learned nothing): test loss {}; a run learned if it ends below {} (3 standard errors below);\n\
             sweep.json also has each row's median test loss over seeds (a diverged seed counted as inf).\n",
            fmt_num(z.0),
            fmt_num(c.0)
        ));
    }
    for &norm in &cfg.norms {
        out.push_str(&format!("{}\n", verdict(r, norm)));
    }
    out
}

/// What one arm's curve does along the axis, from the means: the facts [`verdict`] writes out.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmCurve {
    pub norm: Normaliser,
    /// The axis values of the curve's first and last point.
    pub first_value: f64,
    pub last_value: f64,
    pub gradients: GradientTrend,
    /// `None` when the sweep does not train.
    pub training: Option<TrainingTrend>,
}

/// How the backward signal changes along the axis.
#[derive(Clone, Debug, PartialEq)]
pub enum GradientTrend {
    /// `--vary batch`: the measured growth rate of `|dL/dh|^2` per layer at the first and last
    /// point, and the mean-field rate at the first and last point that has one, as
    /// `(value, rate)` pairs.
    GrowthRate {
        first: Option<f64>,
        last: Option<f64>,
        theory: Option<[(f64, f64); 2]>,
    },
    /// Every other axis: the grad ratio at the first and last point, and the axis values at
    /// which it lies outside [`HEALTHY`].
    GradRatio {
        first: f64,
        last: f64,
        outside_healthy: Vec<f64>,
    },
}

/// How training ended along the axis (mean final test losses over seeds).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingTrend {
    pub first_test_loss: Option<f64>,
    pub last_test_loss: Option<f64>,
    /// The point with the lowest finite test loss, as `(value, loss)`; `None` if none is finite.
    pub best: Option<(f64, f64)>,
    /// The points at which some seed diverged.
    pub diverged: Vec<DivergedAt>,
}

/// A point at which `diverged` of its `seeds` seeds diverged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DivergedAt {
    pub value: f64,
    pub diverged: usize,
    pub seeds: usize,
}

/// The [`ArmCurve`] of arm `norm` from a sweep's `means` along axis `vary` (`trains`: whether
/// the sweep trained); `None` when the arm has no points.
pub fn arm_curve(vary: Vary, trains: bool, means: &[Mean], norm: Normaliser) -> Option<ArmCurve> {
    let ms: Vec<&Mean> = means.iter().filter(|m| m.arm == norm).collect();
    let (first, last) = (*ms.first()?, *ms.last()?);
    let gradients = match vary {
        Vary::Batch => {
            let theory: Vec<(f64, f64)> = ms
                .iter()
                .filter_map(|m| m.theory_rate.map(|t| (m.value, t.0)))
                .collect();
            GradientTrend::GrowthRate {
                first: first.growth_rate.map(|g| g.0),
                last: last.growth_rate.map(|g| g.0),
                theory: theory.first().zip(theory.last()).map(|(&a, &b)| [a, b]),
            }
        }
        _ => GradientTrend::GradRatio {
            first: first.grad_ratio.0,
            last: last.grad_ratio.0,
            outside_healthy: ms
                .iter()
                .filter(|m| !(HEALTHY.0..=HEALTHY.1).contains(&m.grad_ratio.0))
                .map(|m| m.value)
                .collect(),
        },
    };
    let training = trains.then(|| {
        let best = ms
            .iter()
            .filter_map(|m| m.final_test_loss.map(|l| (m.value, l.0)))
            .filter(|(_, l)| l.is_finite())
            .min_by(|a, b| a.1.total_cmp(&b.1));
        TrainingTrend {
            first_test_loss: first.final_test_loss.map(|l| l.0),
            last_test_loss: last.final_test_loss.map(|l| l.0),
            best,
            diverged: ms
                .iter()
                .filter(|m| m.diverged > 0)
                .map(|m| DivergedAt {
                    value: m.value,
                    diverged: m.diverged,
                    seeds: m.seeds,
                })
                .collect(),
        }
    });
    Some(ArmCurve {
        norm,
        first_value: first.value,
        last_value: last.value,
        gradients,
        training,
    })
}

/// One sentence on what arm `norm`'s curve does: its [`ArmCurve`] written out.
pub fn verdict(r: &SweepReport, norm: Normaliser) -> String {
    let Some(c) = arm_curve(r.config.vary, r.config.trains(), &r.means, norm) else {
        return format!("{}: no points", norm.label());
    };
    let vary = r.config.vary;
    let sym = vary.symbol();
    let fv = |v: f64| fmt_value(vary, v);
    let rate = |g: Option<f64>| g.map_or("-".into(), stats::fmt_rate);
    let (first, last) = (fv(c.first_value), fv(c.last_value));
    let mut s = format!("{}: ", norm.label());
    match &c.gradients {
        GradientTrend::GrowthRate {
            first: g0,
            last: g1,
            theory,
        } => {
            s.push_str(&format!(
                "|dL/dh|^2 grows x{} per layer at {sym} = {first} and x{} at {sym} = {last}",
                rate(*g0),
                rate(*g1),
            ));
            if let Some([(va, ta), (vb, tb)]) = theory {
                s.push_str(&format!(
                    " (theory x{} at {sym} = {} to x{} at {sym} = {})",
                    stats::fmt_rate(*ta),
                    fv(*va),
                    stats::fmt_rate(*tb),
                    fv(*vb)
                ));
            }
        }
        GradientTrend::GradRatio {
            first: r0,
            last: r1,
            outside_healthy,
        } => {
            s.push_str(&format!(
                "grad ratio {} at {sym} = {first} and {} at {sym} = {last}",
                fmt_num(*r0),
                fmt_num(*r1),
            ));
            let band = format!("[{}, {}]", stats::Short(HEALTHY.0), stats::Short(HEALTHY.1));
            if outside_healthy.is_empty() {
                s.push_str(&format!(", inside {band} everywhere"));
            } else {
                let at: Vec<String> = outside_healthy.iter().map(|&v| fv(v)).collect();
                s.push_str(&format!(", outside {band} at {sym} = {}", at.join(", ")));
            }
        }
    }
    match &c.training {
        Some(t) => s.push_str(&training_clause(t, &first, &last, vary)),
        None => s.push('.'),
    }
    s
}

/// The training part of [`verdict`]'s sentence (`first`/`last`: the end points' axis values,
/// written).
fn training_clause(t: &TrainingTrend, first: &str, last: &str, vary: Vary) -> String {
    let sym = vary.symbol();
    let loss = |l: Option<f64>| l.map_or("-".to_string(), fmt_num);
    let mut s = match t.best {
        Some((v, l)) => format!(
            "; test loss {} at {sym} = {first}, {} at {sym} = {last}, best {} at {sym} = {}",
            loss(t.first_test_loss),
            loss(t.last_test_loss),
            fmt_num(l),
            fmt_value(vary, v)
        ),
        None => "; no finite test loss".to_string(),
    };
    if t.diverged.is_empty() {
        s.push_str(", no run diverged.");
    } else {
        let at: Vec<String> = t
            .diverged
            .iter()
            .map(|d| format!("{} ({}/{})", fmt_value(vary, d.value), d.diverged, d.seeds))
            .collect();
        s.push_str(&format!(", diverged at {sym} = {}.", at.join(", ")));
    }
    s
}

/// `bn-lab sweep`: the whole grid (or with `--point`, one point and no figure: see
/// [`SweepPoint`]).
pub struct Sweep;

impl Experiment for Sweep {
    type Config = SweepConfig;
    type Report = SweepReport;
    const NAME: &'static str = "sweep";
    const STEM: &'static str = "sweep";

    fn run(cfg: &SweepConfig, progress: Progress) -> SweepReport {
        run(cfg, progress)
    }

    fn summary(report: &SweepReport) -> String {
        table(report)
    }
}

/// `bn-lab sweep --point I`: one point's `sweep.json`, no figure (`--collect` draws it).
pub struct SweepPoint;

impl Experiment for SweepPoint {
    type Config = SweepConfig;
    type Report = SweepReport;
    const NAME: &'static str = "sweep";
    const STEM: &'static str = "sweep";

    fn run(cfg: &SweepConfig, progress: Progress) -> SweepReport {
        run(cfg, progress)
    }

    fn summary(report: &SweepReport) -> String {
        let p = &report.points[0];
        format!(
            "sweep point {} of {}: {} = {}, {}, seed {}: grad ratio {}, test loss {}\n",
            report.point.unwrap_or(0),
            report.config.point_count(),
            report.config.vary.symbol(),
            fmt_value(report.config.vary, p.value),
            p.label,
            p.seed,
            fmt_num(p.grad_ratio.0),
            opt(p.final_test_loss)
        )
    }
}

/// Why per-point results could not be collected.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CollectError(pub String);

/// One `--point` run's file, read back: its config, point index and point.
pub struct PointFile {
    pub path: std::path::PathBuf,
    pub config: SweepConfig,
    pub point: usize,
    pub result: Point,
}

/// Assemble point files into the report of the whole sweep: they must share one config (the
/// first file's), and every point must be there exactly once with the value, arm and seed its
/// index stands for.
pub fn collect(files: Vec<PointFile>) -> Result<SweepReport, CollectError> {
    let Some(first) = files.first() else {
        return Err(CollectError("no sweep.json of a --point run found".into()));
    };
    let cfg = SweepConfig {
        point: None,
        ..first.config.clone()
    };
    let ids = cfg.points();
    let mut slots: Vec<Option<(Point, &std::path::Path)>> = vec![None; ids.len()];
    for f in &files {
        let c = SweepConfig {
            point: None,
            ..f.config.clone()
        };
        if c != cfg {
            return Err(CollectError(format!(
                "{}: its config differs from {}'s (another sweep?)",
                f.path.display(),
                first.path.display()
            )));
        }
        let Some(id) = ids.get(f.point) else {
            return Err(CollectError(format!(
                "{}: point {} is not in this sweep (0 to {})",
                f.path.display(),
                f.point,
                ids.len() - 1
            )));
        };
        let r = &f.result;
        if r.value != id.value || r.arm != id.norm || r.seed != id.seed {
            return Err(CollectError(format!(
                "{}: point {} should be {} = {}, {}, seed {} (got {}, {}, seed {})",
                f.path.display(),
                f.point,
                cfg.vary,
                id.value,
                id.norm,
                id.seed,
                r.value,
                r.arm,
                r.seed
            )));
        }
        if let Some((_, other)) = &slots[f.point] {
            return Err(CollectError(format!(
                "point {} is there twice: {} and {}",
                f.point,
                other.display(),
                f.path.display()
            )));
        }
        slots[f.point] = Some((r.clone(), &f.path));
    }
    let mut points = Vec::with_capacity(ids.len());
    for (id, slot) in ids.iter().zip(slots) {
        match slot {
            Some((p, _)) => points.push(p),
            None => {
                return Err(CollectError(format!(
                    "point {} ({} = {}, {}, seed {}) is missing",
                    id.index, cfg.vary, id.value, id.norm, id.seed
                )));
            }
        }
    }
    Ok(report(&cfg, points))
}

// The command line: the flags of `bn-lab sweep` and the config they describe (`commands::sweep`
// runs them: a local run, a plan, one point or a collection).

/// Sweep one axis (weight scale, batch size or depth) for no norm, BatchNorm and LayerNorm
/// over seeds: gradient ratio and growth per layer at init, final losses of a short
/// training run. Writes sweep.png and sweep.json; --plan/--point/--collect split it over
/// a scheduler.
// Flags of `bn-lab sweep`: ReLU, width 64, batch 64 by default; the depth, steps and init
// defaults depend on `--vary` (see the README).
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("auto").help(
        "Weight initialisation: he, xavier, lecun, normal:STD or auto (he for (leaky) ReLU, xavier otherwise); --vary weight-scale takes it from --values"
    )),
    mut_arg("width", |a| a.default_value("64")),
    mut_arg("batch", |a| a.default_value("64").help(
        "Samples per batch (--vary batch takes it from --values)"
    ))
)]
pub struct SweepArgs {
    /// The axis to sweep.
    #[arg(long, value_enum, required_unless_present = "collect")]
    pub vary: Option<crate::experiment::sweep::Vary>,
    /// The axis' values, comma-separated [default: weight-scale 1e-4 .. 1 log-spaced (10),
    /// batch 2,4,...,512, depth 1,2,3,5,10,20,50,100,200].
    #[arg(allow_hyphen_values = true, long, value_delimiter = ',')]
    pub values: Option<Vec<f64>>,
    /// Normalisers to compare, comma-separated: none, batch (BatchNorm), layer (LayerNorm).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "none,batch,layer"
    )]
    pub norm: Vec<NormChoice>,
    /// Repeat over K seeds (seed, seed+1, ...): weights and batch order change, the data set does not.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_SEEDS>, long, value_name = "K", default_value_t = 3)]
    pub seeds: usize,
    /// Number of hidden layers [default: 8 for weight-scale, 32 for batch; --vary depth takes
    /// it from --values].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long)]
    pub depth: Option<usize>,
    /// SGD steps of each point's training run, 0 for none [default: 300 for weight-scale, 150
    /// for batch, 0 for depth].
    #[arg(allow_hyphen_values = true, value_parser = count::<0, MAX_STEPS>, long)]
    pub steps: Option<usize>,
    /// SGD learning rate (plain SGD: no momentum, no weight decay).
    #[arg(
        allow_hyphen_values = true,
        long,
        default_value_t = crate::experiment::sweep::DEFAULT_LR,
        allow_negative_numbers = true
    )]
    pub lr: f64,
    /// Linear learning-rate warmup: update t (0-based) uses lr * min(1, (t + 1) / K); 0: none
    /// (1 is the same as none).
    #[arg(allow_hyphen_values = true, value_parser = count::<0, MAX_STEPS>, long, value_name = "K", default_value_t = 0)]
    pub warmup_steps: usize,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Threads for the points run side by side and each network's kernels [default: all cores].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long)]
    pub threads: Option<usize>,
    /// Do not run: write one complete `bn-lab sweep ... --point I --out OUT/point-I` command per
    /// point to FILE (for xargs -P, GNU parallel or a Slurm array job).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["point", "collect"])]
    pub plan: Option<PathBuf>,
    /// Compute only point I of the sweep (its index in the JSON's point order) and write its
    /// sweep.json without a figure.
    #[arg(allow_hyphen_values = true, value_parser = count::<0, 0>, long, value_name = "I", conflicts_with = "collect")]
    pub point: Option<usize>,
    /// Read DIR/*/sweep.json written by --point runs and write the whole sweep's sweep.json
    /// and sweep.png into --out (the sweep's flags come from the files).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["vary", "values"])]
    pub collect: Option<PathBuf>,
}

impl SweepArgs {
    /// Config fields set by flags of another name.
    pub const RENAMES: Renames = &[("norms", "--norm")];

    /// The config the flags describe (validated later); `vary` is set whenever `--collect` is
    /// not.
    pub fn config(&self, vary: Vary) -> anyhow::Result<SweepConfig> {
        distinct_norms(&self.norm)?;
        let (net, data) = self.data.specs(&self.net)?;
        Ok(SweepConfig {
            vary,
            values: self.values.clone().unwrap_or_else(|| vary.default_values()),
            depth: self.depth.or(vary.default_depth()),
            act: self.net.activation(),
            norms: self.norm.iter().map(|&c| self.net.normaliser(c)).collect(),
            seeds: self.seeds,
            net,
            data,
            sgd: PlainSgdSpec {
                steps: self.steps.unwrap_or(vary.default_steps()),
                lr: self.lr,
                warmup_steps: self.warmup_steps,
            },
            point: self.point,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_scale_grid_is_log_spaced_from_1e_4_to_1() {
        let v = Vary::WeightScale.default_values();
        assert_eq!(v.len(), 10);
        assert!((v[0] - 1e-4).abs() < 1e-18 && (v[9] - 1.0).abs() < 1e-12);
        let r = v[1] / v[0];
        assert!(v.windows(2).all(|w| (w[1] / w[0] - r).abs() < 1e-9));
    }

    #[test]
    fn means_are_geometric_for_ratios_and_arithmetic_for_losses() {
        let p = |seed, ratio, loss| Point {
            value: 1.0,
            arm: Normaliser::Off,
            label: "BN off".into(),
            seed,
            grad_ratio: Num(ratio),
            growth_per_layer: None,
            growth_rate: None,
            theory_rate: None,
            final_train_loss: Some(Num(loss)),
            final_test_loss: Some(Num(loss)),
            final_test_accuracy: None,
            diverged_at: (loss > 2.0).then_some(3),
        };
        let m = means(&[p(0, 1.0, 1.0), p(1, 100.0, 3.0)]);
        assert_eq!(m.len(), 1);
        assert!((m[0].grad_ratio.0 - 10.0).abs() < 1e-12);
        assert_eq!(m[0].final_test_loss, Some(Num(2.0)));
        assert_eq!((m[0].diverged, m[0].seeds), (1, 2));
        assert_eq!(m[0].growth_per_layer, None);
        // The median counts the diverged seed (loss 3.0) as inf: the upper of two is inf.
        assert_eq!(m[0].median_final_test_loss, Some(Num(f64::INFINITY)));
        let m = means(&[p(0, 1.0, 1.0), p(1, 1.0, 3.0), p(2, 1.0, 1.5)]);
        assert_eq!(m[0].median_final_test_loss, Some(Num(1.5)));
        assert!(m[0].final_test_loss.unwrap().0 > 1.8);
    }

    /// A mean of `arm` at axis value `value` with grad ratio `ratio`, test loss `loss` and
    /// `diverged` of 2 seeds diverged.
    fn mean_at(arm: Normaliser, value: f64, ratio: f64, loss: f64, diverged: usize) -> Mean {
        Mean {
            value,
            arm,
            label: arm.label().to_string(),
            seeds: 2,
            grad_ratio: Num(ratio),
            growth_per_layer: None,
            growth_rate: Some(Num(ratio.sqrt())),
            theory_rate: (value > 4.0).then_some(Num(value)),
            final_train_loss: Some(Num(loss)),
            final_test_loss: Some(Num(loss)),
            final_test_accuracy: None,
            median_final_test_loss: Some(Num(loss)),
            diverged,
        }
    }

    #[test]
    fn an_arm_curve_lists_the_points_outside_the_healthy_band_and_its_best_loss() {
        let means = [
            mean_at(Normaliser::Off, 2.0, 1.5, 0.4, 0),
            mean_at(Normaliser::BN, 2.0, 3.0, 0.5, 0),
            mean_at(Normaliser::Off, 8.0, HEALTHY.1 * 10.0, f64::NAN, 2),
            mean_at(Normaliser::BN, 8.0, 2.0, 0.3, 0),
            mean_at(Normaliser::Off, 20.0, HEALTHY.0 / 10.0, 0.7, 1),
            mean_at(Normaliser::BN, 20.0, 4.0, 0.6, 0),
        ];
        let c = arm_curve(Vary::Depth, true, &means, Normaliser::Off).unwrap();
        assert_eq!((c.first_value, c.last_value), (2.0, 20.0));
        assert_eq!(
            c.gradients,
            GradientTrend::GradRatio {
                first: 1.5,
                last: HEALTHY.0 / 10.0,
                outside_healthy: vec![8.0, 20.0],
            }
        );
        let t = c.training.unwrap();
        // The NaN loss at 8 is not a best.
        assert_eq!(t.best, Some((2.0, 0.4)));
        assert_eq!(
            t.diverged
                .iter()
                .map(|d| (d.value, d.diverged))
                .collect::<Vec<_>>(),
            vec![(8.0, 2), (20.0, 1)]
        );
        let bn = arm_curve(Vary::Depth, true, &means, Normaliser::BN).unwrap();
        assert!(matches!(
            bn.gradients,
            GradientTrend::GradRatio { ref outside_healthy, .. } if outside_healthy.is_empty()
        ));
        assert_eq!(bn.training.unwrap().best, Some((8.0, 0.3)));
        // Along the batch axis: growth rates at the ends, theory from the points that have it.
        let b = arm_curve(Vary::Batch, false, &means, Normaliser::BN).unwrap();
        assert_eq!(
            b.gradients,
            GradientTrend::GrowthRate {
                first: Some(3f64.sqrt()),
                last: Some(2.0),
                theory: Some([(8.0, 8.0), (20.0, 20.0)]),
            }
        );
        assert!(b.training.is_none());
        assert!(arm_curve(Vary::Depth, true, &means, Normaliser::LN).is_none());
    }
}
