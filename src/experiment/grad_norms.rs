//! `bn-lab grad-norms`: per-layer gradient magnitudes of freshly initialised networks, BN off
//! and on: one forward and one backward per configuration and seed.

use ndarray::Array2;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{
    Activation, ConfigError, Dtype, Loss, NormKind, Normaliser, at_most_values, between, distinct,
    finite_in, human_bytes,
};
use crate::data::{self, Stream};
use crate::experiment::{Cost, Experiment, Plan, Progress, ToolInfo, largest_alive, pass_macs};
use crate::experiment::{ExperimentArgs, Extra};
use crate::flags::{NetArgs, NormArgs, OutputArgs, Renames, count};
use crate::float::Float;
use crate::histogram::{self, Snapshot};
use crate::limits::MAX_DEPTH;
use crate::limits::{MAX_PANELS, MAX_SEEDS};
use crate::memory::Footprint;
use crate::model::{Mlp, Mode};
use crate::spec::{NetConfig, NetSpec, StdBlock};
use crate::stats::{self, Num, Special, fmt_num, nums};
use crate::theory;
use clap::Args;
use std::path::PathBuf;

/// `E[x^2]` of the inputs `grad-norms` feeds (`data::linear_teacher` draws `x ~ N(0, 1)`).
pub const INPUT_SECOND_MOMENT: f64 = 1.0;

/// A skip-connection arm of `grad-norms --skips`: a plain stack, `h_l = h_{l-1} + beta a_l`
/// wherever the shapes match (as `--residual`), or a standard block ([`StdBlock`]) with or
/// without SkipInit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Skips {
    /// No skip connections: a plain stack of blocks (also `plain`).
    #[value(alias = "plain")]
    #[serde(alias = "plain")]
    Off,
    /// Skip connections h_l = h_{l-1} + a_l (with --residual-scale beta: h_{l-1} + beta a_l),
    /// the one-layer block (also `residual`).
    #[value(alias = "residual")]
    #[serde(alias = "residual")]
    On,
    /// Standard post-activation blocks (--block basic).
    Basic,
    /// Standard pre-activation blocks (--block preact).
    Preact,
    /// Post-activation blocks with SkipInit (--block basic --skip-init).
    BasicSkipinit,
    /// Pre-activation blocks with SkipInit (--block preact --skip-init).
    PreactSkipinit,
}

impl Skips {
    /// The arm's architecture: `(residual, block, skip_init)` as [`NetConfig`] spells it.
    pub fn shape(self) -> Shape {
        let (residual, block, skip_init) = match self {
            Skips::Off => (false, None, false),
            Skips::On => (true, None, false),
            Skips::Basic => (false, Some(StdBlock::Basic), false),
            Skips::Preact => (false, Some(StdBlock::Preact), false),
            Skips::BasicSkipinit => (false, Some(StdBlock::Basic), true),
            Skips::PreactSkipinit => (false, Some(StdBlock::Preact), true),
        };
        Shape {
            residual,
            block,
            skip_init,
        }
    }
}

impl std::fmt::Display for Skips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Skips::Off => "off",
            Skips::On => "on",
            Skips::Basic => "basic",
            Skips::Preact => "preact",
            Skips::BasicSkipinit => "basic-skipinit",
            Skips::PreactSkipinit => "preact-skipinit",
        })
    }
}

/// The skip architecture of an arm: the one-layer skip (`residual`), or a standard block with
/// or without SkipInit, or neither (a plain stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub residual: bool,
    pub block: Option<StdBlock>,
    pub skip_init: bool,
}

impl Shape {
    /// Any skip connection (one-layer or a standard block).
    pub fn has_skip(self) -> bool {
        self.residual || self.block.is_some()
    }

    /// `skips`, `no skips`, `basic`, `preact`, `preact+SkipInit`, ...
    pub fn label(self) -> String {
        match self.block {
            Some(b) if self.skip_init => format!("{b}+SkipInit"),
            Some(b) => b.to_string(),
            None if self.residual => "skips".into(),
            None => "no skips".into(),
        }
    }
}

/// One configuration `grad-norms` measures: a depth, a normalisation, and a skip architecture.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Arm {
    pub depth: usize,
    pub norm: Normaliser,
    pub residual: bool,
    /// A standard block (for these `depth` counts blocks); `None`: one-layer blocks.
    pub block: Option<StdBlock>,
    pub skip_init: bool,
}

/// A validated `grad-norms` configuration (everything needed to reproduce the numbers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradNormsConfig {
    pub depths: Vec<usize>,
    pub act: Activation,
    /// The normalisation arms, BN off first by default.
    pub norms: Vec<Normaliser>,
    #[serde(flatten)]
    pub net: NetSpec,
    /// Seeds `seed .. seed + seeds` are run.
    pub seeds: usize,
    /// `--skips`: skip-connection arms compared within each (depth, normalisation), in the
    /// order given; empty (left out of the JSON): the one arm `residual` describes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skips: Vec<Skips>,
    /// Below this first/last ratio of weight-gradient norms the verdict is "vanishing".
    pub vanishing_below: f64,
    /// Above this ratio the verdict is "exploding".
    pub exploding_above: f64,
    /// A curve whose fitted per-layer factor lies outside `[1/f, f]` (and is not vanishing or
    /// exploding) is "growing" or "decaying" rather than "stable".
    #[serde(default = "default_steady_factor")]
    pub steady_factor: f64,
    /// A gradient (or a forward activation std) above this is "exploding" whatever the ratio.
    #[serde(default = "default_exploding_scale")]
    pub exploding_scale: f64,
    /// The loss whose gradient is measured (cross-entropy: the teacher's argmax as classes).
    #[serde(default)]
    pub loss: Loss,
    /// Per-layer histograms of `h_l` and `dL/dh_l` of each arm's first seed (`--histograms`);
    /// left out of the JSON when off, so reports without it read as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub histograms: bool,
    /// Also keep the first configuration's first seed as a [`SavedNet`] (`--save-net`); not
    /// part of the numbers, so not recorded.
    #[serde(skip)]
    pub save_net: bool,
}

/// The verdict thresholds of `grad-norms` (see the README).
pub const VANISHING_BELOW: f64 = 1e-2;
pub const EXPLODING_ABOVE: f64 = 1e2;
/// 5% per layer: 1.05^49 = 10.9 over a depth-50 net, steady growth that is not yet explosive.
pub const STEADY_FACTOR: f64 = 1.05;
pub const EXPLODING_SCALE: f64 = 1e10;

fn default_steady_factor() -> f64 {
    STEADY_FACTOR
}

fn default_exploding_scale() -> f64 {
    EXPLODING_SCALE
}

/// The numbers a verdict compares against (see the README).
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub vanishing_below: f64,
    pub exploding_above: f64,
    pub steady_factor: f64,
    pub exploding_scale: f64,
}

impl Thresholds {
    /// The defaults.
    pub const DEFAULT: Thresholds = Thresholds {
        vanishing_below: VANISHING_BELOW,
        exploding_above: EXPLODING_ABOVE,
        steady_factor: STEADY_FACTOR,
        exploding_scale: EXPLODING_SCALE,
    };
}

impl GradNormsConfig {
    /// The network of one configuration (a plain arm of `--skips` has no branch to scale).
    pub fn net(&self, arm: Arm) -> NetConfig {
        let mut net = self.net.net(arm.depth, self.act, arm.norm);
        net.residual = arm.residual;
        net.block = arm.block;
        net.skip_init = arm.skip_init;
        if !arm.residual && arm.block.is_none() {
            net.residual_scale = 1.0;
        }
        net
    }

    /// The skip architecture per skip arm: `skips`, else the one `net` describes.
    pub fn shapes(&self) -> Vec<Shape> {
        if self.skips.is_empty() {
            vec![Shape {
                residual: self.net.residual,
                block: self.net.block,
                skip_init: self.net.skip_init,
            }]
        } else {
            self.skips.iter().map(|&s| s.shape()).collect()
        }
    }

    /// With or without one-layer skip connections, per skip arm.
    pub fn residuals(&self) -> Vec<bool> {
        self.shapes().iter().map(|s| s.residual).collect()
    }

    /// Every configuration in run order: depths as given, norms as given within each, skip
    /// arms as given within each norm.
    pub fn arms(&self) -> Vec<Arm> {
        let shapes = self.shapes();
        let mut arms = Vec::new();
        for &depth in &self.depths {
            for &norm in &self.norms {
                for &shape in &shapes {
                    arms.push(Arm {
                        depth,
                        norm,
                        residual: shape.residual,
                        block: shape.block,
                        skip_init: shape.skip_init,
                    });
                }
            }
        }
        arms
    }

