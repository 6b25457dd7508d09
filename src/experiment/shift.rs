//! `bn-lab noisy-bn` and `bn-lab input-shift`: the distribution each layer's activation sees
//! while it trains, with and without BatchNorm, and with BatchNorm whose output is shifted on
//! purpose (noisy BN).
//!
//! - **`input-shift`** redraws Ioffe & Szegedy (2015), Figure 1 (b, c): the 15th, 50th and 85th
//!   percentiles of one sigmoid unit's input over training, without BN and with BN (their net:
//!   3 fully connected hidden layers of 100 sigmoid units; here on the digits).
//! - **`noisy-bn`** repeats Santurkar et al. (2018), section 2.1 and Figure 2: the same network
//!   plain, with BN, and with BN followed by time-varying noise of non-zero mean and non-unit
//!   variance ([`BnNoise`]), on the same weights and batches. If BN helped by keeping each
//!   layer's input distribution still, noisy BN, whose distributions move more than the plain
//!   net's, should train like the plain net.
//!
//! What is measured, at steps 0, `every`, 2 `every`, ... (before that step's update), on a fixed
//! probe (the first `probe` training samples) run through a copy of the network, for every
//! hidden layer `l`, on the input of its activation `u_l` (`z_l` without BN, `gamma x_hat + beta`
//! with BN, `s (gamma x_hat + beta) + m` in noisy BN). The probe is the same every time, so what
//! moves is the network, not the sample.
//!
//! The probe runs in eval mode by default (`probe_mode`): BN normalises with its running
//! statistics and noisy BN applies its noise's mean (`E[s]`, `E[m] = 0`), the same at every
//! probe. In train mode BN would standardise the probe with the probe's own statistics, so
//! every BN unit's input would have mean `beta` and spread `gamma` over the probe by
//! construction, and noisy BN's probe would carry a fresh draw of the noise, which moves the
//! distribution by about the same amount whatever training does. Eval mode measures what the
//! parameter updates did to the distribution. The running statistics start at mean 0 and
//! variance 1, so in eval mode the shifts and the drift start at the first measured step at or
//! after [`ShiftConfig::reference_step`], when less than 1% of that start remains. A noisy-BN
//! arm also probes in train mode with a fresh draw of its noise, which is what its layers see
//! while training (`seen_shift`):
//!
//! ```text
//! mu_lj(t), sd_lj(t)      batch mean and standard deviation of unit j
//! shift_l(t) = mean_j [ |mu_lj(t) - mu_lj(t')| / sqrt(sd_lj(t) sd_lj(t')) + |ln(sd_lj(t) / sd_lj(t'))| ]
//! ```
//!
//! between consecutive measurements `t' < t`: how many of its own standard deviations each
//! unit's mean moved, plus the factor by which its spread changed (units with a zero spread are
//! left out). A layer's **distribution shift** is the mean of `shift_l(t)` over the run (from the
//! reference step on). Also the 15th, 50th and 85th percentiles of one unit's input (`layer`,
//! `unit`), and the test loss (and accuracy) in eval mode.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{BnNoise, ConfigError, Dtype, Normaliser, between};
use crate::data::{self, Stream};
use crate::experiment::ExperimentArgs;
use crate::experiment::TrainedArm;
use crate::experiment::{ArmJob, Cost, Experiment, MeasuredTrainConfig, Plan, Progress, ToolInfo};
use crate::flags::{MeasuredTrainArgs, NetArgs, OutputArgs, Renames, count};
use crate::float::Float;
use crate::limits::{MAX_DEPTH, MAX_SAMPLES, MAX_WIDTH};
use crate::memory::Footprint;
use crate::model::{Mlp, Mode};
use crate::stats::{Num, fmt_num, mean_nan, percentile};
use crate::train::{Tagged, evaluate, percent};
use clap::Args;

/// The percentiles drawn for one unit (Ioffe & Szegedy's Figure 1).
pub const PERCENTILES: [f64; 3] = [15.0, 50.0, 85.0];

/// A validated `noisy-bn` or `input-shift` configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShiftConfig {
    /// The arms `norms` (all from the same weights, on the same batches).
    #[serde(flatten)]
    pub run: MeasuredTrainConfig,
    /// The noise of a further arm, noisy BN: BN on (before the activation, with scale/shift)
    /// followed by this noise. `None`: no such arm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<BnNoise>,
    /// The layer (1-based) and unit (0-based) whose input's percentiles are drawn.
    pub layer: usize,
    pub unit: usize,
    /// Every measurement runs the first `probe` training samples through a copy of the network:
    /// the same samples each time, so what moves is the network, not the batch.
    pub probe: usize,
    /// The BN mode of that probe: `eval` (running statistics; noisy BN's noise at its mean) or
    /// `train` (the probe's own batch statistics; noisy BN with a fresh draw of its noise).
    #[serde(default = "eval_mode")]
    pub probe_mode: Mode,
}

fn eval_mode() -> Mode {
    Mode::Eval
}

