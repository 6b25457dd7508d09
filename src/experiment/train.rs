//! `bn-lab train`: the same network trained with BatchNorm off, on, on without scale/shift and
//! on after the activation, over a sweep of learning rates: does BN train where the plain
//! network diverges (the diary's "higher learning rate could be utilized")?
//!
//! Every run of one seed starts from the same weights (BN draws no random numbers) and sees
//! the same mini-batches in the same order, so runs differ only in configuration and learning
//! rate.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{
    Activation, ConfigError, Dtype, Normaliser, Placement, at_least, at_most_values, between,
    distinct, distinct_numbers, finite_in,
};
use crate::config::{check_points, points};
use crate::data::{self, Stream};
use crate::experiment::ExperimentArgs;
use crate::experiment::total_units;
pub use crate::experiment::train_arm::TrainArm;
use crate::experiment::{Cost, Experiment, Plan, Progress, ToolInfo, fit_macs, largest_alive};
use crate::flags::{DataArgs, NetArgs, OutputArgs, Renames, SgdArgs, count, usage};
use crate::float::Float;
use crate::histogram::{self, Snapshot};
use crate::limits::MAX_DEPTH;
use crate::limits::{MAX_PANELS, MAX_STEPS};
use crate::memory::Footprint;
use crate::model::Mlp;
use crate::optim::{SgdSpec, warmup_label};
use crate::spec::{DataSpec, NetConfig, NetSpec};
use crate::stats::{Num, Short, fmt_num};
use crate::train::{
    self, Accuracies, Divergence, History, HistoryRecorder, Observer, ReferenceLosses, Tagged,
    TrainSettings, Trainer, fit, loss_formula, percent, units,
};
use clap::Args;

/// A validated `train` configuration: everything needed to reproduce every number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    #[serde(flatten)]
    pub data: DataSpec,
    pub depth: usize,
    pub act: Activation,
    #[serde(flatten)]
    pub net: NetSpec,
    /// Configurations, in legend order: a normaliser, with or without SkipInit ([`TrainArm`]).
    pub norms: Vec<TrainArm>,
    /// Learning rates, one panel each.
    pub lrs: Vec<f64>,
    /// SGD momentum, weight decay and warmup, shared by every run.
    #[serde(flatten)]
    pub sgd: SgdSpec,
    pub steps: usize,
    pub eval_every: usize,
    pub diag_every: usize,
    /// A run diverges when its mini-batch loss exceeds this times its first one (or is inf/NaN).
    pub diverge_factor: f64,
    /// The learning rate whose per-layer diagnostics `train_layers.png` shows; `null`: the
    /// largest at which no configuration diverged, else the smallest (resolved by the run and
    /// recorded in the report's config).
    pub diag_lr: Option<f64>,
    /// The steps at which every run records per-layer histograms of `h_l` and `dL/dh_l`
    /// (`--histograms`, `--histogram-steps`): step `s` is the network after `s` updates, on
    /// step `s`'s mini-batch. `null` (and left out of the JSON): none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram_steps: Option<Vec<usize>>,
}

/// At most this many histogram steps (one dash pattern each in `train_histograms.png`).
pub const MAX_HISTOGRAM_STEPS: usize = 4;