    pub fn seed_list(&self) -> Vec<u64> {
        self.net.seed_list(self.seeds)
    }

    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            vanishing_below: self.vanishing_below,
            exploding_above: self.exploding_above,
            steady_factor: self.steady_factor,
            exploding_scale: self.exploding_scale,
        }
    }

    /// Networks run side by side, one per thread of the current pool.
    pub fn parallel_runs(&self) -> usize {
        crate::parallel::side_by_side(self.arms().len().saturating_mul(self.seeds))
    }

    /// Every network [`run`] measures, in run order (each arm's seeds in turn): what `run`
    /// executes, [`Plan::work_units`] counts and [`Plan::footprint`] sizes.
    pub fn jobs(&self) -> Vec<GradNormsJob> {
        let seeds = self.seed_list();
        let bytes = self.net.dtype.bytes();
        let mut jobs = Vec::with_capacity(self.arms().len() * seeds.len());
        for (a, arm) in self.arms().into_iter().enumerate() {
            let net = self.net(arm);
            let memory = net.memory_estimate_bytes(self.net.batch, bytes);
            for &seed in &seeds {
                let histograms = self.histograms && seed == seeds[0];
                let hist_units = if histograms {
                    histogram::snapshot_units(arm.depth)
                } else {
                    0
                };
                jobs.push(GradNormsJob {
                    arm: a,
                    seed,
                    net: net.clone(),
                    save: self.save_net && jobs.is_empty(),
                    histograms,
                    units: (arm.depth as u64 + 1).saturating_add(hist_units),
                    bytes: memory,
                });
            }
        }
        jobs
    }
}

/// One network [`run`] measures: an arm (index into [`GradNormsConfig::arms`]) at one seed.
#[derive(Clone, Debug)]
pub struct GradNormsJob {
    pub arm: usize,
    pub seed: u64,
    pub net: NetConfig,
    /// Kept as the [`SavedNet`] (the first job, with `save_net`).
    pub save: bool,
    /// Histograms recorded (each arm's first seed, with `histograms`).
    pub histograms: bool,
    /// Progress units: one per layer (hidden and output) of the forward and backward, and the
    /// histograms' copied tails.
    pub units: u64,
    /// The network's memory estimate on the batch.
    pub bytes: f64,
}

impl Plan for GradNormsConfig {
    /// Check every network it will build, including its memory estimate with as many running
    /// at once as the current thread pool allows, before anything is allocated.
    fn validate(&self) -> Result<(), ConfigError> {
        distinct("depths", &self.depths)?;
        at_most_values("depths", MAX_PANELS, &self.depths)?;
        distinct("norms", &self.norms)?;
        between("seeds", 1, MAX_SEEDS, self.seeds)?;
        self.net
            .init
            .refuse_fixup("compares gradients at initialisation")?;
        if self.histograms {
            self.net
                .one_layer_blocks("--histograms reruns the layers above each one from its input")?;
            if self.shapes().iter().any(|s| s.block.is_some()) {
                return Err(ConfigError::Invalid {
                    field: "skips",
                    message: "basic and preact arms cannot go with --histograms, which reruns the layers above each one from its input".into(),
                });
            }
        }
        if !self.skips.is_empty() {
            distinct("skips", &self.skips)?;
            if self.net.residual || self.net.block.is_some() || self.net.skip_init {
                return Err(ConfigError::Invalid {
                    field: "skips",
                    message: "lists the skip-connection arms, so it replaces --residual, --block and --skip-init; give one of them".into(),
                });
            }
        }
        // A branch scale needs skip connections in some arm; each arm's net is checked below.
        let mut spec = self.net.clone();
        if !self.skips.is_empty() {
            spec.residual = self.shapes().iter().any(|s| s.has_skip());
        }
        spec.validate()?;
        finite_in("vanishing_below", "> 0", self.vanishing_below, |v| v > 0.0)?;
        finite_in(
            "exploding_above",
            "> vanishing_below",
            self.exploding_above,
            |v| v > self.vanishing_below,
        )?;
        finite_in("steady_factor", "> 1", self.steady_factor, |v| v > 1.0)?;
        finite_in("exploding_scale", "> 0", self.exploding_scale, |v| v > 0.0)?;
        if self.loss == Loss::Ce && self.net.d_out < 2 {
            return Err(ConfigError::Invalid {
                field: "loss",
                message: format!(
                    "ce needs d_out of at least 2 (a softmax over one output is always 1, so its gradient is 0); got d_out {}",
                    self.net.d_out
                ),
            });
        }
        for arm in self.arms() {
            self.net(arm).validate(self.net.batch)?;
        }
        Ok(())
    }

    /// As many networks as run side by side (each with its batch and targets, counted in its
    /// estimate), the largest first; per network and seed three numbers per layer and its
    /// summaries; with `save_net`, every parameter and gradient of the first network twice
    /// (values and JSON) and its batch; the figure.
    fn footprint(&self) -> Footprint {
        let bytes = self.net.dtype.bytes();
        let jobs = self.jobs();
        let alive = largest_alive(jobs.iter().map(|j| j.bytes));
        // Each network's batch is drawn in f64 with its linear teacher, then converted.
        let (b, d_in, d_out) = (
            self.net.batch as f64,
            self.net.d_in as f64,
            self.net.d_out as f64,
        );
        let batch_data = b * (d_in + d_out) * (8.0 + bytes as f64) + 8.0 * d_in * d_out;
        let layers: f64 = self.depths.iter().map(|&d| d as f64 + 8.0).sum();
        let arms_per_depth = (self.norms.len() * self.shapes().len()) as f64;
        let per_seed = arms_per_depth * 3.0 * layers;
        // The theory's profile, q and chi per layer of every arm.
        let theory = arms_per_depth * 3.0 * layers;
        let mut fp = Footprint::new()
            .add("networks", alive, &["depth", "width", "batch"])
            .add(
                "data",
                self.parallel_runs() as f64 * batch_data,
                &["batch", "d_in", "d_out"],
            )
            .records(self.seeds as f64 * per_seed + theory, &["seeds", "depth"])
            .figures();
        if let Some(saved) = jobs.iter().find(|j| j.save) {
            let params = 2.0 * saved.net.param_count();
            let batch = self.net.batch as f64 * (self.net.d_in + self.net.d_out) as f64;
            fp = fp.records(params + batch, &["width", "depth"]);
        }
        if self.histograms {
            // Per arm (its first seed's job), two histograms of each histogram layer; while one
            // is measured, the copied tail of its network (at most the network again) and
            // `dL/dh_l`.
            let hist_jobs: Vec<&GradNormsJob> = jobs.iter().filter(|j| j.histograms).collect();
            let hists = hist_jobs
                .iter()
                .map(|j| histogram::layers(j.net.depth).len() as f64 * 2.0 * 96.0)
                .sum::<f64>();
            let tails = largest_alive(hist_jobs.iter().map(|j| j.bytes));
            fp = fp
                .records(hists, &["depth"])
                .add("networks", tails, &["depth", "width", "batch"]);
        }
        fp
    }

    /// Every job with its units, one per layer (hidden and output) of its forward and backward
    /// pass (so deep configurations weigh in proportion), and its network's estimate.
    fn costs(&self) -> Vec<Cost> {
        self.jobs()
            .iter()
            .map(|j| Cost::new(j.units, j.bytes))
            .collect()
    }

    /// Per network, a forward and backward pass on the batch.
    fn macs(&self) -> f64 {
        let passes = crate::train::step_units(self.net.batch);
        self.jobs()
            .iter()
            .map(|j| {
                pass_macs(passes, &j.net, self.net.batch)
                    + subnormal_macs(&j.net, self.net.batch, self.net.dtype)
            })
            .sum()
    }
}

/// Layers of the same network's passes that a deep f32 sigmoid network without normalisation
/// costs extra: its vanishing gradients cross the subnormal floats (about 100 times slower per
/// operation) before they flush to zero. Measured on the reference machine (width and batch 256):
/// depth 50 takes 0.18 s, depth 60 1.0 s, depth 80 to 300 1.9 to 2.6 s.
const SUBNORMAL_LAYERS: f64 = 470.0;
/// The depth beyond which [`SUBNORMAL_LAYERS`] are counted (Xavier's sigmoid gradient shrinks
/// by about 4 per layer: below f32's smallest normal, 1e-38, after about 60 layers).
const SUBNORMAL_DEPTH: usize = 55;

/// The multiply-adds [`SUBNORMAL_LAYERS`] stand for in a forward and backward pass of `net` on
/// `batch` samples, when its gradients go subnormal (0 otherwise).
fn subnormal_macs(net: &NetConfig, batch: usize, dtype: Dtype) -> f64 {
    let saturating = net.act == Activation::Sigmoid && net.norm.is_none() && !net.residual;
    if !saturating || dtype != Dtype::F32 || net.depth <= SUBNORMAL_DEPTH {
        return 0.0;
    }
    let w = net.width as f64;
    SUBNORMAL_LAYERS * w * w * batch as f64 * crate::train::FORWARD_BACKWARD as f64
}

