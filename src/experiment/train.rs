//! `bn-lab train`: the same network trained with BatchNorm off, on, on without scale/shift and
//! on after the activation, over a sweep of learning rates: does BN train where the plain
//! network diverges (the diary's "higher learning rate could be utilized")?
//!
//! Every run of one seed starts from the same weights (BN draws no random numbers) and sees
//! the same mini-batches in the same order, so runs differ only in configuration and learning
//! rate.

use std::fmt;

use rayon::prelude::*;
use serde::Serialize;

use crate::config::{Activation, BnConfig, Dtype, Init, NetConfig, Placement};
use crate::data::{self, Stream, Task};
use crate::experiment::ToolInfo;
use crate::experiment::grad_norms::fmt_num;
use crate::float::Float;
use crate::model::Mlp;
use crate::optim::SgdConfig;
use crate::stats::Num;
use crate::train::{self, History, TrainSettings};

/// One network configuration compared by `train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TrainArm {
    /// No BatchNorm.
    Off,
    /// BN with scale/shift before the activation: act(gamma x_hat + beta).
    On,
    /// BN without scale/shift before the activation: act(x_hat).
    NoAffine,
    /// BN with scale/shift after the activation: gamma BN(act(z)) + beta.
    Post,
    /// BN without scale/shift after the activation.
    PostNoAffine,
}

impl TrainArm {
    /// The BN settings of this arm (`None`: no BN), with `eps` and `momentum` from `base`.
    pub fn bn(self, base: BnConfig) -> Option<BnConfig> {
        let with = |affine, placement| {
            Some(BnConfig {
                affine,
                placement,
                ..base
            })
        };
        match self {
            TrainArm::Off => None,
            TrainArm::On => with(true, Placement::Pre),
            TrainArm::NoAffine => with(false, Placement::Pre),
            TrainArm::Post => with(true, Placement::Post),
            TrainArm::PostNoAffine => with(false, Placement::Post),
        }
    }

    /// Legend and table label.
    pub fn label(self) -> &'static str {
        match self {
            TrainArm::Off => "BN off",
            TrainArm::On => "BN on",
            TrainArm::NoAffine => "BN, no affine",
            TrainArm::Post => "BN after act",
            TrainArm::PostNoAffine => "BN after act, no affine",
        }
    }
}

impl fmt::Display for TrainArm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A validated `train` configuration: everything needed to reproduce every number.
#[derive(Clone, Debug, Serialize)]
pub struct TrainConfig {
    pub task: Task,
    pub n_train: usize,
    pub n_test: usize,
    pub depth: usize,
    pub width: usize,
    pub batch: usize,
    pub d_in: usize,
    pub d_out: usize,
    pub act: Activation,
    pub init: Init,
    pub residual: bool,
    /// BN epsilon and running-statistics momentum of every BN arm (affine and placement come
    /// from the arm).
    pub bn_settings: BnConfig,
    /// Configurations, in legend order.
    pub configs: Vec<TrainArm>,
    /// Learning rates, one panel each.
    pub lrs: Vec<f64>,
    /// SGD momentum (PyTorch convention) and weight decay, shared by every run.
    pub sgd_momentum: f64,
    pub weight_decay: f64,
    pub steps: usize,
    pub eval_every: usize,
    pub diag_every: usize,
    /// A run diverges when its mini-batch loss exceeds this times its first one (or is inf/NaN).
    pub diverge_factor: f64,
    pub seed: u64,
    pub dtype: Dtype,
    /// The learning rate whose per-layer diagnostics `train_layers.png` shows.
    pub diag_lr: f64,
}

impl TrainConfig {
    pub fn net(&self, arm: TrainArm) -> NetConfig {
        NetConfig {
            d_in: self.d_in,
            width: self.width,
            d_out: self.d_out,
            depth: self.depth,
            act: self.act,
            init: self.init,
            bn: arm.bn(self.bn_settings),
            residual: self.residual,
        }
    }

    pub fn settings(&self, lr: f64) -> TrainSettings {
        TrainSettings {
            steps: self.steps,
            batch: self.batch,
            sgd: SgdConfig {
                lr,
                momentum: self.sgd_momentum,
                weight_decay: self.weight_decay,
            },
            eval_every: self.eval_every,
            diag_every: self.diag_every,
            diverge_factor: self.diverge_factor,
            seed: self.seed,
        }
    }