/// The share of BN's initial running statistics (mean 0, variance 1) that may remain at the
/// reference step of an eval-mode probe.
pub const SETTLED: f64 = 0.01;

impl ShiftConfig {
    /// The arms in legend order: `norms`, then noisy BN.
    pub fn arms(&self) -> Vec<(Normaliser, Option<BnNoise>)> {
        let mut out: Vec<(Normaliser, Option<BnNoise>)> =
            self.run.norms.iter().map(|&n| (n, None)).collect();
        if let Some(noise) = self.noise {
            out.push((Normaliser::BN, Some(noise)));
        }
        out
    }

    /// Every arm [`run`] trains (side by side), in legend order: each reports its training with
    /// its measurements and holds the training net and its probe copy (on up to the test set's
    /// or the probe's samples).
    pub fn jobs(&self) -> Vec<ShiftJob> {
        let run = &self.run;
        let samples = run.net.batch.max(run.data.n_test).max(self.probe);
        self.arms()
            .into_iter()
            .map(|(norm, noise)| {
                let units = run.arm_units(self.measure_units(noise.is_some()));
                ShiftJob {
                    noise,
                    arm: run.arm_job(norm, units, samples, 2),
                }
            })
            .collect()
    }

    /// Whether an arm normalises with running statistics in eval mode (BatchNorm, noisy or not).
    fn has_running_stats(&self) -> bool {
        self.arms().iter().any(|&(norm, _)| norm.is_batch())
    }

    /// The first step an eval-mode probe's shifts and drift count from: the steps BN's running
    /// statistics take until less than [`SETTLED`] of their start (mean 0, variance 1) remains,
    /// `(1 - momentum)^k <= SETTLED`; 0 in train mode or without BatchNorm.
    pub fn reference_step(&self) -> usize {
        let m = self.run.net.momentum;
        if self.probe_mode == Mode::Train || !self.has_running_stats() || m >= 1.0 {
            return 0;
        }
        (SETTLED.ln() / (1.0 - m).ln()).ceil() as usize
    }
}

impl Plan for ShiftConfig {
    /// Every arm's network, the noise, the unit, the training fields.
    fn validate(&self) -> Result<(), ConfigError> {
        self.run.validate()?;
        self.run
            .net
            .one_layer_blocks("follows the input of each layer's activation")?;
        if let Some(noise) = &self.noise {
            noise.validate()?;
            self.run.net(Normaliser::BN).validate(self.run.net.batch)?;
        }
        if self.arms().is_empty() {
            return Err(ConfigError::Invalid {
                field: "norms",
                message: "needs at least one arm".into(),
            });
        }
        if !(2..=self.run.data.n_train).contains(&self.probe) {
            return Err(ConfigError::Invalid {
                field: "probe",
                message: format!(
                    "must be between 2 and the number of training samples ({}) (got {})",
                    self.run.data.n_train, self.probe
                ),
            });
        }
        between("layer", 1, self.run.depth, self.layer)?;
        between("unit", 0, self.run.net.width - 1, self.unit)
    }

    /// Per arm the training net on up to the test set's samples; per measurement the test
    /// evaluation, one copy of each layer's activation input and three numbers per layer.
    fn footprint(&self) -> Footprint {
        let per_point = 4.0 + 3.0 * self.run.depth as f64;
        // Every arm, the noisy one a BN-on network; each with its probe copy.
        let arms: Vec<ArmJob> = self.jobs().into_iter().map(|j| j.arm).collect();
        let fp = self.run.footprint(&arms, per_point);
        if self.noise.is_none() {
            return fp;
        }
        // Noisy BN's two noise buffers per block, in the training net (a batch) and in the
        // probe's copy (the probe's samples).
        let b = self.run.net.dtype.bytes() as f64;
        let per_row = 2.0 * b * (self.run.net.width * self.run.depth) as f64;
        fp.add(
            "networks",
            per_row * (self.run.net.batch + self.probe) as f64,
            &["batch", "probe", "width", "depth"],
        )
    }

    fn costs(&self) -> Vec<Cost> {
        self.jobs().iter().map(|j| j.arm.cost()).collect()
    }

    /// Every arm's passes: its steps, measurements and evaluations.
    fn macs(&self) -> f64 {
        let rows = self.run.net.batch;
        self.jobs().iter().map(|j| j.arm.macs(rows)).sum()
    }
}

/// One arm of [`run`]: a normalisation, noisy or not.
#[derive(Clone, Debug)]
pub struct ShiftJob {
    pub noise: Option<BnNoise>,
    pub arm: ArmJob,
}

impl ShiftConfig {
    /// Units of one measurement of an arm: the probe's forward (twice for noisy BN probed in
    /// eval mode, which also probes what training sees) and the test evaluation.
    fn measure_units(&self, noisy: bool) -> u64 {
        let probes = if noisy && self.probe_mode == Mode::Eval {
            2
        } else {
            1
        };
        (self.run.data.n_test as u64).saturating_add(probes * self.probe as u64)
    }