/// Per-layer measurements of one network at initialisation, input side first (layer 1 .. depth).
#[derive(Clone, Debug, Serialize)]
pub struct LayerValues {
    pub seed: u64,
    pub loss: Num,
    /// `||dL/dW_l||_F`.
    pub weight_grad_norm: Vec<Num>,
    /// `||dL/dh_l||_F`: the backprop signal reaching block l's output.
    pub activation_grad_norm: Vec<Num>,
    /// Standard deviation of `h_l` over batch and units.
    pub activation_std: Vec<Num>,
    /// Standard blocks only: std of the residual stream `h_l` for `l = 0..=depth` (`h_0` the
    /// stem's output, [`Mlp::stream`]); left out of the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_std: Option<Vec<Num>>,
    /// Standard blocks only: per block, `sqrt(||dL/dW1||^2 + ||dL/dW2||^2)` (the per-matrix
    /// norms are in `weight_grad_norm`: the stem, then W1, W2 of each block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_weight_grad_norm: Option<Vec<Num>>,
    /// SkipInit only: `|dL/dalpha_l|` per block, the one nonzero gradient of a branch at
    /// initialisation (alpha = 0 stops every gradient into the branch's matrices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_gain_grad: Option<Vec<Num>>,
}

/// Layers (1-based) where a quantity is 0, inf or NaN.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SpecialLayers {
    pub zero: Vec<usize>,
    pub inf: Vec<usize>,
    pub nan: Vec<usize>,
}

impl SpecialLayers {
    fn of(values: &[Num]) -> Self {
        let mut s = SpecialLayers::default();
        for (i, v) in values.iter().enumerate() {
            match stats::classify(v.0) {
                Some(Special::Zero) => s.zero.push(i + 1),
                Some(Special::Inf) => s.inf.push(i + 1),
                Some(Special::NaN) => s.nan.push(i + 1),
                None => {}
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.zero.is_empty() && self.inf.is_empty() && self.nan.is_empty()
    }
}

/// How a gradient curve behaves. Overflow to inf is evidence of exploding and underflow to 0 of
/// vanishing (both are results); NaN is no evidence either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trend {
    Vanishing,
    /// Steady decay, not yet vanishing: the per-layer factor is below `1 / steady_factor`.
    Decaying,
    Stable,
    /// Steady growth, not yet exploding: the per-layer factor is above `steady_factor`.
    Growing,
    Exploding,
    /// A layer is NaN in some seed and none is inf: the curve cannot be judged (the summary's
    /// `verdict_reason` says where, and whether the forward pass had overflowed already).
    Undetermined,
}

impl std::fmt::Display for Trend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trend::Vanishing => "vanishing",
            Trend::Decaying => "decaying",
            Trend::Stable => "stable",
            Trend::Growing => "growing",
            Trend::Exploding => "exploding",
            Trend::Undetermined => "undetermined",
        })
    }
}

/// How a per-layer gradient curve behaves from the output back to the input.
#[derive(Clone, Debug, Serialize)]
pub struct CurveSummary {
    /// Layer 1's value (geometric mean over seeds).
    pub first: Num,
    /// Layer `depth`'s value (geometric mean over seeds).
    pub last: Num,
    /// `first / last`.
    pub ratio: Num,
    /// `exp(-slope)` of a least-squares fit of `ln(value)` against the layer index, over finite
    /// positive values: the factor the gradient is multiplied by per layer it travels towards
    /// the input (< 1 vanishing, > 1 exploding). `null` with fewer than two usable layers.
    pub growth_per_layer: Option<Num>,
    pub verdict: Trend,
    /// The comparison that decided the verdict, e.g. `first/last ratio 3.2e-31 < 1e-2`.
    pub verdict_basis: String,
    /// Why the verdict is `undetermined` (`null` otherwise).
    pub verdict_reason: Option<String>,
    /// Layers where the value is 0 (underflow), inf or NaN in any seed.
    pub special: SpecialLayers,
}

impl CurveSummary {
    /// Summarise one curve per seed (`seeds[i]` is `per_seed[i]`'s seed). `forward_bad_from`:
    /// the first layer whose activation std is inf/NaN in some seed (the forward pass overflowed),
    /// named in an undetermined verdict's reason; `forward_max`: the largest finite activation
    /// std of any layer and seed, judged against `exploding_scale`.
    pub fn new(
        per_seed: &[&[Num]],
        seeds: &[u64],
        forward_bad_from: Option<usize>,
        forward_max: f64,
        t: Thresholds,
    ) -> Self {
        let depth = per_seed[0].len();
        let gmean: Vec<f64> = (0..depth)
            .map(|l| stats::geometric_mean(&per_seed.iter().map(|s| s[l].0).collect::<Vec<_>>()))
            .collect();
        let (first, last) = (gmean[0], gmean[depth - 1]);
        let ratio = first / last;
        let growth = stats::log_slope(&gmean).map(|s| Num((-s).exp()));
        let mut special = SpecialLayers::default();
        for s in per_seed {
            let sp = SpecialLayers::of(s);
            for (dst, src) in [
                (&mut special.zero, sp.zero),
                (&mut special.inf, sp.inf),
                (&mut special.nan, sp.nan),
            ] {
                dst.extend(src);
                dst.sort_unstable();
                dst.dedup();
            }
        }
        let (verdict, basis) = judge(
            &gmean,
            ratio,
            growth.map(|g| g.0),
            &special,
            forward_bad_from.is_some(),
            forward_max,
            t,
        );
        let verdict_reason = (verdict == Trend::Undetermined).then(|| {
            let nan_seeds: Vec<String> = per_seed
                .iter()
                .zip(seeds)
                .filter(|(v, _)| v.iter().any(|x| x.0.is_nan()))
                .map(|(_, s)| s.to_string())
                .collect();
            let nan = (!special.nan.is_empty()).then(|| {
                format!(
                    "NaN at layers {} in seed(s) {}",
                    fmt_layers(&special.nan),
                    nan_seeds.join(", ")
                )
            });
            match forward_bad_from {
                Some(l) => {
                    let mut seen: Vec<String> = nan.into_iter().collect();
                    if !special.zero.is_empty() {
                        seen.push(format!("0 at layers {}", fmt_layers(&special.zero)));
                    }
                    let seen = if seen.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", seen.join(", "))
                    };
                    format!(
                        "the forward pass overflowed (activation std inf/NaN from layer {l}), so the gradients{seen} are no evidence either way, and no layer overflowed to inf"
                    )
                }
                None => format!(
                    "{} is no evidence either way, and no layer overflowed to inf",
                    nan.unwrap_or_else(|| format!("the ratio {}", fmt_num(ratio)))
                ),
            }
        });
        CurveSummary {
            first: Num(first),
            last: Num(last),
            ratio: Num(ratio),
            growth_per_layer: growth,
            verdict,
            verdict_basis: basis,
            verdict_reason,
            special,
        }
    }
}

/// Results of one (depth, BN on/off, skips) configuration over all seeds.
#[derive(Clone, Debug, Serialize)]
pub struct ArmResult {
    /// Short label for legends and tables, e.g. `depth 50, BN on` or `BN on, skips`.
    pub label: String,
    pub depth: usize,
    pub norm: Normaliser,
    /// Skip connections `h_l = h_{l-1} + beta a_l` (as `net.residual`; here so an experiment
    /// file can pick the arm: `arms[residual=true]`).
    pub residual: bool,
    /// The standard block (as `net.block`); left out when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<StdBlock>,
    /// SkipInit (as `net.skip_init`); left out when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip_init: bool,
    pub net: NetConfig,
    pub seeds: Vec<LayerValues>,
    /// Summary of `weight_grad_norm` (the verdict the table shows).
    pub weight_grad: CurveSummary,
    /// Summary of `activation_grad_norm`.
    pub activation_grad: CurveSummary,
    /// The measured rate of `||dL/dh_l||^2`: `exp(-slope)` of `ln ||dL/dh_l||^2` against `l`
    /// over the hidden layers (the square of `activation_grad.growth_per_layer`), to compare
    /// with `theory.rate`.
    pub measured_rate: Option<Num>,
    /// The mean-field prediction for this network at infinite width (`null` where no theory
    /// applies: `theory_note` says why).
    pub theory: Option<theory::Prediction>,
    pub theory_note: Option<String>,
    /// Standard blocks only (left out otherwise): the residual stream at initialisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamSummary>,
    /// With `histograms`: the first seed's per-layer histograms at initialisation (the layers
    /// of [`histogram::layers`]); left out of the JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histograms: Option<Snapshot>,
}