/// The histogram steps of `--histograms` without `--histogram-steps`: 0, 10, 100 and the last
/// (`steps - 1`), those that exist.
///
/// ```
/// use bn_lab::experiment::train::default_histogram_steps;
/// assert_eq!(default_histogram_steps(600), vec![0, 10, 100, 599]);
/// assert_eq!(default_histogram_steps(50), vec![0, 10, 49]);
/// assert_eq!(default_histogram_steps(1), vec![0]);
/// ```
pub fn default_histogram_steps(steps: usize) -> Vec<usize> {
    let mut v: Vec<usize> = [0, 10, 100, steps.saturating_sub(1)]
        .into_iter()
        .filter(|&s| s < steps)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl TrainConfig {
    /// The network of configuration `arm`.
    pub fn net(&self, arm: TrainArm) -> NetConfig {
        let mut net = self.net.net(self.depth, self.act, arm.norm);
        net.skip_init = net.skip_init || arm.skip_init;
        net
    }

    pub fn settings(&self, lr: f64) -> TrainSettings {
        TrainSettings {
            steps: self.steps,
            batch: self.net.batch,
            sgd: self.sgd.at(lr),
            eval_every: self.eval_every,
            diag_every: self.diag_every,
            diverge_factor: self.diverge_factor,
            seed: self.net.seed,
            loss: self.data.loss,
        }
    }

    /// Every (lr, configuration) pair in run order: learning rates as given, configurations in
    /// `norms` order within each.
    pub fn runs(&self) -> Vec<(f64, TrainArm)> {
        self.lrs
            .iter()
            .flat_map(|&lr| self.norms.iter().map(move |&n| (lr, n)))
            .collect()
    }

    /// Every training run [`run`] executes, in the order of [`TrainConfig::runs`]: what `run`
    /// trains, [`Plan::work_units`] counts and [`Plan::footprint`] sizes.
    pub fn jobs(&self) -> Vec<TrainJob> {
        let (dtype, batch) = (self.net.dtype.bytes(), self.net.batch);
        self.runs()
            .into_iter()
            .map(|(lr, arm)| {
                let net = self.net(arm);
                TrainJob {
                    lr,
                    arm,
                    units: self
                        .settings(lr)
                        .work_units(self.data.n_train, self.data.n_test)
                        .saturating_add(self.histogram_units()),
                    bytes: net.memory_estimate_bytes(batch, dtype),
                    net,
                }
            })
            .collect()
    }
}

/// One training run of [`run`]: a configuration at a learning rate.
#[derive(Clone, Debug)]
pub struct TrainJob {
    pub lr: f64,
    pub arm: TrainArm,
    pub net: NetConfig,
    /// Progress units: every step and evaluation, and the histograms' snapshots.
    pub units: u64,
    /// The network's memory estimate on the batch (evaluations run in chunks of it).
    pub bytes: f64,
}

impl Plan for TrainConfig {
    /// Check every field and every network before anything is allocated.
    fn validate(&self) -> Result<(), ConfigError> {
        distinct_numbers("lrs", &self.lrs)?;
        at_most_values("lrs", MAX_PANELS, &self.lrs)?;
        for &lr in &self.lrs {
            crate::config::check_lr("lrs", lr)?;
        }
        crate::experiment::train_arm::distinct_arms("norms", &self.norms)?;
        self.validate_blocks()?;
        between("steps", 1, MAX_STEPS, self.steps)?;
        at_least("eval_every", 1, self.eval_every)?;
        check_points("eval_every", "steps", self.steps, self.eval_every)?;
        at_least("diag_every", 1, self.diag_every)?;
        check_points("diag_every", "steps", self.steps, self.diag_every)?;
        finite_in("diverge_factor", "> 1", self.diverge_factor, |v| v > 1.0)?;
        self.sgd.validate()?;
        if let Some(d) = self.diag_lr
            && !self.lrs.contains(&d)
        {
            return Err(ConfigError::Invalid {
                field: "diag_lr",
                message: format!(
                    "must be one of the learning rates (got {})",
                    crate::stats::Short(d)
                ),
            });
        }
        if let Some(hs) = &self.histogram_steps {
            distinct("histogram_steps", hs)?;
            at_most_values("histogram_steps", MAX_HISTOGRAM_STEPS, hs)?;
            if hs.is_empty() {
                return Err(ConfigError::Invalid {
                    field: "histogram_steps",
                    message: "needs at least one step".into(),
                });
            }
            if let Some(&s) = hs.iter().find(|&&s| s >= self.steps) {
                return Err(ConfigError::Invalid {
                    field: "histogram_steps",
                    message: format!(
                        "must be below steps ({}): step s is the network after s updates, on step s's mini-batch (got {s})",
                        self.steps
                    ),
                });
            }
        }
        self.net.validate()?;
        self.data
            .validate(self.net.batch, self.net.d_in, self.net.d_out)?;
        for &arm in &self.norms {
            self.net(arm).validate(self.net.batch)?;
        }
        Ok(())
    }

    /// One data set and its linear fit; per run training side by side, its network on the
    /// batch (evaluations run in chunks of the batch); per run, a few scalars, three losses
    /// per evaluation and two numbers per layer per diagnostic record.
    fn footprint(&self) -> Footprint {
        let parallel = crate::parallel::side_by_side(self.n_runs());
        let mut fp = self
            .data
            .footprint(Footprint::new(), &self.net, 1, parallel, true);
        let alive = largest_alive(self.jobs().iter().map(|j| j.bytes));
        fp = fp.add("networks", alive, &["depth", "width", "batch"]);
        // Every weight matrix and the output layer.
        let layers = self.net.net(self.depth, self.act, Normaliser::Off).layers() as f64 + 1.0;
        let per_run = 32.0
            + 3.0 * points(self.steps, self.eval_every) as f64
            + (1.0 + 2.0 * layers) * points(self.steps, self.diag_every) as f64;
        if let Some(hs) = &self.histogram_steps {
            // Two histograms per histogram layer and step; while one is measured, the copied
            // tail of the network (at most the network again) and `dL/dh_l`.
            let hists = hs.len() as f64 * histogram::layers(self.depth).len() as f64 * 2.0 * 96.0;
            fp = fp.records(self.n_runs() as f64 * hists, &["depth"]).add(
                "networks",
                alive,
                &["depth", "width", "batch"],
            );
        }
        fp.records(
            self.n_runs() as f64 * per_run,
            &["steps", "diag_every", "eval_every"],
        )
        .figures()
    }

    /// Work units [`run`] reports, in forward passes of one sample (see
    /// [`train::FORWARD_BACKWARD`]): the reference fit, and per run every step and evaluation.
    fn work_units(&self) -> u64 {
        reference_units(self).saturating_add(total_units(self.jobs().iter().map(|j| j.units)))
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
        fit_macs(units_and_nets, self.net.batch, reference_units(self))
    }
}

impl TrainConfig {
    /// SkipInit is a configuration here (`--configs skip-init`), so the shared `skip_init` is
    /// off; `--histograms` reruns the layers above each one from its input, which a standard
    /// block does not have.
    fn validate_blocks(&self) -> Result<(), ConfigError> {
        if self.net.skip_init {
            return Err(ConfigError::Invalid {
                field: "skip_init",
                message: "train compares SkipInit as a configuration: name it in --configs (skip-init, on+skip-init, ...)".into(),
            });
        }
        if let Some(a) = self.norms.iter().find(|a| a.skip_init)
            && self.net.block.is_none()
        {
            return Err(ConfigError::Invalid {
                field: "norms",
                message: format!(
                    "{a} puts a learnable gain on each residual branch of a standard block, so it needs --block basic or preact"
                ),
            });
        }
        if self.histogram_steps.is_some() {
            self.net
                .one_layer_blocks("--histograms reruns the layers above each one from its input")?;
        }
        Ok(())
    }

    /// Runs: learning rates x configurations.
    pub fn n_runs(&self) -> usize {
        self.lrs.len() * self.norms.len()
    }

    /// Work units of one run's histograms (in the units of [`train::step_units`]): per
    /// snapshot, the copied tails as a share of a step's forward and backward.
    pub fn histogram_units(&self) -> u64 {
        self.histogram_steps.as_ref().map_or(0, |hs| {
            units(hs.len(), snapshot_units(self.depth, self.net.batch))
        })
    }
}

/// One training run.
#[derive(Clone, Debug, Serialize)]
pub struct TrainRun {
    pub label: String,
    /// The configuration's text form (`on`, `skip-init`, `on+skip-init`).
    pub arm: TrainArm,
    /// Its normaliser (`off` for `skip-init`).
    pub norm: Normaliser,
    pub lr: f64,
    pub net: NetConfig,
    pub diverged: bool,
    /// The run learned: it did not diverge, its final test loss is finite and below the zero
    /// predictor's, and (classification) its final test accuracy is above
    /// [`TrainReport::learned_accuracy_floor`] (see [`learned`]).
    pub learned: bool,
    /// Mean mini-batch loss (train mode) over the last tenth of the evaluations.
    pub late_batch_loss: Num,
    pub final_train_loss: Num,
    pub best_train_loss: Num,
    pub final_test_loss: Num,
    pub best_test_loss: Num,
    /// `2 / lambda_max` of the output layer's curvature at step 0 (see
    /// [`History::output_curvature`]): above this learning rate the output layer alone diverges.
    pub output_lr_limit: Num,
    /// Classification tasks only.
    #[serde(flatten)]
    pub accuracy: Option<Accuracies>,
    pub history: History,
    /// With `histogram_steps`: the histograms at each of those steps the run reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histograms: Option<Vec<Snapshot>>,
    /// SkipInit: each block's gain `alpha` at the end of the run (input side first; 0 at
    /// initialisation). Left out without SkipInit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub final_alpha: Vec<Num>,
}

/// SkipInit's gains of `net`, input side first (empty without SkipInit).
pub fn gains<T: Float>(net: &Mlp<T>) -> Vec<Num> {
    net.units
        .iter()
        .filter_map(|u| u.gain.as_ref().map(|g| Num(g.alpha[0].f64())))
        .collect()
}

/// Work units of one snapshot of a depth-`depth` net on a batch of `batch`.
fn snapshot_units(depth: usize, batch: usize) -> u64 {
    train::step_units(batch).saturating_mul(histogram::snapshot_units(depth)) / (depth as u64 + 1)
}

/// Records [`Snapshot`]s at the chosen steps, after the forward (the loss gradient computed
/// again from the network's output, the network untouched).
struct HistogramRecorder<'a, T: Float> {
    steps: Vec<usize>,
    layers: Vec<usize>,
    d_o: ndarray::Array2<T>,
    snapshots: Vec<Snapshot>,
    units: u64,
    progress: Progress<'a>,
}

impl<T: Float> Observer<T> for HistogramRecorder<'_, T> {
    fn after_forward(&mut self, tr: &mut Trainer<'_, T>, step: usize, loss: f64) {
        if !self.steps.contains(&step) {
            return;
        }
        let o = tr.net.output();
        tr.loss.loss_and_grad(o, tr.y.view(), self.d_o.view_mut());
        self.snapshots.push(histogram::snapshot(
            tr.net,
            self.d_o.view(),
            &self.layers,
            step,
            loss,
        ));
        self.progress.units(self.units);
    }

    fn diverged(&mut self, _tr: &mut Trainer<'_, T>, d: &Divergence) {
        let skipped = self.steps.iter().filter(|&&s| s > d.step).count();
        self.progress.units(units(skipped, self.units));
    }
}

/// Two observers, each hook called on the first, then the second.
struct Both<'o, T: Float>(&'o mut dyn Observer<T>, &'o mut dyn Observer<T>);

impl<T: Float> Observer<T> for Both<'_, T> {
    fn start(&mut self, tr: &mut Trainer<'_, T>) {
        self.0.start(tr);
        self.1.start(tr);
    }
    fn after_forward(&mut self, tr: &mut Trainer<'_, T>, step: usize, loss: f64) {
        self.0.after_forward(tr, step, loss);
        self.1.after_forward(tr, step, loss);
    }
    fn diverged(&mut self, tr: &mut Trainer<'_, T>, d: &Divergence) {
        self.0.diverged(tr, d);
        self.1.diverged(tr, d);
    }
    fn before_update(&mut self, tr: &mut Trainer<'_, T>, step: usize, loss: f64) {
        self.0.before_update(tr, step, loss);
        self.1.before_update(tr, step, loss);
    }
    fn after_update(&mut self, tr: &mut Trainer<'_, T>, done: usize, loss: f64) {
        self.0.after_update(tr, done, loss);
        self.1.after_update(tr, done, loss);
    }
}

