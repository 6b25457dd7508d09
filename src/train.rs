//! Training shared by every experiment that trains: the one loop [`fit`] (mini-batch SGD over a
//! [`crate::data::Sampler`] with [`crate::optim::Sgd`], divergence detection) with its
//! [`Observer`] hooks, and [`HistoryRecorder`], the observer behind `bn-lab train` and
//! `bn-lab nonlinearity` (train/test losses with BatchNorm in eval mode and per-layer diagnostics
//! every k steps). `bn-lab landscape` and `bn-lab ics` plug their own observers into the same loop.
//!
//! ```text
//! for step in 0..steps:
//!     (x, y) = next shuffled mini-batch            Mode::Train: BN uses batch statistics
//!     L_batch = 1/(2B) sum (o - y)^2 or CE           diverged if inf/NaN or > 1e6 * L_batch(step 0)
//!     backward; every k steps record per layer
//!         ||dL/dW_l||_F and  std(lr * dL/dW_l) / std(W_l)   (before the update)
//!     SGD update
//!     every k steps: train and test loss in Mode::Eval (BN uses running statistics)
//! ```
//!
//! A divergent run stops, is recorded with its step and loss, and never panics: every number
//! that may be non-finite is a [`Num`].

use ndarray::{Array2, s};
use serde::Serialize;

use crate::config::{Loss, NormKind};
use crate::data::{Batch, Dataset, Sampler};
use crate::float::Float;
use crate::model::{Mlp, Mode};
use crate::ops;
use crate::optim::{Sgd, SgdConfig};
use crate::stats::{self, Num};

/// What a run tells its caller as it goes: its work units, and (for `bn-lab serve`'s stream)
/// partial results. Every closure `Fn(u64) + Sync` is one (units only); see [`Report`].
pub type Progress<'a> = &'a dyn Report;

/// Whom a run reports to. [`Report::units`] is the progress bar's; the partial results are
/// optional and cost nothing when nobody listens (the default methods do nothing):
/// [`fit`] calls [`Report::partial`] on about [`PARTIAL_POINTS`] evenly spaced steps of a run,
/// an experiment's job map wraps the reporter in [`Tagged`] with the arm's key, and `Tagged`
/// hands the point on to [`Report::point`] with that key, up to the command's reporter.
pub trait Report: Sync {
    /// `n` more work units are done.
    fn units(&self, n: u64);

    /// The mini-batch loss at `step` of the training run this reporter follows.
    fn partial(&self, _step: usize, _loss: f64) {}

    /// The mini-batch loss at `step` of the run of arm `arm`.
    fn point(&self, _arm: &str, _step: usize, _loss: f64) {}
}

impl<F: Fn(u64) + Sync> Report for F {
    fn units(&self, n: u64) {
        self(n)
    }
}

/// A reporter for one arm's runs: units go on unchanged, partial results go on as points of
/// `arm` (a short label matching the report's, e.g. `BN on lr=0.1`).
pub struct Tagged<'a> {
    inner: Progress<'a>,
    arm: String,
}

impl<'a> Tagged<'a> {
    pub fn new(inner: Progress<'a>, arm: String) -> Tagged<'a> {
        Tagged { inner, arm }
    }
}

impl Report for Tagged<'_> {
    fn units(&self, n: u64) {
        self.inner.units(n);
    }

    fn partial(&self, step: usize, loss: f64) {
        self.inner.point(&self.arm, step, loss);
    }

    fn point(&self, arm: &str, step: usize, loss: f64) {
        self.inner.point(arm, step, loss);
    }
}

/// A reporter that passes on partial results only (for a run whose work units are counted
/// elsewhere).
pub struct PartialsOnly<'a>(pub Progress<'a>);

impl Report for PartialsOnly<'_> {
    fn units(&self, _n: u64) {}

    fn partial(&self, step: usize, loss: f64) {
        self.0.partial(step, loss);
    }

    fn point(&self, arm: &str, step: usize, loss: f64) {
        self.0.point(arm, step, loss);
    }
}

/// About how many steps of a run [`fit`] reports as partial results: every
/// [`partial_stride`]-th from step 0, and the last (at most one more).
pub const PARTIAL_POINTS: usize = 200;

/// The spacing of the steps [`fit`] reports as partial results for a run of `steps` steps.
pub fn partial_stride(steps: usize) -> usize {
    steps.div_ceil(PARTIAL_POINTS).max(1)
}

/// Work units of a progress bar, for every experiment that trains: one unit is one sample
/// through one forward pass of the network, so the bar's total counts every pass a run makes
/// in proportion to its cost. A forward and backward pass costs this many units per sample
/// (measured: 2.7 to 3.6 for the commands' default networks).
pub const FORWARD_BACKWARD: u64 = 3;

/// Units of one training step (forward and backward) on `batch` samples.
pub fn step_units(batch: usize) -> u64 {
    FORWARD_BACKWARD.saturating_mul(batch as u64)
}

/// `a * b` work units, saturating (a bar's total never wraps).
pub fn units(a: usize, b: u64) -> u64 {
    (a as u64).saturating_mul(b)
}