/// The residual stream of a standard-block arm at initialisation, measured beside its
/// prediction ([`theory::preact_stream`]).
#[derive(Clone, Debug, Serialize)]
pub struct StreamSummary {
    /// `std(h_l)`, `l = 0..=depth`, geometric mean over seeds.
    pub std: Vec<Num>,
    /// `Var(h_depth) / Var(h_0)` (geometric mean over seeds of each seed's ratio).
    pub var_ratio: Num,
    /// The predicted `std(h_l)`, anchored at the measured `std(h_0)`; `null` without a theory
    /// (`note` says why).
    pub predicted_std: Option<Vec<Num>>,
    /// The predicted `Var(h_depth) / Var(h_0)`.
    pub predicted_var_ratio: Option<Num>,
    /// `var_ratio / predicted_var_ratio - 1`.
    pub off_by: Option<Num>,
    pub note: Option<String>,
    /// The branch's share at the top, `sqrt(Var(h_L) - Var(h_(L-1))) / std(h_(L-1))` measured
    /// (geometric mean over seeds of the per-seed value): about `1/sqrt(L)` with a normaliser
    /// (De & Smith's down-weighting), 1 without one (He init, ReLU), 0 with SkipInit.
    pub branch_share_last: Num,
}

impl StreamSummary {
    /// From the per-seed stream stds of one arm of `net`.
    pub fn new(net: &NetConfig, per_seed: &[&[Num]]) -> Self {
        let depth = per_seed[0].len() - 1;
        let std: Vec<f64> = (0..=depth)
            .map(|l| stats::geometric_mean(&per_seed.iter().map(|s| s[l].0).collect::<Vec<_>>()))
            .collect();
        let ratio_of = |s: &[Num]| (s[depth].0 / s[0].0).powi(2);
        let var_ratio =
            stats::geometric_mean(&per_seed.iter().map(|s| ratio_of(s)).collect::<Vec<_>>());
        let share = |s: &[Num]| {
            let (top, below) = (s[depth].0.powi(2), s[depth - 1].0.powi(2));
            (top - below).max(0.0).sqrt() / below.sqrt()
        };
        let branch_share_last =
            stats::geometric_mean(&per_seed.iter().map(|s| share(s)).collect::<Vec<_>>());
        let (predicted, note) = match theory::preact_stream(net, std[0] * std[0]) {
            Ok(q) => (Some(q), None),
            Err(why) => (None, Some(why)),
        };
        let predicted_var_ratio = predicted.as_ref().map(|q| q[depth] / q[0]);
        StreamSummary {
            std: nums(&std),
            var_ratio: Num(var_ratio),
            predicted_std: predicted.map(|q| q.iter().map(|v| Num(v.sqrt())).collect()),
            predicted_var_ratio: predicted_var_ratio.map(Num),
            off_by: predicted_var_ratio.map(|p| Num(var_ratio / p - 1.0)),
            note,
            branch_share_last: Num(branch_share_last),
        }
    }
}

/// Everything `grad-norms` computed; written to `grad_norms.json` and drawn in `grad_norms.png`.
#[derive(Clone, Debug, Serialize)]
pub struct GradNormsReport {
    pub tool: ToolInfo,
    pub config: GradNormsConfig,
    pub arms: Vec<ArmResult>,
    /// With `save_net`: the first configuration's first seed.
    #[serde(skip)]
    pub saved_net: Option<SavedNet>,
}

/// A saved network: the batch, targets, every parameter and its gradient (see the README).
#[derive(Clone, Debug, Serialize)]
pub struct SavedNet {
    pub format: &'static str,
    pub tool: ToolInfo,
    pub dtype: Dtype,
    pub seed: u64,
    pub config: NetConfig,
    /// Each hidden block's normalisation layer as PyTorch builds it, e.g.
    /// `nn.LayerNorm(256, eps=1e-5, elementwise_affine=True)`; `null` without one.
    pub torch_norm: Option<String>,
    pub mode: Mode,
    /// The loss function: `mse` (`1/(2B) sum (o - y)^2`) or `ce` (mean softmax cross-entropy
    /// against the one-hot rows of `y`; PyTorch's `F.cross_entropy(o, y)`).
    pub loss_fn: Loss,
    /// Its value on this batch.
    pub loss: Num,
    pub x: SavedTensor,
    pub y: SavedTensor,
    pub params: Vec<SavedParam>,
}