    /// The arm's legend label: `BN off`, `BN on`, ..., `noisy BN`.
    pub fn label(norm: Normaliser, noise: Option<BnNoise>) -> String {
        match noise {
            Some(_) => "noisy BN".to_string(),
            None => norm.label().to_string(),
        }
    }
}

/// What one arm saw while it trained.
#[derive(Clone, Debug, Serialize)]
pub struct ShiftArm {
    #[serde(flatten)]
    pub run: TrainedArm,
    /// The noise of a noisy-BN arm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<BnNoise>,
    /// The measured steps.
    pub steps: Vec<usize>,
    /// Test loss (and accuracy, classification tasks only) at each measured step, eval mode.
    pub test_loss: Vec<Num>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub test_accuracy: Vec<Num>,
    /// `input_mean[l][i]`, `input_std[l][i]`: the mean over units of `mu_lj` and of `sd_lj` at
    /// `steps[i]`, layer `l + 1`.
    pub input_mean: Vec<Vec<Num>>,
    pub input_std: Vec<Vec<Num>>,
    /// The index in `steps` of the reference measurement: the first at or after
    /// [`ShiftConfig::reference_step`].
    pub reference: usize,
    /// `shift[l][i]`: `shift_l` between `steps[reference + i]` and `steps[reference + i + 1]`.
    pub shift: Vec<Vec<Num>>,
    /// Per layer: the mean of `shift[l]` (the layer's distribution shift).
    pub mean_shift: Vec<Num>,
    /// Mean of `mean_shift` over the layers.
    pub net_shift: Num,
    /// Noisy BN probed in eval mode only: per layer, the mean shift between the same
    /// measurements of a train-mode probe with a fresh draw of the noise each time, the
    /// distribution its layers see while training; and its mean over the layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_shift: Option<Vec<Num>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_seen_shift: Option<Num>,
    /// The chosen unit's input: `unit_percentiles[k][i]` is percentile [`PERCENTILES`]`[k]` at
    /// `steps[i]`.
    pub unit_percentiles: Vec<Vec<Num>>,
    /// How far the chosen unit's percentiles moved from the reference measurement to the last,
    /// in units of its 15-85 spread: `(|p50 - p50_0| + |spread - spread_0|) / max(spread_0, spread)`
    /// ([`drift`]).
    pub unit_drift: Num,
}

/// `noisy-bn`'s verdict on Santurkar et al.'s finding: noisy BN trains almost as well as BN
/// and better than the plain net, although its layer inputs are less stable than BN's.
#[derive(Clone, Debug, Serialize)]
pub struct NoisyVerdict {
    /// Final test loss of the plain, BN and noisy-BN arms.
    pub loss_plain: Num,
    pub loss_bn: Num,
    pub loss_noisy: Num,
    /// `loss_noisy / loss_bn`.
    pub noisy_over_bn: Num,
    /// Noisy BN's final test loss is below the plain net's and within a factor of
    /// [`ALMOST_AS_WELL`] of BN's, either way.
    pub trains_like_bn: bool,
    /// Mean distribution shift over the layers of the three arms, by the configured probe
    /// (eval mode by default: noisy BN's noise held at its mean, the same at every probe).
    pub shift_plain: Num,
    pub shift_bn: Num,
    pub shift_noisy: Num,
    /// Noisy BN probed in eval mode: the shift of what its layers see while training (train
    /// mode, a fresh draw of the noise each probe), mostly the injected noise itself.
    pub seen_shift_noisy: Option<Num>,
    /// Noisy BN's layer inputs shift more than BN's by the configured probe.
    pub shifts_more_than_bn: bool,
    /// `supported` (both), `mixed` (one), `not supported` (neither).
    pub verdict: String,
}

/// "Almost as well": noisy BN's final test loss within this factor of BN's, either way.
pub const ALMOST_AS_WELL: f64 = 2.0;

/// `input-shift`'s verdict on Ioffe & Szegedy's Figure 1: without normalisation the chosen
/// unit's input percentiles drift; with it (BN) they stay put.
#[derive(Clone, Debug, Serialize)]
pub struct DriftVerdict {
    pub drift_plain: Num,
    /// The drift of the first normalised arm (BN, or LayerNorm where that is the one run).
    pub drift_norm: Num,
    /// That arm's label.
    pub norm_label: String,
    /// `supported` (its drift below half the plain net's), `mixed` (below it), `undetermined`
    /// (a drift is NaN: no measurement from the reference on), else `not supported`.
    pub verdict: String,
}

/// Results of `noisy-bn` or `input-shift`.
#[derive(Clone, Debug, Serialize)]
pub struct ShiftReport {
    pub tool: ToolInfo,
    pub config: ShiftConfig,
    pub arms: Vec<ShiftArm>,
    /// With a plain, a BN-on and a noisy-BN arm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noisy_verdict: Option<NoisyVerdict>,
    /// With a plain and a BN-on arm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_verdict: Option<DriftVerdict>,
}