/// How to train one network.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TrainSettings {
    /// Number of SGD updates.
    pub steps: usize,
    /// Samples per mini-batch.
    pub batch: usize,
    pub sgd: SgdConfig,
    /// Evaluate the train and test loss (eval mode) every this many steps, and after the last.
    pub eval_every: usize,
    /// Record per-layer diagnostics every this many steps (0: never).
    pub diag_every: usize,
    /// A run diverges when its mini-batch loss exceeds this factor times its first one.
    pub diverge_factor: f64,
    /// Seed of the mini-batch order (the `Shuffle` stream).
    pub seed: u64,
    pub loss: Loss,
}

impl TrainSettings {
    /// Evaluations of a run that does not diverge: at step 0, every `eval_every` steps and after
    /// the last (see [`HistoryRecorder`]).
    pub fn evaluations(&self) -> u64 {
        let every = self.eval_every.max(1);
        1 + (self.steps / every) as u64 + u64::from(self.steps % every != 0)
    }

    /// Work units [`train`] reports on a data set of `n_train` + `n_test` samples: every step
    /// (forward and backward on `batch` samples) and every evaluation (a forward over both
    /// splits), the same total whether or not the run diverges.
    pub fn work_units(&self, n_train: usize, n_test: usize) -> u64 {
        units(self.steps, step_units(self.batch)).saturating_add(
            self.evaluations()
                .saturating_mul(n_train.saturating_add(n_test) as u64),
        )
    }
}

/// Work units of [`recalibrated_losses`]: the forward over up to [`RECALIBRATION_SAMPLES`]
/// training samples (with BN only) and the eval forwards over both splits.
pub fn recalibration_units(has_bn: bool, n_train: usize, n_test: usize) -> u64 {
    let recal = if has_bn {
        n_train.min(RECALIBRATION_SAMPLES)
    } else {
        0
    };
    (recal as u64)
        .saturating_add(n_train as u64)
        .saturating_add(n_test as u64)
}

/// Work units of [`ReferenceLosses::of`] (the least-squares fit), in forward passes of one
/// sample through a network of `forward_macs` multiply-adds per sample: the Gram matrix
/// (`n_train k^2`), its Cholesky factorisation (`k^3 / 6`), the right-hand sides, solves and
/// losses (`(2 n_train + n_test) k d_out + 2 k^2 d_out`), with `k = d_in + 1`. At least 1.
pub fn linear_fit_units(
    n_train: usize,
    n_test: usize,
    d_in: usize,
    d_out: usize,
    forward_macs: f64,
) -> u64 {
    let (n, m, k, o) = (
        n_train as f64,
        n_test as f64,
        d_in as f64 + 1.0,
        d_out as f64,
    );
    let macs = n * k * k + k * k * k / 6.0 + (2.0 * n + m) * k * o + 2.0 * k * k * o;
    let u = (macs / forward_macs.max(1.0)).ceil();
    if u >= u64::MAX as f64 {
        u64::MAX
    } else {
        (u as u64).max(1)
    }
}

/// Multiply-adds of one sample's forward pass through `net`: the weight matrices, plus a few
/// per hidden unit for bias, BatchNorm and activation.
pub fn forward_macs(net: &crate::spec::NetConfig) -> f64 {
    let (w, layers) = (net.width as f64, net.layers() as f64);
    // A standard block's own passes (the stream's sum, a preact block's first normaliser).
    let units = if net.block.is_some() {
        8.0 * w * net.depth as f64
    } else {
        0.0
    };
    net.d_in as f64 * w + (layers - 1.0) * w * w + w * net.d_out as f64 + 8.0 * w * layers + units
}

/// Why a run was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DivergenceReason {
    /// The mini-batch loss became inf or NaN.
    NonFinite,
    /// The mini-batch loss grew by more than `diverge_factor` over the first mini-batch's.
    Grew,
}

/// Where and how a run diverged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Divergence {
    /// Number of updates done before the mini-batch whose loss tripped the check.
    pub step: usize,
    /// That mini-batch loss.
    pub loss: Num,
    pub reason: DivergenceReason,
}

/// Per-layer diagnostics, recorded from the gradients of the mini-batch at `steps[i]`, before
/// its update. Layers are the hidden weight matrices `W_1 .. W_L` and the output layer (for
/// standard blocks: the stem, each block's `W1` and `W2`, and the output layer).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LayerDiagnostics {
    /// Update count at each record.
    pub steps: Vec<usize>,
    /// `"1" .. "L"` and `"out"`; for standard blocks `"stem"`, `"1.W1"`, `"1.W2"`, ...,
    /// `"out"` ([`matrix_names`]).
    pub layers: Vec<String>,
    /// `update_ratio[layer][i] = std(lr_t * dL/dW) / std(W)` at `steps[i]`: the relative size of
    /// the plain SGD step (makemore's rule of thumb: around 1e-3), with `lr_t` the learning rate
    /// applied at that step (below `lr` during `--warmup-steps`). With `--sgd-momentum` the
    /// applied step is `lr_t * velocity`, not this.
    pub update_ratio: Vec<Vec<Num>>,
    /// `grad_norm[layer][i] = ||dL/dW||_F` at `steps[i]`.
    pub grad_norm: Vec<Vec<Num>>,
}