/// A tensor as its shape and its values in row-major order.
#[derive(Clone, Debug, Serialize)]
pub struct SavedTensor {
    pub shape: Vec<usize>,
    pub data: Vec<Num>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SavedParam {
    pub name: String,
    pub shape: Vec<usize>,
    pub value: Vec<Num>,
    pub grad: Vec<Num>,
}

fn to_nums<T: Float>(it: impl Iterator<Item = T>) -> Vec<Num> {
    it.map(|v| Num(v.f64())).collect()
}

fn tensor<T: Float>(a: &Array2<T>) -> SavedTensor {
    SavedTensor {
        shape: a.shape().to_vec(),
        data: to_nums(a.iter().copied()),
    }
}

/// The PyTorch module of `net`'s normalisation layer (applied to `width` features), with the
/// constants bn-lab uses: `nn.BatchNorm1d(width, eps=.., momentum=.., affine=..)` or
/// `nn.LayerNorm(width, eps=.., elementwise_affine=..)`; `None` without one.
///
/// ```
/// use bn_lab::config::{NormConfig, NormKind};
/// use bn_lab::experiment::grad_norms::torch_norm;
/// let mut net = bn_lab::spec::NetSpec {
///     width: 64, batch: 8, d_in: 64, d_out: 1, init: bn_lab::config::Init::He,
///     residual: false, residual_scale: 1.0, block: None, skip_init: false, eps: 1e-5,
///     momentum: 0.1, seed: 0,
///     dtype: bn_lab::config::Dtype::F32,
/// }
/// .net(3, bn_lab::config::Activation::Relu, bn_lab::config::Normaliser::LN);
/// assert_eq!(torch_norm(&net).unwrap(), "nn.LayerNorm(64, eps=1e-5, elementwise_affine=True)");
/// net.norm = None;
/// assert_eq!(torch_norm(&net), None);
/// ```
pub fn torch_norm(net: &NetConfig) -> Option<String> {
    let py_bool = |b: bool| if b { "True" } else { "False" };
    net.norm.map(|bn| match bn.kind {
        NormKind::Batch => format!(
            "nn.BatchNorm1d({}, eps={:e}, momentum={}, affine={})",
            net.width,
            bn.eps,
            bn.momentum,
            py_bool(bn.affine)
        ),
        NormKind::Layer => format!(
            "nn.LayerNorm({}, eps={:e}, elementwise_affine={})",
            net.width,
            bn.eps,
            py_bool(bn.affine)
        ),
    })
}

/// One forward and backward of a fresh network of `net` on the linear-teacher batch of `seed`
/// ([`data::teacher_batch`] for `loss_fn`).
pub fn measure<T: Float>(
    net_cfg: &NetConfig,
    batch: usize,
    seed: u64,
    loss_fn: Loss,
    save: bool,
) -> (LayerValues, Option<SavedNet>) {
    let (values, saved, _) = measure_with::<T>(net_cfg, batch, seed, loss_fn, save, false);
    (values, saved)
}

/// [`measure`], with the per-layer histograms of [`histogram::layers`] when `histograms`
/// (taken after the forward, before the backward).
pub fn measure_with<T: Float>(
    net_cfg: &NetConfig,
    batch: usize,
    seed: u64,
    loss_fn: Loss,
    save: bool,
    histograms: bool,
) -> (LayerValues, Option<SavedNet>, Option<Snapshot>) {
    let data = data::teacher_batch::<T>(loss_fn, seed, batch, net_cfg.d_in, net_cfg.d_out);
    let mut net = Mlp::<T>::new(net_cfg, &mut data::rng(seed, Stream::Weights));
    let mut d_o = Array2::zeros((batch, net_cfg.d_out));
    let loss = {
        let o = net
            .forward(data.x.view(), Mode::Train)
            .expect("data is drawn with the config's shapes");
        loss_fn.loss_and_grad(o, data.y.view(), d_o.view_mut())
    };
    let snapshot = histograms
        .then(|| histogram::snapshot(&net, d_o.view(), &histogram::layers(net.depth()), 0, loss));
    net.backward(d_o.view()).expect("forward ran just before");
    let blocks = net_cfg.block.is_some();
    let values = LayerValues {
        seed,
        loss: Num(loss),
        weight_grad_norm: net
            .blocks
            .iter()
            .map(|b| Num(stats::frobenius_norm(&b.linear.dw)))
            .collect(),
        activation_grad_norm: nums(&net.grad_signal_norm),
        activation_std: (1..=net.depth())
            .map(|l| Num(stats::std_dev(&net.hidden(l))))
            .collect(),
        stream_std: blocks.then(|| {
            (0..=net.depth())
                .map(|l| Num(stats::std_dev(&net.stream(l))))
                .collect()
        }),
        block_weight_grad_norm: blocks.then(|| {
            net.units
                .iter()
                .map(|u| {
                    let sq = |b: usize| stats::frobenius_norm(&net.blocks[b].linear.dw).powi(2);
                    Num((sq(u.first) + sq(u.first + 1)).sqrt())
                })
                .collect()
        }),
        skip_gain_grad: net_cfg.skip_init.then(|| {
            net.units
                .iter()
                .map(|u| {
                    Num(u
                        .gain
                        .as_ref()
                        .map_or(f64::NAN, |g| g.dalpha[0].f64().abs()))
                })
                .collect()
        }),
    };
    let saved = save.then(|| SavedNet {
        format: "bn-lab-net-v1",
        tool: ToolInfo::current(),
        dtype: if T::NAME == "f32" {
            Dtype::F32
        } else {
            Dtype::F64
        },
        seed,
        config: net_cfg.clone(),
        torch_norm: torch_norm(net_cfg),
        mode: Mode::Train,
        loss_fn,
        loss: Num(loss),
        x: tensor(&data.x),
        y: tensor(&data.y),
        params: net
            .params_mut()
            .into_iter()
            .map(|p| SavedParam {
                name: p.id.to_string(),
                shape: p.value.shape().to_vec(),
                value: to_nums(p.value.iter().copied()),
                grad: to_nums(p.grad.iter().copied()),
            })
            .collect(),
    });
    (values, saved, snapshot)
}

/// Run every configuration and seed (in parallel on rayon's pool). With `cfg.save_net`, also
/// keep the first configuration's first seed as a [`SavedNet`]; `progress` is told of
/// [`Plan::work_units`] in all.
pub fn run(cfg: &GradNormsConfig, progress: Progress) -> GradNormsReport {
    let arms = cfg.arms();
    let seeds = cfg.seed_list();
    let mut results: Vec<(LayerValues, Option<SavedNet>, Option<Snapshot>)> = cfg
        .jobs()
        .par_iter()
        .map(|job| {
            // Told of nothing first: a cancelled run (`bn-lab serve`'s client left) stops here,
            // before the job's work, instead of finishing every job still queued on the pool.
            progress.units(0);
            let (net, seed, save, hist) = (&job.net, job.seed, job.save, job.histograms);
            let (b, loss) = (cfg.net.batch, cfg.loss);
            let result = match cfg.net.dtype {
                Dtype::F32 => measure_with::<f32>(net, b, seed, loss, save, hist),
                Dtype::F64 => measure_with::<f64>(net, b, seed, loss, save, hist),
            };
            progress.units(job.units);
            result
        })
        .collect();
    let saved = results.first_mut().and_then(|r| r.1.take());
    let mut values = results.into_iter().map(|r| (r.0, r.2));
    let arm_results = arms
        .iter()
        .map(|&arm| {
            let (per_seed, mut snapshots): (Vec<LayerValues>, Vec<Option<Snapshot>>) =
                values.by_ref().take(seeds.len()).unzip();
            let w: Vec<&[Num]> = per_seed.iter().map(|s| &s.weight_grad_norm[..]).collect();
            let g: Vec<&[Num]> = per_seed
                .iter()
                .map(|s| &s.activation_grad_norm[..])
                .collect();
            let seed_ids: Vec<u64> = per_seed.iter().map(|s| s.seed).collect();
            let forward_bad_from = per_seed
                .iter()
                .filter_map(|s| s.activation_std.iter().position(|v| !v.0.is_finite()))
                .min()
                .map(|i| i + 1);
            let forward_max = per_seed
                .iter()
                .flat_map(|s| s.activation_std.iter().map(|v| v.0))
                .filter(|v| v.is_finite())
                .fold(f64::NAN, f64::max);
            let summary = |curve: &[&[Num]]| {
                CurveSummary::new(
                    curve,
                    &seed_ids,
                    forward_bad_from,
                    forward_max,
                    cfg.thresholds(),
                )
            };
            let net = cfg.net(arm);
            let (prediction, theory_note) =
                match theory::predict(&net, cfg.net.batch, INPUT_SECOND_MOMENT) {
                    Ok(p) => (Some(p), None),
                    Err(why) => (None, Some(why)),
                };
            let activation_grad = summary(&g);
            let stream = arm.block.map(|_| {
                let s: Vec<&[Num]> = per_seed
                    .iter()
                    .filter_map(|s| s.stream_std.as_deref())
                    .collect();
                StreamSummary::new(&net, &s)
            });
            ArmResult {
                label: arm_label(cfg, arm),
                depth: arm.depth,
                norm: arm.norm,
                residual: arm.residual,
                block: arm.block,
                skip_init: arm.skip_init,
                weight_grad: weight_summary(summary(&w), arm.skip_init),
                stream,
                net,
                measured_rate: activation_grad.growth_per_layer.map(|g| Num(g.0 * g.0)),
                activation_grad,
                theory: prediction,
                theory_note,
                seeds: per_seed,
                histograms: snapshots.first_mut().and_then(Option::take),
            }
        })
        .collect();
    GradNormsReport {
        tool: ToolInfo::current(),
        config: cfg.clone(),
        arms: arm_results,
        saved_net: saved,
    }
}

/// The weight-gradient summary, except that with SkipInit (alpha = 0 at initialisation) every
/// branch matrix's gradient is exactly 0 by construction: not an underflow and no evidence of
/// vanishing or exploding, so the verdict is `undetermined` and says why.
fn weight_summary(mut c: CurveSummary, skip_init: bool) -> CurveSummary {
    if skip_init {
        c.verdict = Trend::Undetermined;
        c.verdict_basis = "SkipInit: alpha = 0".into();
        c.verdict_reason = Some(SKIP_INIT_REASON.into());
    }
    c
}

/// Why a SkipInit arm's weight gradients are not judged.
pub const SKIP_INIT_REASON: &str = "SkipInit's alpha is 0 at initialisation, so every branch matrix gets a gradient of exactly 0 (by construction, not an underflow) until alpha moves; only the stem and each alpha (skip_gain_grad) have one, and the stream signal |dL/dh_l| is judged instead";

/// What sets an arm apart from the others: its depth (with several), its normalisation, and
/// `skips` or `no skips` (with both skip arms), e.g. `depth 50, BN on, skips`.
fn arm_label(cfg: &GradNormsConfig, arm: Arm) -> String {
    let mut parts = Vec::new();
    if cfg.depths.len() > 1 {
        parts.push(format!("depth {}", arm.depth));
    }
    parts.push(arm.norm.label().to_string());
    if cfg.skips.len() > 1 {
        parts.push(
            Shape {
                residual: arm.residual,
                block: arm.block,
                skip_init: arm.skip_init,
            }
            .label(),
        );
    }
    parts.join(", ")
}

/// A title line describing the shared settings, e.g. `sigmoid, xavier init, width 256, batch 256, f32`.
pub fn title(cfg: &GradNormsConfig) -> String {
    let depths = cfg
        .depths
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" & ");
    let mut s = format!(
        "depth {depths}, {} , {} init, width {}, batch {}, {}",
        cfg.act,
        cfg.net.init.resolve(cfg.act),
        cfg.net.width,
        cfg.net.batch,
        cfg.net.dtype
    )
    .replace(" ,", ",");
    if cfg.skips.len() > 1 {
        let scale = if cfg.net.residual_scale == 1.0 {
            String::new()
        } else {
            format!(
                " (branch x {})",
                crate::stats::Short(cfg.net.residual_scale)
            )
        };
        let list: Vec<String> = cfg.skips.iter().map(Skips::to_string).collect();
        s.push_str(&format!(", skips {}{scale}", list.join(" vs ")));
    } else if let Some(b) = cfg.net.block {
        let skip_init = if cfg.net.skip_init { "+SkipInit" } else { "" };
        s.push_str(&format!(", {b}{skip_init} blocks"));
    } else if let Some(r) = crate::spec::residual_label(cfg.residuals()[0], cfg.net.residual_scale)
    {
        s.push_str(&format!(", {r}"));
    }
    if cfg.seeds > 1 {
        s.push_str(&format!(", {} seeds from {}", cfg.seeds, cfg.net.seed));
    } else {
        s.push_str(&format!(", seed {}", cfg.net.seed));
    }
    s
}