impl ShiftReport {
    /// The first arm with or without noise whose normaliser passes `norm`.
    fn arm(&self, noisy: bool, norm: fn(Normaliser) -> bool) -> Option<&ShiftArm> {
        self.arms
            .iter()
            .find(|a| a.noise.is_some() == noisy && norm(a.run.norm))
    }
}

/// Per unit, the batch mean and standard deviation of `u: (batch, width)`, in f64.
fn column_moments<T: Float>(u: &ndarray::Array2<T>) -> (Vec<f64>, Vec<f64>) {
    u.columns()
        .into_iter()
        .map(|c| crate::stats::mean_std(&c))
        .unzip()
}

/// `shift_l` between two measurements' per-unit moments (see the module docs).
pub fn shift_between(before: &(Vec<f64>, Vec<f64>), after: &(Vec<f64>, Vec<f64>)) -> f64 {
    let terms = before
        .0
        .iter()
        .zip(&before.1)
        .zip(after.0.iter().zip(&after.1))
        .filter(|&((_, &s0), (_, &s1))| s0 > 0.0 && s1 > 0.0)
        .map(|((&m0, &s0), (&m1, &s1))| (m1 - m0).abs() / (s0 * s1).sqrt() + (s1 / s0).ln().abs());
    mean_nan(terms)
}

/// `(|p50 - p50_0| + |spread - spread_0|) / max(spread_0, spread)` from measurement `from`
/// (`_0`) to the last, `spread = p85 - p15`: 0 when the percentiles end where they began (NaN
/// when there is no measurement from `from` on).
pub fn drift(p: &[Vec<Num>], from: usize) -> f64 {
    let at = |k: usize, i: usize| p[k][i].0;
    let n = p[1].len();
    if n <= from {
        return f64::NAN;
    }
    let spread = |i: usize| at(2, i) - at(0, i);
    ((at(1, n - 1) - at(1, from)).abs() + (spread(n - 1) - spread(from)).abs())
        / spread(from).max(spread(n - 1))
}

/// Per hidden layer, the per-unit moments of the activation input of `net`'s last forward.
fn layer_moments<T: Float>(net: &Mlp<T>) -> Vec<(Vec<f64>, Vec<f64>)> {
    (1..=net.depth())
        .map(|l| column_moments(&net.activation_input(l)))
        .collect()
}

/// Per layer, the shift between consecutive measurements' moments (from the reference on), and
/// the means over measurements and layers.
struct ShiftSeries {
    previous: Vec<Option<(Vec<f64>, Vec<f64>)>>,
    shift: Vec<Vec<Num>>,
}

impl ShiftSeries {
    fn new(depth: usize) -> Self {
        ShiftSeries {
            previous: vec![None; depth],
            shift: vec![Vec::new(); depth],
        }
    }

    /// Take one measurement's moments; a measurement before the reference only becomes the
    /// one the next is compared with.
    fn push(&mut self, moments: Vec<(Vec<f64>, Vec<f64>)>, counted: bool) {
        for (l, m) in moments.into_iter().enumerate() {
            if let (true, Some(prev)) = (counted, &self.previous[l]) {
                self.shift[l].push(Num(shift_between(prev, &m)));
            }
            self.previous[l] = Some(m);
        }
    }

    /// Per layer the mean shift, and their mean.
    fn means(&self) -> (Vec<Num>, Num) {
        let per_layer: Vec<Num> = self
            .shift
            .iter()
            .map(|s| Num(mean_nan(s.iter().map(|v| v.0))))
            .collect();
        let net = Num(mean_nan(per_layer.iter().map(|v| v.0)));
        (per_layer, net)
    }
}