/// [`train::train`] that also records the histograms of `cfg.histogram_steps`.
fn train_with_histograms<T: Float>(
    cfg: &TrainConfig,
    net: &mut Mlp<T>,
    data: &data::Dataset<T>,
    s: &TrainSettings,
    progress: Progress,
) -> (History, Vec<Snapshot>) {
    let mut history = HistoryRecorder::new(net, s, progress);
    let mut hist = HistogramRecorder {
        steps: cfg.histogram_steps.clone().unwrap_or_default(),
        layers: histogram::layers(cfg.depth),
        d_o: ndarray::Array2::zeros((s.batch, cfg.net.d_out)),
        snapshots: Vec::new(),
        units: snapshot_units(cfg.depth, s.batch),
        progress,
    };
    let mut tr = Trainer::new(net, data, s.sgd, s.batch, s.seed, s.loss);
    fit(
        &mut tr,
        s.steps,
        s.diverge_factor,
        progress,
        &mut Both(&mut history, &mut hist),
    );
    (history.history, hist.snapshots)
}

/// Per configuration, over the learning-rate sweep.
#[derive(Clone, Debug, Serialize)]
pub struct ArmSummary {
    /// The configuration's text form, as [`TrainRun::arm`].
    pub arm: TrainArm,
    pub norm: Normaliser,
    pub label: String,
    /// Learning rates at which this configuration diverged.
    pub diverged_at: Vec<f64>,
    /// Learning rates at which it did not diverge but did not learn either (stuck at the zero
    /// predictor's loss or at chance, or an inf/NaN loss).
    pub not_learned_at: Vec<f64>,
    /// The largest learning rate at which it learned ([`TrainRun::learned`]): a stable rate
    /// is one the run learned at, not merely survived (`null` if it learned at none).
    pub largest_stable_lr: Option<f64>,
    /// The run at `largest_stable_lr`: its final and best test loss and accuracy.
    pub at_largest_stable_lr: Option<RunEnd>,
    /// Its best test loss over every learning rate, and the rate that gave it.
    pub best_test_loss: Num,
    pub best_lr: Option<f64>,
}

/// How one run ended, for the summary: its final and best test loss, and (classification)
/// its final and best test accuracy.
#[derive(Clone, Debug, Serialize)]
pub struct RunEnd {
    pub lr: f64,
    pub final_test_loss: Num,
    pub best_test_loss: Num,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_test_accuracy: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_test_accuracy: Option<Num>,
}

impl RunEnd {
    fn of(r: &TrainRun) -> Self {
        RunEnd {
            lr: r.lr,
            final_test_loss: r.final_test_loss,
            best_test_loss: r.best_test_loss,
            final_test_accuracy: r.accuracy.map(|a| a.final_test_accuracy),
            best_test_accuracy: r.accuracy.map(|a| a.best_test_accuracy),
        }
    }
}

/// Standard errors of a constant classifier's accuracy that a run must beat to have learned.
pub const CHANCE_SIGMAS: f64 = 3.0;

/// The accuracy a constant prediction reaches on a test set whose largest class has a share
/// `chance` of `n_test` samples, plus [`CHANCE_SIGMAS`] of its binomial standard error: a run
/// at or below it is at chance (`chance + 3 sqrt(chance (1 - chance) / n)`).
///
/// ```
/// use bn_lab::experiment::train::accuracy_floor;
/// // The digits' 360 test images, 37 of the largest class: 10.3% + 4.8%.
/// assert!((accuracy_floor(37.0 / 360.0, 360) - 0.1508).abs() < 1e-4);
/// ```
pub fn accuracy_floor(chance: f64, n_test: usize) -> f64 {
    chance + CHANCE_SIGMAS * (chance * (1.0 - chance) / n_test.max(1) as f64).sqrt()
}

/// Standard errors of the zero predictor's mean test loss by which a run's final test loss
/// must beat it to have learned.
pub const ZERO_SIGMAS: f64 = 3.0;

/// The test loss a run must end below to have learned: the zero predictor's mean test loss
/// minus [`ZERO_SIGMAS`] standard errors of that mean (`per_sample`: the zero predictor's loss
/// on each test sample). For cross-entropy every sample's loss is `ln(classes)`, so the ceiling
/// is `ln(classes)` itself.
///
/// ```
/// use bn_lab::experiment::train::loss_ceiling;
/// // Mean 2, sample variance 2, 2 samples: standard error 1.
/// assert_eq!(loss_ceiling(&[1.0, 3.0]), 2.0 - 3.0);
/// // Cross-entropy's zero predictor: the same loss on every sample.
/// assert_eq!(loss_ceiling(&[2.5; 5]), 2.5);
/// ```
pub fn loss_ceiling(per_sample: &[f64]) -> f64 {
    let n = per_sample.len() as f64;
    let mean = per_sample.iter().sum::<f64>() / n.max(1.0);
    if per_sample.len() < 2 {
        return mean;
    }
    let var = per_sample.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    mean - ZERO_SIGMAS * (var / n).sqrt()
}

/// Whether a run learned: no divergence, a finite final test loss below `ceiling` (see
/// [`loss_ceiling`]), and with `floor` a final test accuracy above it.
pub fn learned(
    diverged: bool,
    final_test_loss: f64,
    accuracy: Option<f64>,
    ceiling: f64,
    floor: Option<f64>,
) -> bool {
    let above_chance = match (floor, accuracy) {
        (Some(f), Some(a)) => a > f,
        (Some(_), None) => false,
        (None, _) => true,
    };
    !diverged && final_test_loss.is_finite() && final_test_loss < ceiling && above_chance
}

/// Everything `train` computed; written to `train.json` and drawn in `train.png`,
/// `train_loss.png` and `train_layers.png`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub tool: ToolInfo,
    pub config: TrainConfig,
    /// What predicting 0 and the best linear model reach on this task.
    #[serde(flatten)]
    pub reference: ReferenceLosses,
    /// Classification: the largest class's share of the test set (what a constant prediction
    /// scores) and the accuracy a run must beat to have learned ([`accuracy_floor`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chance_test_accuracy: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned_accuracy_floor: Option<Num>,
    /// The final test loss a run must end below to have learned ([`loss_ceiling`]): the zero
    /// predictor's, less 3 standard errors of its mean over the test samples.
    pub learned_loss_ceiling: Num,
    pub runs: Vec<TrainRun>,
    pub summary: Vec<ArmSummary>,
    /// What this run says about the diary's claims (also in words in the summary).
    pub verdicts: TrainVerdicts,
    /// Wall-clock seconds of the training (not part of the reproducible numbers).
    pub seconds: f64,
}

/// A verdict and, when it is `undetermined`, why (`reason` is `null` otherwise).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Judged<V> {
    pub verdict: V,
    pub reason: Option<String>,
}

/// Does BN train at a learning rate where BN off diverges (the diary's "higher learning rate")?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HigherLr {
    /// Some BN configuration learned ([`TrainRun::learned`]) at a learning rate where BN off
    /// did not (it diverged or learned nothing).
    Shown,
    /// BN off learned at every learning rate, or no BN configuration learned wherever it did
    /// not.
    NotShown,
}

/// Which BN placement reached the lower best test loss over the sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlacementVerdict {
    AfterActivation,
    BeforeActivation,
    /// One placement learned at no learning rate (every run diverged or learned nothing), or
    /// reached no finite test loss.
    Undetermined,
}

/// The verdicts of a `train` run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainVerdicts {
    /// `null` without a BN-off configuration.
    pub higher_lr: Option<Judged<HigherLr>>,
    /// `null` unless BN before and after the activation (both with scale/shift) ran.
    pub placement: Option<Judged<PlacementVerdict>>,
}

/// Does some BN configuration learn at a learning rate where BN off does not (it diverged or
/// learned nothing)? `None` without a BN-off configuration. See [`higher_lr_evidence`].
fn higher_lr_verdict(cfg: &TrainConfig, runs: &[TrainRun]) -> Option<Judged<HigherLr>> {
    higher_lr_evidence(cfg, runs).map(|e| Judged {
        verdict: e.verdict(),
        reason: None,
    })
}

/// Which BN placement reached the lower best test loss; `None` unless both ran. See
/// [`placement_evidence`].
fn placement_verdict(
    summary: &[ArmSummary],
    runs: &[TrainRun],
) -> Option<Judged<PlacementVerdict>> {
    placement_evidence(summary, runs).map(|e| e.judged)
}