/// The verdict on a curve (`values`: the geometric mean per layer) and the comparison that
/// decided it, by the first rule that applies: overflow is evidence of exploding, underflow of
/// vanishing; NaN is evidence of neither, and nor is anything computed after the forward pass
/// overflowed (a 0 there is ReLU of NaN, say); then the absolute scale, the first/last ratio
/// and the per-layer `factor`, in that order.
fn judge(
    values: &[f64],
    ratio: f64,
    factor: Option<f64>,
    special: &SpecialLayers,
    forward_overflowed: bool,
    forward_max: f64,
    t: Thresholds,
) -> (Trend, String) {
    let largest = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f64::NAN, f64::max);
    if !special.inf.is_empty() {
        (
            Trend::Exploding,
            format!("overflow to inf at layers {}", fmt_layers(&special.inf)),
        )
    } else if !special.nan.is_empty() || ratio.is_nan() || forward_overflowed {
        (Trend::Undetermined, "no evidence either way".to_string())
    } else if largest > t.exploding_scale {
        (
            Trend::Exploding,
            format!(
                "largest value {} > {} (absolute scale)",
                fmt_num(largest),
                short(t.exploding_scale)
            ),
        )
    } else if forward_max > t.exploding_scale {
        (
            Trend::Exploding,
            format!(
                "forward activation std {} > {} (absolute scale)",
                fmt_num(forward_max),
                short(t.exploding_scale)
            ),
        )
    } else if ratio > t.exploding_above {
        (
            Trend::Exploding,
            format!(
                "first/last ratio {} > {}",
                fmt_num(ratio),
                short(t.exploding_above)
            ),
        )
    } else if !special.zero.is_empty() {
        (
            Trend::Vanishing,
            format!("underflow to 0 at layers {}", fmt_layers(&special.zero)),
        )
    } else if ratio < t.vanishing_below {
        (
            Trend::Vanishing,
            format!(
                "first/last ratio {} < {}",
                fmt_num(ratio),
                short(t.vanishing_below)
            ),
        )
    } else {
        match factor {
            Some(f) if f > t.steady_factor => (
                Trend::Growing,
                format!("x{} per layer > x{}", fmt_num(f), short(t.steady_factor)),
            ),
            Some(f) if f < 1.0 / t.steady_factor => (
                Trend::Decaying,
                format!("x{} per layer < x{:.3}", fmt_num(f), 1.0 / t.steady_factor),
            ),
            _ => (
                Trend::Stable,
                format!(
                    "first/last ratio {} and x{} per layer",
                    fmt_num(ratio),
                    factor.map_or("-".to_string(), fmt_num)
                ),
            ),
        }
    }
}

