//! `bn-lab nonlinearity`: the diary's argument that BatchNorm without scale and shift pins a
//! sigmoid's input into (-1, 1), where the sigmoid is nearly linear, so the network loses its
//! non-linearity, and that gamma/beta let it move out again.
//!
//! Sigmoid (and ReLU) networks are trained with BN with scale/shift, BN without, and no BN on
//! the non-linear task. Before and after training, a probe batch (the first `batch` test
//! samples, on a copy of the network) measures per layer the activation's input `u`: before
//! training in train mode (batch statistics: the running ones are still the defaults), after
//! it in eval mode (the running statistics the trained network predicts with; in train mode
//! BN would centre every unit over the probe batch by construction):
//!
//! ```text
//! inside_unit    fraction of u in (-1, 1)                 (sigmoid(u) ~ 1/2 + u/4 there)
//! saturated      sigmoid(u) < 0.03 or > 0.97 (|u| > 3.48);  tanh: |tanh(u)| > 0.97 (|u| > 2.09)
//! always_active  ReLU units with u > 0 for every sample   (the unit is linear on this batch)
//! dead           ReLU units with u <= 0 for every sample  (the unit is absent on this batch)
//! ```

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{
    Activation, ConfigError, Dtype, Normaliser, Placement, at_least, between, distinct, finite_in,
};
use crate::config::{check_points, points};
use crate::data::{self, Stream};
use crate::experiment::ExperimentArgs;
use crate::experiment::total_units;
use crate::experiment::{Cost, Experiment, Plan, Progress, ToolInfo, fit_macs, largest_alive};
use crate::flags::{DataArgs, NetArgs, OutputArgs, Renames, SgdArgs, count, usage};
use crate::float::Float;
use crate::limits::MAX_DEPTH;
use crate::limits::{MAX_SEEDS, MAX_STEPS};
use crate::memory::Footprint;
use crate::model::{Mlp, Mode};
use crate::ops;
use crate::optim::SgdSpec;
use crate::spec::{DataSpec, NetConfig, NetSpec};
use crate::stats::{Num, fmt_num};
use crate::train::{self, History, ReferenceLosses, Tagged, TrainSettings};
use clap::Args;

/// Sigmoid outputs below this or above `1 - this` count as saturated.
pub const SIGMOID_SATURATION: f64 = 0.03;
/// `|tanh(u)|` above this counts as saturated.
pub const TANH_SATURATION: f64 = 0.97;
/// Histograms of activation inputs cover `[-HIST_RANGE, HIST_RANGE]` (outside: counted apart).
pub const HIST_RANGE: f64 = 6.0;
pub const HIST_BINS: usize = 48;

/// The learning rate used for `act` when `--lr` is not given: 0.1 for sigmoid and tanh (BN
/// without scale/shift on sigmoid diverges from about 0.3), 0.01 for the others (a ReLU net
/// without BN diverges at 0.03 to 0.1 in this setting; see `bn-lab train`).
pub fn default_lr(act: Activation) -> f64 {
    match act {
        Activation::Sigmoid | Activation::Tanh => 0.1,
        _ => 0.01,
    }
}

/// A validated `nonlinearity` configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NonlinearityConfig {
    #[serde(flatten)]
    pub data: DataSpec,
    pub depth: usize,
    /// The activations compared (`init: auto` picks He for (leaky) ReLU, Xavier otherwise;
    /// each run's `net.init` says which).
    pub acts: Vec<Activation>,
    #[serde(flatten)]
    pub net: NetSpec,
    /// The normalisation arms; the verdict compares the BN arm with scale/shift with the one
    /// without (same placement).
    pub norms: Vec<Normaliser>,
    /// Learning rate per activation, in `acts` order.
    pub lrs: Vec<f64>,
    /// SGD momentum, weight decay and warmup, shared by every run.
    #[serde(flatten)]
    pub sgd: SgdSpec,
    pub steps: usize,
    pub eval_every: usize,
    pub diverge_factor: f64,
    /// Seeds `seed .. seed + seeds` are run.
    pub seeds: usize,
}

impl NonlinearityConfig {
    pub fn net(&self, act: Activation, norm: Normaliser) -> NetConfig {
        self.net.net(self.depth, act, norm)
    }

    /// The two arms the verdict compares: BN with scale/shift and BN without, at the same
    /// placement (the first BN arm's).
    pub fn affine_pair(&self) -> Option<(Normaliser, Normaliser)> {
        let with = self.norms.iter().copied().find(|n| n.affine())?;
        let Normaliser::Batch { placement, .. } = with else {
            return None;
        };
        let without = Normaliser::Batch {
            affine: false,
            placement,
        };
        self.norms.contains(&without).then_some((with, without))
    }
}

impl Plan for NonlinearityConfig {
    /// Check every field and every network before anything is allocated.
    fn validate(&self) -> Result<(), ConfigError> {
        self.net
            .one_layer_blocks("measures the input of each layer's activation")?;
        distinct("acts", &self.acts)?;
        crate::config::distinct_norms("norms", &self.norms)?;
        if self.lrs.len() != self.acts.len() {
            return Err(ConfigError::Invalid {
                field: "lrs",
                message: format!(
                    "give one value per activation ({} values for {} activations)",
                    self.lrs.len(),
                    self.acts.len()
                ),
            });
        }
        for &lr in &self.lrs {
            crate::config::check_lr("lrs", lr)?;
        }
        self.sgd.validate()?;
        between("steps", 1, MAX_STEPS, self.steps)?;
        between("seeds", 1, MAX_SEEDS, self.seeds)?;
        at_least("eval_every", 1, self.eval_every)?;
        check_points("eval_every", "steps", self.steps, self.eval_every)?;
        finite_in("diverge_factor", "> 1", self.diverge_factor, |v| v > 1.0)?;
        self.net.validate()?;
        self.data
            .validate(self.net.batch, self.net.d_in, self.net.d_out)?;
        if self.data.n_test < self.net.batch {
            return Err(ConfigError::BelowOther {
                field: "n_test",
                other: "batch",
                min: self.net.batch,
                got: self.data.n_test,
                why: " (the probe batch is the first batch test samples)",
            });
        }
        for &act in &self.acts {
            for &norm in &self.norms {
                self.net(act, norm).validate(self.net.batch)?;
            }
        }
        Ok(())
    }

