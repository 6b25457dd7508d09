//! `bn-lab ics`: internal covariate shift measured as Santurkar et al. 2018 define it (their
//! Definition 2.1), with and without BatchNorm.
//!
//! At a measured step t, on that step's mini-batch (x, y), for layer i:
//!
//! ```text
//! G_i  = dL/dW_i (W_1^t,     ..., W_{i-1}^t,     W_i^t, ..., W_L^t;  x, y)
//! G'_i = dL/dW_i (W_1^{t+1}, ..., W_{i-1}^{t+1}, W_i^t, ..., W_L^t;  x, y)
//! ICS_i = ||G_i - G'_i||_2, and cos(G_i, G'_i) = <G_i, G'_i> / (||G_i|| ||G'_i||)
//! ```
//!
//! "Layer" means a hidden block (its weight matrix `W_i`; "taking the update" moves every
//! parameter of the block: weights, bias, and BN's gamma and beta) or, as layer L + 1, the
//! output layer. Layer 1 has no layers before it, so `G'_1 = G_1` and its ICS is exactly 0.
//! The update is the SGD step the run takes next (`-lr_t * gradient`, `lr_t` below `lr` during
//! `--warmup-steps`), and BN is in train mode
//! (batch statistics of the same batch) throughout, as during training.

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Dtype, Loss, Normaliser, check_lr};
use crate::experiment::ExperimentArgs;
use crate::experiment::TrainedArm;
use crate::experiment::{ArmJob, Cost, Experiment, MeasuredTrainConfig, Plan, Progress, ToolInfo};
use crate::flags::{MeasuredTrainArgs, NetArgs, OutputArgs, Renames};
use crate::float::Float;
use crate::memory::Footprint;
use crate::model::{Block, Mlp, Mode};
use crate::stats::{Num, fmt_num, fmt_ranges, frobenius_norm, positions};
use crate::stats::{mean_nan, median_nan};
use crate::train::{Tagged, step_units, units};
use clap::Args;

/// A validated `ics` configuration: the training runs it measures, and the learning rates of
/// the sweep that compares ICS with the final test loss across runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IcsConfig {
    /// The runs measured in detail (every record kept), at `run.sgd.lr` (the JSON's `lr`).
    #[serde(flatten)]
    pub run: MeasuredTrainConfig,
    /// Further learning rates at which every arm trains again, keeping only its summary: the
    /// points of the scatter of ICS against the final test loss. A rate equal to `run.sgd.lr`
    /// is not run twice; may be empty.
    pub sweep_lrs: Vec<f64>,
}

impl IcsConfig {
    /// The sweep's learning rates other than `run.sgd.lr`, in the given order.
    pub fn extra_lrs(&self) -> Vec<f64> {
        let mut out: Vec<f64> = Vec::new();
        for &lr in &self.sweep_lrs {
            if lr != self.run.sgd.lr && !out.contains(&lr) {
                out.push(lr);
            }
        }
        out
    }

    /// The same runs at learning rate `lr`.
    fn at_lr(&self, lr: f64) -> MeasuredTrainConfig {
        MeasuredTrainConfig {
            sgd: self.run.sgd.at_lr(lr),
            ..self.run.clone()
        }
    }

    /// Every arm [`run`] trains, in run order: each arm at each of the sweep's other learning
    /// rates, then at `lr` (the pass whose records are kept). Each reports its training with its
    /// measurements ([`measure_units`]) and holds the training net, the copy before the update
    /// and the measuring copy (on up to the test set's samples).
    pub fn jobs(&self) -> Vec<IcsJob> {
        let run = &self.run;
        let samples = run.net.batch.max(run.data.n_test);
        let units = run.arm_units(measure_units(self));
        let passes = self.extra_lrs().into_iter().map(|lr| (lr, false));
        passes
            .chain([(run.sgd.lr, true)])
            .enumerate()
            .flat_map(|(pass, (lr, kept))| {
                run.norms.iter().map(move |&norm| IcsJob {
                    lr,
                    pass,
                    kept,
                    arm: run.arm_job(norm, units, samples, 3),
                })
            })
            .collect()
    }
}

/// One training run of [`run`]: an arm at one learning rate.
#[derive(Clone, Debug)]
pub struct IcsJob {
    pub lr: f64,
    /// The learning rates run one after the other, a pass each (`lr` last).
    pub pass: usize,
    /// At `lr`: every record kept (the sweep's other rates keep their summaries only).
    pub kept: bool,
    pub arm: ArmJob,
}