/// A threshold as a user would write it: `0.01`, `100`, `1.05`, `1e10`.
fn short(v: f64) -> String {
    if v != 0.0 && !(1e-3..1e4).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// Layers as runs: 3,4,5,9 -> 3-5,9.
fn fmt_layers(v: &[usize]) -> String {
    stats::fmt_ranges(v)
}

/// The stdout table.
pub fn table(report: &GradNormsReport) -> String {
    let cfg = &report.config;
    let mut out = format!("grad-norms: {}\n", title(cfg));
    let label_w = report
        .arms
        .iter()
        .map(|a| a.label.len())
        .max()
        .unwrap_or(6)
        .max(6);
    // Wide enough for "undetermined" when a curve is.
    let vw = report
        .arms
        .iter()
        .flat_map(|a| [a.weight_grad.verdict, a.activation_grad.verdict])
        .map(|v| v.to_string().len())
        .max()
        .unwrap_or(9)
        .max(9);
    out.push_str(&format!(
        "{:<label_w$}  {:>10}  {:>10}  {:>10}  {:>12}  {:<vw$}  {:>12}  {:<vw$}\n",
        "config", "|dW_1|", "|dW_L|", "ratio", "growth/layer", "verdict", "signal ratio", "signal"
    ));
    let mut notes = Vec::new();
    for a in &report.arms {
        let w = &a.weight_grad;
        out.push_str(&format!(
            "{:<label_w$}  {:>10}  {:>10}  {:>10}  {:>12}  {:<vw$}  {:>12}  {:<vw$}\n",
            a.label,
            fmt_num(w.first.0),
            fmt_num(w.last.0),
            fmt_num(w.ratio.0),
            w.growth_per_layer.map_or("-".to_string(), |g| fmt_num(g.0)),
            w.verdict.to_string(),
            fmt_num(a.activation_grad.ratio.0),
            a.activation_grad.verdict.to_string(),
        ));
        for (what, c) in [("|dW_l|", w), ("|dL/dh_l|", &a.activation_grad)] {
            match &c.verdict_reason {
                Some(reason) => {
                    notes.push(format!("  {}: {what} is undetermined: {reason}", a.label))
                }
                None => notes.push(format!(
                    "  {}: {what} is {}: {}",
                    a.label, c.verdict, c.verdict_basis
                )),
            }
        }
        for (what, sp) in [
            ("|dW_l|", &w.special),
            ("|dL/dh_l|", &a.activation_grad.special),
        ] {
            let zero = if a.skip_init && what == "|dW_l|" {
                "exactly 0 (alpha = 0, not an underflow)"
            } else {
                "0 (underflow)"
            };
            for (kind, layers) in [
                (zero, &sp.zero),
                ("inf (overflow)", &sp.inf),
                ("NaN", &sp.nan),
            ] {
                if !layers.is_empty() {
                    notes.push(format!(
                        "  {}: {what} is {kind} at layers {}",
                        a.label,
                        fmt_layers(layers)
                    ));
                }
            }
        }
    }
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    out.push_str(&format!(
        "ratio = layer 1 / layer L (L = depth); growth/layer = factor per layer towards the input (least-squares fit over the layers\n\
         whose value is finite and > 0: layers listed above as 0, inf or NaN are left out of it);\n\
         verdict, the first rule that applies: exploding if a layer overflows to inf; undetermined if a layer is NaN or the\n\
         forward pass overflowed (no evidence); exploding if any layer's value or forward activation std is above {} (absolute\n\
         scale) or ratio > {}; vanishing if a layer underflows to 0 or ratio < {}; growing if growth/layer > {}, decaying if\n\
         it is < {:.3}; else stable. signal = the backprop signal |dL/dh_l|, judged the same way.\n",
        short(cfg.exploding_scale),
        short(cfg.exploding_above),
        short(cfg.vanishing_below),
        short(cfg.steady_factor),
        1.0 / cfg.steady_factor
    ));
    if report.arms.iter().any(|a| a.block.is_some()) {
        out.push_str(
            "standard blocks: |dW_l| is per MATRIX (1 = the stem, then W1, W2 of each block: 1 + 2 x depth; L = the last W2);\n\
             |dL/dh_l| is per BLOCK (the residual stream after block l); the JSON also keeps per block\n\
             sqrt(|dW1|^2 + |dW2|^2) (block_weight_grad_norm) and, with SkipInit, |dL/dalpha_l| (skip_gain_grad).\n",
        );
        out.push_str(&stream_table(report, label_w));
    }
    out.push_str(&theory_table(report, label_w));
    out
}

/// The residual stream's variance at initialisation per standard-block arm, measured beside
/// [`theory::preact_stream`]'s prediction, and the SkipInit arms' `|dL/dalpha_l|`.
fn stream_table(report: &GradNormsReport, label_w: usize) -> String {
    let mut out = format!(
        "\nresidual stream at initialisation, per block: Var(h_L) / Var(h_0) measured vs predicted (De & Smith 2020)\n{:<label_w$}  {:>10}  {:>10}  {:>10}  {:>9}  {:>12}  prediction\n",
        "config", "std(h_0)", "measured", "predicted", "off by", "branch share"
    );
    for a in &report.arms {
        let Some(st) = &a.stream else { continue };
        let (pred, off, how) = match (st.predicted_var_ratio, st.off_by) {
            (Some(p), Some(o)) => (
                fmt_num(p.0),
                format!("{:+.1}%", 100.0 * o.0),
                stream_rule(&a.net),
            ),
            _ => (
                "-".into(),
                "-".into(),
                format!("none: {}", st.note.as_deref().unwrap_or("")),
            ),
        };
        out.push_str(&format!(
            "{:<label_w$}  {:>10}  {:>10}  {pred:>10}  {off:>9}  {:>12}  {how}\n",
            a.label,
            fmt_num(st.std[0].0),
            fmt_num(st.var_ratio.0),
            fmt_num(st.branch_share_last.0),
        ));
    }
    for a in report.arms.iter().filter(|a| a.skip_init) {
        let g: Vec<f64> = a
            .seeds
            .iter()
            .filter_map(|s| s.skip_gain_grad.as_ref())
            .flatten()
            .map(|v| v.0)
            .collect();
        out.push_str(&format!(
            "  {}: |dL/dalpha_l| over blocks and seeds from {} to {} (the branches' only gradient at initialisation)\n",
            a.label,
            fmt_num(g.iter().copied().fold(f64::INFINITY, f64::min)),
            fmt_num(g.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        ));
    }
    out.push_str(
        "measured = geometric mean over seeds of (std(h_L) / std(h_0))^2, h_0 = the stem's output; predicted = the infinite-width\n\
         recursion Var(h_(l+1)) = Var(h_l) + s^2 Var(branch) from the measured Var(h_0) (De & Smith 2020, arXiv 2002.10444, p. 2);\n\
         branch share = sqrt(Var(h_L) - Var(h_(L-1))) / std(h_(L-1)): the last branch's size beside the skip path (about 1/sqrt(L)\n\
         normalised, 1 unnormalised with ReLU and He init, 0 with SkipInit).\n",
    );
    out
}

/// The form the stream prediction takes for `net`, for the table.
fn stream_rule(net: &NetConfig) -> String {
    if net.skip_init {
        "constant: alpha = 0 (SkipInit)".into()
    } else if net.norm.is_some() {
        "linear: + Var(branch) per block".into()
    } else {
        "geometric: x (1 + Var(branch)/Var(h_l)) per block".into()
    }
}

/// A short name of a prediction's theory for the table: `lambda(B=256), Yang et al. 2019`.
pub fn theory_label(p: &theory::Prediction) -> String {
    match p.batch {
        Some(b) => format!("BN mean field: lambda(B={b}) (Yang et al. 2019)"),
        None if p.source == theory::SOURCE_LN => {
            "LN mean field: E[phi'^2] / E[phi^2] (derived in the README)".into()
        }
        None => "variance map, prod of chi^l (Poole et al. 2016; Schoenholz et al. 2017)".into(),
    }
}

/// The measured rate of `||dL/dh_l||^2` beside the mean-field prediction, one line per arm.
fn theory_table(report: &GradNormsReport, label_w: usize) -> String {
    let mut out = format!(
        "\nbackprop signal |dL/dh_l|^2: factor per layer towards the input, measured vs infinite-width theory\n{:<label_w$}  {:>10}  {:>10}  {:>9}  theory\n",
        "config", "measured", "predicted", "off by"
    );
    for a in &report.arms {
        let measured = a
            .measured_rate
            .map_or("-".to_string(), |m| stats::fmt_rate(m.0));
        match &a.theory {
            Some(p) => {
                let off = a.measured_rate.map_or("-".to_string(), |m| {
                    format!("{:+.1}%", 100.0 * (m.0 / p.rate.0 - 1.0))
                });
                out.push_str(&format!(
                    "{:<label_w$}  {measured:>10}  {:>10}  {off:>9}  {}\n",
                    a.label,
                    stats::fmt_rate(p.rate.0),
                    theory_label(p)
                ));
            }
            None => out.push_str(&format!(
                "{:<label_w$}  {measured:>10}  {:>10}  {:>9}  none: {}\n",
                a.label,
                "-",
                "-",
                a.theory_note.as_deref().unwrap_or("")
            )),
        }
    }
    out.push_str(
        "measured = exp(-slope) of ln |dL/dh_l|^2 against l over the hidden layers (the signal's growth/layer squared);\n\
         predicted = the same fit of the mean-field profile at infinite width; off by = measured / predicted - 1.\n",
    );
    out
}

/// `bn-lab grad-norms`.
pub struct GradNorms;

/// Networks whose estimate is at least this large get it printed under the table.
const SHOW_MEMORY_FROM: f64 = 64.0 * 1024.0 * 1024.0;

/// What the summary's memory line says: the largest network's estimated bytes and how many
/// networks run at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryNote {
    pub largest_bytes: f64,
    pub parallel_runs: usize,
}

/// The [`MemoryNote`] of a config; `None` when its largest network needs less than 64 MiB
/// (the summary says nothing then).
pub fn memory_note(cfg: &GradNormsConfig) -> Option<MemoryNote> {
    let jobs = cfg.jobs();
    let largest = jobs.iter().map(|j| j.bytes).fold(0.0, f64::max);
    (largest >= SHOW_MEMORY_FROM).then(|| MemoryNote {
        largest_bytes: largest,
        parallel_runs: crate::parallel::side_by_side(jobs.len()),
    })
}

impl Experiment for GradNorms {
    type Config = GradNormsConfig;
    type Report = GradNormsReport;
    const NAME: &'static str = "grad-norms";
    const STEM: &'static str = "grad_norms";

    fn run(cfg: &GradNormsConfig, progress: Progress) -> GradNormsReport {
        run(cfg, progress)
    }

    fn summary(report: &GradNormsReport) -> String {
        let mut text = table(report);
        if let Some(m) = memory_note(&report.config) {
            text.push_str(&format!(
                "memory: the largest network needs about {} (parameters, gradients, cached activations); up to {} run at once\n",
                human_bytes(m.largest_bytes),
                m.parallel_runs
            ));
        }
        text
    }
}

// The command line: the flags of `bn-lab grad-norms` and the config they describe.

/// Per-layer gradient norms of freshly initialised networks, BatchNorm off and on
/// (one forward + one backward each). Writes grad_norms.png and grad_norms.json.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct GradNormsArgs {
    /// Number of hidden layers; several, comma-separated, compare depths (e.g. 3,50).
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, value_delimiter = ',', default_value = "50")]
    pub depth: Vec<usize>,
    #[command(flatten)]
    pub arms: NormArgs,
    /// Repeat over K seeds (seed, seed+1, ...); plots show the geometric mean and a min-max band.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_SEEDS>, long, default_value_t = 1)]
    pub seeds: usize,
    /// Skip-connection arms to compare, comma-separated: off (a plain stack) and on (skip
    /// connections h_l = h_{l-1} + a_l, as --residual). `--skips off,on` measures both from the
    /// same seeds beside each normalisation arm, labelled `BN on, no skips` and `BN on, skips`.
    /// Replaces --residual.
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "residual")]
    pub skips: Option<Vec<crate::experiment::grad_norms::Skips>>,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Loss whose gradient is measured: mse, or ce (softmax cross-entropy, the linear teacher's
    /// argmax as the class; needs --d-out of at least 2).
    #[arg(long, value_enum, default_value_t = Loss::Mse)]
    pub loss: Loss,
    /// Also save the batch, targets, every parameter and every gradient of the first
    /// configuration (first depth, BN off before on, first seed) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub save_net: Option<PathBuf>,
    /// Also draw grad_norms_histograms.png: per layer (up to 8, evenly spaced), the
    /// distribution of the activations h_l (with the tanh/sigmoid saturation share) and of
    /// dL/dh_l at initialisation, first seed of each configuration; the JSON keeps the bins.
    #[arg(long)]
    pub histograms: bool,
    /// Threads for the configurations run side by side and for each network's matrix
    /// products and BatchNorm/activation passes [default: all cores].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long)]
    pub threads: Option<usize>,
}