fn run_one<T: Float>(
    cfg: &TrainConfig,
    data: &data::Dataset<T>,
    job: &TrainJob,
    progress: Progress,
) -> TrainRun {
    let (lr, arm, net_cfg) = (job.lr, job.arm, job.net.clone());
    let mut net = Mlp::<T>::new(&net_cfg, &mut data::rng(cfg.net.seed, Stream::Weights));
    let (history, histograms) = if cfg.histogram_steps.is_some() {
        let (h, s) = train_with_histograms(cfg, &mut net, data, &cfg.settings(lr), progress);
        (h, Some(s))
    } else {
        (
            train::train(&mut net, data, &cfg.settings(lr), progress),
            None,
        )
    };
    TrainRun {
        label: arm.label(),
        arm,
        norm: arm.norm,
        lr,
        net: net_cfg,
        diverged: history.divergence.is_some(),
        learned: false,
        late_batch_loss: Num(history.late_batch_loss()),
        final_train_loss: Num(history.final_train_loss()),
        best_train_loss: Num(history.best_train_loss()),
        final_test_loss: Num(history.final_test_loss()),
        best_test_loss: Num(history.best_test_loss()),
        output_lr_limit: Num(history.output_lr_limit()),
        accuracy: history.accuracies(),
        history,
        histograms,
        final_alpha: gains(&net),
    }
}

/// The runs, the reference losses, [`loss_ceiling`] and (classification) the largest class's
/// share of the test set.
type Ran = (Vec<TrainRun>, ReferenceLosses, f64, Option<f64>);

fn run_typed<T: Float>(cfg: &TrainConfig, progress: Progress) -> Ran {
    let data = cfg.data.task_for::<T>(&cfg.net);
    let reference = ReferenceLosses::of(&data, cfg.data.loss);
    progress.units(reference_units(cfg));
    let runs = cfg
        .jobs()
        .par_iter()
        .map(|job| {
            let arm = Tagged::new(progress, format!("{} lr={}", job.arm.label(), job.lr));
            run_one(cfg, &data, job, &arm)
        })
        .collect();
    let chance = data.classes.map(|_| majority_share(data.test.y.view()));
    let ceiling = loss_ceiling(&zero_losses(&data.test, cfg.data.loss));
    (runs, reference, ceiling, chance)
}

/// The zero predictor's loss on each sample of `b`.
pub fn zero_losses<T: Float>(b: &data::Batch<T>, loss: crate::config::Loss) -> Vec<f64> {
    let zeros = ndarray::Array2::<T>::zeros((1, b.y.ncols()));
    b.y.rows()
        .into_iter()
        .map(|y| loss.value(zeros.view(), y.insert_axis(ndarray::Axis(0))))
        .collect()
}

/// The largest column sum's share of the rows of one-hot targets `y`: what predicting the
/// most frequent class scores.
fn majority_share<T: Float>(y: ndarray::ArrayView2<T>) -> f64 {
    let largest = y
        .columns()
        .into_iter()
        .map(|c| c.iter().map(|v| v.f64()).sum::<f64>())
        .fold(0.0, f64::max);
    largest / y.nrows().max(1) as f64
}

/// Configuration `arm`'s summary over the learning rates of `runs` (whose `learned` is set).
fn summarise(arm: TrainArm, runs: &[TrainRun]) -> ArmSummary {
    let mine: Vec<&TrainRun> = runs.iter().filter(|r| r.arm == arm).collect();
    let lrs = |keep: &dyn Fn(&TrainRun) -> bool| -> Vec<f64> {
        mine.iter().filter(|r| keep(r)).map(|r| r.lr).collect()
    };
    let stable = mine
        .iter()
        .filter(|r| r.learned)
        .max_by(|a, b| a.lr.total_cmp(&b.lr));
    let best = mine
        .iter()
        .filter(|r| r.best_test_loss.0.is_finite())
        .min_by(|a, b| a.best_test_loss.0.total_cmp(&b.best_test_loss.0));
    ArmSummary {
        arm,
        norm: arm.norm,
        label: arm.label(),
        diverged_at: lrs(&|r| r.diverged),
        not_learned_at: lrs(&|r| !r.diverged && !r.learned),
        largest_stable_lr: stable.map(|r| r.lr),
        at_largest_stable_lr: stable.map(|r| RunEnd::of(r)),
        best_test_loss: Num(best.map_or(f64::NAN, |r| r.best_test_loss.0)),
        best_lr: best.map(|r| r.lr),
    }
}

/// Work units of the least-squares reference fit (see [`train::linear_fit_units`]).
pub fn reference_units(cfg: &TrainConfig) -> u64 {
    let macs = cfg
        .norms
        .iter()
        .map(|&a| train::forward_macs(&cfg.net(a)))
        .fold(1.0, f64::max);
    train::linear_fit_units(
        cfg.data.n_train,
        cfg.data.n_test,
        cfg.net.d_in,
        cfg.net.d_out,
        macs,
    )
}