impl Plan for IcsConfig {
    /// Check the runs and the sweep's learning rates.
    fn validate(&self) -> Result<(), ConfigError> {
        self.run.validate()?;
        self.run
            .net
            .one_layer_blocks("compares each layer's update with the change of its input")?;
        for &lr in &self.sweep_lrs {
            check_lr("sweep_lrs", lr)?;
        }
        Ok(())
    }

    /// Per arm: the training net, the copy before the update and the measuring copy (on up to
    /// the test set's samples), the f64 difference of one weight gradient, and per measured step
    /// the loss and three numbers per layer (with the per-layer summary). The sweep's runs come
    /// first and keep only their summaries, so they add nothing to the peak.
    fn footprint(&self) -> Footprint {
        let run = &self.run;
        let kept: Vec<ArmJob> = self
            .jobs()
            .into_iter()
            .filter(|j| j.kept)
            .map(|j| j.arm)
            .collect();
        let layers = run.depth as f64 + 1.0;
        let (w, d_in, d_out) = (
            run.net.width as f64,
            run.net.d_in as f64,
            run.net.d_out as f64,
        );
        let diff = 8.0 * (w * w.max(d_in).max(d_out));
        run.footprint(&kept, 1.0 + 6.0 * layers).add(
            "networks",
            kept.len() as f64 * diff,
            &["width"],
        )
    }

    fn costs(&self) -> Vec<Cost> {
        let cost = |j: &IcsJob| Cost {
            pass: j.pass,
            ..j.arm.cost()
        };
        self.jobs().iter().map(cost).collect()
    }

    /// Every arm's passes: its steps, measurements and evaluations.
    fn macs(&self) -> f64 {
        let rows = self.run.net.batch;
        self.jobs().iter().map(|j| j.arm.macs(rows)).sum()
    }
}

/// ICS of one layer at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerIcs {
    /// `||G - G'||`.
    pub l2_diff: f64,
    /// `cos(G, G')`.
    pub cosine: f64,
    /// `||G||`.
    pub grad_norm: f64,
}

impl LayerIcs {
    /// Compare two gradients of one weight matrix, in f64.
    pub fn of<T: Float>(g: &Array2<T>, g2: &Array2<T>) -> Self {
        let (mut dot, mut diff) = (0.0f64, Vec::with_capacity(g.len()));
        for (&a, &b) in g.iter().zip(g2.iter()) {
            dot += a.f64() * b.f64();
            diff.push(a.f64() - b.f64());
        }
        let (na, nb) = (frobenius_norm(g), frobenius_norm(g2));
        LayerIcs {
            l2_diff: frobenius_norm(&ndarray::ArrayView1::from(&diff[..])),
            cosine: dot / (na * nb),
            grad_norm: na,
        }
    }
}

/// Copy block `src`'s parameters (weights, bias, gamma, beta) into `dst`: the block "takes its update".
fn take_update<T: Float>(dst: &mut Block<T>, src: &Block<T>) {
    dst.linear.w.assign(&src.linear.w);
    dst.linear.b.assign(&src.linear.b);
    if let (Some(d), Some(s)) = (
        dst.bn.as_mut().and_then(|bn| bn.affine.as_mut()),
        src.bn.as_ref().and_then(|bn| bn.affine.as_ref()),
    ) {
        d.gamma.assign(&s.gamma);
        d.beta.assign(&s.beta);
    }
}

/// ICS of every layer (1..=depth, then the output layer) between `before`, whose gradients are
/// those of a train-mode backward on `(x, y)`, and `after`, the same network one update later.
/// `G'_i` is computed on a copy of `before` whose blocks `1..i` have taken the update.
pub fn measure<T: Float>(
    before: &Mlp<T>,
    after: &Mlp<T>,
    x: &Array2<T>,
    y: &Array2<T>,
    loss: Loss,
) -> Vec<LayerIcs> {
    let depth = before.depth();
    let mut copy = before.clone();
    let mut d_o = Array2::zeros(y.dim());
    (0..=depth)
        .map(|i| {
            // Layer 1 has no layer before it: G'_1 = G_1 exactly, with no pass to compute.
            if i == 0 {
                let g = &before.blocks[0].linear.dw;
                return LayerIcs::of(g, g);
            }
            // Layer i + 1: blocks 1..=i have taken their update.
            take_update(&mut copy.blocks[i - 1], &after.blocks[i - 1]);
            // G'_i needs the backward down to block i only.
            {
                let o = copy
                    .forward(x.view(), Mode::Train)
                    .expect("batches have the net's input width");
                loss.loss_and_grad(o, y.view(), d_o.view_mut());
            }
            copy.backward_to(d_o.view(), i)
                .expect("forward ran just before");
            if i < depth {
                LayerIcs::of(&before.blocks[i].linear.dw, &copy.blocks[i].linear.dw)
            } else {
                LayerIcs::of(&before.out.dw, &copy.out.dw)
            }
        })
        .collect()
}