    /// One data set and its linear fit; per run training side by side, its network on the
    /// batch, a probe copy (batch rows) and the final recalibration forward (up to
    /// `RECALIBRATION_SAMPLES` rows); per run, its scalars, activation statistics before and
    /// after (five numbers per layer, three histograms), gamma and beta, and three losses per
    /// evaluation.
    fn footprint(&self) -> Footprint {
        let parallel = crate::parallel::side_by_side(self.n_runs());
        let fp = self
            .data
            .footprint(Footprint::new(), &self.net, 1, parallel, true)
            .add(
                "networks",
                largest_alive(self.jobs().iter().map(|j| j.bytes)),
                &["depth", "width", "batch"],
            );
        let (depth, width) = (self.depth as f64, self.net.width as f64);
        let stats = 2.0 * (8.0 * depth + 3.0 * (HIST_BINS as f64 + 8.0));
        let per_run =
            32.0 + stats + 2.0 * depth * width + 3.0 * points(self.steps, self.eval_every) as f64;
        fp.records(
            self.n_runs() as f64 * per_run,
            &["seeds", "steps", "eval_every"],
        )
        .figures()
    }

    /// Work units [`run`] reports: the reference fit and every run.
    fn work_units(&self) -> u64 {
        self.reference_units()
            .saturating_add(total_units(self.jobs().iter().map(|j| j.units)))
    }

    fn costs(&self) -> Vec<Cost> {
        self.jobs()
            .iter()
            .map(|j| Cost::new(j.units, j.bytes))
            .collect()
    }

    /// Every run's passes, and the reference fit counted in passes of the largest network.
    fn macs(&self) -> f64 {
        let jobs = self.jobs();
        let units_and_nets = jobs.iter().map(|j| (j.units, &j.net));
        fit_macs(units_and_nets, self.net.batch, self.reference_units())
    }
}

/// One training run of [`run`]: an activation and configuration at one seed.
#[derive(Clone, Debug)]
pub struct NlJob {
    pub act: Activation,
    pub norm: Normaliser,
    pub seed: u64,
    pub net: NetConfig,
    /// Progress units ([`NonlinearityConfig::run_units`]).
    pub units: u64,
    /// The network's memory estimate on the rows it runs: the batch, the probe copy (batch
    /// rows) and the final recalibration forward.
    pub bytes: f64,
}

impl NonlinearityConfig {
    /// Runs: activations x configurations x seeds.
    pub fn n_runs(&self) -> usize {
        self.acts.len() * self.norms.len() * self.seeds
    }

    /// The learning rate of `act`'s runs.
    pub fn lr(&self, act: Activation) -> f64 {
        let i = self
            .acts
            .iter()
            .position(|&a| a == act)
            .expect("runs only use configured activations");
        self.lrs[i]
    }

    pub fn settings(&self, act: Activation, seed: u64) -> TrainSettings {
        TrainSettings {
            steps: self.steps,
            batch: self.net.batch,
            sgd: self.sgd.at(self.lr(act)),
            eval_every: self.eval_every,
            diag_every: 0,
            diverge_factor: self.diverge_factor,
            seed,
            loss: self.data.loss,
        }
    }

    pub fn seed_list(&self) -> Vec<u64> {
        self.net.seed_list(self.seeds)
    }

    /// Every (activation, configuration, seed) in run order.
    pub fn runs(&self) -> Vec<(Activation, Normaliser, u64)> {
        let seeds = self.seed_list();
        let mut v = Vec::new();
        for &act in &self.acts {
            for &norm in &self.norms {
                for &s in &seeds {
                    v.push((act, norm, s));
                }
            }
        }
        v
    }

    /// Every training run [`run`] executes, in the order of [`NonlinearityConfig::runs`]:
    /// what `run` trains, [`Plan::work_units`] counts and [`Plan::footprint`] sizes.
    pub fn jobs(&self) -> Vec<NlJob> {
        let rows = 2 * self.net.batch + self.data.n_train.min(crate::train::RECALIBRATION_SAMPLES);
        self.runs()
            .into_iter()
            .map(|(act, norm, seed)| {
                let net = self.net(act, norm);
                NlJob {
                    act,
                    norm,
                    seed,
                    units: self.run_units(act, norm),
                    bytes: net.memory_estimate_bytes(rows, self.net.dtype.bytes()),
                    net,
                }
            })
            .collect()
    }

    /// Work units of the least-squares reference fit (see [`train::linear_fit_units`]).
    pub fn reference_units(&self) -> u64 {
        let macs = self
            .acts
            .iter()
            .flat_map(|&a| self.norms.iter().map(move |&n| (a, n)))
            .map(|(a, n)| train::forward_macs(&self.net(a, n)))
            .fold(1.0, f64::max);
        train::linear_fit_units(
            self.data.n_train,
            self.data.n_test,
            self.net.d_in,
            self.net.d_out,
            macs,
        )
    }

    /// Work units of one run, in forward passes of one sample (see
    /// [`train::FORWARD_BACKWARD`]): the probe before and after training, the training with
    /// its evaluations, and the recalibrated losses.
    pub fn run_units(&self, act: Activation, norm: Normaliser) -> u64 {
        let (n_train, n_test) = (self.data.n_train, self.data.n_test);
        train::units(2, self.net.batch as u64)
            .saturating_add(self.settings(act, 0).work_units(n_train, n_test))
            .saturating_add(train::recalibration_units(norm.is_batch(), n_train, n_test))
    }