/// Run every (learning rate, configuration) pair, in parallel on rayon's pool. `progress.units(n)`
/// is told of every `n` work units done ([`Plan::work_units`] in all).
pub fn run(cfg: &TrainConfig, progress: Progress) -> TrainReport {
    let start = std::time::Instant::now();
    let (mut runs, reference, ceiling, chance) = match cfg.net.dtype {
        Dtype::F32 => run_typed::<f32>(cfg, progress),
        Dtype::F64 => run_typed::<f64>(cfg, progress),
    };
    let floor = chance.map(|c| accuracy_floor(c, cfg.data.n_test));
    for r in &mut runs {
        r.learned = learned(
            r.diverged,
            r.final_test_loss.0,
            r.accuracy.map(|a| a.final_test_accuracy.0),
            ceiling,
            floor,
        );
    }
    let summary: Vec<ArmSummary> = cfg.norms.iter().map(|&a| summarise(a, &runs)).collect();
    let mut config = cfg.clone();
    config.diag_lr = Some(
        cfg.diag_lr
            .unwrap_or_else(|| default_diag_lr(&cfg.lrs, &runs)),
    );
    let verdicts = TrainVerdicts {
        higher_lr: higher_lr_verdict(cfg, &runs),
        placement: placement_verdict(&summary, &runs),
    };
    TrainReport {
        tool: ToolInfo::current(),
        config,
        reference,
        chance_test_accuracy: chance.map(Num),
        learned_accuracy_floor: floor.map(Num),
        learned_loss_ceiling: Num(ceiling),
        runs,
        summary,
        verdicts,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// The shared settings as short phrases: `non-linear task`, `depth 10`, ...
fn title_parts(cfg: &TrainConfig) -> Vec<String> {
    let shape = match cfg.net.block {
        None => format!("depth {}, width {}", cfg.depth, cfg.net.width),
        Some(b) => format!("{} {b} blocks, width {}", cfg.depth, cfg.net.width),
    };
    let mut parts = vec![
        task_part(&cfg.data),
        shape,
        format!("{}, {} init", cfg.act, cfg.net.init.resolve(cfg.act)),
        format!("batch {}", cfg.net.batch),
    ];
    if cfg.sgd.sgd_momentum != 0.0 {
        parts.push(format!("SGD momentum {}", cfg.sgd.sgd_momentum));
    }
    if cfg.sgd.weight_decay != 0.0 {
        parts.push(format!("weight decay {}", cfg.sgd.weight_decay));
    }
    if let Some(w) = warmup_label(cfg.sgd.warmup_steps) {
        parts.push(w);
    }
    if let Some(r) = crate::spec::residual_label(cfg.net.residual, cfg.net.residual_scale) {
        parts.push(r);
    }
    if cfg.net.block.is_some() && cfg.net.residual_scale != 1.0 {
        parts.push(format!("branch x {}", Short(cfg.net.residual_scale)));
    }
    parts.push(cfg.net.dtype.to_string());
    parts.push(format!("seed {}", cfg.net.seed));
    parts
}

/// `non-linear task`, or with classes the loss too: `digits task, cross-entropy`.
pub fn task_part(data: &crate::spec::DataSpec) -> String {
    if data.task.is_classification() {
        format!("{} task, {}", data.task, data.loss.title())
    } else {
        format!("{} task", data.task)
    }
}

/// The shared settings in one line, for the table.
pub fn title(cfg: &TrainConfig) -> String {
    let mut parts = title_parts(cfg);
    parts.insert(4, format!("{} steps", cfg.steps));
    parts.join(", ")
}

/// The settings in a line that fits under a plot title.
pub fn short_title(cfg: &TrainConfig) -> String {
    title_parts(cfg).join(" · ")
}

/// How a run ended, for the table: `ok` (it learned), `no learning` or `DIVERGED@37`.
pub fn status(r: &TrainRun) -> String {
    match &r.history.divergence {
        None if r.learned => "ok".into(),
        None => "no learning".into(),
        Some(d) => format!("DIVERGED@{}", d.step),
    }
}

/// At one learning rate where BN off did not learn (it diverged or learned nothing): the BN
/// configurations that learned there, in run order (possibly none).
#[derive(Clone, Debug, PartialEq)]
pub struct Rescue {
    pub lr: f64,
    pub learned: Vec<TrainArm>,
}

/// Per learning rate at which BN off (without SkipInit) did not learn, in sweep order, the
/// configurations with a normaliser that learned there (SkipInit without one is no BN).
pub fn rescues(lrs: &[f64], runs: &[TrainRun]) -> Vec<Rescue> {
    let mut out = Vec::new();
    for &lr in lrs {
        let at: Vec<&TrainRun> = runs.iter().filter(|r| r.lr == lr).collect();
        if !at.iter().any(|r| r.arm == TrainArm::OFF && !r.learned) {
            continue;
        }
        let learned: Vec<TrainArm> = at
            .iter()
            .filter(|r| r.norm != Normaliser::Off && r.learned)
            .map(|r| r.arm)
            .collect();
        out.push(Rescue { lr, learned });
    }
    out
}

/// [`rescues`] of a report.
pub fn bn_rescues(report: &TrainReport) -> Vec<Rescue> {
    rescues(&report.config.lrs, &report.runs)
}

/// What the sweep shows about the diary's "higher learning rates with BN": the facts
/// [`HigherLr`] is decided from, and that [`verdict`] writes out.
#[derive(Clone, Debug, PartialEq)]
pub enum HigherLrEvidence {
    /// BN off learned at every learning rate of the sweep (`lrs`).
    OffLearnedEverywhere { lrs: Vec<f64> },
    /// BN off did not learn at `failed`, and no BN configuration learned at any of them.
    NotRescued { failed: Vec<f64> },
    /// BN off did not learn at `failed`; `rescues` keeps those of them where some BN
    /// configuration learned.
    Rescued {
        failed: Vec<f64>,
        rescues: Vec<Rescue>,
    },
}

impl HigherLrEvidence {
    pub fn verdict(&self) -> HigherLr {
        match self {
            HigherLrEvidence::Rescued { .. } => HigherLr::Shown,
            _ => HigherLr::NotShown,
        }
    }
}

/// The [`HigherLrEvidence`] of `runs` (whose `learned` is set); `None` without a BN-off
/// configuration.
pub fn higher_lr_evidence(cfg: &TrainConfig, runs: &[TrainRun]) -> Option<HigherLrEvidence> {
    if !cfg.norms.contains(&TrainArm::OFF) {
        return None;
    }
    let all = rescues(&cfg.lrs, runs);
    let failed: Vec<f64> = all.iter().map(|r| r.lr).collect();
    let rescued: Vec<Rescue> = all.into_iter().filter(|r| !r.learned.is_empty()).collect();
    Some(if failed.is_empty() {
        HigherLrEvidence::OffLearnedEverywhere {
            lrs: cfg.lrs.clone(),
        }
    } else if rescued.is_empty() {
        HigherLrEvidence::NotRescued { failed }
    } else {
        HigherLrEvidence::Rescued {
            failed,
            rescues: rescued,
        }
    })
}

/// The runs of configurations `norms` with no finite test loss, in run order: a configuration's
/// best test loss is over its other runs.
pub fn left_out_of_best<'a>(runs: &'a [TrainRun], arms: &[TrainArm]) -> Vec<&'a TrainRun> {
    runs.iter()
        .filter(|r| arms.contains(&r.arm) && !r.best_test_loss.0.is_finite())
        .collect()
}

/// What the sweep shows about BN before against after the activation (both with scale/shift):
/// the facts [`PlacementVerdict`] is decided from, and that [`verdict`] writes out.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacementEvidence {
    pub judged: Judged<PlacementVerdict>,
    /// Best test loss over the sweep with BN before (`before`) and after (`after`) the
    /// activation (NaN when no run reached a finite one).
    pub before: f64,
    pub after: f64,
    /// The larger best over the smaller: how much better the better placement did.
    pub ratio: f64,
    /// Runs of either placement left out of those bests (no finite test loss): label and lr.
    pub left_out: Vec<(String, f64)>,
}

/// The [`PlacementEvidence`] of a sweep's per-configuration `summary` and its `runs`; `None`
/// unless both placements ran.
pub fn placement_evidence(summary: &[ArmSummary], runs: &[TrainRun]) -> Option<PlacementEvidence> {
    let pre_arm = TrainArm::plain(Normaliser::BN);
    let post_arm = TrainArm::plain(Normaliser::BN.placed(Placement::Post));
    let of = |arm| summary.iter().find(|s| s.arm == arm);
    let (pre, post) = (of(pre_arm)?, of(post_arm)?);
    // Each placement needs a run that learned: a best test loss of runs that all diverged is
    // the loss of a network that never trained (often the initial one).
    let missing: Vec<String> = [pre, post]
        .iter()
        .filter_map(|s| {
            if !s.best_test_loss.0.is_finite() {
                Some(format!(
                    "{} reached no finite test loss at any learning rate",
                    s.label
                ))
            } else if !runs.iter().any(|r| r.arm == s.arm && r.learned) {
                Some(format!(
                    "{} learned at no learning rate (every run diverged or learned nothing)",
                    s.label
                ))
            } else {
                None
            }
        })
        .collect();
    let (before, after) = (pre.best_test_loss.0, post.best_test_loss.0);
    let judged = if !missing.is_empty() {
        Judged {
            verdict: PlacementVerdict::Undetermined,
            reason: Some(missing.join("; ")),
        }
    } else {
        Judged {
            verdict: if after < before {
                PlacementVerdict::AfterActivation
            } else {
                PlacementVerdict::BeforeActivation
            },
            reason: None,
        }
    };
    Some(PlacementEvidence {
        judged,
        before,
        after,
        ratio: before.max(after) / before.min(after),
        left_out: left_out_of_best(runs, &[pre_arm, post_arm])
            .iter()
            .map(|r| (r.label.clone(), r.lr))
            .collect(),
    })
}