/// ICS of every layer at one measured step.
#[derive(Clone, Debug, Serialize)]
pub struct IcsRecord {
    pub step: usize,
    /// The step's mini-batch loss before the update.
    pub loss: Num,
    /// Per layer (1..=depth, then the output layer): `||G - G'||`.
    pub l2_diff: Vec<Num>,
    /// Per layer: `cos(G, G')`.
    pub cosine: Vec<Num>,
    /// Per layer: `||G||`, the scale `l2_diff` should be read against.
    pub grad_norm: Vec<Num>,
}

/// Summary over the measured steps of one run: medians (robust to the first steps, where an
/// untrained net's gradients can be orders of magnitude larger). Nothing is dropped: a NaN at
/// any measured step makes that layer's median NaN, and a NaN or inf median makes the mean over
/// layers NaN or inf, so a verdict on them is [`IcsVerdict::UNDETERMINED`]; an inf (overflow)
/// takes part in a median as the largest value.
#[derive(Clone, Debug, Serialize)]
pub struct IcsSummary {
    /// Per layer: median over steps of `l2_diff`, `cosine`, and `l2_diff / grad_norm`.
    pub layer_l2_diff: Vec<Num>,
    pub layer_cosine: Vec<Num>,
    pub layer_relative: Vec<Num>,
    /// Means over layers 2..=depth+1 of those medians (layer 1's ICS is 0 by definition).
    pub l2_diff: Num,
    pub cosine: Num,
    pub relative: Num,
}

impl IcsSummary {
    fn of(records: &[IcsRecord], layers: usize) -> Self {
        let per_layer = |f: &dyn Fn(&IcsRecord, usize) -> f64| -> Vec<Num> {
            (0..layers)
                .map(|l| Num(median_nan(records.iter().map(|r| f(r, l)))))
                .collect()
        };
        let rel = |r: &IcsRecord, l: usize| r.l2_diff[l].0 / r.grad_norm[l].0;
        let layer_l2_diff = per_layer(&|r, l| r.l2_diff[l].0);
        let layer_cosine = per_layer(&|r, l| r.cosine[l].0);
        let layer_relative = per_layer(&rel);
        let over = |v: &[Num]| Num(mean_nan(v.iter().skip(1).map(|n| n.0)));
        IcsSummary {
            l2_diff: over(&layer_l2_diff),
            cosine: over(&layer_cosine),
            relative: over(&layer_relative),
            layer_l2_diff,
            layer_cosine,
            layer_relative,
        }
    }
}

/// One training run (BN off or on).
#[derive(Clone, Debug, Serialize)]
pub struct IcsArm {
    /// The run itself: label, network, losses, divergence.
    #[serde(flatten)]
    pub run: TrainedArm,
    pub records: Vec<IcsRecord>,
    pub summary: IcsSummary,
}

/// Whether BN reduced ICS in this run, by each of Santurkar et al.'s two measures.
#[derive(Clone, Debug, Serialize)]
pub struct IcsVerdict {
    /// Summary `||G - G'||` (see [`IcsSummary::l2_diff`]) with BN divided by without.
    pub l2_ratio: Num,
    /// Summary relative `||G - G'|| / ||G||` with BN divided by without.
    pub relative_ratio: Num,
    /// Summary `cos(G, G')` without and with BN.
    pub cosine_off: Num,
    pub cosine_on: Num,
    /// `yes` (smaller l2 difference and higher cosine with BN), `no` (neither), `mixed`, or
    /// `undetermined` when either arm's summary `||G - G'||` or `cos(G, G')` is not finite.
    pub bn_reduced_ics: &'static str,
    /// Why the verdict is `undetermined` (`null` otherwise).
    pub reason: Option<String>,
}

impl IcsVerdict {
    /// The verdict without finite evidence.
    pub const UNDETERMINED: &'static str = "undetermined";