    /// Hidden layers (1-based) whose histograms are kept: first, middle, last.
    pub fn hist_layers(&self) -> Vec<usize> {
        let mut v = vec![1, self.depth.div_ceil(2), self.depth];
        v.dedup();
        v
    }
}

/// Counts of values in equal bins over `[lo, hi)`, and of those outside.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
    pub below: u64,
    pub above: u64,
    /// Values that were inf or NaN.
    pub non_finite: u64,
}

impl Histogram {
    pub fn new(lo: f64, hi: f64, bins: usize, values: impl Iterator<Item = f64>) -> Self {
        let mut h = Histogram {
            lo,
            hi,
            counts: vec![0; bins],
            below: 0,
            above: 0,
            non_finite: 0,
        };
        let width = (hi - lo) / bins as f64;
        for v in values {
            if !v.is_finite() {
                h.non_finite += 1;
            } else if v < lo {
                h.below += 1;
            } else if v >= hi {
                h.above += 1;
            } else {
                let i = (((v - lo) / width) as usize).min(bins - 1);
                h.counts[i] += 1;
            }
        }
        h
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.below + self.above + self.non_finite
    }

    pub fn bin_width(&self) -> f64 {
        (self.hi - self.lo) / self.counts.len() as f64
    }
}

/// A histogram of one layer's activation inputs.
#[derive(Clone, Debug, Serialize)]
pub struct LayerHistogram {
    pub layer: usize,
    pub hist: Histogram,
}

/// Per-layer measurements on the probe batch, layer 1 first. Fields that do not apply to the
/// activation are `null`. A layer whose activation inputs hold a NaN has NaN fractions (a NaN is
/// neither inside nor outside (-1, 1), saturated or not); an inf input counts as outside (-1, 1),
/// saturated and, for ReLU, active.
#[derive(Clone, Debug, Serialize)]
pub struct ActivationStats {
    /// Fraction of activation inputs in (-1, 1).
    pub inside_unit: Vec<Num>,
    /// Sigmoid/tanh: fraction of activation outputs in the saturated range.
    pub saturated: Option<Vec<Num>>,
    /// (Leaky) ReLU: fraction of units whose input is > 0 for every probe sample.
    pub always_active: Option<Vec<Num>>,
    /// (Leaky) ReLU: fraction of units whose input is <= 0 for every probe sample.
    pub dead: Option<Vec<Num>>,
    /// Standard deviation of the activation inputs.
    pub input_std: Vec<Num>,
    pub histograms: Vec<LayerHistogram>,
}

/// Measure `net` on `x` in `mode`, on a copy (so a train-mode probe leaves the running
/// statistics as they were). `run_one` probes the untrained network in train mode (its
/// running statistics are still the defaults 0 and 1, and a train-mode forward is what the
/// first step sees) and the trained one in eval mode, with the running statistics it predicts
/// with: in train mode BN centres every unit over the probe batch by construction, so a
/// BN unit could not come out dead or always active whatever training did.
pub fn activation_stats<T: Float>(
    net: &Mlp<T>,
    x: ndarray::ArrayView2<T>,
    hist_layers: &[usize],
    mode: Mode,
) -> ActivationStats {
    let mut copy = net.clone();
    copy.forward(x, mode)
        .expect("the probe batch has the network's input width");
    let act = net.config.act;
    let relu_like = matches!(act, Activation::Relu | Activation::LeakyRelu);
    let saturating = matches!(act, Activation::Sigmoid | Activation::Tanh);
    let mut s = ActivationStats {
        inside_unit: Vec::new(),
        saturated: saturating.then(Vec::new),
        always_active: relu_like.then(Vec::new),
        dead: relu_like.then(Vec::new),
        input_std: Vec::new(),
        histograms: Vec::new(),
    };
    for l in 1..=copy.depth() {
        let u: Array2<f64> = copy.activation_input(l).mapv(|v| v.f64());
        let has_nan = u.iter().any(|v| v.is_nan());
        // A fraction of values of which some are NaN is no measurement: NaN.
        let frac = |count: usize, of: f64| Num(if has_nan { f64::NAN } else { count as f64 / of });
        let n = u.len() as f64;
        s.inside_unit
            .push(frac(u.iter().filter(|v| v.abs() < 1.0).count(), n));
        s.input_std.push(Num(crate::stats::std_dev(&u)));
        if let Some(sat) = &mut s.saturated {
            let count = u
                .iter()
                .filter(|&&v| {
                    let a = ops::act_scalar(act, v);
                    match act {
                        Activation::Sigmoid => {
                            !(SIGMOID_SATURATION..=1.0 - SIGMOID_SATURATION).contains(&a)
                        }
                        _ => a.abs() > TANH_SATURATION,
                    }
                })
                .count();
            sat.push(frac(count, n));
        }
        if let (Some(on), Some(dead)) = (&mut s.always_active, &mut s.dead) {
            let units = u.ncols() as f64;
            let (mut all_on, mut all_off) = (0usize, 0usize);
            for col in u.columns() {
                if col.iter().all(|&v| v > 0.0) {
                    all_on += 1;
                }
                if col.iter().all(|&v| v <= 0.0) {
                    all_off += 1;
                }
            }
            on.push(frac(all_on, units));
            dead.push(frac(all_off, units));
        }
        if hist_layers.contains(&l) {
            s.histograms.push(LayerHistogram {
                layer: l,
                hist: Histogram::new(-HIST_RANGE, HIST_RANGE, HIST_BINS, u.iter().copied()),
            });
        }
    }
    s
}