/// What happened during one training run.
#[derive(Clone, Debug, Serialize)]
pub struct History {
    /// Update count at each evaluation (0: the initial network).
    pub eval_steps: Vec<usize>,
    /// Mean train-mode mini-batch loss over the steps since the previous evaluation (at step 0:
    /// the first mini-batch, before any update). This is the loss SGD sees.
    pub batch_loss: Vec<Num>,
    /// Loss on the whole training set, eval mode.
    pub train_loss: Vec<Num>,
    /// Loss on the test set, eval mode.
    pub test_loss: Vec<Num>,
    /// Accuracy on the whole training set and on the test set at each evaluation (eval mode;
    /// classification tasks only, empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub train_accuracy: Vec<Num>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test_accuracy: Vec<Num>,
    pub layers: LayerDiagnostics,
    /// Updates actually done (fewer than `steps` when the run diverged).
    pub steps_done: usize,
    /// `None` when the run finished.
    pub divergence: Option<Divergence>,
    /// Largest eigenvalue of `1/B sum_i [h_i, 1][h_i, 1]^T` over the first mini-batch, `h_i`
    /// the last hidden layer's output (train mode, before any update): the curvature of the
    /// loss in the output layer's weights and bias. Gradient descent on that quadratic alone
    /// diverges for `lr > 2 / lambda`.
    pub output_curvature: Num,
}

impl History {
    /// `2 / output_curvature`: above this learning rate the output layer alone is unstable.
    pub fn output_lr_limit(&self) -> f64 {
        2.0 / self.output_curvature.0
    }
}

impl History {
    /// Last evaluated train loss (for a diverged run: at the divergence).
    pub fn final_train_loss(&self) -> f64 {
        self.train_loss.last().map_or(f64::NAN, |v| v.0)
    }

    pub fn final_test_loss(&self) -> f64 {
        self.test_loss.last().map_or(f64::NAN, |v| v.0)
    }

    /// Smallest finite train loss over the evaluations (NaN if none is finite).
    pub fn best_train_loss(&self) -> f64 {
        stats::finite_min(self.train_loss.iter().map(|n| n.0))
    }

    pub fn best_test_loss(&self) -> f64 {
        stats::finite_min(self.test_loss.iter().map(|n| n.0))
    }

    /// Mean mini-batch (train-mode) loss over the last tenth of the evaluations: how well SGD
    /// fits, without the noise of one evaluation. Eval-mode losses of BN nets can jump from one
    /// evaluation to the next while the running statistics lag the weights.
    pub fn late_batch_loss(&self) -> f64 {
        late(&self.batch_loss)
    }

    /// Mean test loss (eval mode) over the last tenth of the evaluations.
    pub fn late_test_loss(&self) -> f64 {
        late(&self.test_loss)
    }

    /// Last evaluated test accuracy (`None` without classes).
    pub fn final_test_accuracy(&self) -> Option<f64> {
        self.test_accuracy.last().map(|v| v.0)
    }

    /// Best test accuracy over the evaluations (`None` without classes).
    pub fn best_test_accuracy(&self) -> Option<f64> {
        (!self.test_accuracy.is_empty())
            .then(|| self.test_accuracy.iter().map(|v| v.0).fold(0.0, f64::max))
    }

    pub fn final_train_accuracy(&self) -> Option<f64> {
        self.train_accuracy.last().map(|v| v.0)
    }

    /// The three accuracies every training report gives (`None` without classes).
    pub fn accuracies(&self) -> Option<Accuracies> {
        Some(Accuracies {
            final_test_accuracy: Num(self.final_test_accuracy()?),
            best_test_accuracy: Num(self.best_test_accuracy()?),
            final_train_accuracy: Num(self.final_train_accuracy()?),
        })
    }
}

/// Accuracies of a run on a classification task (eval mode), flattened into its report.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Accuracies {
    /// On the test split after the last step (at a divergence: there).
    pub final_test_accuracy: Num,
    /// The best over the evaluations.
    pub best_test_accuracy: Num,
    /// On the whole training split after the last step.
    pub final_train_accuracy: Num,
}

/// `97.2%`, or `-` for NaN.
pub fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}%", 100.0 * v)
    } else {
        "-".into()
    }
}

impl ReferenceLosses {
    /// The reference levels in words, for the tables.
    pub fn describe(&self) -> String {
        let zero = stats::fmt_num(self.zero_predictor_test_loss.0);
        let mut out = match (self.linear_fit_test_loss, self.linear_fit_train_loss) {
            (Some(test), Some(train)) => format!(
                "predicting 0 scores {zero} on the test set, the best linear model (least squares) {} (train {})",
                stats::fmt_num(test.0),
                stats::fmt_num(train.0)
            ),
            _ => format!("uniform probabilities (all outputs 0) score {zero} on the test set"),
        };
        if let (Some(test), Some(train)) = (
            self.linear_fit_test_accuracy,
            self.linear_fit_train_accuracy,
        ) {
            out.push_str(&format!(
                "; the least-squares linear classifier is {} accurate on the test set (train {})",
                percent(test.0),
                percent(train.0)
            ));
        }
        out
    }
}

/// Mean of the last `ceil(n / 10)` values after the first (the initial network), or the only
/// value there is.
pub fn late(v: &[Num]) -> f64 {
    let rest = if v.len() > 1 { &v[1..] } else { v };
    if rest.is_empty() {
        return f64::NAN;
    }
    let k = rest.len().div_ceil(10);
    rest[rest.len() - k..].iter().map(|x| x.0).sum::<f64>() / k as f64
}

/// Loss and accuracy of a network on a data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    /// Share of samples whose largest output is the target's class (meaningful for
    /// classification tasks only; see [`ops::accuracy`]).
    pub accuracy: f64,
}