fn run_arm<T: Float>(
    cfg: &ShiftConfig,
    norm: Normaliser,
    noise: Option<BnNoise>,
    progress: Progress,
) -> ShiftArm {
    let run = &cfg.run;
    let data = run.dataset::<T>();
    let mut net = run.initial_net::<T>(norm);
    if let Some(n) = noise {
        net.set_bn_noise(n, data::rng(run.net.seed, Stream::Noise))
            .expect("validated: BN before the activation");
    }
    let depth = run.depth;
    let probe = data.train.x.slice(ndarray::s![..cfg.probe, ..]).to_owned();
    let reference_step = cfg.reference_step();
    let also_seen = noise.is_some() && cfg.probe_mode == Mode::Eval;
    let mut steps = Vec::new();
    let (mut test_loss, mut test_accuracy) = (Vec::new(), Vec::new());
    let mut input_mean = vec![Vec::new(); depth];
    let mut input_std = vec![Vec::new(); depth];
    let (mut shifts, mut seen) = (ShiftSeries::new(depth), ShiftSeries::new(depth));
    let mut unit_percentiles = vec![Vec::new(); PERCENTILES.len()];
    let mut trained = run.train_measured(
        norm,
        &mut net,
        &data,
        progress,
        cfg.measure_units(noise.is_some()),
        |tr, step, _loss| {
            // A shift counts when both its measurements are at or after the reference step.
            let counted = steps.last().is_some_and(|&s| s >= reference_step);
            steps.push(step);
            let mut copy = tr.net.clone();
            copy.forward(probe.view(), cfg.probe_mode)
                .expect("the probe has the net's input width");
            let col = copy.activation_input(cfg.layer).column(cfg.unit).to_owned();
            for (k, &q) in PERCENTILES.iter().enumerate() {
                unit_percentiles[k].push(Num(percentile(col.iter().map(|v| v.f64()), q)));
            }
            let moments = layer_moments(&copy);
            for (l, m) in moments.iter().enumerate() {
                input_mean[l].push(Num(mean_nan(m.0.iter().copied())));
                input_std[l].push(Num(mean_nan(m.1.iter().copied())));
            }
            shifts.push(moments, counted);
            if also_seen {
                copy.forward(probe.view(), Mode::Train)
                    .expect("the probe has the net's input width");
                seen.push(layer_moments(&copy), counted);
            }
            let e = evaluate(tr.net, &tr.data.test, run.net.batch, tr.loss);
            test_loss.push(Num(e.loss));
            if tr.data.classes.is_some() {
                test_accuracy.push(Num(e.accuracy));
            }
        },
    );
    if noise.is_some() {
        trained.label = ShiftConfig::label(norm, noise);
    }
    let reference = steps
        .iter()
        .position(|&s| s >= reference_step)
        .unwrap_or(steps.len());
    let (mean_shift, net_shift) = shifts.means();
    let (seen_shift, net_seen_shift) = if also_seen {
        let (per_layer, net) = seen.means();
        (Some(per_layer), Some(net))
    } else {
        (None, None)
    };
    ShiftArm {
        run: trained,
        noise,
        net_shift,
        unit_drift: Num(drift(&unit_percentiles, reference)),
        reference,
        steps,
        test_loss,
        test_accuracy,
        input_mean,
        input_std,
        shift: shifts.shift,
        mean_shift,
        seen_shift,
        net_seen_shift,
        unit_percentiles,
    }
}

/// Train every arm (side by side) and measure.
pub fn run(cfg: &ShiftConfig, progress: Progress) -> ShiftReport {
    let arms: Vec<ShiftArm> = cfg
        .jobs()
        .par_iter()
        .map(|job| {
            let arm = Tagged::new(progress, ShiftConfig::label(job.arm.norm, job.noise));
            match cfg.run.net.dtype {
                Dtype::F32 => run_arm::<f32>(cfg, job.arm.norm, job.noise, &arm),
                Dtype::F64 => run_arm::<f64>(cfg, job.arm.norm, job.noise, &arm),
            }
        })
        .collect();
    let mut report = ShiftReport {
        tool: ToolInfo::current(),
        config: cfg.clone(),
        arms,
        noisy_verdict: None,
        drift_verdict: None,
    };
    let (plain, bn, noisy) = (
        report.arm(false, |n| n == Normaliser::Off),
        report.arm(false, Normaliser::is_on),
        report.arm(true, Normaliser::is_batch),
    );
    let noisy_verdict = match (plain, bn, noisy) {
        (Some(p), Some(b), Some(n)) => Some(noisy_verdict(p, b, n)),
        _ => None,
    };
    let drift_verdict = match (plain, bn) {
        (Some(p), Some(b)) if cfg.noise.is_none() => Some(drift_verdict(p, b)),
        _ => None,
    };
    report.noisy_verdict = noisy_verdict;
    report.drift_verdict = drift_verdict;
    report
}

fn verdict_word(supported: usize, of: usize) -> String {
    match supported {
        s if s == of => "supported",
        0 => "not supported",
        _ => "mixed",
    }
    .to_string()
}

pub fn noisy_verdict(plain: &ShiftArm, bn: &ShiftArm, noisy: &ShiftArm) -> NoisyVerdict {
    let (lp, lb, ln) = (
        plain.run.final_test_loss.0,
        bn.run.final_test_loss.0,
        noisy.run.final_test_loss.0,
    );
    let ratio = ln / lb;
    let trains_like_bn = ln < lp && ratio < ALMOST_AS_WELL && ratio > 1.0 / ALMOST_AS_WELL;
    let (sp, sb, sn) = (plain.net_shift.0, bn.net_shift.0, noisy.net_shift.0);
    let shifts_more_than_bn = sn > sb;
    NoisyVerdict {
        loss_plain: Num(lp),
        loss_bn: Num(lb),
        loss_noisy: Num(ln),
        noisy_over_bn: Num(ratio),
        trains_like_bn,
        shift_plain: Num(sp),
        shift_bn: Num(sb),
        shift_noisy: Num(sn),
        seen_shift_noisy: noisy.net_seen_shift,
        shifts_more_than_bn,
        verdict: verdict_word(
            usize::from(trains_like_bn) + usize::from(shifts_more_than_bn),
            2,
        ),
    }
}