/// One trained network.
#[derive(Clone, Debug, Serialize)]
pub struct NlRun {
    pub act: Activation,
    pub norm: Normaliser,
    pub seed: u64,
    pub label: String,
    pub net: NetConfig,
    pub diverged: bool,
    /// Mean mini-batch loss (train mode) over the last tenth of the evaluations: the fit.
    pub late_batch_loss: Num,
    /// Mean test loss (eval mode) over the last tenth of the evaluations.
    pub late_test_loss: Num,
    /// Train and test loss of the final network with its BN statistics recomputed over the
    /// training set ([`train::recalibrated_losses`]): the fit the verdict is judged on.
    pub recalibrated_train_loss: Num,
    pub recalibrated_test_loss: Num,
    /// The recalibrated network's test accuracy (classification tasks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recalibrated_test_accuracy: Option<Num>,
    pub final_train_loss: Num,
    pub best_train_loss: Num,
    pub final_test_loss: Num,
    pub best_test_loss: Num,
    /// Classification tasks only.
    #[serde(flatten)]
    pub accuracy: Option<crate::train::Accuracies>,
    pub before: ActivationStats,
    pub after: ActivationStats,
    /// BN + affine: the learned `gamma[layer][unit]` and `beta[layer][unit]` (layer 1 first).
    pub gamma: Option<Vec<Vec<Num>>>,
    pub beta: Option<Vec<Vec<Num>>>,
    pub history: History,
}

/// How this run bears on the diary's claim for one activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AffineVerdict {
    /// BN + affine fitted the training data better (lower recalibrated train loss, by more
    /// than the tolerance, in most seeds) than BN without affine.
    Supports,
    /// BN without affine fitted better.
    Contradicts,
    /// Within `tolerance` of each other, or the seeds disagree.
    NoClearDifference,
    /// No finite evidence: a compared run diverged (its loss is where training stopped, not a
    /// fit) or its recalibrated train loss is inf/NaN; `verdict_reason` says which.
    Undetermined,
}

/// Per configuration of one activation, averaged over seeds.
#[derive(Clone, Debug, Serialize)]
pub struct ArmMeans {
    pub norm: Normaliser,
    /// Mean over seeds of `recalibrated_train_loss` (the fit) and `recalibrated_test_loss`.
    pub train_loss: Num,
    pub test_loss: Num,
    /// Mean over seeds of `late_batch_loss`.
    pub batch_loss: Num,
    /// Mean over seeds of `recalibrated_test_accuracy` (classification tasks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<Num>,
    /// Mean over layers and seeds of `inside_unit` before and after training.
    pub inside_unit_before: Num,
    pub inside_unit_after: Num,
    /// Same for `saturated` (sigmoid/tanh), `always_active` and `dead` (ReLU).
    pub saturated_before: Option<Num>,
    pub saturated_after: Option<Num>,
    pub always_active_after: Option<Num>,
    pub dead_after: Option<Num>,
    pub diverged_runs: usize,
}

/// The comparison the diary's claim is about, for one activation.
#[derive(Clone, Debug, Serialize)]
pub struct ActSummary {
    pub act: Activation,
    pub arms: Vec<ArmMeans>,
    /// `mean recalibrated train loss without affine / with affine` (> 1: affine fits better).
    pub no_affine_over_affine_train: Option<Num>,
    /// The same for the recalibrated test loss.
    pub no_affine_over_affine_test: Option<Num>,
    /// Seeds in which affine reached the lower recalibrated train loss.
    pub seeds_affine_better: Option<usize>,
    pub verdict: Option<AffineVerdict>,
    /// Why the verdict is `undetermined` (`null` otherwise).
    pub verdict_reason: Option<String>,
}

/// Everything `nonlinearity` computed; written to `nonlinearity.json`.
#[derive(Clone, Debug, Serialize)]
pub struct NonlinearityReport {
    pub tool: ToolInfo,
    pub config: NonlinearityConfig,
    /// What predicting 0 and the best linear model reach on this task.
    #[serde(flatten)]
    pub reference: ReferenceLosses,
    /// A ratio within `1 +- tolerance` is "no clear difference".
    pub tolerance: f64,
    pub summary: Vec<ActSummary>,
    pub runs: Vec<NlRun>,
    /// Wall-clock seconds (not part of the reproducible numbers).
    pub seconds: f64,
}