/// Loss and accuracy of `net` on all of `data` in eval mode, in chunks of `chunk` rows (eval
/// mode has no batch dependence, so chunking changes nothing but memory).
pub fn evaluate<T: Float>(
    net: &mut Mlp<T>,
    data: &Batch<T>,
    chunk: usize,
    loss: Loss,
) -> Evaluation {
    let n = data.x.nrows();
    let chunk = chunk.max(1);
    let (mut sum, mut correct) = (0.0, 0.0);
    let mut lo = 0;
    while lo < n {
        let hi = (lo + chunk).min(n);
        let x = data.x.slice(s![lo..hi, ..]);
        let y = data.y.slice(s![lo..hi, ..]);
        let o = net
            .forward(x, Mode::Eval)
            .expect("the data has the network's input width");
        // Both average over their rows: weight each chunk by its size.
        sum += loss.value(o.view(), y) * (hi - lo) as f64;
        correct += ops::accuracy(o, y) * (hi - lo) as f64;
        lo = hi;
    }
    Evaluation {
        loss: sum / n as f64,
        accuracy: correct / n as f64,
    }
}

/// The loss of [`evaluate`].
pub fn eval_loss<T: Float>(net: &mut Mlp<T>, data: &Batch<T>, chunk: usize, loss: Loss) -> f64 {
    evaluate(net, data, chunk, loss).loss
}

/// Largest eigenvalue of `M = 1/B sum_i [h_i, 1][h_i, 1]^T` for `h: (B, n)`, by power
/// iteration in f64 (`M` is symmetric positive semi-definite, so the iteration converges to it
/// from a positive start). NaN if `h` holds inf/NaN.
pub fn second_moment_top_eigenvalue<T: Float>(h: ndarray::ArrayView2<T>) -> f64 {
    let (b, n) = h.dim();
    let mut a = Array2::<f64>::ones((b, n + 1));
    a.slice_mut(s![.., ..n]).assign(&h.mapv(|v| v.f64()));
    if a.iter().any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let m = a.t().dot(&a) / b as f64;
    let mut v = ndarray::Array1::<f64>::from_elem(n + 1, 1.0 / ((n + 1) as f64).sqrt());
    let mut lambda = 0.0;
    for _ in 0..500 {
        let w = m.dot(&v);
        let norm = w.dot(&w).sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        let next = v.dot(&w);
        v = w / norm;
        if (next - lambda).abs() <= 1e-12 * next.abs() {
            return next;
        }
        lambda = next;
    }
    lambda
}

/// Samples [`recalibrated_losses`] uses for the population statistics at most.
pub const RECALIBRATION_SAMPLES: usize = 2048;

/// Train and test loss of `net` in eval mode after replacing every BN layer's running
/// statistics by the statistics of (up to [`RECALIBRATION_SAMPLES`] of) the training set under
/// the final weights ("precise BN"), on a copy: the network function itself, free of both the
/// batch-statistics noise of train mode and the lag of the running averages. Without BN this
/// is the plain eval-mode loss.
pub fn recalibrated_losses<T: Float>(
    net: &Mlp<T>,
    data: &Dataset<T>,
    chunk: usize,
    loss: Loss,
) -> (Evaluation, Evaluation) {
    let mut c = net.clone();
    let mut has_bn = false;
    c.for_each_norm_mut(|bn| {
        if bn.kind == NormKind::Batch {
            // running = batch statistics of the one forward below (variance unbiased).
            bn.momentum = 1.0;
            has_bn = true;
        }
    });
    if has_bn {
        let n = data.train.x.nrows().min(RECALIBRATION_SAMPLES);
        c.forward(data.train.x.slice(s![..n, ..]), Mode::Train)
            .expect("the data has the network's input width");
    }
    (
        evaluate(&mut c, &data.train, chunk, loss),
        evaluate(&mut c, &data.test, chunk, loss),
    )
}

/// Record `||dW||` and `std(lr dW) / std(W)` of every weight matrix, from the last backward;
/// `lr` is the one this step applies (warmup included).
fn record_diagnostics<T: Float>(net: &Mlp<T>, lr: f64, step: usize, d: &mut LayerDiagnostics) {
    d.steps.push(step);
    let linears = net
        .blocks
        .iter()
        .map(|b| &b.linear)
        .chain(std::iter::once(&net.out));
    for (i, lin) in linears.enumerate() {
        let std_w = stats::std_dev(&lin.w);
        let std_g = stats::std_dev(&lin.dw);
        d.update_ratio[i].push(Num(lr.abs() * std_g / std_w));
        d.grad_norm[i].push(Num(stats::frobenius_norm(&lin.dw)));
    }
}

/// Train `net` in place on `data.train` and evaluate on both splits: [`fit`] with a
/// [`HistoryRecorder`]. `progress(n)` is told of the work units just finished (see
/// [`FORWARD_BACKWARD`]): each step and each evaluation as it is done, everything left at once
/// when the run stops early, [`TrainSettings::work_units`] in all.
///
/// The train and test losses are evaluated at step 0, every `eval_every` steps, after the last
/// step, and at a divergence.
pub fn train<T: Float>(
    net: &mut Mlp<T>,
    data: &Dataset<T>,
    s: &TrainSettings,
    progress: Progress,
) -> History {
    let mut recorder = HistoryRecorder::new(net, s, progress);
    let mut tr = Trainer::new(net, data, s.sgd, s.batch, s.seed, s.loss);
    fit(&mut tr, s.steps, s.diverge_factor, progress, &mut recorder);
    recorder.history
}