fn fmt_lrs(v: &[f64]) -> String {
    v.iter()
        .map(|&x| Short(x).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stdout table and summary.
pub fn table(report: &TrainReport) -> String {
    let cfg = &report.config;
    let mut out = format!("train: {}\n", title(cfg));
    let w = report
        .runs
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let acc = cfg.data.task.is_classification();
    let acc_col = |a: Option<&Accuracies>| {
        if acc {
            format!(
                "  {:>8}",
                a.map_or("-".into(), |a| percent(a.final_test_accuracy.0))
            )
        } else {
            String::new()
        }
    };
    out.push_str(&format!(
        "{:<w$}  {:>6}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}{}  {:>9}  {}\n",
        "config",
        "lr",
        "mini-batch",
        "train end",
        "train best",
        "test end",
        "test best",
        if acc {
            format!("  {:>8}", "test acc")
        } else {
            String::new()
        },
        "2/λ_out",
        "status"
    ));
    for (i, r) in report.runs.iter().enumerate() {
        if i > 0 && report.runs[i - 1].lr != r.lr {
            out.push('\n');
        }
        out.push_str(&format!(
            "{:<w$}  {:>6}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}{}  {:>9}  {}\n",
            r.label,
            r.lr,
            fmt_num(r.late_batch_loss.0),
            fmt_num(r.final_train_loss.0),
            fmt_num(r.best_train_loss.0),
            fmt_num(r.final_test_loss.0),
            fmt_num(r.best_test_loss.0),
            acc_col(r.accuracy.as_ref()),
            fmt_num(r.output_lr_limit.0),
            status(r),
        ));
    }
    out.push_str(&format!(
        "mini-batch: mean training mini-batch loss (BN batch statistics) over the last tenth of the run;\n\
         train/test: {} over the whole split, BN in eval mode (running statistics){};\n\
         reference levels: {}.\n\
         DIVERGED@k: the mini-batch loss at step k was inf/NaN or over {:.0e} x the first one; the run stopped there and its 'end' columns are the losses at that point.\n\
         learned: no divergence, final test loss below {} (predicting 0, less 3 standard errors){}; a configuration's largest stable lr is the largest it learned at.\n\
         2/λ_out: λ = top eigenvalue of mean [h, 1][h, 1]^T of the last hidden layer on the first mini-batch; SGD on the output layer alone diverges above this lr.\n",
        loss_formula(cfg.data.loss),
        if acc {
            "; test acc: share of test images classified right at the end"
        } else {
            ""
        },
        report.reference.describe(),
        cfg.diverge_factor,
        fmt_num(report.learned_loss_ceiling.0),
        report.learned_accuracy_floor.map_or(String::new(), |f| format!(
            " and final test accuracy above {} (chance {} + 3 standard errors)",
            percent(f.0),
            percent(report.chance_test_accuracy.map_or(f64::NAN, |c| c.0))
        )),
    ));
    out.push_str(&per_configuration(report, w));
    out.push_str(&verdict(report));
    out
}

/// The table's closing lines: per configuration, its largest stable learning rate, where it
/// diverged and its best test loss (`w`: the label column's width).
fn per_configuration(report: &TrainReport, w: usize) -> String {
    let mut out = String::from("\nper configuration:\n");
    for s in &report.summary {
        let list = |v: &[f64]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                fmt_lrs(v)
            }
        };
        out.push_str(&format!(
            "  {:<w$}  largest lr it learned at: {:>6}   diverged at: {:<14}  no learning at: {:<14}  best test loss {} (lr {})\n",
            s.label,
            s.largest_stable_lr.map_or("none".to_string(), |v| Short(v).to_string()),
            list(&s.diverged_at),
            list(&s.not_learned_at),
            fmt_num(s.best_test_loss.0),
            s.best_lr.map_or("-".to_string(), |v| Short(v).to_string()),
        ));
        // The best is over the runs with a finite test loss: name the others.
        let left_out: Vec<f64> = left_out_of_best(&report.runs, &[s.arm])
            .iter()
            .map(|r| r.lr)
            .collect();
        if !left_out.is_empty() {
            out.push_str(&format!(
                "  {:<w$}  (no finite test loss at lr {}: left out of its best)\n",
                "",
                fmt_lrs(&left_out)
            ));
        }
    }
    out
}

/// The plain-words conclusion of this run about the diary's claims ([`TrainReport::verdicts`]):
/// [`higher_lr_evidence`] and [`placement_evidence`], written out.
pub fn verdict(report: &TrainReport) -> String {
    let mut out = String::new();
    if let Some(e) = higher_lr_evidence(&report.config, &report.runs) {
        out.push_str(&format!(
            "\nhigher learning rates with BN: {}.\n",
            higher_lr_text(&e)
        ));
    }
    // Placement: the diary's remark that BN after the activation can do better.
    if let Some(e) = placement_evidence(&report.summary, &report.runs) {
        out.push_str(&placement_text(&e));
    }
    out
}