    fn of(off: &IcsArm, on: &IcsArm) -> Self {
        let (o, n) = (&off.summary, &on.summary);
        let l2_ratio = n.l2_diff.0 / o.l2_diff.0;
        let better_l2 = l2_ratio < 1.0;
        let better_cos = n.cosine.0 > o.cosine.0;
        let missing: Vec<String> = [off, on].into_iter().filter_map(missing_evidence).collect();
        let (bn_reduced_ics, reason) = if missing.is_empty() {
            let word = match (better_l2, better_cos) {
                (true, true) => "yes",
                (false, false) => "no",
                _ => "mixed",
            };
            (word, None)
        } else {
            (Self::UNDETERMINED, Some(missing.join("; ")))
        };
        IcsVerdict {
            l2_ratio: Num(l2_ratio),
            relative_ratio: Num(n.relative.0 / o.relative.0),
            cosine_off: o.cosine,
            cosine_on: n.cosine,
            bn_reduced_ics,
            reason,
        }
    }
}

/// Layer positions (1-based; `depth + 1` is the output layer) as `3-8,out`.
fn fmt_layers(v: &[usize], depth: usize) -> String {
    let hidden: Vec<usize> = v.iter().copied().filter(|&l| l <= depth).collect();
    let mut s = fmt_ranges(&hidden);
    if v.contains(&(depth + 1)) {
        if !s.is_empty() {
            s.push(',');
        }
        s.push_str("out");
    }
    s
}

/// Why `arm`'s summary is no evidence for the verdict, if it is not: no measured step, or
/// layers 2..out whose median `||G - G'||` or `cos(G, G')` is NaN or inf.
fn missing_evidence(arm: &IcsArm) -> Option<String> {
    let label = &arm.run.label;
    if arm.records.is_empty() {
        let when = arm
            .run
            .diverged_at
            .map_or(String::new(), |s| format!(" (it diverged at step {s})"));
        return Some(format!("the {label} arm measured no step{when}"));
    }
    let depth = arm.summary.layer_l2_diff.len() - 1;
    // "inf at layers 3-4 and NaN at layers 5-8,out" for one measure, empty if all finite.
    let describe = |v: &[Num]| -> String {
        let mut parts = Vec::new();
        for (name, kind) in [
            ("inf", f64::is_infinite as fn(f64) -> bool),
            ("NaN", f64::is_nan),
        ] {
            let layers: Vec<usize> = positions(v.iter().map(|n| n.0), |x| !kind(x))
                .into_iter()
                .filter(|&l| l > 1)
                .collect();
            if !layers.is_empty() {
                parts.push(format!("{name} at layers {}", fmt_layers(&layers, depth)));
            }
        }
        parts.join(" and ")
    };
    let (l2, cos) = (
        describe(&arm.summary.layer_l2_diff),
        describe(&arm.summary.layer_cosine),
    );
    let text = match (l2.is_empty(), cos.is_empty()) {
        (true, true) => return None,
        _ if l2 == cos => format!("the medians of ||G - G'|| and cos(G, G') are {l2}"),
        (false, true) => format!("the median ||G - G'|| is {l2}"),
        (true, false) => format!("the median cos(G, G') is {cos}"),
        (false, false) => {
            format!("the median ||G - G'|| is {l2}, and the median cos(G, G') is {cos}")
        }
    };
    Some(format!("in the {label} arm, {text}"))
}

/// Everything `ics` computed; written to `ics.json` and drawn in `ics.png`.
#[derive(Clone, Debug, Serialize)]
pub struct IcsReport {
    pub tool: ToolInfo,
    pub config: IcsConfig,
    /// Names of the per-layer entries: `1` .. `depth`, `out`.
    pub layer_names: Vec<String>,
    pub arms: Vec<IcsArm>,
    /// Present when both arms ran.
    pub verdict: Option<IcsVerdict>,
    /// Every run, at `lr` and at the sweep's learning rates (ascending), as the scatter of ICS
    /// against the final test loss draws them.
    pub runs: Vec<IcsRun>,
    /// How well ICS predicts the final test loss over `runs`.
    pub ics_vs_loss: IcsVsLoss,
}

/// One arm trained at one learning rate, as the numbers the scatter needs.
#[derive(Clone, Debug, Serialize)]
pub struct IcsRun {
    pub label: String,
    pub norm: Normaliser,
    pub lr: f64,
    /// Summary `||G - G'||`, relative `||G - G'|| / ||G||` and `cos(G, G')` (means over layers
    /// 2..out of the per-layer medians, see [`IcsSummary`]).
    pub l2_diff: Num,
    pub relative: Num,
    pub cosine: Num,
    /// Test loss after training (BN in eval mode).
    pub final_test_loss: Num,
    /// Test accuracy after training (classification tasks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_test_accuracy: Option<Num>,
    pub diverged_at: Option<usize>,
}