/// Records a [`History`]: train/test losses every `eval_every` steps, per-layer diagnostics
/// every `diag_every` steps, the output layer's curvature at step 0. Tells `progress` of every
/// evaluation (and at a divergence, of the ones it will not make).
pub struct HistoryRecorder<'a> {
    pub history: History,
    eval_every: usize,
    diag_every: usize,
    steps: usize,
    /// Mini-batch losses since the last evaluation.
    acc: f64,
    acc_n: usize,
    progress: Progress<'a>,
    /// Evaluations made and planned ([`TrainSettings::evaluations`]).
    evaluations: u64,
    planned: u64,
}

impl<'a> HistoryRecorder<'a> {
    pub fn new<T: Float>(net: &Mlp<T>, s: &TrainSettings, progress: Progress<'a>) -> Self {
        let names = matrix_names(&net.config);
        let n_layers = names.len();
        HistoryRecorder {
            history: History {
                eval_steps: Vec::new(),
                batch_loss: Vec::new(),
                train_loss: Vec::new(),
                test_loss: Vec::new(),
                train_accuracy: Vec::new(),
                test_accuracy: Vec::new(),
                layers: LayerDiagnostics {
                    layers: names,
                    update_ratio: vec![Vec::new(); n_layers],
                    grad_norm: vec![Vec::new(); n_layers],
                    ..LayerDiagnostics::default()
                },
                steps_done: 0,
                divergence: None,
                output_curvature: Num(f64::NAN),
            },
            eval_every: s.eval_every.max(1),
            diag_every: s.diag_every,
            steps: s.steps,
            acc: 0.0,
            acc_n: 0,
            progress,
            evaluations: 0,
            planned: s.evaluations(),
        }
    }

    /// Work units of one evaluation: a forward over both splits.
    fn eval_units<T: Float>(tr: &Trainer<'_, T>) -> u64 {
        (tr.data.train.x.nrows() as u64).saturating_add(tr.data.test.x.nrows() as u64)
    }

    fn evaluate<T: Float>(&mut self, tr: &mut Trainer<'_, T>, step: usize, batch_loss: f64) {
        let h = &mut self.history;
        let chunk = tr.x.nrows();
        h.eval_steps.push(step);
        h.batch_loss.push(Num(batch_loss));
        let train = evaluate(tr.net, &tr.data.train, chunk, tr.loss);
        let test = evaluate(tr.net, &tr.data.test, chunk, tr.loss);
        h.train_loss.push(Num(train.loss));
        h.test_loss.push(Num(test.loss));
        if tr.data.classes.is_some() {
            h.train_accuracy.push(Num(train.accuracy));
            h.test_accuracy.push(Num(test.accuracy));
        }
        self.evaluations += 1;
        self.progress.units(Self::eval_units(tr));
    }
}

impl<T: Float> Observer<T> for HistoryRecorder<'_> {
    fn start(&mut self, tr: &mut Trainer<'_, T>) {
        // The initial network, before the first mini-batch's forward (an eval forward
        // overwrites the buffers the backward reads). Its batch loss is filled in by step 0.
        self.evaluate(tr, 0, f64::NAN);
    }

    fn after_forward(&mut self, tr: &mut Trainer<'_, T>, step: usize, loss: f64) {
        if step == 0 {
            self.history.batch_loss[0] = Num(loss);
            self.history.output_curvature =
                Num(second_moment_top_eigenvalue(tr.net.hidden(tr.net.depth())));
        }
    }

    fn diverged(&mut self, tr: &mut Trainer<'_, T>, d: &Divergence) {
        self.history.divergence = Some(*d);
        // The state at the divergence, so the table's "final" says how bad it got.
        if self.history.eval_steps.last() != Some(&d.step) {
            self.evaluate(tr, d.step, d.loss.0);
        }
        // The evaluation at a divergence takes the place of a planned one (the last, at least).
        let skipped = self.planned.saturating_sub(self.evaluations);
        self.progress
            .units(skipped.saturating_mul(Self::eval_units(tr)));
    }

    fn before_update(&mut self, tr: &mut Trainer<'_, T>, step: usize, _loss: f64) {
        if self.diag_every > 0 && step % self.diag_every == 0 {
            record_diagnostics(tr.net, tr.sgd.current_lr(), step, &mut self.history.layers);
        }
    }

    fn after_update(&mut self, tr: &mut Trainer<'_, T>, done: usize, loss: f64) {
        self.acc += loss;
        self.acc_n += 1;
        self.history.steps_done = done;
        if done % self.eval_every == 0 || done == self.steps {
            let mean = self.acc / self.acc_n as f64;
            self.evaluate(tr, done, mean);
            self.acc = 0.0;
            self.acc_n = 0;
        }
    }
}