pub fn drift_verdict(plain: &ShiftArm, normed: &ShiftArm) -> DriftVerdict {
    let (dp, dn) = (plain.unit_drift.0, normed.unit_drift.0);
    let verdict = if dn.is_nan() || dp.is_nan() {
        "undetermined"
    } else if dn < 0.5 * dp {
        "supported"
    } else if dn < dp {
        "mixed"
    } else {
        "not supported"
    };
    DriftVerdict {
        drift_plain: Num(dp),
        drift_norm: Num(dn),
        norm_label: normed.run.label.clone(),
        verdict: verdict.to_string(),
    }
}

/// `noise: shift U(-1, 1), scale U(1, 2), jitter 0.1 per step and unit`.
pub fn noise_label(n: &BnNoise) -> String {
    format!(
        "shift U(-{m}, {m}), scale U(1, {s}) per step and unit, per-sample jitter {j}",
        m = crate::stats::Short(n.mean),
        s = crate::stats::Short(n.scale),
        j = crate::stats::Short(n.jitter),
    )
}

/// The stdout summary.
pub fn table(r: &ShiftReport, name: &str) -> String {
    let cfg = &r.config;
    let mut out = format!("{name}: {}\n", cfg.run.title());
    if let Some(n) = &cfg.noise {
        out.push_str(&format!("noisy BN: {}\n", noise_label(n)));
    }
    out.push_str(&format!(
        "distribution shift of each layer's activation input between measurements {} steps apart (0: still), mean from step {} on; probe {}:\n",
        cfg.run.every,
        cfg.reference_step(),
        probe_words(cfg.probe_mode),
    ));
    let w = r
        .arms
        .iter()
        .map(|a| a.run.label.len())
        .max()
        .unwrap_or(8)
        .max(10);
    out.push_str(&shift_rows(r, w));
    if r.arms
        .iter()
        .any(|a| a.shift.first().is_none_or(Vec::is_empty))
    {
        out.push_str(&format!(
            "note: NaN where an arm has fewer than two measurements from step {} on (BN's running statistics settle by then): raise --steps, or use --probe-mode train\n",
            cfg.reference_step()
        ));
    }
    for a in &r.arms {
        out.push_str(&unit_line(cfg, a, w));
    }
    out.push_str(&verdict_lines(r));
    out
}

/// [`table`]'s shift per layer: a row per layer and one of the means, a column per arm `w`
/// characters wide.
fn shift_rows(r: &ShiftReport, w: usize) -> String {
    let mut out = format!("{:<6}", "layer");
    for a in &r.arms {
        out.push_str(&format!("  {:>w$}", a.run.label));
    }
    out.push('\n');
    for l in 0..r.config.run.depth {
        out.push_str(&format!("{:<6}", l + 1));
        for a in &r.arms {
            out.push_str(&format!("  {:>w$}", fmt_num(a.mean_shift[l].0)));
        }
        out.push('\n');
    }
    out.push_str(&format!("{:<6}", "mean"));
    for a in &r.arms {
        out.push_str(&format!("  {:>w$}", fmt_num(a.net_shift.0)));
    }
    out.push('\n');
    out
}

/// The tracked unit's input percentiles ([`PERCENTILES`]) at one measurement, and its step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnitPercentilesAt {
    pub step: usize,
    pub percentiles: [f64; 3],
}

/// The unit's percentiles at the arm's reference measurement and at its last one: what its
/// drift compares (NaN, and step 0, where the arm has no such measurement).
pub fn unit_ends(a: &ShiftArm) -> [UnitPercentilesAt; 2] {
    let p = &a.unit_percentiles;
    let at =
        |i: usize| -> [f64; 3] { std::array::from_fn(|k| p[k].get(i).map_or(f64::NAN, |v| v.0)) };
    let last = p[1].len().saturating_sub(1);
    [
        UnitPercentilesAt {
            step: a.steps.get(a.reference).copied().unwrap_or(0),
            percentiles: at(a.reference),
        },
        UnitPercentilesAt {
            step: a.steps.last().copied().unwrap_or(0),
            percentiles: at(last),
        },
    ]
}

/// [`table`]'s line on one arm: the unit's percentiles at the reference and the last
/// measurement ([`unit_ends`]), its drift, and how the run ended.
fn unit_line(cfg: &ShiftConfig, a: &ShiftArm, w: usize) -> String {
    let [from, to] = unit_ends(a);
    let [f0, f1, f2] = from.percentiles.map(fmt_num);
    let [t0, t1, t2] = to.percentiles.map(fmt_num);
    let mut out = format!(
        "{:<w$}  unit {} of layer {}: p15/p50/p85 {f0} / {f1} / {f2} at step {}, {t0} / {t1} / {t2} at step {} (drift {}); final test loss {}",
        a.run.label,
        cfg.unit,
        cfg.layer,
        from.step,
        to.step,
        fmt_num(a.unit_drift.0),
        fmt_num(a.run.final_test_loss.0),
    );
    if let Some(acc) = a.run.final_test_accuracy {
        out.push_str(&format!(", test accuracy {}", percent(acc.0)));
    }
    if let Some(step) = a.run.diverged_at {
        out.push_str(&format!("; DIVERGED at step {step}"));
    }
    out.push('\n');
    out
}