impl IcsRun {
    fn of(arm: &IcsArm, lr: f64) -> Self {
        IcsRun {
            label: arm.run.label.clone(),
            norm: arm.run.norm,
            lr,
            l2_diff: arm.summary.l2_diff,
            relative: arm.summary.relative,
            cosine: arm.summary.cosine,
            final_test_loss: arm.run.final_test_loss,
            final_test_accuracy: arm.run.final_test_accuracy,
            diverged_at: arm.run.diverged_at,
        }
    }
}

/// Whether ICS predicts the final test loss across the runs, by each of Santurkar et al.'s
/// measures (their Fig. 5 shows both): `||G - G'||`, relative `||G - G'|| / ||G||`, and
/// `cos(G, G')` (where a *smaller* cosine is more ICS).
#[derive(Clone, Debug, Serialize)]
pub struct IcsVsLoss {
    /// Runs with a finite summary `||G - G'||` and a finite final test loss.
    pub runs: usize,
    /// Spearman's rank correlation of summary `||G - G'||` and final test loss over those
    /// runs (NaN with fewer than 3): +1 if more ICS always meant a higher loss.
    pub spearman: Num,
    /// The same for relative ICS, and for `1 - cos(G, G')` (so that for every measure a
    /// positive correlation means more ICS, higher loss).
    pub spearman_relative: Num,
    pub spearman_cosine: Num,
    /// Learning rates at which BN off and the first BN arm both have finite numbers.
    pub lrs: usize,
    /// Of those, the rates where BN gave the lower final test loss, and where it gave the
    /// smaller `||G - G'||`, the smaller relative ICS, and the higher cosine.
    pub bn_lower_loss: usize,
    pub bn_lower_ics: usize,
    pub bn_lower_relative: usize,
    pub bn_higher_cosine: usize,
    /// The rates where BN gave the lower test loss although its ICS was larger by all three
    /// measures (larger `||G - G'||`, larger relative ICS, smaller cosine), and the smallest
    /// learning rates themselves.
    pub bn_better_with_more_ics: usize,
    pub bn_better_with_more_ics_lrs: Vec<f64>,
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            out[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    out
}

/// Spearman's rank correlation: Pearson's correlation of the ranks (NaN below 3 pairs or when
/// one side is constant).
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    if x.len() < 3 || x.len() != y.len() {
        return f64::NAN;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

impl IcsVsLoss {
    pub fn of(runs: &[IcsRun]) -> Self {
        let finite: Vec<&IcsRun> = runs
            .iter()
            .filter(|r| r.l2_diff.0.is_finite() && r.final_test_loss.0.is_finite())
            .collect();
        let loss: Vec<f64> = finite.iter().map(|r| r.final_test_loss.0).collect();
        let rank_with = |f: fn(&IcsRun) -> f64| {
            let x: Vec<f64> = finite.iter().map(|r| f(r)).collect();
            Num(spearman(&x, &loss))
        };
        let mut lrs: Vec<f64> = finite.iter().map(|r| r.lr).collect();
        lrs.dedup();
        let mut out = IcsVsLoss {
            runs: finite.len(),
            spearman: rank_with(|r| r.l2_diff.0),
            spearman_relative: rank_with(|r| r.relative.0),
            spearman_cosine: rank_with(|r| 1.0 - r.cosine.0),
            lrs: 0,
            bn_lower_loss: 0,
            bn_lower_ics: 0,
            bn_lower_relative: 0,
            bn_higher_cosine: 0,
            bn_better_with_more_ics: 0,
            bn_better_with_more_ics_lrs: Vec::new(),
        };
        for lr in lrs {
            let at = |on: bool| {
                finite.iter().find(|r| {
                    r.lr == lr
                        && if on {
                            r.norm.is_batch()
                        } else {
                            !r.norm.is_on()
                        }
                })
            };
            if let (Some(off), Some(on)) = (at(false), at(true)) {
                out.add_rate(off, on);
            }
        }
        out
    }

    /// Count one learning rate's pair of runs.
    fn add_rate(&mut self, off: &IcsRun, on: &IcsRun) {
        let lower_loss = on.final_test_loss.0 < off.final_test_loss.0;
        let (lower_l2, lower_rel, higher_cos) = (
            on.l2_diff.0 < off.l2_diff.0,
            on.relative.0 < off.relative.0,
            on.cosine.0 > off.cosine.0,
        );
        let more_ics = on.l2_diff.0 > off.l2_diff.0
            && on.relative.0 > off.relative.0
            && on.cosine.0 < off.cosine.0;
        self.lrs += 1;
        self.bn_lower_loss += usize::from(lower_loss);
        self.bn_lower_ics += usize::from(lower_l2);
        self.bn_lower_relative += usize::from(lower_rel);
        self.bn_higher_cosine += usize::from(higher_cos);
        if lower_loss && more_ics {
            self.bn_better_with_more_ics += 1;
            self.bn_better_with_more_ics_lrs.push(off.lr);
        }
    }
}

/// Work units of one measurement: a forward and backward pass on the step's batch per layer
/// after the first (see [`crate::train::FORWARD_BACKWARD`]).
pub fn measure_units(cfg: &IcsConfig) -> u64 {
    units(cfg.run.depth, step_units(cfg.run.net.batch))
}

/// Train the arms of `pass` (in parallel) at `cfg.sgd.lr`, measuring ICS every `every` steps.
fn run_arms(cfg: &MeasuredTrainConfig, pass: &[IcsJob], progress: Progress) -> Vec<IcsArm> {
    pass.par_iter()
        .map(|job| {
            let arm = Tagged::new(progress, format!("{} lr={}", job.arm.norm.label(), job.lr));
            match cfg.net.dtype {
                Dtype::F32 => run_arm::<f32>(cfg, job.arm.norm, &arm),
                Dtype::F64 => run_arm::<f64>(cfg, job.arm.norm, &arm),
            }
        })
        .collect()
}

/// Train every arm at each of the sweep's other learning rates first (keeping only their
/// summaries), then at `lr` with every record kept: the passes of [`IcsConfig::jobs`].
pub fn run(cfg: &IcsConfig, progress: Progress) -> IcsReport {
    let (kept, sweep): (Vec<IcsJob>, Vec<IcsJob>) = cfg.jobs().into_iter().partition(|j| j.kept);
    let mut runs: Vec<IcsRun> = Vec::new();
    for pass in sweep.chunk_by(|a, b| a.pass == b.pass) {
        let lr = pass[0].lr;
        runs.extend(
            run_arms(&cfg.at_lr(lr), pass, progress)
                .iter()
                .map(|a| IcsRun::of(a, lr)),
        );
    }
    let arms = run_arms(&cfg.run, &kept, progress);
    runs.extend(arms.iter().map(|a| IcsRun::of(a, cfg.run.sgd.lr)));
    // Stable: within a learning rate the arms keep their legend order.
    runs.sort_by(|a, b| a.lr.total_cmp(&b.lr));
    let verdict = match (
        arms.iter().find(|a| !a.run.norm.is_on()),
        arms.iter().find(|a| a.run.norm.is_batch()),
    ) {
        (Some(off), Some(on)) => Some(IcsVerdict::of(off, on)),
        _ => None,
    };
    IcsReport {
        tool: ToolInfo::current(),
        config: cfg.clone(),
        layer_names: cfg.run.layer_names(),
        arms,
        verdict,
        ics_vs_loss: IcsVsLoss::of(&runs),
        runs,
    }
}

fn run_arm<T: Float>(cfg: &MeasuredTrainConfig, norm: Normaliser, progress: Progress) -> IcsArm {
    let mut records = Vec::new();
    let data = cfg.dataset::<T>();
    let mut net = cfg.initial_net::<T>(norm);
    let per_measure = units(cfg.depth, step_units(cfg.net.batch));
    let run = cfg.train_measured(
        norm,
        &mut net,
        &data,
        progress,
        per_measure,
        |tr, step, loss| {
            // The network after the update this step is about to take: plain SGD keeps no state
            // but its update count (the warmup's), so stepping a copy of the optimiser on a copy
            // of the net gives exactly the weights the run moves to next, at this step's lr.
            let mut after = tr.net.clone();
            tr.sgd.clone().step(&mut after);
            let layers = measure(tr.net, &after, &tr.x, &tr.y, tr.loss);
            records.push(IcsRecord {
                step,
                loss: Num(loss),
                l2_diff: layers.iter().map(|l| Num(l.l2_diff)).collect(),
                cosine: layers.iter().map(|l| Num(l.cosine)).collect(),
                grad_norm: layers.iter().map(|l| Num(l.grad_norm)).collect(),
            });
        },
    );
    IcsArm {
        run,
        summary: IcsSummary::of(&records, cfg.depth + 1),
        records,
    }
}

/// A subtitle describing the shared settings.
pub fn title(cfg: &IcsConfig) -> String {
    cfg.run.title()
}

/// An arm that diverged after some measurements: its medians cover only those.
#[derive(Clone, Debug, PartialEq)]
pub struct PartialMedians<'a> {
    pub label: &'a str,
    pub diverged_at: usize,
    /// Steps measured before it diverged (at least one).
    pub measured: usize,
}

/// The arms whose medians cover only part of the run (see [`PartialMedians`]), in order; an
/// arm that diverged before its first measurement has no medians to qualify.
pub fn partial_medians(arms: &[IcsArm]) -> Vec<PartialMedians<'_>> {
    arms.iter()
        .filter(|a| !a.records.is_empty())
        .filter_map(|a| {
            a.run.diverged_at.map(|step| PartialMedians {
                label: &a.run.label,
                diverged_at: step,
                measured: a.records.len(),
            })
        })
        .collect()
}