    /// Every (lr, configuration) pair in run order: learning rates as given, configurations in
    /// `configs` order within each.
    pub fn runs(&self) -> Vec<(f64, TrainArm)> {
        self.lrs
            .iter()
            .flat_map(|&lr| self.configs.iter().map(move |&a| (lr, a)))
            .collect()
    }
}

/// One training run.
#[derive(Clone, Debug, Serialize)]
pub struct TrainRun {
    pub label: String,
    pub config: TrainArm,
    pub lr: f64,
    pub net: NetConfig,
    pub diverged: bool,
    /// Mean mini-batch loss (train mode) over the last tenth of the evaluations.
    pub late_batch_loss: Num,
    pub final_train_loss: Num,
    pub best_train_loss: Num,
    pub final_test_loss: Num,
    pub best_test_loss: Num,
    /// `2 / lambda_max` of the output layer's curvature at step 0 (see
    /// [`History::output_curvature`]): above this learning rate the output layer alone diverges.
    pub output_lr_limit: Num,
    pub history: History,
}

/// Per configuration, over the learning-rate sweep.
#[derive(Clone, Debug, Serialize)]
pub struct ArmSummary {
    pub config: TrainArm,
    pub label: String,
    /// Learning rates at which this configuration diverged.
    pub diverged_at: Vec<f64>,
    /// The largest learning rate at which it did not diverge (`null` if it diverged at all).
    pub largest_stable_lr: Option<f64>,
    /// Its best test loss over every learning rate, and the rate that gave it.
    pub best_test_loss: Num,
    pub best_lr: Option<f64>,
}

/// Everything `train` computed; written to `train.json` and drawn in `train_loss.png` and
/// `train_layers.png`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub tool: ToolInfo,
    pub config: TrainConfig,
    /// Loss of predicting 0 for every test sample: `1/(2 n) sum y^2` (a reference level).
    pub zero_predictor_test_loss: Num,
    /// Train and test loss of the best linear model (least squares on the training split):
    /// what a network that behaves linearly can reach.
    pub linear_fit_train_loss: Num,
    pub linear_fit_test_loss: Num,
    pub runs: Vec<TrainRun>,
    pub summary: Vec<ArmSummary>,
    /// Wall-clock seconds of the training (not part of the reproducible numbers).
    pub seconds: f64,
}

fn run_one<T: Float>(
    cfg: &TrainConfig,
    data: &data::Dataset<T>,
    lr: f64,
    arm: TrainArm,
    progress: &(dyn Fn(u64) + Sync),
) -> TrainRun {
    let net_cfg = cfg.net(arm);
    let mut net = Mlp::<T>::new(&net_cfg, &mut data::rng(cfg.seed, Stream::Weights));
    let history = train::train(&mut net, data, &cfg.settings(lr), progress);
    TrainRun {
        label: arm.label().to_string(),
        config: arm,
        lr,
        net: net_cfg,
        diverged: history.divergence.is_some(),
        late_batch_loss: Num(history.late_batch_loss()),
        final_train_loss: Num(history.final_train_loss()),
        best_train_loss: Num(history.best_train_loss()),
        final_test_loss: Num(history.final_test_loss()),
        best_test_loss: Num(history.best_test_loss()),
        output_lr_limit: Num(history.output_lr_limit()),
        history,
    }
}

/// Runs and the reference levels: zero predictor (test), linear fit (train, test).
type Typed = (Vec<TrainRun>, f64, (f64, f64));

fn run_typed<T: Float>(cfg: &TrainConfig, progress: &(dyn Fn(u64) + Sync)) -> Typed {
    let data = data::make_task::<T>(
        cfg.task,
        cfg.seed,
        cfg.n_train,
        cfg.n_test,
        cfg.d_in,
        cfg.d_out,
    );
    let zero = train::zero_predictor_loss(&data.test);
    let runs = cfg
        .runs()
        .par_iter()
        .map(|&(lr, arm)| run_one(cfg, &data, lr, arm, progress))
        .collect();
    (runs, zero, train::linear_fit_losses(&data))
}