/// The names of `net`'s weight matrices in [`Mlp::blocks`] order, then the output layer: for
/// one-layer blocks [`layer_names`] (`1` .. `depth`, `out`); for standard blocks `stem`, then
/// `1.W1`, `1.W2` (block 1's two matrices), ..., `out`.
///
/// ```
/// use bn_lab::spec::StdBlock;
/// let mut net = bn_lab::spec::NetConfig {
///     d_in: 4, width: 4, d_out: 2, depth: 2, act: bn_lab::config::Activation::Relu,
///     init: bn_lab::config::Init::He, norm: None, residual: false, residual_scale: 1.0,
///     block: None, skip_init: false,
/// };
/// assert_eq!(bn_lab::train::matrix_names(&net), ["1", "2", "out"]);
/// net.block = Some(StdBlock::Preact);
/// assert_eq!(
///     bn_lab::train::matrix_names(&net),
///     ["stem", "1.W1", "1.W2", "2.W1", "2.W2", "out"]
/// );
/// ```
pub fn matrix_names(net: &crate::spec::NetConfig) -> Vec<String> {
    if net.block.is_none() {
        return layer_names(net.depth);
    }
    std::iter::once("stem".to_string())
        .chain((1..=net.depth).flat_map(|b| [format!("{b}.W1"), format!("{b}.W2")]))
        .chain(std::iter::once("out".to_string()))
        .collect()
}

/// Layer names of a net of `depth` blocks: `1` .. `depth`, then `out`.
pub fn layer_names(depth: usize) -> Vec<String> {
    (1..=depth)
        .map(|l| l.to_string())
        .chain(std::iter::once("out".to_string()))
        .collect()
}

/// The levels a trained network is compared with: predicting 0, and the best linear model.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ReferenceLosses {
    /// Loss of predicting 0 for every test sample: `1/(2 n) sum y^2` for MSE, `ln(classes)`
    /// for cross-entropy (uniform probabilities).
    pub zero_predictor_test_loss: Num,
    /// Train and test loss of the best linear model (least squares on the training split):
    /// what a network that behaves linearly can reach. Only for MSE, the loss it minimises.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_fit_train_loss: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_fit_test_loss: Option<Num>,
    /// Accuracy of that least-squares fit to the one-hot targets (classification tasks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_fit_train_accuracy: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_fit_test_accuracy: Option<Num>,
}

impl ReferenceLosses {
    pub fn of<T: Float>(data: &Dataset<T>, loss: Loss) -> Self {
        let fit = linear_fit(data);
        let classes = data.classes.is_some();
        let zero = match loss {
            Loss::Mse => zero_predictor_loss(&data.test),
            Loss::Ce => loss.value(
                Array2::<T>::zeros(data.test.y.dim()).view(),
                data.test.y.view(),
            ),
        };
        let mse = loss == Loss::Mse;
        ReferenceLosses {
            zero_predictor_test_loss: Num(zero),
            linear_fit_train_loss: mse.then_some(Num(fit.train.loss)),
            linear_fit_test_loss: mse.then_some(Num(fit.test.loss)),
            linear_fit_train_accuracy: classes.then_some(Num(fit.train.accuracy)),
            linear_fit_test_accuracy: classes.then_some(Num(fit.test.accuracy)),
        }
    }
}

/// Loss of the constant prediction 0 on `data`: `1/(2n) sum y^2`, the level a network that has
/// learned nothing would reach.
pub fn zero_predictor_loss<T: Float>(data: &Batch<T>) -> f64 {
    data.y.iter().map(|v| v.f64().powi(2)).sum::<f64>() / (2.0 * data.y.nrows() as f64)
}

/// Losses `(train, test)` of the best linear model `o = x W + b`, fitted by least squares on
/// the training split (normal equations in f64 with a ridge of 1e-10 of the mean diagonal, so a
/// rank-deficient input, as the non-linear task's, still solves): the level a network that
/// behaves linearly can reach.
pub fn linear_fit_losses<T: Float>(data: &Dataset<T>) -> (f64, f64) {
    let fit = linear_fit(data);
    (fit.train.loss, fit.test.loss)
}

/// Rows of the design matrix [`linear_fit`] builds at a time (more than any synthetic default).
pub const LINEAR_FIT_ROWS: usize = 8192;

/// The best linear model's MSE and accuracy on the train and test splits.
pub struct LinearFit {
    pub train: Evaluation,
    pub test: Evaluation,
}