/// The stdout summary.
pub fn table(report: &IcsReport) -> String {
    let cfg = &report.config.run;
    let mut out = format!("ics: {}\n", cfg.title());
    out.push_str(&format!(
        "measured every {} steps; per layer: ||G - G'|| (relative to ||G||) and cos(G, G'), medians over measured steps\n",
        cfg.every
    ));
    let lw = report
        .arms
        .iter()
        .map(|a| a.run.label.len())
        .max()
        .unwrap_or(6)
        .max(6);
    out.push_str(&format!("{:<6}", "layer"));
    for a in &report.arms {
        out.push_str(&format!(
            "  {:>w$}",
            format!("{}: |G-G'| (rel), cos", a.run.label),
            w = lw + 30
        ));
    }
    out.push('\n');
    for (l, name) in report.layer_names.iter().enumerate() {
        out.push_str(&format!("{name:<6}"));
        for a in &report.arms {
            let s = &a.summary;
            out.push_str(&format!(
                "  {:>w$}",
                format!(
                    "{} ({}), {}",
                    fmt_num(s.layer_l2_diff[l].0),
                    fmt_num(s.layer_relative[l].0),
                    fmt_cos(s.layer_cosine[l].0)
                ),
                w = lw + 30
            ));
        }
        out.push('\n');
    }
    for a in &report.arms {
        let last = a.run.train_loss.last().map_or(f64::NAN, |l| l.0);
        out.push_str(&format!(
            "{:<lw$}  layers 2..out: |G-G'| {}, relative {}, cos {}; final batch loss {}, test loss {}",
            a.run.label,
            fmt_num(a.summary.l2_diff.0),
            fmt_num(a.summary.relative.0),
            fmt_cos(a.summary.cosine.0),
            fmt_num(last),
            fmt_num(a.run.final_test_loss.0),
        ));
        if let Some(acc) = a.run.final_test_accuracy {
            out.push_str(&format!(", test accuracy {}", crate::train::percent(acc.0)));
        }
        if let Some(step) = a.run.diverged_at {
            out.push_str(&format!("; DIVERGED at step {step}"));
        }
        out.push('\n');
    }
    if let Some(v) = &report.verdict {
        match &v.reason {
            None => out.push_str(&format!(
                "BN reduced internal covariate shift in this run: {} (|G-G'| with BN = {}x without; relative {}x; cos {} with BN vs {} without)\n",
                v.bn_reduced_ics,
                fmt_num(v.l2_ratio.0),
                fmt_num(v.relative_ratio.0),
                fmt_cos(v.cosine_on.0),
                fmt_cos(v.cosine_off.0),
            )),
            Some(reason) => out.push_str(&format!(
                "BN reduced internal covariate shift in this run: undetermined: {reason}; a verdict needs finite medians of layers 2 to out in both arms\n"
            )),
        }
        let diverged: Vec<String> = partial_medians(&report.arms)
            .iter()
            .map(|p| {
                format!(
                    "{} diverged at step {}, so its medians cover only the {} step(s) measured before",
                    p.label, p.diverged_at, p.measured
                )
            })
            .collect();
        if v.reason.is_none() && !diverged.is_empty() {
            out.push_str(&format!("note: {}\n", diverged.join("; ")));
        }
    }
    out.push_str(&sweep_table(report));
    out
}