fn run_one<T: Float>(
    cfg: &NonlinearityConfig,
    data: &data::Dataset<T>,
    job: &NlJob,
    progress: Progress,
) -> NlRun {
    let (act, norm, seed, net_cfg) = (job.act, job.norm, job.seed, job.net.clone());
    let mut net = Mlp::<T>::new(&net_cfg, &mut data::rng(seed, Stream::Weights));
    let probe_x = data.test.x.slice(ndarray::s![..cfg.net.batch, ..]);
    let layers = cfg.hist_layers();
    let before = activation_stats(&net, probe_x, &layers, Mode::Train);
    progress.units(cfg.net.batch as u64);
    let history = train::train(&mut net, data, &cfg.settings(act, seed), progress);
    let after = activation_stats(&net, probe_x, &layers, Mode::Eval);
    progress.units(cfg.net.batch as u64);
    let (recal_train, recal_test) =
        train::recalibrated_losses(&net, data, cfg.net.batch, cfg.data.loss);
    progress.units(train::recalibration_units(
        norm.is_batch(),
        cfg.data.n_train,
        cfg.data.n_test,
    ));
    let affine = |pick: &dyn Fn(&crate::model::ScaleShift<T>) -> Vec<Num>| {
        norm.affine().then(|| {
            net.blocks
                .iter()
                .filter_map(|b| b.bn.as_ref().and_then(|bn| bn.affine.as_ref()))
                .map(pick)
                .collect()
        })
    };
    let gamma = affine(&|ss| ss.gamma.iter().map(|v| Num(v.f64())).collect());
    let beta = affine(&|ss| ss.beta.iter().map(|v| Num(v.f64())).collect());
    NlRun {
        act,
        norm,
        seed,
        label: format!("{act}, {}", norm.label()),
        net: net_cfg,
        diverged: history.divergence.is_some(),
        late_batch_loss: Num(history.late_batch_loss()),
        late_test_loss: Num(history.late_test_loss()),
        recalibrated_train_loss: Num(recal_train.loss),
        recalibrated_test_loss: Num(recal_test.loss),
        recalibrated_test_accuracy: data.classes.map(|_| Num(recal_test.accuracy)),
        accuracy: history.accuracies(),
        final_train_loss: Num(history.final_train_loss()),
        best_train_loss: Num(history.best_train_loss()),
        final_test_loss: Num(history.final_test_loss()),
        best_test_loss: Num(history.best_test_loss()),
        before,
        after,
        gamma,
        beta,
        history,
    }
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// Mean over seeds' runs and layers of one per-layer measurement.
fn layer_mean(runs: &[&NlRun], pick: impl Fn(&NlRun) -> Option<&Vec<Num>>) -> Option<Num> {
    let vals: Vec<f64> = runs
        .iter()
        .filter_map(|r| pick(r))
        .flat_map(|v| v.iter().map(|x| x.0))
        .collect();
    (!vals.is_empty()).then(|| Num(mean(vals.into_iter())))
}

/// Why the compared arms' runs are no evidence for the verdict, if they are not: runs that
/// diverged (their loss is where training stopped, not how well the network fits) and runs whose
/// recalibrated train loss is inf/NaN, per arm and seed.
fn missing_evidence(arms: &[(Normaliser, &Vec<&NlRun>)]) -> Option<String> {
    let seeds_of = |rs: &[&&NlRun]| -> String {
        rs.iter()
            .map(|r| r.seed.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let diverged: Vec<(Normaliser, String)> = arms
        .iter()
        .filter_map(|(norm, runs)| {
            let d: Vec<&&NlRun> = runs.iter().filter(|r| r.diverged).collect();
            let which = if d.len() == runs.len() {
                format!("in all {} seed(s)", runs.len())
            } else {
                format!("in seed(s) {} (of {})", seeds_of(&d), runs.len())
            };
            (!d.is_empty()).then_some((*norm, which))
        })
        .collect();
    let non_finite: Vec<String> = arms
        .iter()
        .filter_map(|(norm, runs)| {
            let bad: Vec<&&NlRun> = runs
                .iter()
                .filter(|r| !r.diverged && !r.recalibrated_train_loss.0.is_finite())
                .collect();
            (!bad.is_empty()).then(|| {
                format!(
                    "the recalibrated train loss of {} is not finite in seed(s) {}",
                    norm.label(),
                    seeds_of(&bad)
                )
            })
        })
        .collect();
    let all_diverged = diverged.len() == arms.len()
        && arms.iter().all(|(_, runs)| runs.iter().all(|r| r.diverged));
    let mut parts = Vec::new();
    if all_diverged {
        let labels: Vec<&str> = arms.iter().map(|(n, _)| n.label()).collect();
        parts.push(format!(
            "every BN run compared diverged ({} in all {} seed(s))",
            labels.join(" and "),
            arms[0].1.len()
        ));
    } else {
        for (norm, which) in &diverged {
            parts.push(format!("{} diverged {which}", norm.label()));
        }
    }
    parts.extend(non_finite);
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn summarise(cfg: &NonlinearityConfig, runs: &[NlRun], tolerance: f64) -> Vec<ActSummary> {
    cfg.acts
        .iter()
        .map(|&act| {
            let of = |norm: Normaliser| -> Vec<&NlRun> {
                runs.iter()
                    .filter(|r| r.act == act && r.norm == norm)
                    .collect()
            };
            let arms: Vec<ArmMeans> = cfg
                .norms
                .iter()
                .map(|&norm| {
                    let rs = of(norm);
                    ArmMeans {
                        norm,
                        train_loss: Num(mean(rs.iter().map(|r| r.recalibrated_train_loss.0))),
                        test_loss: Num(mean(rs.iter().map(|r| r.recalibrated_test_loss.0))),
                        batch_loss: Num(mean(rs.iter().map(|r| r.late_batch_loss.0))),
                        test_accuracy: cfg.data.task.is_classification().then(|| {
                            Num(mean(rs.iter().map(|r| {
                                r.recalibrated_test_accuracy.map_or(f64::NAN, |a| a.0)
                            })))
                        }),
                        inside_unit_before: layer_mean(&rs, |r| Some(&r.before.inside_unit))
                            .unwrap_or(Num(f64::NAN)),
                        inside_unit_after: layer_mean(&rs, |r| Some(&r.after.inside_unit))
                            .unwrap_or(Num(f64::NAN)),
                        saturated_before: layer_mean(&rs, |r| r.before.saturated.as_ref()),
                        saturated_after: layer_mean(&rs, |r| r.after.saturated.as_ref()),
                        always_active_after: layer_mean(&rs, |r| r.after.always_active.as_ref()),
                        dead_after: layer_mean(&rs, |r| r.after.dead.as_ref()),
                        diverged_runs: rs.iter().filter(|r| r.diverged).count(),
                    }
                })
                .collect();
            let find = |norm| arms.iter().find(|a| a.norm == norm);
            let pair = cfg
                .affine_pair()
                .and_then(|(with, without)| Some((with, without, find(with)?, find(without)?)));
            let (ratio_train, ratio_test, better, verdict, reason) = match pair {
                Some((with, without, a, n)) => {
                    let rt = n.train_loss.0 / a.train_loss.0;
                    let rtest = n.test_loss.0 / a.test_loss.0;
                    let (ra, rn) = (of(with), of(without));
                    let better = ra
                        .iter()
                        .zip(&rn)
                        .filter(|(a, n)| a.recalibrated_train_loss.0 < n.recalibrated_train_loss.0)
                        .count();
                    let seeds = ra.len();
                    let reason = missing_evidence(&[(with, &ra), (without, &rn)]);
                    let verdict = if reason.is_some() {
                        AffineVerdict::Undetermined
                    } else if rt > 1.0 + tolerance && 2 * better > seeds {
                        AffineVerdict::Supports
                    } else if rt < 1.0 / (1.0 + tolerance) && 2 * better < seeds {
                        AffineVerdict::Contradicts
                    } else {
                        AffineVerdict::NoClearDifference
                    };
                    (
                        Some(Num(rt)),
                        Some(Num(rtest)),
                        Some(better),
                        Some(verdict),
                        reason,
                    )
                }
                _ => (None, None, None, None, None),
            };
            ActSummary {
                act,
                arms,
                no_affine_over_affine_train: ratio_train,
                no_affine_over_affine_test: ratio_test,
                seeds_affine_better: better,
                verdict,
                verdict_reason: reason,
            }
        })
        .collect()
}

fn run_typed<T: Float>(
    cfg: &NonlinearityConfig,
    progress: Progress,
) -> (Vec<NlRun>, ReferenceLosses) {
    // One data set for every run: the seeds vary weights and batch order, the task is fixed.
    let data = cfg.data.task_for::<T>(&cfg.net);
    let reference = ReferenceLosses::of(&data, cfg.data.loss);
    progress.units(cfg.reference_units());
    let runs = cfg
        .jobs()
        .par_iter()
        .map(|job| {
            let seed = if cfg.seeds > 1 {
                format!(" seed={}", job.seed)
            } else {
                String::new()
            };
            let key = format!("{} {}{seed}", job.act.name(), job.norm.label());
            run_one(cfg, &data, job, &Tagged::new(progress, key))
        })
        .collect();
    (runs, reference)
}

/// Run every (activation, configuration, seed) in parallel; `progress.units(n)` is told of every `n`
/// work units done ([`NonlinearityConfig::work_units`] in all).
pub fn run(cfg: &NonlinearityConfig, progress: Progress) -> NonlinearityReport {
    let start = std::time::Instant::now();
    let (runs, reference) = match cfg.net.dtype {
        Dtype::F32 => run_typed::<f32>(cfg, progress),
        Dtype::F64 => run_typed::<f64>(cfg, progress),
    };
    let tolerance = 0.10;
    NonlinearityReport {
        tool: ToolInfo::current(),
        config: cfg.clone(),
        reference,
        tolerance,
        summary: summarise(cfg, &runs, tolerance),
        runs,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// The shared settings in one line.
pub fn title(cfg: &NonlinearityConfig) -> String {
    let lrs = cfg
        .acts
        .iter()
        .zip(&cfg.lrs)
        .map(|(a, lr)| format!("{} ({a})", crate::stats::Short(*lr)))
        .collect::<Vec<_>>()
        .join(", ");
    let warmup = crate::optim::warmup_label(cfg.sgd.warmup_steps)
        .map_or(String::new(), |w| format!(", {w}"));
    let mut s = format!(
        "{} · depth {}, width {} · lr {lrs}{warmup} · {} steps, batch {}",
        crate::experiment::train::task_part(&cfg.data),
        cfg.depth,
        cfg.net.width,
        cfg.steps,
        cfg.net.batch
    );
    if cfg.norms.iter().any(|n| {
        matches!(
            n,
            Normaliser::Batch {
                placement: Placement::Post,
                ..
            }
        )
    }) {
        s.push_str(" · BN after the activation");
    }
    if cfg.sgd.sgd_momentum != 0.0 {
        s.push_str(&format!(", momentum {}", cfg.sgd.sgd_momentum));
    }
    if cfg.sgd.weight_decay != 0.0 {
        s.push_str(&format!(", wd {}", cfg.sgd.weight_decay));
    }

    if cfg.seeds > 1 {
        s.push_str(&format!(" · {} seeds from {}", cfg.seeds, cfg.net.seed));
    } else {
        s.push_str(&format!(" · seed {}", cfg.net.seed));
    }
    s.push_str(&format!(" · {}", cfg.net.dtype));
    s
}

fn pct(v: Option<Num>) -> String {
    match v {
        Some(Num(x)) if x.is_finite() => crate::train::percent(x),
        Some(Num(x)) => fmt_num(x),
        None => "-".into(),
    }
}

/// The stdout summary.
pub fn table(report: &NonlinearityReport) -> String {
    let cfg = &report.config;
    let mut out = format!("nonlinearity: {}\n", title(cfg));
    let acc = cfg.data.task.is_classification();
    out.push_str(&format!(
        "{:<10} {:<14} {:>10} {:>10}{} {:>10} {:>16} {:>16} {:>9} {:>9}\n",
        "act",
        "config",
        "train",
        "test",
        if acc {
            format!(" {:>8}", "test acc")
        } else {
            String::new()
        },
        "mini-batch",
        "in (-1,1) before",
        "in (-1,1) after",
        "saturated",
        "dead/lin"
    ));
    for s in &report.summary {
        for a in &s.arms {
            let last = match (a.saturated_after, a.dead_after, a.always_active_after) {
                (Some(sat), _, _) => (pct(Some(sat)), "-".to_string()),
                (None, Some(d), Some(l)) => (
                    "-".to_string(),
                    format!("{}/{}", pct(Some(d)), pct(Some(l))),
                ),
                _ => ("-".to_string(), "-".to_string()),
            };
            out.push_str(&format!(
                "{:<10} {:<14} {:>10} {:>10}{} {:>10} {:>16} {:>16} {:>9} {:>9}{}\n",
                s.act.name(),
                a.norm.label(),
                fmt_num(a.train_loss.0),
                fmt_num(a.test_loss.0),
                a.test_accuracy.map_or(String::new(), |v| format!(
                    " {:>8}",
                    crate::train::percent(v.0)
                )),
                fmt_num(a.batch_loss.0),
                pct(Some(a.inside_unit_before)),
                pct(Some(a.inside_unit_after)),
                last.0,
                last.1,
                if a.diverged_runs > 0 {
                    format!("  ({} run(s) DIVERGED)", a.diverged_runs)
                } else {
                    String::new()
                }
            ));
        }
    }
    out.push_str(&format!(
        "train/test: final loss, BN statistics recomputed over the training set; mini-batch: training mini-batch loss (BN batch statistics)\n\
         over the last tenth of the run; all means over {} seed(s). Loss: {}{}.\n\
         Reference levels: {}.\n\
         in (-1,1): share of activation inputs in (-1, 1), mean over layers; saturated (after training): sigmoid output < {} or > {} (tanh: |t| > {});\n\
         dead/lin (after training): ReLU units inactive / active for every sample of a {}-sample probe batch;\n\
         the probe runs in train mode before training and in eval mode (running statistics) after it.\n",
        cfg.seeds,
        crate::train::loss_formula(cfg.data.loss),
        if acc {
            "; test acc: share of test images classified right (recalibrated BN statistics)"
        } else {
            ""
        },
        report.reference.describe(),
        SIGMOID_SATURATION,
        1.0 - SIGMOID_SATURATION,
        TANH_SATURATION,
        cfg.net.batch
    ));
    out.push('\n');
    out.push_str(&verdict_text(report));
    out
}

/// What one activation's runs say about the diary's claim that scale/shift fits the non-linear
/// task better: the facts [`verdict_text`] writes out.
#[derive(Clone, Debug)]
pub enum AffineEvidence<'a> {
    /// A compared run diverged or reached no finite loss (`reason`: which; see
    /// [`AffineVerdict::Undetermined`]).
    Undetermined {
        act: Activation,
        reason: Option<&'a str>,
    },
    /// Both arms trained: how they compare.
    Compared(AffineComparison<'a>),
}

/// Which of the two arms reached the lower mean train loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowerArm {
    WithAffine,
    WithoutAffine,
}

/// The comparison of BN with and without scale/shift for one activation.
#[derive(Clone, Debug)]
pub struct AffineComparison<'a> {
    pub act: Activation,
    pub verdict: AffineVerdict,
    /// The arms with (`with`) and without (`without`) scale/shift.
    pub with: &'a ArmMeans,
    pub without: &'a ArmMeans,
    /// The arm with the lower mean train loss (without affine when the ratio is NaN) and by
    /// what factor: the larger mean over the smaller.
    pub lower: LowerArm,
    pub factor: f64,
    /// Mean test loss without over with affine.
    pub test_ratio: f64,
    /// Seeds in which affine reached the lower train loss, of `seeds`.
    pub seeds_affine_better: usize,
    pub seeds: usize,
    /// `Some(tolerance)` when there is no clear difference because the train losses are
    /// within `tolerance` of each other (rather than because the seeds disagree).
    pub within_tolerance: Option<f64>,
}

/// The [`AffineEvidence`] of activation summary `s` of a run with config `cfg` and ratio
/// tolerance `tolerance`; `None` when `s` has no verdict (the pair was not compared).
pub fn affine_evidence<'a>(
    cfg: &NonlinearityConfig,
    tolerance: f64,
    s: &'a ActSummary,
) -> Option<AffineEvidence<'a>> {
    if s.verdict == Some(AffineVerdict::Undetermined) {
        return Some(AffineEvidence::Undetermined {
            act: s.act,
            reason: s.verdict_reason.as_deref(),
        });
    }
    let (Some(rt), Some(rtest), Some(better), Some(verdict)) = (
        s.no_affine_over_affine_train,
        s.no_affine_over_affine_test,
        s.seeds_affine_better,
        s.verdict,
    ) else {
        return None;
    };
    let find = |norm| s.arms.iter().find(|a| a.norm == norm);
    let (with, without) = cfg.affine_pair().expect("a verdict implies both arms");
    let (lower, factor) = if rt.0 >= 1.0 {
        (LowerArm::WithAffine, rt.0)
    } else {
        (LowerArm::WithoutAffine, 1.0 / rt.0)
    };
    let close = verdict == AffineVerdict::NoClearDifference && (rt.0 - 1.0).abs() <= tolerance;
    Some(AffineEvidence::Compared(AffineComparison {
        act: s.act,
        verdict,
        with: find(with).expect("a verdict implies both arms"),
        without: find(without).expect("a verdict implies both arms"),
        lower,
        factor,
        test_ratio: rtest.0,
        seeds_affine_better: better,
        seeds: cfg.seeds,
        within_tolerance: close.then_some(tolerance),
    }))
}

/// The plain-words answer to the diary's claim, one paragraph per activation: each
/// [`affine_evidence`] written out.
pub fn verdict_text(report: &NonlinearityReport) -> String {
    let mut out = String::new();
    for s in &report.summary {
        match affine_evidence(&report.config, report.tolerance, s) {
            Some(AffineEvidence::Undetermined { act, reason }) => out.push_str(&format!(
                "{}: this run does not tell whether scale/shift fits the non-linear task better (UNDETERMINED): {}; \
                 a verdict needs every compared run trained to the end with a finite loss (try a smaller --lr).\n",
                act.name(),
                reason.unwrap_or("no finite evidence"),
            )),
            Some(AffineEvidence::Compared(c)) => out.push_str(&comparison_text(&c)),
            None => {}
        }
    }
    out
}

/// One activation's [`AffineComparison`] in words: two or three lines.
fn comparison_text(c: &AffineComparison) -> String {
    let (a, n) = (c.with, c.without);
    let how = match c.lower {
        LowerArm::WithAffine => format!("{}x lower with affine", fmt_num(c.factor)),
        LowerArm::WithoutAffine => format!("{}x lower without affine", fmt_num(c.factor)),
    };
    let word = match c.verdict {
        AffineVerdict::Supports => "SUPPORTS",
        AffineVerdict::Contradicts => "CONTRADICTS",
        AffineVerdict::NoClearDifference => "does NOT clearly support",
        AffineVerdict::Undetermined => unreachable!("undetermined has no comparison"),
    };
    let mut out = format!(
        "{}: this run {word} the diary's claim that scale/shift fits the non-linear task better: \
         train loss {} with affine vs {} without ({how}; affine lower in {} of {} seed(s)); test loss without/with affine {}x.\n",
        c.act.name(),
        fmt_num(a.train_loss.0),
        fmt_num(n.train_loss.0),
        c.seeds_affine_better,
        c.seeds,
        fmt_num(c.test_ratio),
    );
    out.push_str(&format!(
        "  inputs in (-1, 1): without affine {} -> {} (pinned by standardisation), with affine {} -> {}",
        pct(Some(n.inside_unit_before)),
        pct(Some(n.inside_unit_after)),
        pct(Some(a.inside_unit_before)),
        pct(Some(a.inside_unit_after)),
    ));
    if let (Some(sb), Some(sa)) = (a.saturated_before, a.saturated_after) {
        out.push_str(&format!(
            "; saturated with affine {} -> {}",
            pct(Some(sb)),
            pct(Some(sa))
        ));
    }
    out.push_str(".\n");
    if let Some(tolerance) = c.within_tolerance {
        out.push_str(&format!(
            "  (the two are within {:.0}% of each other)\n",
            100.0 * tolerance
        ));
    }
    out
}

/// `bn-lab nonlinearity`.
pub struct Nonlinearity;

impl Experiment for Nonlinearity {
    type Config = NonlinearityConfig;
    type Report = NonlinearityReport;
    const NAME: &'static str = "nonlinearity";
    const STEM: &'static str = "nonlinearity";

    fn run(cfg: &NonlinearityConfig, progress: Progress) -> NonlinearityReport {
        run(cfg, progress)
    }

    fn summary(report: &NonlinearityReport) -> String {
        table(report)
    }
}

// The command line: the flags of `bn-lab nonlinearity` and the config they describe.

/// Train sigmoid and ReLU networks with BatchNorm with scale/shift, without, and without BN
/// on the non-linear task: per layer, how many activation inputs sit in (-1, 1), saturate,
/// or leave ReLU units dead or linear, before and after training, and which fits better.
/// Writes nonlinearity.png, nonlinearity_detail.png, nonlinearity_hist.png and nonlinearity.json.
// Flags of `bn-lab nonlinearity`: it compares activations (`--acts`) and BN variants
// (`--configs`), and picks the initialisation per activation unless `--init` is given.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    mut_arg("act", |a| a.default_value(None::<&str>).hide(true)),
    mut_arg("init", |a| a.default_value("auto")),
    mut_arg("width", |a| a.default_value("64")),
    mut_arg("batch", |a| a.default_value("64").help(
        "Samples per mini-batch (also the size of the probe batch the fractions are measured on)"
    )),
    mut_arg("affine", |a| a.hide(true)),
    mut_arg("no_affine", |a| a.hide(true)),
    mut_arg("residual", |a| a.hide(true)),
    mut_arg("residual_scale", |a| a.hide(true)),
    mut_arg("n_test", |a| a.help("Test samples (the first --batch of them are the probe batch) [default: 1024; an image set's whole test split]"))
)]
pub struct NonlinearityArgs {
    /// Activations to compare, comma-separated (sigmoid, tanh, relu, leaky-relu, linear).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sigmoid,relu"
    )]
    pub acts: Vec<Activation>,
    /// BN variants to compare, comma-separated; --placement moves every BN arm.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "on,no-affine,off"
    )]
    pub configs: Vec<Normaliser>,
    /// Number of hidden layers.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, default_value_t = 6)]
    pub depth: usize,
    /// Learning rate: one for every run, or one per --acts entry (comma-separated, same order)
    /// [default: 0.1 for sigmoid and tanh, 0.01 otherwise].
    #[arg(allow_hyphen_values = true, long, value_delimiter = ',')]
    pub lr: Option<Vec<f64>>,
    /// SGD updates per run.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_STEPS>, long, default_value_t = 1000)]
    pub steps: usize,
    /// Repeat over K seeds (seed, seed+1, ...): weights and batch order change, the data set does not.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_SEEDS>, long, value_name = "K", default_value_t = 3)]
    pub seeds: usize,
    #[command(flatten)]
    pub sgd: SgdArgs,
    /// Evaluate the train and test loss every K steps.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long, value_name = "K", default_value_t = 50)]
    pub eval_every: usize,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ExperimentArgs for NonlinearityArgs {
    type Experiment = Nonlinearity;
    const QUICK: &'static str = "--depth 3 --width 8 --batch 16 --d-out 2 --n-train 64 --n-test 32 --steps 40 --eval-every 10 --seeds 2";
    const RENAMES: Renames = &[("norms", "--configs"), ("lrs", "--lr")];
    /// `--lr` is resolved per activation, and `--placement` moves every BN arm.
    fn config(&self) -> anyhow::Result<NonlinearityConfig> {
        if self.net.act.is_some() {
            return Err(usage(
                "--act: nonlinearity compares activations; choose them with --acts",
            ));
        }
        if self.net.no_affine {
            return Err(usage(
                "--no-affine: nonlinearity compares BN with and without scale/shift; choose the arms with --configs",
            ));
        }
        let lrs: Vec<f64> = match &self.lr {
            None => self.acts.iter().map(|&a| default_lr(a)).collect(),
            Some(v) if v.len() == 1 => vec![v[0]; self.acts.len()],
            Some(v) => v.clone(),
        };
        let (net, data) = self.data.specs(&self.net)?;
        Ok(NonlinearityConfig {
            data,
            depth: self.depth,
            acts: self.acts.clone(),
            net,
            norms: self
                .configs
                .iter()
                .map(|n| n.placed(self.net.placement))
                .collect(),
            lrs,
            sgd: self.sgd.spec(),
            steps: self.steps,
            eval_every: self.eval_every,
            diverge_factor: crate::train::DIVERGENCE_FACTOR,
            seeds: self.seeds,
        })
    }
    fn output(&self) -> &OutputArgs {
        &self.output
    }
}