/// [`linear_fit_losses`] with the fit's accuracy (argmax of its outputs) beside each loss.
pub fn linear_fit<T: Float>(data: &Dataset<T>) -> LinearFit {
    // The design matrix [x, 1] in f64, a block of rows at a time: an image set's full design
    // matrix would be hundreds of MB (MNIST: 60000 x 785), and filling fresh pages cost more than
    // the products. The synthetic sets fit in one block, so their sums are as before.
    let with_bias = |b: &Batch<T>, lo: usize, hi: usize| {
        let d = b.x.ncols();
        let mut a = Array2::<f64>::ones((hi - lo, d + 1));
        a.slice_mut(s![.., ..d])
            .zip_mut_with(&b.x.slice(s![lo..hi, ..]), |a, &x| *a = x.f64());
        a
    };
    let blocks = |n: usize| {
        (0..n)
            .step_by(LINEAR_FIT_ROWS)
            .map(move |lo| (lo, (lo + LINEAR_FIT_ROWS).min(n)))
    };
    let k = data.train.x.ncols() + 1;
    let d_out = data.train.y.ncols();
    let mut g = Array2::<f64>::zeros((k, k));
    let mut rhs = Array2::<f64>::zeros((k, d_out));
    for (lo, hi) in blocks(data.train.x.nrows()) {
        let a = with_bias(&data.train, lo, hi);
        let y = data.train.y.slice(s![lo..hi, ..]).mapv(|v| v.f64());
        g += &a.t().dot(&a);
        rhs += &a.t().dot(&y);
    }
    let ridge = 1e-10 * g.diag().sum() / k as f64;
    for i in 0..k {
        g[[i, i]] += ridge.max(f64::MIN_POSITIVE);
    }
    // Cholesky g = L L^T, then two triangular solves per output column.
    let mut l = Array2::<f64>::zeros((k, k));
    for i in 0..k {
        for j in 0..=i {
            let mut sum = g[[i, j]];
            for p in 0..j {
                sum -= l[[i, p]] * l[[j, p]];
            }
            if i == j {
                if sum.is_nan() || sum <= 0.0 {
                    let nan = Evaluation {
                        loss: f64::NAN,
                        accuracy: f64::NAN,
                    };
                    return LinearFit {
                        train: nan,
                        test: nan,
                    };
                }
                l[[i, i]] = sum.sqrt();
            } else {
                l[[i, j]] = sum / l[[j, j]];
            }
        }
    }
    let mut w = rhs.clone();
    for mut col in w.columns_mut() {
        for i in 0..k {
            let mut s = col[i];
            for p in 0..i {
                s -= l[[i, p]] * col[p];
            }
            col[i] = s / l[[i, i]];
        }
        for i in (0..k).rev() {
            let mut s = col[i];
            for p in i + 1..k {
                s -= l[[p, i]] * col[p];
            }
            col[i] = s / l[[i, i]];
        }
    }
    let eval = |b: &Batch<T>| {
        let n = b.x.nrows();
        let (mut sq, mut correct) = (0.0, 0.0);
        for (lo, hi) in blocks(n) {
            let o = with_bias(b, lo, hi).dot(&w);
            let yb = b.y.slice(s![lo..hi, ..]).mapv(|v| v.f64());
            sq += (&o - &yb).mapv(|r| r * r).sum();
            correct += ops::accuracy(o.view(), yb.view()) * (hi - lo) as f64;
        }
        Evaluation {
            loss: 0.5 * sq / n as f64,
            accuracy: correct / n as f64,
        }
    };
    LinearFit {
        train: eval(&data.train),
        test: eval(&data.test),
    }
}

// ------------------------------------------------------------------ step-wise training
//
// `landscape` and `ics` measure the network between the backward pass and the update, so they
// drive training one step at a time. Plain SGD (no momentum, no weight decay): one step moves
// the weights by exactly `-lr * g`, so the landscape probe at `1x lr` lands where training goes
// next and the ICS update of the earlier layers is exactly `-lr * G`.

/// A run is stopped when its loss is inf/NaN or has grown by this factor over the first step's.
pub const DIVERGENCE_FACTOR: f64 = 1e6;

/// Why `loss` counts as diverged relative to the first step's loss `first`: inf/NaN, or more
/// than `factor` times `first`. The one divergence rule of every training run.
pub fn divergence(loss: f64, first: f64, factor: f64) -> Option<DivergenceReason> {
    if !loss.is_finite() {
        Some(DivergenceReason::NonFinite)
    } else if loss > factor * first.max(f64::MIN_POSITIVE) {
        Some(DivergenceReason::Grew)
    } else {
        None
    }
}

/// What an experiment sees of a training run at its hooks: the network, the optimiser, the
/// data and the current mini-batch. After the backward pass of a step (`before_update`), the
/// network holds that batch's gradients.
pub struct Trainer<'a, T: Float> {
    pub net: &'a mut Mlp<T>,
    pub sgd: Sgd<T>,
    pub data: &'a Dataset<T>,
    sampler: Sampler,
    /// The current mini-batch, `(batch, d_in)` and `(batch, d_out)`.
    pub x: Array2<T>,
    pub y: Array2<T>,
    d_o: Array2<T>,
    /// The loss trained on (and evaluated with).
    pub loss: Loss,
}

impl<'a, T: Float> Trainer<'a, T> {
    /// Mini-batches of `batch` samples from `data.train` in the order of the `Shuffle` stream
    /// of `seed`; two runs of one seed see the same batches in the same order.
    pub fn new(
        net: &'a mut Mlp<T>,
        data: &'a Dataset<T>,
        sgd: SgdConfig,
        batch: usize,
        seed: u64,
        loss: Loss,
    ) -> Self {
        let (d_in, d_out) = (net.config.d_in, net.config.d_out);
        Trainer {
            net,
            sgd: Sgd::new(sgd),
            data,
            sampler: Sampler::new(data.train.x.nrows(), seed),
            x: Array2::zeros((batch, d_in)),
            y: Array2::zeros((batch, d_out)),
            d_o: Array2::zeros((batch, d_out)),
            loss,
        }
    }

    /// Draw the next mini-batch and run forward (train mode) on it; return its loss (the
    /// loss gradient waits in a buffer for [`Trainer::backward`]).
    pub fn forward(&mut self) -> f64 {
        self.sampler
            .next_into(&self.data.train, self.x.view_mut(), self.y.view_mut());
        let o = self
            .net
            .forward(self.x.view(), Mode::Train)
            .expect("the sampler fills the network's input width");
        self.loss
            .loss_and_grad(o, self.y.view(), self.d_o.view_mut())
    }

    /// Backward from the last [`Trainer::forward`].
    pub fn backward(&mut self) {
        self.net
            .backward(self.d_o.view())
            .expect("forward ran just before");
    }

    /// One optimiser step from the gradients of the last backward.
    pub fn step(&mut self) {
        self.sgd.step(self.net);
    }