/// [`HigherLrEvidence`] in words, without the heading.
fn higher_lr_text(e: &HigherLrEvidence) -> String {
    match e {
        HigherLrEvidence::OffLearnedEverywhere { lrs } => format!(
            "NOT shown by this run: BN off learned at every lr ({})",
            fmt_lrs(lrs)
        ),
        HigherLrEvidence::NotRescued { failed } => format!(
            "NOT shown by this run: BN off did not learn at lr {}, and neither did any BN configuration",
            fmt_lrs(failed)
        ),
        HigherLrEvidence::Rescued { failed, rescues } => {
            let helped: Vec<String> = rescues
                .iter()
                .map(|r| {
                    format!(
                        "lr {}: {}",
                        Short(r.lr),
                        r.learned
                            .iter()
                            .map(|a| a.label())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect();
            format!(
                "shown: BN off did not learn at lr {} (diverged or stuck), where these BN configurations learned: {}",
                fmt_lrs(failed),
                helped.join("; ")
            )
        }
    }
}

/// [`PlacementEvidence`] in words: one line.
fn placement_text(e: &PlacementEvidence) -> String {
    let verdict = e.judged.verdict;
    if verdict == PlacementVerdict::Undetermined {
        return format!(
            "BN placement (best test loss over the sweep): UNDETERMINED: {}.\n",
            e.judged.reason.as_deref().unwrap_or("no finite evidence")
        );
    }
    // Runs without any finite test loss are not part of "best over the sweep": say so.
    let note = if e.left_out.is_empty() {
        String::new()
    } else {
        let runs: Vec<String> = e
            .left_out
            .iter()
            .map(|(label, lr)| format!("{label} at lr {}", Short(*lr)))
            .collect();
        format!(" (left out, no finite test loss: {})", runs.join(", "))
    };
    format!(
        "BN placement (best test loss over the sweep{note}): before the activation {}, after it {}: {} in this run ({}x).\n",
        fmt_num(e.before),
        fmt_num(e.after),
        if verdict == PlacementVerdict::AfterActivation {
            "after the activation did better"
        } else {
            "before the activation did better"
        },
        fmt_num(e.ratio),
    )
}

/// The learning rate `train_layers.png` shows by default: the largest at which no
/// configuration diverged (so every curve runs the whole way), else the smallest of the sweep.
pub fn default_diag_lr(lrs: &[f64], runs: &[TrainRun]) -> f64 {
    let all_ok = |lr: f64| runs.iter().all(|r| r.lr != lr || !r.diverged);
    let stable = lrs
        .iter()
        .copied()
        .filter(|&lr| all_ok(lr))
        .fold(f64::NEG_INFINITY, f64::max);
    if stable.is_finite() {
        stable
    } else {
        lrs.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// `bn-lab train`.
pub struct Train;

impl Experiment for Train {
    type Config = TrainConfig;
    type Report = TrainReport;
    const NAME: &'static str = "train";
    const STEM: &'static str = "train";

    fn run(cfg: &TrainConfig, progress: Progress) -> TrainReport {
        run(cfg, progress)
    }

    fn summary(report: &TrainReport) -> String {
        table(report)
    }
}

// The command line: the flags of `bn-lab train` and the config they describe.

/// Train the same network with BatchNorm off, on, without scale/shift and after the
/// activation, over a sweep of learning rates: loss curves, divergence, per-layer update
/// ratios and gradient norms. Writes train.png, train_loss.png, train_layers.png and train.json.
// Flags of `bn-lab train`: small networks, so 16 runs finish in seconds.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.default_value("64")),
    mut_arg("batch", |a| a.default_value("64").help("Samples per mini-batch")),
    mut_arg("affine", |a| a.hide(true)),
    mut_arg("no_affine", |a| a.hide(true)),
    mut_arg("placement", |a| a.hide(true))
)]
pub struct TrainArgs {
    /// Learning rates to compare, comma-separated; one loss panel each.
    #[arg(
        allow_hyphen_values = true,
        long,
        value_delimiter = ',',
        default_value = "0.01,0.1,0.3,1"
    )]
    pub lr: Vec<f64>,
    /// Configurations to compare, comma-separated: normalisers, skip-init (SkipInit without a
    /// normaliser) and NORMALISER+skip-init [default: off,on,no-affine,post; with --block
    /// basic|preact: off,on,layer,skip-init].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub configs: Option<Vec<TrainArm>>,
    /// Number of hidden layers (with --block basic|preact: of blocks, each two layers, after a
    /// stem layer).
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, default_value_t = 10)]
    pub depth: usize,
    /// SGD updates per run.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_STEPS>, long, default_value_t = 600)]
    pub steps: usize,
    #[command(flatten)]
    pub sgd: SgdArgs,
    /// Evaluate the train and test loss every K steps.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long, value_name = "K", default_value_t = 20)]
    pub eval_every: usize,
    /// Record per-layer update ratios and gradient norms every K steps.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long, value_name = "K", default_value_t = 5)]
    pub diag_every: usize,
    /// A run diverges when its mini-batch loss exceeds this factor times its first one.
    #[arg(allow_hyphen_values = true, long, default_value_t = crate::train::DIVERGENCE_FACTOR)]
    pub diverge_factor: f64,
    /// Learning rate whose per-layer diagnostics train_layers.png shows [default: the largest
    /// at which no configuration diverged, else the smallest].
    #[arg(allow_hyphen_values = true, long)]
    pub diag_lr: Option<f64>,
    /// Also draw train_histograms.png: per layer (up to 8, evenly spaced), the distribution of
    /// the activations h_l (with the tanh/sigmoid saturation share) and of dL/dh_l at a few
    /// steps (--histogram-steps), for the runs at --diag-lr; the JSON keeps every run's bins.
    #[arg(long)]
    pub histograms: bool,
    /// Steps at which --histograms records (step s: after s updates, on step s's mini-batch),
    /// comma-separated, at most 4 [default: 0, 10, 100 and the last, those below --steps].
    #[arg(allow_hyphen_values = true, value_parser = count::<0, 0>, long, value_delimiter = ',', requires = "histograms")]
    pub histogram_steps: Option<Vec<usize>>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ExperimentArgs for TrainArgs {
    type Experiment = Train;
    const QUICK: &'static str = "--depth 3 --width 8 --batch 8 --d-out 2 --n-train 64 --n-test 32 --steps 30 --eval-every 10 --diag-every 5 --lr 0.02,50";
    const RENAMES: Renames = &[
        ("norms", "--configs"),
        ("lrs", "--lr"),
        ("histogram_steps", "--histogram-steps"),
    ];
    /// `train` compares fixed BN variants, so the flags that would change all of them at once
    /// are refused.
    fn config(&self) -> anyhow::Result<TrainConfig> {
        if self.net.no_affine {
            return Err(usage(
                "--no-affine: train compares fixed configurations; choose them with --configs (e.g. --configs off,no-affine)",
            ));
        }
        if self.net.placement == Placement::Post {
            return Err(usage(
                "--placement: train compares fixed configurations; choose them with --configs (post puts BN after the activation)",
            ));
        }
        let (mut net, data) = self.data.specs(&self.net)?;
        let mut norms = self.configs.clone().unwrap_or_else(|| {
            // With --skip-init (every configuration gets it below) or Fixup's own multiplier,
            // SkipInit is not a configuration of its own.
            let gained = net.skip_init || net.init == crate::config::Init::Fixup;
            let names: &[&str] = match net.block {
                None => &["off", "on", "no-affine", "post"],
                Some(_) if gained => &["off", "on", "layer"],
                Some(_) => &["off", "on", "layer", "skip-init"],
            };
            names
                .iter()
                .map(|n| n.parse().expect("a configuration's name"))
                .collect()
        });
        // --skip-init puts SkipInit on every configuration.
        if net.skip_init {
            net.skip_init = false;
            for arm in &mut norms {
                arm.skip_init = true;
            }
        }
        Ok(TrainConfig {
            data,
            depth: self.depth,
            act: self.net.activation(),
            net,
            norms,
            lrs: self.lr.clone(),
            sgd: self.sgd.spec(),
            steps: self.steps,
            eval_every: self.eval_every,
            diag_every: self.diag_every,
            diverge_factor: self.diverge_factor,
            diag_lr: self.diag_lr,
            histogram_steps: match (&self.histogram_steps, self.histograms) {
                (Some(steps), _) => Some(steps.clone()),
                (None, true) => Some(default_histogram_steps(self.steps)),
                (None, false) => None,
            },
        })
    }
    fn output(&self) -> &OutputArgs {
        &self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Task;
    use crate::spec::NetSpec;
    use crate::train::LayerDiagnostics;

    fn cfg(lrs: &[f64], norms: &[Normaliser]) -> TrainConfig {
        TrainConfig {
            data: DataSpec {
                task: Task::Nonlinear,
                n_train: 64,
                n_test: 32,
                loss: crate::config::Loss::Mse,
            },
            depth: 2,
            act: Activation::Relu,
            net: NetSpec {
                width: 4,
                batch: 8,
                d_in: 4,
                d_out: 2,
                init: crate::config::Init::He,
                residual: false,
                residual_scale: 1.0,
                block: None,
                skip_init: false,
                eps: 1e-5,
                momentum: 0.1,
                seed: 0,
                dtype: Dtype::F32,
            },
            norms: norms.iter().map(|&n| TrainArm::plain(n)).collect(),
            lrs: lrs.to_vec(),
            sgd: SgdSpec {
                sgd_momentum: 0.0,
                weight_decay: 0.0,
                warmup_steps: 0,
            },
            steps: 10,
            eval_every: 5,
            diag_every: 5,
            diverge_factor: 1e6,
            diag_lr: None,
            histogram_steps: None,
        }
    }

    /// A run that diverged or not, with final (and best) train and test loss `loss`.
    fn run(c: &TrainConfig, lr: f64, norm: Normaliser, diverged: bool, loss: f64) -> TrainRun {
        TrainRun {
            label: norm.label().to_string(),
            arm: TrainArm::plain(norm),
            norm,
            lr,
            net: c.net(TrainArm::plain(norm)),
            diverged,
            learned: learned(diverged, loss, None, 1.0, None),
            late_batch_loss: Num(loss),
            final_train_loss: Num(loss),
            best_train_loss: Num(loss),
            final_test_loss: Num(loss),
            best_test_loss: Num(loss),
            output_lr_limit: Num(1.0),
            accuracy: None,
            history: History {
                eval_steps: vec![0],
                batch_loss: vec![Num(loss)],
                train_loss: vec![Num(loss)],
                test_loss: vec![Num(loss)],
                train_accuracy: Vec::new(),
                test_accuracy: Vec::new(),
                layers: LayerDiagnostics::default(),
                steps_done: 10,
                divergence: None,
                output_curvature: Num(1.0),
            },
            histograms: None,
            final_alpha: Vec::new(),
        }
    }

    fn summary(c: &TrainConfig, runs: &[TrainRun]) -> Vec<ArmSummary> {
        c.norms.iter().map(|&arm| summarise(arm, runs)).collect()
    }

    #[test]
    fn bn_shows_a_higher_rate_only_where_it_learned_and_the_plain_net_did_not() {
        let c = cfg(&[1.0], &[Normaliser::Off, Normaliser::BN]);
        // Losses below 1 (the zero predictor here) learned; NaN, or at the zero level, not.
        let verdict = |off: (bool, f64), bn: (bool, f64)| {
            let runs = [
                run(&c, 1.0, Normaliser::Off, off.0, off.1),
                run(&c, 1.0, Normaliser::BN, bn.0, bn.1),
            ];
            higher_lr_verdict(&c, &runs).unwrap().verdict
        };
        assert_eq!(verdict((true, 1e9), (false, 0.2)), HigherLr::Shown);
        // BN off stuck at the zero predictor's level without diverging: it did not learn.
        assert_eq!(verdict((false, 1.0), (false, 0.2)), HigherLr::Shown);
        // A BN run that ended NaN, or stuck, is no evidence that BN learned.
        assert_eq!(verdict((true, 1e9), (false, f64::NAN)), HigherLr::NotShown);
        assert_eq!(verdict((true, 1e9), (false, 1.0)), HigherLr::NotShown);
        assert_eq!(verdict((true, 1e9), (true, 1e9)), HigherLr::NotShown);
        assert_eq!(verdict((false, 0.5), (false, 0.2)), HigherLr::NotShown);
        let only_bn = [run(&c, 1.0, Normaliser::BN, false, 0.2)];
        assert!(higher_lr_verdict(&cfg(&[1.0], &[Normaliser::BN]), &only_bn).is_none());
    }

    #[test]
    fn learned_needs_no_divergence_a_loss_below_zero_and_accuracy_above_chance() {
        assert!(learned(false, 0.5, None, 1.0, None));
        assert!(!learned(true, 0.5, None, 1.0, None));
        assert!(!learned(false, 1.0, None, 1.0, None));
        assert!(!learned(false, f64::NAN, None, 1.0, None));
        // The digits' seed-2 plain net at lr 1: loss just above ln 10, 10.3% accuracy.
        let floor = Some(accuracy_floor(37.0 / 360.0, 360));
        assert!(!learned(
            false,
            2.304,
            Some(0.1028),
            std::f64::consts::LN_10,
            floor
        ));
        assert!(!learned(
            false,
            2.0,
            Some(0.1028),
            std::f64::consts::LN_10,
            floor
        ));
        assert!(learned(
            false,
            0.2,
            Some(0.94),
            std::f64::consts::LN_10,
            floor
        ));
        assert!(!learned(false, 0.2, None, std::f64::consts::LN_10, floor));
    }

    #[test]
    fn the_largest_stable_rate_is_the_largest_the_run_learned_at() {
        let c = cfg(&[0.1, 0.3, 1.0], &[Normaliser::Off]);
        let runs = [
            run(&c, 0.1, Normaliser::Off, false, 0.3),
            run(&c, 0.3, Normaliser::Off, false, 0.2),
            run(&c, 1.0, Normaliser::Off, false, 1.5),
        ];
        let s = summarise(TrainArm::OFF, &runs);
        assert_eq!(s.largest_stable_lr, Some(0.3));
        assert_eq!(s.not_learned_at, vec![1.0]);
        assert_eq!(s.at_largest_stable_lr.unwrap().final_test_loss, Num(0.2));
        assert_eq!(s.best_lr, Some(0.3));
    }

    #[test]
    fn majority_share_is_the_largest_class_share() {
        let y = ndarray::arr2(&[[1.0f32, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]);
        assert_eq!(majority_share(y.view()), 0.75);
    }

    #[test]
    fn placement_needs_a_trained_run_of_each_placement() {
        let post = Normaliser::BN.placed(Placement::Post);
        let c = cfg(&[0.1, 1.0], &[Normaliser::BN, post]);
        let runs = [
            run(&c, 0.1, Normaliser::BN, false, 0.3),
            run(&c, 0.1, post, false, 0.2),
            run(&c, 1.0, Normaliser::BN, true, 0.1),
            run(&c, 1.0, post, true, f64::NAN),
        ];
        let v = placement_verdict(&summary(&c, &runs), &runs).unwrap();
        // BN's best (0.1) comes from a run that diverged after reaching it: still a result.
        assert_eq!(
            (v.verdict, v.reason),
            (PlacementVerdict::BeforeActivation, None)
        );
        let diverged: Vec<TrainRun> = runs
            .iter()
            .cloned()
            .map(|mut r| {
                r.diverged = r.norm == post || r.diverged;
                r.learned = r.learned && !r.diverged;
                r
            })
            .collect();
        let v = placement_verdict(&summary(&c, &diverged), &diverged).unwrap();
        assert_eq!(v.verdict, PlacementVerdict::Undetermined);
        assert!(
            v.reason
                .unwrap()
                .starts_with("BN after act learned at no learning rate")
        );
        let nan: Vec<TrainRun> = [0.1, 1.0]
            .iter()
            .flat_map(|&lr| {
                [
                    run(&c, lr, Normaliser::BN, false, 0.3),
                    run(&c, lr, post, false, f64::NAN),
                ]
            })
            .collect();
        let v = placement_verdict(&summary(&c, &nan), &nan).unwrap();
        assert_eq!(v.verdict, PlacementVerdict::Undetermined);
        assert!(v.reason.unwrap().contains("reached no finite test loss"));
    }

    #[test]
    fn higher_lr_evidence_lists_where_bn_off_failed_and_who_learned_there() {
        let c = cfg(&[0.1, 1.0, 3.0], &[Normaliser::Off, Normaliser::BN]);
        let mut runs = vec![
            run(&c, 0.1, Normaliser::Off, false, 0.5),
            run(&c, 0.1, Normaliser::BN, false, 0.4),
            run(&c, 1.0, Normaliser::Off, true, 1e9),
            run(&c, 1.0, Normaliser::BN, false, 0.3),
            run(&c, 3.0, Normaliser::Off, true, 1e9),
            run(&c, 3.0, Normaliser::BN, true, 1e9),
        ];
        let e = higher_lr_evidence(&c, &runs).unwrap();
        assert_eq!(
            e,
            HigherLrEvidence::Rescued {
                failed: vec![1.0, 3.0],
                rescues: vec![Rescue {
                    lr: 1.0,
                    learned: vec![TrainArm::plain(Normaliser::BN)]
                }],
            }
        );
        assert_eq!(e.verdict(), HigherLr::Shown);
        assert_eq!(
            higher_lr_text(&e),
            format!(
                "shown: BN off did not learn at lr 1, 3 (diverged or stuck), where these BN configurations learned: lr 1: {}",
                Normaliser::BN.label()
            )
        );
        // BN stuck at lr 1 too: BN off failed there and nobody learned.
        runs[3] = run(&c, 1.0, Normaliser::BN, false, 1.0);
        let e = higher_lr_evidence(&c, &runs).unwrap();
        assert_eq!(
            e,
            HigherLrEvidence::NotRescued {
                failed: vec![1.0, 3.0]
            }
        );
        assert_eq!(e.verdict(), HigherLr::NotShown);
        let fine: Vec<TrainRun> = runs.iter().filter(|r| r.lr == 0.1).cloned().collect();
        let c = cfg(&[0.1], &[Normaliser::Off, Normaliser::BN]);
        assert_eq!(
            higher_lr_evidence(&c, &fine).unwrap(),
            HigherLrEvidence::OffLearnedEverywhere { lrs: vec![0.1] }
        );
    }

    #[test]
    fn placement_evidence_takes_each_placements_best_and_names_the_runs_left_out() {
        let post = Normaliser::BN.placed(Placement::Post);
        let c = cfg(&[0.1, 1.0, 3.0], &[Normaliser::Off, Normaliser::BN, post]);
        let runs = [
            run(&c, 0.1, Normaliser::Off, false, 0.9),
            run(&c, 0.1, Normaliser::BN, false, 0.3),
            run(&c, 0.1, post, false, 0.2),
            run(&c, 1.0, Normaliser::Off, false, f64::NAN),
            run(&c, 1.0, Normaliser::BN, false, f64::NAN),
            run(&c, 1.0, post, false, 0.15),
            run(&c, 3.0, Normaliser::BN, false, 0.6),
            run(&c, 3.0, post, true, f64::INFINITY),
        ];
        let e = placement_evidence(&summary(&c, &runs), &runs).unwrap();
        assert_eq!(e.judged.verdict, PlacementVerdict::AfterActivation);
        assert_eq!((e.before, e.after), (0.3, 0.15));
        assert!((e.ratio - 2.0).abs() < 1e-12);
        // BN off's NaN run is not part of the placement comparison.
        assert_eq!(
            e.left_out,
            vec![
                (Normaliser::BN.label().to_string(), 1.0),
                (post.label().to_string(), 3.0)
            ]
        );
        assert!(placement_text(&e).contains(&format!(
            "(left out, no finite test loss: {} at lr 1, {} at lr 3)",
            Normaliser::BN.label(),
            post.label()
        )));
        // Without the post-activation arm there is nothing to compare.
        let c = cfg(&[0.1], &[Normaliser::BN]);
        assert!(placement_evidence(&summary(&c, &runs[1..2]), &runs[1..2]).is_none());
    }
}