impl ExperimentArgs for GradNormsArgs {
    type Experiment = GradNorms;
    const QUICK: &'static str = "--depth 4,12 --width 16 --batch 32 --seeds 2";
    const RENAMES: Renames = &[("depths", "--depth"), ("norms", "--norm")];
    fn config(&self) -> anyhow::Result<GradNormsConfig> {
        self.arms.check_distinct()?;
        Ok(GradNormsConfig {
            depths: self.depth.clone(),
            act: self.net.activation(),
            norms: self.arms.norms(&self.net),
            net: self.net.spec(),
            seeds: self.seeds,
            skips: self.skips.clone().unwrap_or_default(),
            vanishing_below: VANISHING_BELOW,
            exploding_above: EXPLODING_ABOVE,
            steady_factor: STEADY_FACTOR,
            exploding_scale: EXPLODING_SCALE,
            loss: self.loss,
            histograms: self.histograms,
            save_net: self.save_net.is_some(),
        })
    }
    fn output(&self) -> &OutputArgs {
        &self.output
    }
    fn threads(&self) -> Option<Option<usize>> {
        Some(self.threads)
    }
    fn extras(&self) -> Vec<Extra<GradNormsReport>> {
        let save = |r: &GradNormsReport| -> anyhow::Result<Vec<u8>> {
            let saved = r
                .saved_net
                .as_ref()
                .expect("save_net is set whenever --save-net is given");
            Ok(serde_json::to_string(saved)?.into_bytes())
        };
        self.save_net
            .iter()
            .map(|path| Extra {
                path: path.clone(),
                flag: "--save-net",
                bytes: save,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(values: &[&[f64]]) -> CurveSummary {
        let nums: Vec<Vec<Num>> = values.iter().map(|v| nums(v)).collect();
        let per_seed: Vec<&[Num]> = nums.iter().map(|v| &v[..]).collect();
        let seeds: Vec<u64> = (0..values.len() as u64).collect();
        CurveSummary::new(&per_seed, &seeds, None, 1.0, Thresholds::DEFAULT)
    }

    /// `n` layers growing by `f` per layer towards the input, ending at `last`.
    fn geometric(n: usize, f: f64, last: f64) -> Vec<f64> {
        (0..n).map(|l| last * f.powi((n - 1 - l) as i32)).collect()
    }

    fn skips_config(skips: Vec<Skips>, residual: bool, scale: f64) -> GradNormsConfig {
        GradNormsConfig {
            depths: vec![3],
            act: crate::config::Activation::Relu,
            norms: vec![Normaliser::BN],
            net: NetSpec {
                width: 8,
                batch: 8,
                d_in: 8,
                d_out: 2,
                init: crate::config::Init::He,
                residual,
                residual_scale: scale,
                block: None,
                skip_init: false,
                eps: 1e-5,
                momentum: 0.1,
                seed: 0,
                dtype: Dtype::F32,
            },
            seeds: 1,
            skips,
            vanishing_below: VANISHING_BELOW,
            exploding_above: EXPLODING_ABOVE,
            steady_factor: STEADY_FACTOR,
            exploding_scale: EXPLODING_SCALE,
            loss: Loss::Mse,
            histograms: false,
            save_net: false,
        }
    }

    #[test]
    fn skips_give_a_plain_and_a_residual_arm_per_norm() {
        let cfg = skips_config(vec![Skips::Off, Skips::On], false, 0.5);
        cfg.validate().unwrap();
        let arms = cfg.arms();
        assert_eq!(
            arms.iter().map(|a| a.residual).collect::<Vec<_>>(),
            [false, true]
        );
        // The branch scale belongs to the residual arm; the plain arm has no branch.
        assert_eq!(cfg.net(arms[0]).residual_scale, 1.0);
        assert_eq!(cfg.net(arms[1]).residual_scale, 0.5);
        assert_eq!(arm_label(&cfg, arms[1]), "BN on, skips");
        // Without skips the one arm follows `residual`, labelled as before.
        let plain = skips_config(Vec::new(), true, 1.0);
        assert_eq!(plain.arms().len(), 1);
        assert!(plain.arms()[0].residual);
        assert_eq!(arm_label(&plain, plain.arms()[0]), "BN on");
    }

    #[test]
    fn skips_are_distinct_and_replace_residual() {
        let repeated = skips_config(vec![Skips::On, Skips::On], false, 1.0);
        assert!(matches!(
            repeated.validate(),
            Err(ConfigError::Repeated { field: "skips", .. })
        ));
        let both = skips_config(vec![Skips::Off, Skips::On], true, 1.0);
        assert!(matches!(
            both.validate(),
            Err(ConfigError::Invalid { field: "skips", .. })
        ));
        // A branch scale with no residual arm is refused, as without --skips.
        let no_branch = skips_config(vec![Skips::Off], false, 0.5);
        assert!(no_branch.validate().is_err());
    }

    #[test]
    fn steady_growth_or_decay_is_neither_stable_nor_explosive() {
        // tanh with BN at depth 50: ratio 38, x1.085 per layer.
        let tanh_bn = geometric(50, 1.077, 7.7);
        let c = curve(&[&tanh_bn]);
        assert_eq!(c.verdict, Trend::Growing, "{}", c.verdict_basis);
        assert!(
            c.verdict_basis.contains("per layer > x1.05"),
            "{}",
            c.verdict_basis
        );
        let c = curve(&[&geometric(50, 1.0 / 1.08, 1.0)]);
        assert_eq!(c.verdict, Trend::Decaying, "{}", c.verdict_basis);
        // Within 5% per layer it stays stable.
        assert_eq!(curve(&[&geometric(50, 1.02, 1.0)]).verdict, Trend::Stable);
    }

    #[test]
    fn huge_gradients_are_exploding_whatever_the_ratio() {
        // A ReLU residual net without BN: 1e23..5e24, ratio 0.03, x0.976 per layer.
        let relu_skip = geometric(50, 0.93, 5.07e24);
        let c = curve(&[&relu_skip]);
        assert_eq!(c.verdict, Trend::Exploding, "{}", c.verdict_basis);
        assert!(
            c.verdict_basis.contains("absolute scale"),
            "{}",
            c.verdict_basis
        );
        // Modest gradients behind a forward pass whose activations reach 1e12.
        let v = nums(&[1.0, 1.0, 1.0]);
        let c = CurveSummary::new(&[&v], &[0], None, 1e12, Thresholds::DEFAULT);
        assert_eq!(c.verdict, Trend::Exploding);
        assert!(
            c.verdict_basis.contains("forward activation std"),
            "{}",
            c.verdict_basis
        );
    }

    #[test]
    fn finite_curves_are_judged_by_their_ratio() {
        assert_eq!(curve(&[&[1e-5, 1e-2, 1.0]]).verdict, Trend::Vanishing);
        assert_eq!(curve(&[&[1e5, 1e2, 1.0]]).verdict, Trend::Exploding);
        let stable = curve(&[&[1.02, 1.01, 1.0], &[1.0, 1.0, 1.01]]);
        assert_eq!(stable.verdict, Trend::Stable);
        assert!(stable.verdict_reason.is_none());
    }

    #[test]
    fn overflow_and_underflow_are_evidence_and_nan_is_not() {
        let inf = curve(&[&[f64::NAN, f64::INFINITY, 1.0]]);
        assert_eq!(inf.verdict, Trend::Exploding, "inf is an overflow");
        assert!(inf.verdict_reason.is_none());
        assert_eq!(curve(&[&[0.0, 1e-3, 1.0]]).verdict, Trend::Vanishing);
        for values in [
            &[&[f64::NAN, f64::NAN, f64::NAN][..]][..],
            &[&[1.0, 1.0, 1.0], &[f64::NAN, 1.0, 1.0]],
            &[&[0.0, 1e-3, 1.0], &[f64::NAN, f64::NAN, 1.0]],
        ] {
            let c = curve(values);
            assert_eq!(c.verdict, Trend::Undetermined, "{values:?}");
            let reason = c.verdict_reason.expect("an undetermined verdict says why");
            assert!(reason.contains("NaN at layers"), "{reason}");
        }
        let nan_in_seed_1 = curve(&[&[1.0, 1.0, 1.0], &[f64::NAN, f64::NAN, 1.0]]);
        let reason = nan_in_seed_1.verdict_reason.unwrap();
        assert!(reason.contains("layers 1-2 in seed(s) 1"), "{reason}");
    }

    #[test]
    fn an_undetermined_curve_names_the_forward_overflow() {
        let nan = nums(&[f64::NAN; 4]);
        let c = CurveSummary::new(&[&nan], &[7], Some(3), 1.0, Thresholds::DEFAULT);
        let reason = c.verdict_reason.unwrap();
        assert!(
            reason.contains("in seed(s) 7") && reason.contains("from layer 3"),
            "{reason}"
        );
        // Zeros after a forward overflow (ReLU of NaN) are no underflow: no evidence either.
        let zeros = nums(&[0.0, 0.0, 1.0, 1.0]);
        let c = CurveSummary::new(&[&zeros], &[0], Some(2), 1.0, Thresholds::DEFAULT);
        assert_eq!(c.verdict, Trend::Undetermined);
        assert!(c.verdict_reason.unwrap().contains("0 at layers 1-2"));
        // An overflow to inf stays evidence of exploding.
        let inf = nums(&[f64::INFINITY, 1.0, 1.0, 1.0]);
        let c = CurveSummary::new(&[&inf], &[0], Some(2), 1.0, Thresholds::DEFAULT);
        assert_eq!(c.verdict, Trend::Exploding);
    }

    #[test]
    fn the_memory_note_names_the_largest_network_and_only_from_64_mib() {
        let mut cfg = skips_config(Vec::new(), false, 1.0);
        assert_eq!(memory_note(&cfg), None);
        // 40 layers of 1024 x 1024 f32 weights: 160 MiB of parameters alone; 3 layers: 12 MiB.
        cfg.net.width = 1024;
        cfg.depths = vec![40, 3];
        let deep = cfg.arms().into_iter().find(|a| a.depth == 40).unwrap();
        let bytes = cfg.net(deep).memory_estimate_bytes(cfg.net.batch, 4);
        assert!(bytes > SHOW_MEMORY_FROM);
        assert_eq!(
            memory_note(&cfg),
            Some(MemoryNote {
                largest_bytes: bytes,
                parallel_runs: cfg.parallel_runs()
            })
        );
        cfg.depths = vec![3];
        assert_eq!(memory_note(&cfg), None);
    }
}