/// Run every (learning rate, configuration) pair, in parallel on rayon's pool. `progress(n)`
/// is told of every `n` finished steps (of `runs().len() * steps` in all).
pub fn run(cfg: &TrainConfig, progress: &(dyn Fn(u64) + Sync)) -> TrainReport {
    let start = std::time::Instant::now();
    let (runs, zero, linear) = match cfg.dtype {
        Dtype::F32 => run_typed::<f32>(cfg, progress),
        Dtype::F64 => run_typed::<f64>(cfg, progress),
    };
    let summary = cfg
        .configs
        .iter()
        .map(|&arm| {
            let mine: Vec<&TrainRun> = runs.iter().filter(|r| r.config == arm).collect();
            let diverged_at: Vec<f64> = mine.iter().filter(|r| r.diverged).map(|r| r.lr).collect();
            let largest_stable_lr = mine
                .iter()
                .filter(|r| !r.diverged)
                .map(|r| r.lr)
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
            let best = mine
                .iter()
                .filter(|r| r.best_test_loss.0.is_finite())
                .min_by(|a, b| a.best_test_loss.0.total_cmp(&b.best_test_loss.0));
            ArmSummary {
                config: arm,
                label: arm.label().to_string(),
                diverged_at,
                largest_stable_lr,
                best_test_loss: Num(best.map_or(f64::NAN, |r| r.best_test_loss.0)),
                best_lr: best.map(|r| r.lr),
            }
        })
        .collect();
    TrainReport {
        tool: ToolInfo::current(),
        config: cfg.clone(),
        zero_predictor_test_loss: Num(zero),
        linear_fit_train_loss: Num(linear.0),
        linear_fit_test_loss: Num(linear.1),
        runs,
        summary,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// The shared settings as short phrases: `non-linear task`, `depth 10`, ...
fn title_parts(cfg: &TrainConfig) -> Vec<String> {
    let mut parts = vec![
        format!("{} task", cfg.task),
        format!("depth {}, width {}", cfg.depth, cfg.width),
        format!("{}, {} init", cfg.act, cfg.init),
        format!("batch {}", cfg.batch),
    ];
    if cfg.sgd_momentum != 0.0 {
        parts.push(format!("SGD momentum {}", cfg.sgd_momentum));
    }
    if cfg.weight_decay != 0.0 {
        parts.push(format!("weight decay {}", cfg.weight_decay));
    }
    if cfg.residual {
        parts.push("residual".into());
    }
    parts.push(cfg.dtype.to_string());
    parts.push(format!("seed {}", cfg.seed));
    parts
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

/// How a run ended, for the table: `ok` or `DIVERGED@37`.
pub fn status(r: &TrainRun) -> String {
    match &r.history.divergence {
        None => "ok".into(),
        Some(d) => format!("DIVERGED@{}", d.step),
    }
}

/// Whether some BN configuration trained at a learning rate where BN off diverged, and which.
pub fn bn_rescues(report: &TrainReport) -> Vec<(f64, Vec<TrainArm>)> {
    let mut out = Vec::new();
    for &lr in &report.config.lrs {
        let at: Vec<&TrainRun> = report.runs.iter().filter(|r| r.lr == lr).collect();
        let off_diverged = at.iter().any(|r| r.config == TrainArm::Off && r.diverged);
        if !off_diverged {
            continue;
        }
        let ok: Vec<TrainArm> = at
            .iter()
            .filter(|r| r.config != TrainArm::Off && !r.diverged)
            .map(|r| r.config)
            .collect();
        out.push((lr, ok));
    }
    out
}

fn fmt_lrs(v: &[f64]) -> String {
    v.iter()
        .map(|x| x.to_string())
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
    out.push_str(&format!(
        "{:<w$}  {:>6}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>9}  {}\n",
        "config",
        "lr",
        "mini-batch",
        "train end",
        "train best",
        "test end",
        "test best",
        "2/λ_out",
        "status"
    ));
    for (i, r) in report.runs.iter().enumerate() {
        if i > 0 && report.runs[i - 1].lr != r.lr {
            out.push('\n');
        }
        out.push_str(&format!(
            "{:<w$}  {:>6}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}  {:>9}  {}\n",
            r.label,
            r.lr,
            fmt_num(r.late_batch_loss.0),
            fmt_num(r.final_train_loss.0),
            fmt_num(r.best_train_loss.0),
            fmt_num(r.final_test_loss.0),
            fmt_num(r.best_test_loss.0),
            fmt_num(r.output_lr_limit.0),
            status(r),
        ));
    }
    out.push_str(&format!(
        "mini-batch: mean training mini-batch loss (BN batch statistics) over the last tenth of the run;\n\
         train/test: 1/(2n) sum (o - y)^2 over the whole split, BN in eval mode (running statistics);\n\
         reference levels: predicting 0 scores {} on the test set, the best linear model (least squares) {} (train {}).\n\
         DIVERGED@k: the mini-batch loss at step k was inf/NaN or over {:.0e} x the first one; the run stopped there and its 'end' columns are the losses at that point.\n\
         2/λ_out: λ = top eigenvalue of mean [h, 1][h, 1]^T of the last hidden layer on the first mini-batch; SGD on the output layer alone diverges above this lr.\n",
        fmt_num(report.zero_predictor_test_loss.0),
        fmt_num(report.linear_fit_test_loss.0),
        fmt_num(report.linear_fit_train_loss.0),
        cfg.diverge_factor
    ));
    out.push_str("\nper configuration:\n");
    for s in &report.summary {
        out.push_str(&format!(
            "  {:<w$}  largest lr without divergence: {:>6}   diverged at: {:<14}  best test loss {} (lr {})\n",
            s.label,
            s.largest_stable_lr.map_or("none".to_string(), |v| v.to_string()),
            if s.diverged_at.is_empty() {
                "-".to_string()
            } else {
                fmt_lrs(&s.diverged_at)
            },
            fmt_num(s.best_test_loss.0),
            s.best_lr.map_or("-".to_string(), |v| v.to_string()),
        ));
    }
    out.push_str(&verdict(report));
    out
}

/// The plain-words conclusion of this run about the diary's claims.
pub fn verdict(report: &TrainReport) -> String {
    let cfg = &report.config;
    let mut out = String::new();
    if !cfg.configs.contains(&TrainArm::Off) {
        return out;
    }
    let rescues = bn_rescues(report);
    let off = report.summary.iter().find(|s| s.config == TrainArm::Off);
    if rescues.is_empty() {
        out.push_str(&format!(
            "\nhigher learning rates with BN: NOT shown by this run: BN off did not diverge at any of lr {}.\n",
            fmt_lrs(&cfg.lrs)
        ));
    } else {
        let helped: Vec<String> = rescues
            .iter()
            .filter(|(_, ok)| !ok.is_empty())
            .map(|(lr, ok)| {
                format!(
                    "lr {lr}: {}",
                    ok.iter().map(|a| a.label()).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        if helped.is_empty() {
            out.push_str(&format!(
                "\nhigher learning rates with BN: NOT shown by this run: BN off diverged at lr {}, and so did every BN configuration.\n",
                fmt_lrs(&rescues.iter().map(|r| r.0).collect::<Vec<_>>())
            ));
        } else {
            out.push_str(&format!(
                "\nhigher learning rates with BN: shown: BN off diverged at lr {}, where these BN configurations trained: {}.\n",
                fmt_lrs(&off.map(|s| s.diverged_at.clone()).unwrap_or_default()),
                helped.join("; ")
            ));
        }
    }
    // Placement: the diary's remark that BN after the activation can do better.
    let best = |arm| {
        report
            .summary
            .iter()
            .find(|s| s.config == arm)
            .map(|s| s.best_test_loss.0)
    };
    if let (Some(pre), Some(post)) = (best(TrainArm::On), best(TrainArm::Post)) {
        let verdict = if post < pre {
            "after the activation did better"
        } else {
            "before the activation did better"
        };
        out.push_str(&format!(
            "BN placement (best test loss over the sweep): before the activation {}, after it {}: {verdict} in this run ({}x).\n",
            fmt_num(pre),
            fmt_num(post),
            fmt_num(pre.max(post) / pre.min(post)),
        ));
    }
    out
}

/// The learning rate `train_layers.png` shows by default: the largest at which no
/// configuration diverged (so every curve runs the whole way), else the smallest of the sweep.
pub fn default_diag_lr(report: &TrainReport) -> f64 {
    let lrs = &report.config.lrs;
    let all_ok = |lr: f64| report.runs.iter().all(|r| r.lr != lr || !r.diverged);
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