/// The sweep: per learning rate and arm, summary ICS and final test loss, then whether ICS
/// predicts the loss.
fn sweep_table(report: &IcsReport) -> String {
    let mut lrs: Vec<f64> = report.runs.iter().map(|r| r.lr).collect();
    lrs.dedup();
    if lrs.len() < 2 {
        return String::new();
    }
    let mut out = String::from(
        "ICS against final test loss over learning rates (|G-G'|: mean over layers 2..out of the medians):\n",
    );
    for r in &report.runs {
        out.push_str(&format!(
            "  lr {:<8} {:<8} |G-G'| {:>9}  relative {:>9}  cos {:>7}  test loss {:>9}{}\n",
            crate::stats::Short(r.lr).to_string(),
            r.label,
            fmt_num(r.l2_diff.0),
            fmt_num(r.relative.0),
            fmt_cos(r.cosine.0),
            fmt_num(r.final_test_loss.0),
            r.diverged_at
                .map_or(String::new(), |s| format!("  (diverged at step {s})")),
        ));
    }
    let v = &report.ics_vs_loss;
    out.push_str(&format!(
        "rank correlation with test loss over {} runs (positive: more ICS, higher loss): |G-G'| {}, relative {}, 1 - cos {}\n",
        v.runs,
        fmt_cos(v.spearman.0),
        fmt_cos(v.spearman_relative.0),
        fmt_cos(v.spearman_cosine.0),
    ));
    out.push_str(&format!(
        "BN gave the lower test loss at {} of {} learning rates; the smaller |G-G'| at {}, the smaller relative ICS at {}, the higher cosine at {}\n",
        v.bn_lower_loss, v.lrs, v.bn_lower_ics, v.bn_lower_relative, v.bn_higher_cosine,
    ));
    let at: Vec<String> = v
        .bn_better_with_more_ics_lrs
        .iter()
        .map(|lr| crate::stats::Short(*lr).to_string())
        .collect();
    out.push_str(&format!(
        "learning rates where BN trained better although its ICS was larger by all three measures: {}\n",
        if at.is_empty() { "none".to_string() } else { at.join(", ") }
    ));
    out
}