/// [`table`]'s verdicts: noisy BN's (Santurkar et al.) and the drift's (Ioffe & Szegedy), where
/// the run has them.
fn verdict_lines(r: &ShiftReport) -> String {
    let mut out = String::new();
    if let Some(v) = &r.noisy_verdict {
        out.push_str(&format!(
            "noisy BN trains almost as well as BN (final test loss within {}x either way) and better than the plain net: {} (noisy BN {}, BN {}, plain {}; noisy / BN {})\n",
            ALMOST_AS_WELL,
            yes(v.trains_like_bn),
            fmt_num(v.loss_noisy.0),
            fmt_num(v.loss_bn.0),
            fmt_num(v.loss_plain.0),
            fmt_num(v.noisy_over_bn.0),
        ));
        out.push_str(&format!(
            "noisy BN's layer inputs shift more than BN's (probe {}): {} (mean shift: noisy BN {}, BN {}, plain {})\n",
            probe_words(r.config.probe_mode),
            yes(v.shifts_more_than_bn),
            fmt_num(v.shift_noisy.0),
            fmt_num(v.shift_bn.0),
            fmt_num(v.shift_plain.0),
        ));
        if let Some(seen) = v.seen_shift_noisy {
            out.push_str(&format!(
                "what noisy BN's layers see while training (train mode, fresh noise each probe) shifts {} per measurement, mostly the injected noise\n",
                fmt_num(seen.0)
            ));
        }
        out.push_str(&format!(
            "Santurkar et al.: noisy BN, less stable than BN, trains almost as well: {}\n",
            v.verdict
        ));
    }
    if let Some(v) = &r.drift_verdict {
        out.push_str(&format!(
            "Ioffe & Szegedy: without normalisation the unit's input percentiles drift, with {} they stay put: {} (drift {} without, {} with)\n",
            v.norm_label,
            v.verdict,
            fmt_num(v.drift_plain.0),
            fmt_num(v.drift_norm.0),
        ));
    }
    out
}

/// How the probe normalises, in words.
pub fn probe_words(mode: Mode) -> &'static str {
    match mode {
        Mode::Eval => "in eval mode: BN's running statistics, noisy BN's noise at its mean",
        Mode::Train => "in train mode: the probe's own batch statistics, fresh noise",
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `bn-lab noisy-bn`.
pub struct NoisyBn;

/// `bn-lab input-shift`.
pub struct InputShift;

macro_rules! shift_experiment {
    ($t:ty, $name:literal, $stem:literal) => {
        impl Experiment for $t {
            type Config = ShiftConfig;
            type Report = ShiftReport;
            const NAME: &'static str = $name;
            const STEM: &'static str = $stem;

            fn run(cfg: &ShiftConfig, progress: Progress) -> ShiftReport {
                run(cfg, progress)
            }

            fn summary(report: &ShiftReport) -> String {
                table(report, $name)
            }
        }
    };
}

shift_experiment!(NoisyBn, "noisy-bn", "noisy_bn");
shift_experiment!(InputShift, "input-shift", "input_shift");

// The command line: the flags of `bn-lab noisy-bn` and `bn-lab input-shift` and the configs
// they describe.

/// The BN mode of `noisy-bn`'s and `input-shift`'s probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeMode {
    /// BN with the probe's own batch statistics (every BN unit's input then has mean beta and
    /// spread gamma over the probe by construction); noisy BN with a fresh draw of its noise.
    Train,
    /// BN with its running statistics; noisy BN with its noise's mean, the same at every probe.
    Eval,
}

impl From<ProbeMode> for crate::model::Mode {
    fn from(m: ProbeMode) -> Self {
        match m {
            ProbeMode::Train => crate::model::Mode::Train,
            ProbeMode::Eval => crate::model::Mode::Eval,
        }
    }
}

/// The unit whose input's percentiles `noisy-bn` and `input-shift` draw.
#[derive(Debug, Clone, Args)]
pub struct UnitArgs {
    /// Layer (1-based) of the unit whose input percentiles are drawn [default: the last hidden
    /// layer].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long)]
    pub layer: Option<usize>,
    /// That unit's index in its layer (0-based).
    #[arg(allow_hyphen_values = true, value_parser = count::<0, MAX_WIDTH>, long, default_value_t = 0)]
    pub unit: usize,
    /// Training samples every measurement runs through a copy of the network (the first N)
    /// [default: 512, or every training sample if fewer].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_SAMPLES>, long, value_name = "N")]
    pub probe: Option<usize>,
    /// BN mode of that probe: eval (running statistics, which measure what the updates did to
    /// the distribution; the first ~44 steps, while they settle, are not counted) or train
    /// (the probe's own batch statistics).
    #[arg(long, value_enum, default_value_t = ProbeMode::Eval)]
    pub probe_mode: ProbeMode,
}