    /// Loss on the test split with BN's running statistics (eval mode).
    pub fn test_loss(&mut self) -> f64 {
        eval_loss(self.net, &self.data.test, self.x.nrows(), self.loss)
    }
}

/// Hooks into [`fit`], each called with the trainer at that point of a step. Every hook is
/// optional; an experiment implements the ones it measures at.
pub trait Observer<T: Float> {
    /// Before the first step.
    fn start(&mut self, _tr: &mut Trainer<'_, T>) {}
    /// After step `step`'s forward pass, with its mini-batch loss (also at a divergence).
    fn after_forward(&mut self, _tr: &mut Trainer<'_, T>, _step: usize, _loss: f64) {}
    /// The run stopped at `d.step`: its loss was inf/NaN or grew too much.
    fn diverged(&mut self, _tr: &mut Trainer<'_, T>, _d: &Divergence) {}
    /// After step `step`'s backward pass, before its update: the gradients are the batch's.
    fn before_update(&mut self, _tr: &mut Trainer<'_, T>, _step: usize, _loss: f64) {}
    /// After the update; `done` updates have been made.
    fn after_update(&mut self, _tr: &mut Trainer<'_, T>, _done: usize, _loss: f64) {}
}

/// The one training loop of every experiment that trains:
///
/// ```text
/// start
/// for step in 0..steps:
///     (noisy BN: new noise)
///     loss = forward(next mini-batch)          after_forward
///     stop if inf/NaN or > diverge_factor x the first loss           diverged
///     backward                                 before_update
///     optimiser step                           after_update
/// ```
///
/// `progress` gets [`step_units`] of the batch per step (the remaining steps' at once at a
/// divergence), and the mini-batch loss as a partial result ([`Report::partial`]) every
/// [`partial_stride`] steps from step 0, at the last step and at a divergence; observers report
/// the work of their own measurements. Returns the divergence, if any.
pub fn fit<T: Float>(
    tr: &mut Trainer<'_, T>,
    steps: usize,
    diverge_factor: f64,
    progress: Progress,
    observer: &mut dyn Observer<T>,
) -> Option<Divergence> {
    observer.start(tr);
    let per_step = step_units(tr.x.nrows());
    let stride = partial_stride(steps);
    let mut first_loss = f64::NAN;
    for step in 0..steps {
        // Noisy BN draws a new set of noise for every step (nothing to do otherwise).
        tr.net.resample_noise();
        let loss = tr.forward();
        if step == 0 {
            first_loss = loss;
        }
        observer.after_forward(tr, step, loss);
        if let Some(reason) = divergence(loss, first_loss, diverge_factor) {
            let d = Divergence {
                step,
                loss: Num(loss),
                reason,
            };
            observer.diverged(tr, &d);
            progress.partial(step, loss);
            progress.units(units(steps - step, per_step));
            return Some(d);
        }
        tr.backward();
        observer.before_update(tr, step, loss);
        tr.step();
        observer.after_update(tr, step + 1, loss);
        if step % stride == 0 || step + 1 == steps {
            progress.partial(step, loss);
        }
        progress.units(per_step);
    }
    None
}

/// Forward in train mode on `(x, y)`, backward, and return the loss. `d_o: (batch, d_out)` scratch.
pub fn loss_and_grad<T: Float>(
    net: &mut Mlp<T>,
    x: &Array2<T>,
    y: &Array2<T>,
    d_o: &mut Array2<T>,
    loss: Loss,
) -> f64 {
    let loss = {
        let o = net
            .forward(x.view(), Mode::Train)
            .expect("batches have the net's input width");
        loss.loss_and_grad(o, y.view(), d_o.view_mut())
    };
    net.backward(d_o.view()).expect("forward ran just before");
    loss
}

/// Every parameter, flattened in [`Mlp::params_mut`] order.
pub fn params_flat<T: Float>(net: &mut Mlp<T>) -> Vec<f64> {
    net.params_mut()
        .iter()
        .flat_map(|p| p.value.iter().map(|v| v.f64()).collect::<Vec<_>>())
        .collect()
}

/// Every gradient of the last backward, flattened in [`Mlp::params_mut`] order.
pub fn grads_flat<T: Float>(net: &mut Mlp<T>) -> Vec<f64> {
    let mut out = Vec::new();
    grads_flat_into(net, &mut out);
    out
}

/// [`grads_flat`] into a reused buffer.
pub fn grads_flat_into<T: Float>(net: &mut Mlp<T>, out: &mut Vec<f64>) {
    out.clear();
    for p in net.params_mut() {
        out.extend(p.grad.iter().map(|v| v.f64()));
    }
}

/// Overwrite every parameter from a flat vector in [`Mlp::params_mut`] order.
pub fn set_params_flat<T: Float>(net: &mut Mlp<T>, theta: &[f64]) {
    let mut i = 0;
    for mut p in net.params_mut() {
        for v in p.value.iter_mut() {
            *v = T::of(theta[i]);
            i += 1;
        }
    }
    assert_eq!(i, theta.len(), "flat parameter vector of the wrong length");
}

/// The loss as the tables write it: `1/(2n) sum (o - y)^2` or `mean cross-entropy`.
pub fn loss_formula(loss: Loss) -> &'static str {
    match loss {
        Loss::Mse => "1/(2n) sum (o - y)^2",
        Loss::Ce => "mean softmax cross-entropy -log p(label)",
    }
}