fn fmt_cos(c: f64) -> String {
    if c.is_finite() {
        format!("{c:.4}")
    } else {
        fmt_num(c)
    }
}

/// `bn-lab ics`.
pub struct Ics;

impl Experiment for Ics {
    type Config = IcsConfig;
    type Report = IcsReport;
    const NAME: &'static str = "ics";
    const STEM: &'static str = "ics";

    fn run(cfg: &IcsConfig, progress: Progress) -> IcsReport {
        run(cfg, progress)
    }

    fn summary(report: &IcsReport) -> String {
        table(report)
    }
}

// The command line: the flags of `bn-lab ics` and the config they describe.

/// Internal covariate shift while training, BN off vs on (Santurkar et al. 2018): how much
/// a layer's gradient changes when the layers before it take their update. Writes ics.png
/// and ics.json.
// Same network defaults as `landscape`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.default_value("128")),
    mut_arg("batch", |a| a.default_value("128")),
    mut_arg("n_train", |a| a.help(crate::flags::MEASURED_N_TRAIN_HELP))
)]
pub struct IcsArgs {
    #[command(flatten)]
    pub train: MeasuredTrainArgs,
    /// Further learning rates at which both arms train again (summaries only), for the scatter
    /// of ICS against the final test loss; comma-separated, `none` for no sweep.
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "LRS",
        value_parser = lr_list,
        default_value = "0.001,0.003,0.015",
        allow_negative_numbers = true
    )]
    pub sweep_lr: LrList,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A comma-separated list of learning rates, or `none` (an empty list).
#[derive(Clone, Debug, PartialEq)]
pub struct LrList(pub Vec<f64>);

fn lr_list(s: &str) -> Result<LrList, String> {
    if s == "none" {
        return Ok(LrList(Vec::new()));
    }
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .map_err(|e| format!("{v:?} is not a number: {e}"))
        })
        .collect::<Result<Vec<f64>, String>>()
        .map(LrList)
}

impl ExperimentArgs for IcsArgs {
    type Experiment = Ics;
    const QUICK: &'static str = "--depth 3 --width 8 --batch 8 --d-out 2 --steps 12 --every 4 --n-train 64 --n-test 16 --lr 0.05";
    const RENAMES: Renames = &[("norms", "--norm"), ("sweep_lrs", "--sweep-lr")];
    fn config(&self) -> anyhow::Result<IcsConfig> {
        Ok(IcsConfig {
            run: MeasuredTrainConfig::from_flags(&self.train, &self.net)?,
            sweep_lrs: self.sweep_lr.0.clone(),
        })
    }
    fn output(&self) -> &OutputArgs {
        &self.output
    }
}