/// The noise of `noisy-bn`'s noisy arm (see the README's "Noisy BN").
#[derive(Debug, Clone, Args)]
pub struct NoiseArgs {
    /// Each step's shift of each unit is drawn from U(-M, M).
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "M",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub noise_mean: f64,
    /// Each step's scale of each unit is drawn from U(1, S).
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "S",
        default_value_t = 2.0,
        allow_negative_numbers = true
    )]
    pub noise_scale: f64,
    /// Standard deviation of the per-sample jitter around the step's scale (relative) and shift.
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "J",
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    pub noise_jitter: f64,
}

/// Noisy BN (Santurkar et al. 2018, section 2.1): the same network plain, with BatchNorm,
/// and with BatchNorm followed by noise that shifts and scales every unit anew at each step;
/// training curves and how much each layer's input distribution shifts. Writes
/// noisy_bn.png and noisy_bn.json.
// ReLU nets on the digits, as deep as Santurkar et al.'s point needs.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.default_value("100")),
    mut_arg("batch", |a| a.default_value("64")),
    mut_arg("task", |a| a.default_value("digits")),
    mut_arg("depth", |a| a.default_value("8")),
    mut_arg("steps", |a| a.default_value("1000")),
    mut_arg("lr", |a| a.default_value("0.3")),
    mut_arg("n_train", |a| a.help(crate::flags::MEASURED_N_TRAIN_HELP))
)]
pub struct NoisyBnArgs {
    #[command(flatten)]
    pub train: MeasuredTrainArgs,
    #[command(flatten)]
    pub noise: NoiseArgs,
    #[command(flatten)]
    pub unit: UnitArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Ioffe & Szegedy's Figure 1 (b, c): the 15th, 50th and 85th percentiles of one sigmoid
/// unit's input over training, BatchNorm off and on (3 hidden layers of 100 sigmoid units
/// on the digits). Writes input_shift.png and input_shift.json.
// Ioffe & Szegedy's network: 3 hidden layers of 100 sigmoid units, mini-batches of 60.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("act", |a| a.default_value("sigmoid")),
    mut_arg("init", |a| a.default_value("xavier")),
    mut_arg("width", |a| a.default_value("100")),
    mut_arg("batch", |a| a.default_value("60")),
    mut_arg("task", |a| a.default_value("digits")),
    mut_arg("depth", |a| a.default_value("3")),
    mut_arg("steps", |a| a.default_value("2000")),
    mut_arg("lr", |a| a.default_value("0.5")),
    mut_arg("n_train", |a| a.help(crate::flags::MEASURED_N_TRAIN_HELP))
)]
pub struct InputShiftArgs {
    #[command(flatten)]
    pub train: MeasuredTrainArgs,
    #[command(flatten)]
    pub unit: UnitArgs,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Probe samples by default.
pub const DEFAULT_PROBE: usize = 512;

/// The small run of `noisy-bn` and `input-shift` (BN's running statistics settle in 2 steps, so
/// the eval-mode probe counts from step 4 of 12).
const SHIFT_QUICK: &str = "--task nonlinear --depth 3 --width 8 --batch 8 --d-out 2 --steps 12 --every 4 --n-train 64 --n-test 16 --lr 0.05 --probe 32 --momentum 0.9";

/// Config fields of `noisy-bn` and `input-shift` set by flags of another name.
const SHIFT_RENAMES: Renames = &[("norms", "--norm")];

fn shift_config(
    train: &MeasuredTrainArgs,
    net: &NetArgs,
    unit: &UnitArgs,
    noise: Option<BnNoise>,
) -> anyhow::Result<ShiftConfig> {
    let run = MeasuredTrainConfig::from_flags(train, net)?;
    Ok(ShiftConfig {
        layer: unit.layer.unwrap_or(run.depth),
        unit: unit.unit,
        probe: unit.probe.unwrap_or(DEFAULT_PROBE.min(run.data.n_train)),
        probe_mode: unit.probe_mode.into(),
        noise,
        run,
    })
}

impl ExperimentArgs for NoisyBnArgs {
    type Experiment = NoisyBn;
    const QUICK: &'static str = SHIFT_QUICK;
    const RENAMES: Renames = SHIFT_RENAMES;
    fn config(&self) -> anyhow::Result<ShiftConfig> {
        let n = &self.noise;
        let noise = BnNoise {
            mean: n.noise_mean,
            scale: n.noise_scale,
            jitter: n.noise_jitter,
        };
        shift_config(&self.train, &self.net, &self.unit, Some(noise))
    }
    fn output(&self) -> &OutputArgs {
        &self.output
    }
}

impl ExperimentArgs for InputShiftArgs {
    type Experiment = InputShift;
    const QUICK: &'static str = SHIFT_QUICK;
    const RENAMES: Renames = SHIFT_RENAMES;
    fn config(&self) -> anyhow::Result<ShiftConfig> {
        shift_config(&self.train, &self.net, &self.unit, None)
    }
    fn output(&self) -> &OutputArgs {
        &self.output
    }
}
