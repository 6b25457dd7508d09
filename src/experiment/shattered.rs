//! `bn-lab shattered`: the shattered gradients problem (Balduzzi et al. 2017, "The Shattered
//! Gradients Problem: If resnets are the answer, then what is the question?", ICML).
//!
//! A network from a scalar input to a scalar output (`d_in = d_out = 1`) is evaluated on a grid
//! of `points` inputs `x_i = -2 + 4 i / (points - 1)` on [-2, 2], and the derivative `g_i =
//! dy/dx` is computed at every grid point. Three architectures, ReLU units and He init by
//! default:
//!
//! - `feedforward`: `Linear -> ReLU` blocks;
//! - `feedforward+bn`: `Linear -> BN -> ReLU` (BN before the activation);
//! - `resnet+bn`: the same blocks with skip connections `h_l = h_{l-1} + ReLU(BN(z_l))`
//!   (`NetConfig.residual`). Block 1 has no skip: its input is the scalar x and its output has
//!   `width` units, so the shapes do not match ([`NetConfig::block_has_skip`]).
//!
//! and, when asked for with `--arch`, `resnet` (the one-layer blocks without BN) and the
//! standard two-layer blocks ([`StdBlock`]; depth counts blocks, after a stem): `preact`
//! (no normaliser), `preact+bn`, `preact+skipinit` (no normaliser, SkipInit's gain on each
//! branch) and `basic+bn`. SkipInit's gain is 0 at initialisation, so every block is the
//! identity and `preact+skipinit` is its linear stem and head at every depth: `y = a x + b`,
//! a constant gradient (lag-1 correlation 1 by the convention below). It is drawn anyway, as
//! the measured control that the gain, not the blocks, decides the function at
//! initialisation. Standard blocks take the slow path ([`frozen_net`] and [`evaluate`]).
//!
//! **Frozen BatchNorm statistics.** In train mode BN makes every sample's output depend on
//! every other sample of the batch, so `dL/dx_i` of a train-mode backward is not the derivative
//! of a function of `x_i` alone. Instead the statistics are computed once over the grid and
//! then held fixed: a train-mode forward on the whole grid, then every BN layer's batch
//! statistics are copied into its running statistics (`running_mean[j] = mean[j]`, which for
//! BN before the activation includes the linear layer's bias, as the eval forward subtracts
//! the bias from it again; `running_var[j] = var[j]`, the *biased* batch variance the train
//! forward normalised with), so an eval-mode forward normalises exactly as the train forward
//! did. An eval-mode forward and `backward_with_input_grad` with `dL/do = 1` for every point
//! then give `dy/dx` at every point: in eval mode samples are independent, so `dL/dx_i =
//! dy_i/dx_i`. Everything is computed in f64.
//!
//! **Biases.** `Mlp::new` sets every bias to 0. With zero biases and no BN a ReLU net of a
//! scalar input is positively homogeneous, `y(x) = x y(1)` for `x > 0` and `x y(-1)` for
//! `x < 0`, so its gradient takes exactly two values and nothing shatters, at any depth. So
//! this experiment sets the biases itself after `Mlp::new` (`--bias`): by default as PyTorch's
//! `nn.Linear` does, `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, drawn from a stream of its own
//! ([`bias_rng`]), so the weights are the same whatever `--bias` says. With BN before the
//! activation the hidden biases cancel (BN subtracts the mean, bias included) and only the
//! output bias, which does not change `dy/dx`, is left: there BN's centring over the grid
//! places the kinks.
//!
//! **Autocorrelation.** For a gradient sequence `g_1..g_n` with mean `m`, the estimator is the
//! usual biased one (Box & Jenkins): `c_k = (1/n) sum_{i=1}^{n-k} (g_i - m)(g_{i+k} - m)` and
//! `r_k = c_k / c_0`, so `r_0 = 1` and `|r_k| <= 1`. A constant sequence (`c_0 = 0`: every
//! `g_i` equal) has `r_k = 1` at every lag by convention (a constant gradient is perfectly
//! predictable from its neighbour). `lag1_correlation` is the Pearson correlation of the pairs
//! `(g_i, g_{i+1})`, each side with its own mean and standard deviation, averaged over seeds;
//! with both sides constant it is 1 (the same convention), with exactly one side constant it is
//! undefined (NaN). A sequence holding an inf or NaN gradient has NaN autocorrelations: the
//! gradients are recorded as they are, and any verdict that needs them is `undetermined`.

use ndarray::{Array2, ArrayView2};
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{
    Activation, ConfigError, Dtype, Normaliser, at_most_values, between, distinct, finite_in,
};
use crate::data::{self, Stream};
use crate::experiment::ExperimentArgs;
use crate::experiment::{Cost, Experiment, Plan, Progress, ToolInfo, largest_alive, pass_macs};
use crate::flags::{NetArgs, NormChoice, OutputArgs, Renames, count};
use crate::limits::MAX_DEPTH;
use crate::limits::{MAX_PANELS, MAX_POINTS, MAX_SEEDS};
use crate::memory::Footprint;
use crate::model::{Mlp, Mode};
use crate::ops;
use crate::parallel::gemm;
use crate::spec::{NetConfig, NetSpec, StdBlock};
use crate::stats::{Num, fmt_num, max_nan, mean_nan, min_nan};
use crate::train::FORWARD_BACKWARD;
use clap::Args;

/// The input grid covers `[X_MIN, X_MAX]`.
pub const X_MIN: f64 = -2.0;
pub const X_MAX: f64 = 2.0;

/// Fewest grid points: a lag-1 correlation needs two pairs.
pub const MIN_POINTS: usize = 3;

/// The random stream the biases are drawn from (beyond [`Stream`]'s, so no other draw moves).
pub const BIAS_STREAM: u64 = 16;

/// The generator of `seed`'s biases.
pub fn bias_rng(seed: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(BIAS_STREAM);
    r
}

/// One of the architectures the paper compares.
///
/// Each is a set of [`ArchParts`] (normalised or not, which skip), so that an architecture
/// built from other parts (the standard two-layer blocks `preact`, `preact+bn`,
/// `preact+skipinit`, `basic+bn`) is one variant here, its parts and its theory
/// ([`Arch::theory`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum Arch {
    /// `Linear -> act` blocks.
    #[serde(rename = "feedforward")]
    #[value(name = "feedforward")]
    Feedforward,
    /// `Linear -> BN -> act` blocks (BN as `--placement`/`--no-affine` say; before the
    /// activation by default).
    #[serde(rename = "feedforward+bn")]
    #[value(name = "feedforward+bn")]
    FeedforwardBn,
    /// The plain blocks with skip connections from block 2 on, `h_l = h_{l-1} + beta
    /// act(z_l)`: Balduzzi et al.'s resnet without batch normalisation (their Theorem 2).
    #[serde(rename = "resnet")]
    #[value(name = "resnet")]
    Resnet,
    /// The BN blocks with skip connections from block 2 on.
    #[serde(rename = "resnet+bn")]
    #[value(name = "resnet+bn")]
    ResnetBn,
    /// Standard pre-activation blocks (He et al. 2016b, [`StdBlock::Preact`]) without a
    /// normaliser: `h_{l+1} = h_l + beta W2 act(W1 act(h_l))` after a linear stem; depth counts
    /// blocks.
    #[serde(rename = "preact")]
    #[value(name = "preact")]
    Preact,
    /// Standard pre-activation blocks with the run's normaliser before each activation.
    #[serde(rename = "preact+bn")]
    #[value(name = "preact+bn")]
    PreactBn,
    /// Standard pre-activation blocks without a normaliser, with SkipInit (De & Smith 2020): a
    /// gain `alpha` on each branch, 0 at initialisation, so that at initialisation every block
    /// is the identity and the net is its linear stem and head, `y = a x + b` at every depth.
    #[serde(rename = "preact+skipinit")]
    #[value(name = "preact+skipinit")]
    PreactSkipinit,
    /// Standard post-activation blocks (He et al. 2016a, [`StdBlock::Basic`]) with the run's
    /// normaliser: `h_{l+1} = act(h_l + beta norm(W2 act(norm(W1 h_l))))` after the stem
    /// `act(norm(x W0))`.
    #[serde(rename = "basic+bn")]
    #[value(name = "basic+bn")]
    BasicBn,
}

/// Which skip connection an architecture's blocks have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// None: a feedforward net.
    None,
    /// The one-layer block `h_l = h_{l-1} + beta act(norm(W h_{l-1}))` (`NetConfig.residual`),
    /// from block 2 on.
    OneLayer,
    /// A standard two-layer block (`NetConfig.block`) from block 1 on, after a stem.
    Std(StdBlock),
}

/// What an architecture is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchParts {
    /// Its blocks use the run's normaliser (`--norm`); else none.
    pub normalised: bool,
    pub skip: Skip,
    /// SkipInit's gain on each branch (`NetConfig.skip_init`).
    pub skip_init: bool,
}

impl Arch {
    /// Every architecture, in the order of `--arch`'s help.
    pub const ALL: [Arch; 8] = [
        Arch::Feedforward,
        Arch::FeedforwardBn,
        Arch::Resnet,
        Arch::ResnetBn,
        Arch::Preact,
        Arch::PreactBn,
        Arch::PreactSkipinit,
        Arch::BasicBn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Feedforward => "feedforward",
            Arch::FeedforwardBn => "feedforward+bn",
            Arch::Resnet => "resnet",
            Arch::ResnetBn => "resnet+bn",
            Arch::Preact => "preact",
            Arch::PreactBn => "preact+bn",
            Arch::PreactSkipinit => "preact+skipinit",
            Arch::BasicBn => "basic+bn",
        }
    }

    pub fn parts(self) -> ArchParts {
        let preact = Skip::Std(StdBlock::Preact);
        let (normalised, skip) = match self {
            Arch::Feedforward => (false, Skip::None),
            Arch::FeedforwardBn => (true, Skip::None),
            Arch::Resnet => (false, Skip::OneLayer),
            Arch::ResnetBn => (true, Skip::OneLayer),
            Arch::Preact | Arch::PreactSkipinit => (false, preact),
            Arch::PreactBn => (true, preact),
            Arch::BasicBn => (true, Skip::Std(StdBlock::Basic)),
        };
        ArchParts {
            normalised,
            skip,
            skip_init: self == Arch::PreactSkipinit,
        }
    }

    /// The normalisation of its blocks, `bn` for the normalised architectures.
    pub fn norm(self, bn: Normaliser) -> Normaliser {
        if self.parts().normalised {
            bn
        } else {
            Normaliser::Off
        }
    }

    /// One-layer skip blocks (`NetConfig.residual`).
    pub fn residual(self) -> bool {
        self.parts().skip == Skip::OneLayer
    }

    /// The standard block it is built from, if any (`NetConfig.block`).
    pub fn block(self) -> Option<StdBlock> {
        match self.parts().skip {
            Skip::Std(b) => Some(b),
            Skip::None | Skip::OneLayer => None,
        }
    }

    /// Whether it has a residual branch, which `--residual-scale` scales.
    pub fn has_branch(self) -> bool {
        self.parts().skip != Skip::None
    }

    /// The result of Balduzzi et al. 2017 its prediction is drawn from.
    pub fn theory(self) -> Theorem {
        match self {
            Arch::Feedforward => Theorem::Feedforward,
            Arch::FeedforwardBn => Theorem::FeedforwardBn,
            Arch::Resnet => Theorem::Resnet,
            Arch::ResnetBn => Theorem::ResnetBn,
            Arch::Preact => Theorem::PreactResnet,
            Arch::PreactBn | Arch::BasicBn => Theorem::StdResnetBn,
            Arch::PreactSkipinit => Theorem::SkipInit,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How the biases are set after `Mlp::new` (which sets them to 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BiasInit {
    /// PyTorch's `nn.Linear` default: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
    Pytorch,
    /// All zero (as `Mlp::new` leaves them).
    Zero,
    /// `N(0, std^2)`.
    Normal(f64),
}

impl std::fmt::Display for BiasInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BiasInit::Pytorch => f.write_str("pytorch"),
            BiasInit::Zero => f.write_str("zero"),
            BiasInit::Normal(std) => write!(f, "normal:{}", crate::stats::Short(*std)),
        }
    }
}

impl std::str::FromStr for BiasInit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pytorch" => Ok(BiasInit::Pytorch),
            "zero" => Ok(BiasInit::Zero),
            _ => {
                match s.strip_prefix("normal:") {
                    Some(std) => {
                        let v: f64 = std.trim().parse().map_err(|_| {
                        format!("'normal:' needs a number after the colon, e.g. normal:0.1 (got '{s}')")
                    })?;
                        if v.is_finite() && v > 0.0 {
                            Ok(BiasInit::Normal(v))
                        } else {
                            Err(format!(
                                "the std in 'normal:STD' must be a positive finite number (got {})",
                                crate::stats::Short(v)
                            ))
                        }
                    }
                    None => Err(format!(
                        "unknown bias init '{s}' (expected pytorch, zero or normal:STD)"
                    )),
                }
            }
        }
    }
}

impl Serialize for BiasInit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BiasInit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A validated `shattered` configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShatteredConfig {
    /// Hidden layers, one panel column each.
    pub depths: Vec<usize>,
    /// Architectures, one panel row each.
    pub archs: Vec<Arch>,
    pub act: Activation,
    /// The normaliser of the `+bn` architectures: a BatchNorm variant, or LayerNorm
    /// (`--norm layer`).
    pub bn: Normaliser,
    pub bias: BiasInit,
    /// The network; `batch` is the number of grid points (`--points`), `d_in = d_out = 1`,
    /// `dtype` f64, and `residual` is set per architecture, so it must be `false` here;
    /// `residual_scale` is the branch scale of `resnet+bn` (Balduzzi et al.'s beta).
    #[serde(flatten)]
    pub net: NetSpec,
    /// Seeds `seed .. seed + seeds`.
    pub seeds: usize,
    /// Autocorrelations are recorded at lags `0 ..= max_lag`.
    pub max_lag: usize,
    /// Further grids (points on the same interval), each run with every architecture, depth
    /// and seed to show how the lag-1 correlation depends on the grid spacing
    /// ([`SpacingReport`]); empty by default, and then left out of the JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grids: Vec<usize>,
}

impl ShatteredConfig {
    /// Grid points.
    pub fn points(&self) -> usize {
        self.net.batch
    }

    /// The network of one architecture and depth.
    pub fn net(&self, arch: Arch, depth: usize) -> NetConfig {
        let mut n = self.net.net(depth, self.act, arch.norm(self.bn));
        let parts = arch.parts();
        n.residual = arch.residual();
        n.block = arch.block();
        n.skip_init = parts.skip_init;
        // `--residual-scale` is the resnets' branch scale; the feedforward nets have no branch.
        if !arch.has_branch() {
            n.residual_scale = 1.0;
        }
        n
    }

    /// Every (architecture, depth) pair in report order: architectures as given, depths as
    /// given within each.
    pub fn arms(&self) -> Vec<(Arch, usize)> {
        self.archs
            .iter()
            .flat_map(|&a| self.depths.iter().map(move |&d| (a, d)))
            .collect()
    }

    pub fn seed_list(&self) -> Vec<u64> {
        self.net.seed_list(self.seeds)
    }

    /// Networks alive at once: one per thread of the current pool.
    pub fn parallel_runs(&self) -> usize {
        crate::parallel::side_by_side(self.arms().len().saturating_mul(self.seeds))
    }

    /// Every network [`run`] evaluates on the grid, in run order (each arm's seeds in turn):
    /// what `run` executes, [`Plan::work_units`] counts and [`Plan::footprint`] sizes.
    pub fn jobs(&self) -> Vec<ShatteredJob> {
        let seeds = self.seed_list();
        let mut jobs = Vec::new();
        let grids = std::iter::once((None, self.points()))
            .chain(self.grids.iter().enumerate().map(|(i, &p)| (Some(i), p)));
        for (grid, points) in grids {
            for (arm, (arch, depth)) in self.arms().into_iter().enumerate() {
                let bytes = self.net(arch, depth).memory_estimate_bytes(points, 8);
                for &seed in &seeds {
                    jobs.push(ShatteredJob {
                        arm,
                        arch,
                        depth,
                        seed,
                        grid,
                        points,
                        units: job_units(self, arch, points),
                        bytes,
                    });
                }
            }
        }
        jobs
    }

    /// Every grid's point count, the main grid's (`--points`) first.
    pub fn all_points(&self) -> Vec<usize> {
        std::iter::once(self.points())
            .chain(self.grids.iter().copied())
            .collect()
    }
}

/// One network [`run`] evaluates: an arm (index into [`ShatteredConfig::arms`]) at one seed.
#[derive(Clone, Copy, Debug)]
pub struct ShatteredJob {
    pub arm: usize,
    pub arch: Arch,
    pub depth: usize,
    pub seed: u64,
    /// `None`: the main grid (`--points`); `Some(i)`: `config.grids[i]`.
    pub grid: Option<usize>,
    /// Its grid's points.
    pub points: usize,
    /// Progress units: with BN a train-mode forward on the grid, then an eval forward and
    /// backward.
    pub units: u64,
    /// The network's memory estimate on the grid (its input and output counted in it).
    pub bytes: f64,
}

impl Plan for ShatteredConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        distinct("depths", &self.depths)?;
        at_most_values("depths", MAX_PANELS, &self.depths)?;
        distinct("archs", &self.archs)?;
        between("seeds", 1, MAX_SEEDS, self.seeds)?;
        self.net
            .init
            .refuse_fixup("correlates dy/dx at initialisation")?;
        if let Some(block) = self.net.block {
            return Err(ConfigError::Invalid {
                field: "block",
                message: format!(
                    "blocks are set per architecture (--arch preact,preact+bn,preact+skipinit,basic+bn), not --block {block}"
                ),
            });
        }
        if self.net.skip_init {
            return Err(ConfigError::Invalid {
                field: "skip_init",
                message: "SkipInit is set per architecture (--arch preact+skipinit)".into(),
            });
        }
        // `residual` is per architecture, and `residual_scale` is the resnet's branch scale.
        NetSpec {
            residual: true,
            ..self.net.clone()
        }
        .validate()?;
        between("batch", MIN_POINTS, MAX_POINTS, self.net.batch)?;
        between("max_lag", 1, self.net.batch - 1, self.max_lag)?;
        at_most_values("grids", MAX_PANELS, &self.grids)?;
        distinct("grids", &self.all_points()).map_err(|_| ConfigError::Invalid {
            field: "grids",
            message: format!(
                "must differ from each other and from batch ({})",
                self.net.batch
            ),
        })?;
        for &p in &self.grids {
            between("grids", MIN_POINTS, MAX_POINTS, p)?;
        }
        for (field, got) in [("d_in", self.net.d_in), ("d_out", self.net.d_out)] {
            if got != 1 {
                return Err(ConfigError::Invalid {
                    field,
                    message: format!(
                        "must be 1: shattered's networks map a scalar x to a scalar y (got {got})"
                    ),
                });
            }
        }
        if self.net.dtype != Dtype::F64 {
            return Err(ConfigError::Invalid {
                field: "dtype",
                message: "shattered computes in f64 only".into(),
            });
        }
        if self.net.residual {
            return Err(ConfigError::Invalid {
                field: "residual",
                message: "skip connections are set per architecture (--arch resnet+bn)".into(),
            });
        }
        if !self.bn.is_on() {
            return Err(ConfigError::Invalid {
                field: "bn",
                message: "the +bn architectures need a normaliser (batch or layer), not none"
                    .into(),
            });
        }
        if let BiasInit::Normal(std) = self.bias {
            finite_in("bias", "> 0 (the std of normal:STD)", std, |v| v > 0.0)?;
        }
        for (arch, depth) in self.arms() {
            self.net(arch, depth).validate(self.net.batch)?;
        }
        Ok(())
    }

    /// The largest networks that run side by side (each on the grid, its input and output
    /// counted in its estimate) with their gradient and grid copies; every recorded number
    /// (per arm and seed the gradients, autocorrelations and lag-1 correlation; per arm the
    /// mean and band of the autocorrelation; the grid); the figure.
    fn footprint(&self) -> Footprint {
        let n = self.points() as f64;
        let largest = self.all_points().into_iter().max().unwrap_or(0) as f64;
        let alive = largest_alive(self.jobs().iter().map(|j| j.bytes));
        let lags = self.max_lag as f64 + 1.0;
        // Per arm and extra grid: a gradient per seed while its job runs, then two numbers.
        let spacing = self.grids.len() as f64 * (2.0 * self.seeds as f64 + 2.0);
        let per_arm = self.seeds as f64 * (n + lags + 2.0) + 3.0 * lags + 4.0 + spacing;
        Footprint::new()
            .add("networks", alive, &["depth", "width", "batch"])
            .add(
                "data",
                self.parallel_runs() as f64 * 4.0 * 8.0 * largest,
                &["batch", "grids"],
            )
            .records(
                self.arms().len() as f64 * per_arm + n,
                &["seeds", "batch", "max_lag", "grids"],
            )
            .figures()
    }

    /// Every network with its units (with BN a train-mode forward on the grid, then an eval
    /// forward and backward) and its estimate.
    fn costs(&self) -> Vec<Cost> {
        self.jobs()
            .iter()
            .map(|j| Cost::new(j.units, j.bytes))
            .collect()
    }

    /// Every network's passes over the grid.
    fn macs(&self) -> f64 {
        let net = |j: &ShatteredJob| self.net(j.arch, j.depth);
        self.jobs()
            .iter()
            .map(|j| pass_macs(j.units, &net(j), j.points))
            .sum()
    }
}

/// The grid `x_i = X_MIN + (X_MAX - X_MIN) i / (points - 1)`, `(points, 1)`.
pub fn grid(points: usize) -> Array2<f64> {
    let step = (X_MAX - X_MIN) / (points.max(2) - 1) as f64;
    Array2::from_shape_fn((points, 1), |(i, _)| X_MIN + step * i as f64)
}

/// Set every bias of `net` (hidden blocks in order, then the output layer) as `bias` says,
/// drawing from [`bias_rng`] of `seed`. For standard blocks `net.blocks` is every layer with
/// a matrix (the stem, then `W1`, `W2` of each block), so each gets the bias of its `fan_in`;
/// a pre-activation block's first normaliser and activation stand on an identity linear
/// outside `net.blocks` whose bias stays 0, as it has no matrix of its own (a bias there would
/// be an extra shift of the stream that no standard block has).
pub fn init_biases(net: &mut Mlp<f64>, bias: BiasInit, seed: u64) {
    let mut rng = bias_rng(seed);
    let mut set = |b: &mut ndarray::Array1<f64>, fan_in: usize| match bias {
        BiasInit::Zero => b.fill(0.0),
        BiasInit::Pytorch => {
            let bound = 1.0 / (fan_in as f64).sqrt();
            b.iter_mut()
                .for_each(|v| *v = bound * (2.0 * rng.random::<f64>() - 1.0));
        }
        BiasInit::Normal(std) => b.iter_mut().for_each(|v| {
            let z: f64 = StandardNormal.sample(&mut rng);
            *v = std * z
        }),
    };
    for block in &mut net.blocks {
        let fan_in = block.linear.w.nrows();
        set(&mut block.linear.b, fan_in);
    }
    let fan_in = net.out.w.nrows();
    set(&mut net.out.b, fan_in);
}

/// Hold every BN layer's statistics (each layer's and each pre-activation block's first
/// normaliser's) of the last (train-mode) forward fixed: copy the batch
/// mean (bias included for BN before the activation) and the biased batch variance into the
/// running statistics, so an eval-mode forward normalises exactly as that forward did.
pub fn freeze_batch_stats(net: &mut Mlp<f64>) {
    // Every normaliser, a pre-activation block's first one included.
    net.for_each_norm_mut(|bn| {
        for j in 0..bn.mean.len() {
            bn.running_mean[j] = bn.mean[j];
            bn.running_var[j] = bn.var[j];
        }
    });
}

/// The network of `arch` at `depth` for `seed`, biases set and BN statistics frozen on the
/// grid: ready for eval-mode forwards, in which it is a fixed function `y(x)`.
pub fn frozen_net(cfg: &ShatteredConfig, arch: Arch, depth: usize, seed: u64) -> Mlp<f64> {
    frozen_net_on(cfg, arch, depth, seed, grid(cfg.points()).view())
}

/// [`frozen_net`] with the BN statistics of the inputs `x: (n, 1)` (an extra grid's).
pub fn frozen_net_on(
    cfg: &ShatteredConfig,
    arch: Arch,
    depth: usize,
    seed: u64,
    x: ArrayView2<f64>,
) -> Mlp<f64> {
    let net_cfg = cfg.net(arch, depth);
    let mut net = Mlp::<f64>::new(&net_cfg, &mut data::rng(seed, Stream::Weights));
    init_biases(&mut net, cfg.bias, seed);
    if net_cfg.norm.is_some() {
        net.forward(x, Mode::Train)
            .expect("the grid has d_in = 1 column");
        freeze_batch_stats(&mut net);
    }
    net
}

/// `y` and `dy/dx` on the grid `x: (n, 1)` of the network of `arch` at `depth` for `seed`
/// (the function [`frozen_net`] and [`evaluate`] compute), in one forward and one backward
/// matrix product per layer where [`frozen_gradients`] handles the blocks, else through
/// [`frozen_net`] and [`evaluate`]. `pool` lends the `(n, width)` buffers.
pub fn grid_gradients(
    cfg: &ShatteredConfig,
    arch: Arch,
    depth: usize,
    seed: u64,
    x: ArrayView2<f64>,
    pool: &mut Pool,
) -> Evaluation {
    let net_cfg = cfg.net(arch, depth);
    let mut net = Mlp::<f64>::new(&net_cfg, &mut data::rng(seed, Stream::Weights));
    init_biases(&mut net, cfg.bias, seed);
    if let Some(e) = frozen_gradients(&net, x, pool) {
        return e;
    }
    let mut net = frozen_net_on(cfg, arch, depth, seed, x);
    evaluate(&mut net, x)
}

/// Matrices handed back for reuse: a network's buffers are about `depth` matrices of `(n,
/// width)`, and allocating them afresh for every network costs page faults as large as the
/// arithmetic (perf: a quarter of the run).
#[derive(Default)]
pub struct Pool(Vec<Array2<f64>>);

impl Pool {
    /// A matrix of shape `dim` with unspecified contents (the caller overwrites all of it).
    fn take(&mut self, dim: (usize, usize)) -> Array2<f64> {
        match self.0.iter().position(|m| m.dim() == dim) {
            Some(i) => self.0.swap_remove(i),
            None => Array2::zeros(dim),
        }
    }

    fn give(&mut self, m: Array2<f64>) {
        self.0.push(m);
    }
}

/// Whether [`frozen_gradients`] handles `block`: no normaliser, or BatchNorm before the
/// activation without noise.
fn fast_block(block: &crate::model::Block<f64>) -> bool {
    block.noise.is_none()
        && match &block.bn {
            None => true,
            Some(bn) => {
                bn.kind == crate::config::NormKind::Batch
                    && block.placement == crate::config::Placement::Pre
            }
        }
}

/// `y` and `dy/dx` of `net` on `x: (n, 1)`, every BatchNorm layer normalising with the mean
/// and biased variance of its own input over the `n` points, held fixed when differentiating
/// (the frozen statistics of the module docs): one forward pass keeps, per block, `act'` at
/// every point times BN's `gamma / sqrt(var + eps)`; the backward pass is then `dL/dz_l =
/// dL/dh_l * slope_l` and `dL/dh_{l-1} = beta dL/dz_l W_l^T (+ dL/dh_l through a skip)`, one
/// matrix product per block and no weight gradients. [`frozen_net`] with [`evaluate`] runs a
/// train-mode forward, an eval-mode forward and a full backward (four products per block) for
/// the same function; the two give the same bits on shattered's default run and agree to
/// rounding in general (tests/suite/shattered.rs). `None` if a block is not `fast_block` or
/// the net has standard blocks (`net.units`).
pub fn frozen_gradients(net: &Mlp<f64>, x: ArrayView2<f64>, pool: &mut Pool) -> Option<Evaluation> {
    // Standard blocks ([`Mlp::units`]) take the slow path.
    if !net.units.is_empty() || !net.blocks.iter().all(fast_block) {
        return None;
    }
    let n = x.nrows();
    let mut h = x.to_owned();
    let mut slopes = Vec::with_capacity(net.blocks.len());
    let mut overflow_from_layer = None;
    for (l, block) in net.blocks.iter().enumerate() {
        let (next, slope) = block_forward(block, h.view(), pool);
        let finite = next
            .as_slice()
            .expect("owned arrays are contiguous")
            .iter()
            .all(|v| v.is_finite());
        if overflow_from_layer.is_none() && !finite {
            overflow_from_layer = Some(l + 1);
        }
        slopes.push(slope);
        pool.give(std::mem::replace(&mut h, next));
    }
    let mut o = Array2::<f64>::zeros((n, 1));
    ops::linear_forward(h.view(), net.out.w.view(), net.out.b.view(), o.view_mut());
    pool.give(h);
    let y = o.column(0).to_vec();
    if overflow_from_layer.is_none() && y.iter().any(|v| !v.is_finite()) {
        overflow_from_layer = Some(net.depth() + 1);
    }
    // dL/dh_depth = dL/do W_out^T with dL/do = 1 at every point.
    let w_out = net.out.w.column(0);
    let mut dh = pool.take((n, w_out.len()));
    dh.rows_mut().into_iter().for_each(|mut r| r.assign(&w_out));
    for (block, mut dz) in net.blocks.iter().zip(slopes).rev() {
        dz *= &dh;
        let w = block.linear.w.view();
        let (mut dh_in, beta) = if block.skip {
            (dh, 1.0)
        } else {
            pool.give(dh);
            (pool.take((n, w.nrows())), 0.0)
        };
        gemm(
            block.skip_scale,
            &dz.view(),
            &w.t(),
            beta,
            &mut dh_in.view_mut(),
        );
        pool.give(dz);
        dh = dh_in;
    }
    Some(Evaluation {
        y,
        gradient: dh.column(0).to_vec(),
        overflow_from_layer,
    })
}

/// One block's forward on `h_in: (n, fan_in)` with BN's statistics those of this input:
/// `h_l` and the slope `act'(.) * gamma / sqrt(var + eps)` (`act'` alone without BN), both
/// `(n, width)`.
fn block_forward(
    block: &crate::model::Block<f64>,
    h_in: ArrayView2<f64>,
    pool: &mut Pool,
) -> (Array2<f64>, Array2<f64>) {
    let (n, width) = (h_in.nrows(), block.linear.w.ncols());
    let b = block
        .linear
        .b
        .as_slice()
        .expect("owned arrays are contiguous");
    let mut z = pool.take((n, width));
    gemm(1.0, &h_in, &block.linear.w.view(), 0.0, &mut z.view_mut());
    let mut h = block.skip.then(|| pool.take((n, width)));
    let skip_io = h.as_mut().map(|h| ops::Residual {
        h_in,
        h: h.view_mut(),
        scale: block.skip_scale,
    });
    let mut a = pool.take((n, width));
    let k = match &block.bn {
        None => {
            a.assign(&z);
            ops::bias_act_forward(block.act, a.view_mut(), b, None, skip_io);
            None
        }
        Some(bn) => {
            // The bias only moves the mean, which BN subtracts: statistics of z = h W alone.
            let mut mean = vec![0.0; width];
            ops::add_col_sums(z.view(), &mut mean);
            mean.iter_mut().for_each(|m| *m /= n as f64);
            let mut var = vec![0.0; width];
            ops::add_col_sq_dev(z.view(), &mean, &mut var);
            let inv_std: Vec<f64> = var
                .iter()
                .map(|v| 1.0 / (v / n as f64 + bn.eps).sqrt())
                .collect();
            let (gamma, beta) = match &bn.affine {
                Some(ss) => (ss.gamma.to_vec(), ss.beta.to_vec()),
                None => (vec![1.0; width], vec![0.0; width]),
            };
            let coeffs = ops::BnCoeffs {
                shift: &mean,
                inv_std: &inv_std,
                affine: ops::Affine {
                    gamma: &gamma,
                    beta: &beta,
                },
            };
            ops::bn_pre_forward(block.act, z.view_mut(), a.view_mut(), coeffs, skip_io);
            Some(
                gamma
                    .iter()
                    .zip(&inv_std)
                    .map(|(g, s)| g * s)
                    .collect::<Vec<f64>>(),
            )
        }
    };
    // x_hat is not needed any more: its buffer takes the slope.
    let act = block.act;
    let k = k.unwrap_or_else(|| vec![1.0; width]);
    let mut slope = z;
    for (mut s_row, a_row) in slope.rows_mut().into_iter().zip(a.rows()) {
        let (s_row, a_row) = (
            s_row.as_slice_mut().expect("contiguous rows"),
            a_row.to_slice().expect("contiguous rows"),
        );
        for ((s, &a), &k) in s_row.iter_mut().zip(a_row).zip(&k) {
            *s = ops::act_grad_from_output(act, a) * k;
        }
    }
    match h {
        Some(h) => {
            pool.give(a);
            (h, slope)
        }
        None => (a, slope),
    }
}

/// What one eval-mode forward and backward on the grid give.
pub struct Evaluation {
    /// `y(x_i)`.
    pub y: Vec<f64>,
    /// `dy/dx` at `x_i`.
    pub gradient: Vec<f64>,
    /// The first layer (1-based; `depth + 1` is the output) whose values hold an inf or NaN:
    /// the forward pass overflowed there. ReLU maps NaN to 0, so a network can overflow and
    /// still end with finite outputs and zero gradients.
    pub overflow_from_layer: Option<usize>,
}

/// `y` and `dy/dx` at every row of `x: (n, 1)`: an eval-mode forward and a backward with
/// `dL/do = 1`, and where the forward overflowed.
pub fn evaluate(net: &mut Mlp<f64>, x: ArrayView2<f64>) -> Evaluation {
    let y = net
        .forward(x, Mode::Eval)
        .expect("x has the network's d_in = 1 column")
        .column(0)
        .to_vec();
    let overflow_from_layer = (1..=net.depth())
        .find(|&l| net.hidden(l).iter().any(|v| !v.is_finite()))
        .or_else(|| y.iter().any(|v| !v.is_finite()).then_some(net.depth() + 1));
    let d_o = Array2::<f64>::ones((x.nrows(), 1));
    let dx = net
        .backward_with_input_grad(d_o.view())
        .expect("forward ran just before, with d_out = 1");
    Evaluation {
        y,
        gradient: dx.column(0).to_vec(),
        overflow_from_layer,
    }
}

/// `dy/dx` at every row of `x: (n, 1)` ([`evaluate`]).
pub fn input_gradients(net: &mut Mlp<f64>, x: ArrayView2<f64>) -> Vec<f64> {
    evaluate(net, x).gradient
}

/// `y(x)` at every row of `x: (n, 1)` in eval mode.
pub fn outputs(net: &mut Mlp<f64>, x: ArrayView2<f64>) -> Vec<f64> {
    let o = net
        .forward(x, Mode::Eval)
        .expect("x has the network's d_in = 1 column");
    o.column(0).to_vec()
}

/// Normalised autocorrelation `r_k = c_k / c_0` for `k = 0 ..= max_lag` (the module docs give
/// the estimator); 1 at every lag for a constant sequence, NaN at every lag if any value is
/// inf or NaN; lags at or beyond `g.len()` are NaN (no pair).
pub fn autocorrelation(g: &[f64], max_lag: usize) -> Vec<f64> {
    let n = g.len();
    if g.iter().any(|v| !v.is_finite()) || n == 0 {
        return vec![f64::NAN; max_lag + 1];
    }
    if g.iter().all(|&v| v == g[0]) {
        return (0..=max_lag)
            .map(|k| if k < n { 1.0 } else { f64::NAN })
            .collect();
    }
    let m = g.iter().sum::<f64>() / n as f64;
    let d: Vec<f64> = g.iter().map(|v| v - m).collect();
    let c = |k: usize| {
        d[..n - k]
            .iter()
            .zip(&d[k..])
            .map(|(a, b)| a * b)
            .sum::<f64>()
    };
    let c0 = c(0);
    (0..=max_lag)
        .map(|k| if k < n { c(k) / c0 } else { f64::NAN })
        .collect()
}

/// Pearson correlation of the neighbouring pairs `(g_i, g_{i+1})`: 1 if both sides are
/// constant, NaN if only one is (undefined) or a value is inf/NaN or there are fewer than two
/// pairs ([`lag_pearson`] at lag 1).
pub fn lag1_pearson(g: &[f64]) -> f64 {
    lag_pearson(g, 1)
}

/// Pearson correlation of the pairs `(g_i, g_{i+k})`, each side with its own mean and standard
/// deviation: 1 if both sides are constant, NaN if only one is (undefined), if a value is
/// inf/NaN, or if there are fewer than two pairs; `k = 0` gives 1.
pub fn lag_pearson(g: &[f64], k: usize) -> f64 {
    if g.len() < k + 2 || g.iter().any(|v| !v.is_finite()) {
        return f64::NAN;
    }
    let (a, b) = (&g[..g.len() - k], &g[k..]);
    let constant = |s: &[f64]| s.iter().all(|&v| v == s[0]);
    match (constant(a), constant(b)) {
        (true, true) => return 1.0,
        (true, false) | (false, true) => return f64::NAN,
        _ => {}
    }
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// `|r| < 2 / sqrt(n)`: the lag-1 correlation of one white-noise series of `n` points stays
/// within about 95% of the time (its standard error is about `1/sqrt(n)`). For one seed's
/// `r`; the mean over seeds has its own, narrower band ([`mean_noise_band`]).
pub fn noise_floor(points: usize) -> f64 {
    2.0 / (points as f64).sqrt()
}

/// Standard errors in [`mean_noise_band`].
pub const BAND_STANDARD_ERRORS: f64 = 3.0;

/// `|mean r| < 3 / sqrt(n k)`: the band of the mean of `k` seeds' lag-1 correlations of white
/// noise of `n` points. For `n` independent values the lag-1 correlation has mean about `-1/n`
/// and variance about `1/n` (Bartlett 1946; the Pearson form of the pairs is the same to
/// `O(1/n^2)`); the seeds' networks are independent, so the mean of `k` has variance `1/(n k)`
/// and standard error `1/sqrt(n k)`. Three standard errors: white noise leaves the band 0.3% of
/// the time, so that a verdict over 5 runs of `k` seeds is not decided by chance (a two-error
/// band, left 5% of the time, would fail one of 5 runs of true white noise 23% of the time).
/// Measured: over 200 seeds of the 50-layer `feedforward+bn` net at 256 points, one seed's `r`
/// has mean -0.008 and sd 0.066 (`1/sqrt(256)` = 0.0625), and the means of 25 groups of 8 seeds
/// stay within ±0.047, inside `3/sqrt(2048)` = 0.066.
pub fn mean_noise_band(points: usize, seeds: usize) -> f64 {
    BAND_STANDARD_ERRORS / (points as f64 * seeds.max(1) as f64).sqrt()
}

/// One seed of one (architecture, depth).
#[derive(Clone, Debug, Serialize)]
pub struct SeedGradients {
    pub seed: u64,
    /// `dy/dx` at every grid point.
    pub gradient: Vec<Num>,
    /// `r_k` for k = 0 ..= max_lag.
    pub autocorrelation: Vec<Num>,
    /// Pearson correlation of neighbouring gradients.
    pub lag1_correlation: Num,
    /// Grid points whose gradient is inf or NaN.
    pub nonfinite_points: usize,
    /// The first layer whose activations hold an inf or NaN (`depth + 1`: the output): the
    /// forward pass overflowed, and since a ReLU maps NaN to 0 the gradients (often all 0)
    /// are no evidence, so the autocorrelation and lag-1 correlation are NaN. `null` if none.
    pub overflow_from_layer: Option<usize>,
    /// Every gradient equal (autocorrelation 1 by convention).
    pub constant: bool,
}

/// Mean over seeds of the autocorrelation per lag, with the min-max band over seeds.
#[derive(Clone, Debug, Serialize)]
pub struct AutocorrelationSummary {
    pub mean: Vec<Num>,
    pub min: Vec<Num>,
    pub max: Vec<Num>,
}

/// One architecture at one depth, over every seed.
#[derive(Clone, Debug, Serialize)]
pub struct ShatteredArm {
    /// `feedforward`, `feedforward+bn` or `resnet+bn`.
    pub name: Arch,
    pub depth: usize,
    pub net: NetConfig,
    pub seeds: Vec<SeedGradients>,
    pub autocorrelation: AutocorrelationSummary,
    /// Mean over seeds of each seed's lag-1 correlation (NaN if a seed's is NaN).
    pub lag1_correlation: Num,
    /// `|lag1_correlation|`, for checks of the white-noise band.
    pub lag1_abs: Num,
    /// `lag1_abs < mean_noise_band`: the mean cannot be told from white noise's (`false` when
    /// NaN).
    pub white_noise: bool,
    /// Standard deviation over seeds (0 with one seed).
    pub lag1_sd: Num,
    /// Why the lag-1 correlation is not a number (`null` when it is).
    pub reason: Option<String>,
}

/// `resnet+bn` against `feedforward+bn` at one depth: the same blocks with and without skips.
#[derive(Clone, Debug, Serialize)]
pub struct SkipGain {
    pub depth: usize,
    /// `resnet+bn`'s mean lag-1 correlation minus `feedforward+bn`'s: what the skips keep.
    pub gain: Num,
}

/// How a run compares with the paper's prediction for one architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Agreement {
    Agrees,
    Disagrees,
    /// No depth of the run tests the prediction.
    NotTested,
    /// A lag-1 correlation the test needs is NaN.
    Undetermined,
}

impl std::fmt::Display for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Agreement::Agrees => "agrees",
            Agreement::Disagrees => "disagrees",
            Agreement::NotTested => "not tested",
            Agreement::Undetermined => "undetermined",
        })
    }
}

/// The paper's prediction for one architecture and what the run says about it.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub name: Arch,
    /// What the paper predicts, in words.
    pub theory: String,
    /// The result it comes from ([`Theorem::source`]): `Balduzzi et al. 2017, Thm 1`.
    pub source: String,
    /// Its formula in depth `L` ([`Theorem::formula`]): `2^-L`, `(3/4)^L`, `1/sqrt(L)`.
    pub formula: String,
    /// The predicted correlation per depth ([`Theorem::correlation`]), in `config.depths`
    /// order.
    pub predicted: Vec<Num>,
    /// The predicted correlation at every depth from 1 to the deepest of the run
    /// ([`curve_depths`]), computed from the formula: the dotted curve of the figures.
    pub curve: Vec<CurvePoint>,
    /// The measured decay over the run's depths beside the predicted one.
    pub decay: Decay,
    /// The tested claim: white noise (`|lag-1| < mean_noise_band`) at every depth whose predicted
    /// scale is below the floor (exponential decay), or correlated (`lag-1 >= mean_noise_band`) at
    /// every depth whose predicted scale is at or above it (sublinear decay).
    pub verdict: Agreement,
    /// The computed sentence behind the verdict.
    pub detail: String,
    /// Why the verdict is `undetermined` (`null` otherwise).
    pub reason: Option<String>,
}

/// One point of a predicted curve.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    pub depth: usize,
    /// The predicted correlation at `depth`.
    pub r: Num,
}

/// An architecture's measured lag-1 correlation over the run's depths beside its prediction
/// (the theorems are about inputs whose activation patterns are unrelated, the lag-1
/// correlation about neighbours one grid step apart: see [`Theorem`]; the comparison is of
/// shapes).
#[derive(Clone, Debug, Serialize)]
pub struct Decay {
    /// The shallowest and the deepest depth of the run.
    pub from_depth: usize,
    pub to_depth: usize,
    /// `|r(to_depth)| / |r(from_depth)|` of the mean lag-1 correlations (NaN if either is NaN
    /// or the first is 0).
    pub measured_ratio: Num,
    /// `R(to_depth) / R(from_depth)` of the prediction.
    pub predicted_ratio: Num,
    /// The first depth of the run from which every deeper depth of the run has a mean lag-1
    /// correlation inside the white-noise band (`null`: the deepest is outside it, or NaN).
    pub white_from_depth: Option<usize>,
    /// The first depth (any integer up to [`MAX_DEPTH`]) at which the prediction is below the
    /// same band (`null`: none).
    pub predicted_white_from_depth: Option<usize>,
}

impl Decay {
    /// `arms`: one architecture's arms in `config.depths` order; `floor`: the white-noise band.
    fn of(arms: &[&ShatteredArm], theorem: Theorem, beta: f64, floor: f64) -> Decay {
        let mut sorted: Vec<&ShatteredArm> = arms.to_vec();
        sorted.sort_by_key(|a| a.depth);
        let (first, last) = (sorted[0], sorted[sorted.len() - 1]);
        let (r0, r1) = (
            first.lag1_correlation.0.abs(),
            last.lag1_correlation.0.abs(),
        );
        let measured_ratio = if r0 > 0.0 { r1 / r0 } else { f64::NAN };
        let white = |a: &&ShatteredArm| a.lag1_correlation.0.abs() < floor;
        let white_from_depth = if sorted.iter().rev().take(1).all(white) {
            let outside = sorted.iter().rposition(|a| !white(a));
            Some(sorted[outside.map_or(0, |i| i + 1)].depth)
        } else {
            None
        };
        Decay {
            from_depth: first.depth,
            to_depth: last.depth,
            measured_ratio: Num(measured_ratio),
            predicted_ratio: Num(
                theorem.correlation(last.depth, beta) / theorem.correlation(first.depth, beta)
            ),
            white_from_depth,
            predicted_white_from_depth: first_below(theorem, beta, floor),
        }
    }
}

/// The first depth `1 ..= MAX_DEPTH` whose predicted correlation is below `floor`.
fn first_below(theorem: Theorem, beta: f64, floor: f64) -> Option<usize> {
    (1..=MAX_DEPTH).find(|&l| theorem.correlation(l, beta) < floor)
}

/// Everything `shattered` computed; written to `shattered.json`, drawn in `shattered.png`.
#[derive(Clone, Debug, Serialize)]
pub struct ShatteredReport {
    pub tool: ToolInfo,
    pub config: ShatteredConfig,
    /// The grid.
    pub x: Vec<Num>,
    /// `2 / sqrt(points)`: one seed's lag-1 correlation within it cannot be told from white
    /// noise's (95%).
    pub noise_floor: f64,
    /// `3 / sqrt(points * seeds)`: the band of a mean over the seeds ([`mean_noise_band`]),
    /// which the arms' `white_noise`, the predictions and the figures use.
    pub mean_noise_band: f64,
    pub arms: Vec<ShatteredArm>,
    /// Per depth with both `feedforward+bn` and `resnet+bn`: what the skip connections keep.
    pub skips: Vec<SkipGain>,
    pub predictions: Vec<Prediction>,
    /// With `--grids`: every grid's lag-1 correlation and correlation at one fixed distance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spacing: Option<SpacingReport>,
}

/// The lag-1 correlation depends on the grid: a finer grid samples the same function more
/// densely, so neighbours are closer and more alike (at `h -> 0` a piecewise-linear function's
/// neighbours share their piece and gradient, correlation 1). The correlation at a fixed
/// *distance* between inputs does not depend on the grid that samples it, apart from the
/// grid's BatchNorm statistics (each grid's own, over the same interval). So every grid
/// records both: the lag-1 correlation, and the correlation at [`SpacingReport::distance`],
/// the coarsest grid's step (at lag `k = distance / step`, linearly interpolated between the
/// Pearson correlations at lags `floor(k)` and `ceil(k)` when `k` is not a whole number).
#[derive(Clone, Debug, Serialize)]
pub struct SpacingReport {
    /// The fixed distance between two inputs: the coarsest grid's step, `4 / (points - 1)`.
    pub distance: f64,
    /// Every grid, the main one (`--points`) among them, by points.
    pub grids: Vec<SpacingGrid>,
}

/// One grid of [`SpacingReport`].
#[derive(Clone, Debug, Serialize)]
pub struct SpacingGrid {
    pub points: usize,
    /// `4 / (points - 1)`.
    pub step: f64,
    /// `distance / step`: the lag that is the fixed distance on this grid.
    pub lag: f64,
    /// Every architecture and depth, in [`ShatteredConfig::arms`] order.
    pub arms: Vec<SpacingArm>,
}

/// One architecture and depth on one grid: means over seeds, and each seed's value.
#[derive(Clone, Debug, Serialize)]
pub struct SpacingArm {
    pub name: Arch,
    pub depth: usize,
    pub lag1_correlation: Num,
    /// The correlation at the fixed distance.
    pub at_distance: Num,
    pub seeds_lag1: Vec<Num>,
    pub seeds_at_distance: Vec<Num>,
}

/// One seed's numbers on an extra grid.
#[derive(Clone, Copy, Debug)]
pub struct SpacingSeed {
    pub lag1: f64,
    pub at_distance: f64,
}

impl SpacingSeed {
    /// The lag-1 correlation and the correlation at `distance` of `e`'s gradient on a grid of
    /// `points` (NaN where the forward overflowed).
    fn of(e: &Evaluation, distance: f64, points: usize) -> SpacingSeed {
        if e.overflow_from_layer.is_some() {
            return SpacingSeed {
                lag1: f64::NAN,
                at_distance: f64::NAN,
            };
        }
        SpacingSeed {
            lag1: lag1_pearson(&e.gradient),
            at_distance: correlation_at(&e.gradient, distance / step(points)),
        }
    }
}

/// The grid step of `points` points on `[X_MIN, X_MAX]`.
pub fn step(points: usize) -> f64 {
    (X_MAX - X_MIN) / (points.max(2) - 1) as f64
}

/// The Pearson correlation of `g` at the (possibly fractional) lag `k`: at a whole `k`
/// [`lag_pearson`], else linearly interpolated between `floor(k)` and `ceil(k)`.
pub fn correlation_at(g: &[f64], k: f64) -> f64 {
    let (lo, frac) = (k.floor(), k - k.floor());
    if frac < 1e-9 {
        return lag_pearson(g, lo as usize);
    }
    if frac > 1.0 - 1e-9 {
        return lag_pearson(g, lo as usize + 1);
    }
    let lo = lo as usize;
    (1.0 - frac) * lag_pearson(g, lo) + frac * lag_pearson(g, lo + 1)
}

impl SpacingReport {
    /// The coarsest grid's step.
    pub fn distance(cfg: &ShatteredConfig) -> f64 {
        step(cfg.all_points().into_iter().min().unwrap_or(MIN_POINTS))
    }

    /// `spaced`: the extra grids' seeds in [`ShatteredConfig::jobs`] order; the main grid's
    /// numbers come from `arms`' gradients.
    fn of(cfg: &ShatteredConfig, arms: &[ShatteredArm], spaced: Vec<SpacingSeed>) -> Self {
        let distance = Self::distance(cfg);
        let main = SpacingGrid::new(
            cfg.points(),
            distance,
            arms.iter()
                .map(|a| {
                    let seeds = a.seeds.iter().map(|s| {
                        let g: Vec<f64> = s.gradient.iter().map(|v| v.0).collect();
                        let nan = s.overflow_from_layer.is_some();
                        SpacingSeed {
                            lag1: s.lag1_correlation.0,
                            at_distance: if nan {
                                f64::NAN
                            } else {
                                correlation_at(&g, distance / step(cfg.points()))
                            },
                        }
                    });
                    SpacingArm::new(a.name, a.depth, seeds.collect())
                })
                .collect(),
        );
        let mut spaced = spaced.into_iter();
        let mut grids = vec![main];
        for &points in &cfg.grids {
            let arms = cfg
                .arms()
                .into_iter()
                .map(|(arch, depth)| {
                    SpacingArm::new(arch, depth, spaced.by_ref().take(cfg.seeds).collect())
                })
                .collect();
            grids.push(SpacingGrid::new(points, distance, arms));
        }
        grids.sort_by_key(|g| g.points);
        SpacingReport { distance, grids }
    }
}

impl SpacingGrid {
    fn new(points: usize, distance: f64, arms: Vec<SpacingArm>) -> Self {
        SpacingGrid {
            points,
            step: step(points),
            lag: distance / step(points),
            arms,
        }
    }
}

impl SpacingArm {
    fn new(name: Arch, depth: usize, seeds: Vec<SpacingSeed>) -> Self {
        let lag1: Vec<f64> = seeds.iter().map(|s| s.lag1).collect();
        let at: Vec<f64> = seeds.iter().map(|s| s.at_distance).collect();
        SpacingArm {
            name,
            depth,
            lag1_correlation: Num(mean_nan(lag1.iter().copied())),
            at_distance: Num(mean_nan(at.iter().copied())),
            seeds_lag1: lag1.into_iter().map(Num).collect(),
            seeds_at_distance: at.into_iter().map(Num).collect(),
        }
    }
}

/// Work units of one network (forward passes of one sample, a forward plus backward counting
/// 3): a forward and a backward on the grid ([`frozen_gradients`]), plus a train-mode forward
/// where the normaliser takes the general path (LayerNorm, BN after the activation, or any
/// normaliser in standard blocks, which [`frozen_gradients`] leaves to the slow path).
fn job_units(cfg: &ShatteredConfig, arch: Arch, points: usize) -> u64 {
    let n = points as u64;
    let general = match arch.norm(cfg.bn) {
        Normaliser::Off => false,
        Normaliser::Batch { placement, .. } => {
            placement != crate::config::Placement::Pre || arch.block().is_some()
        }
        Normaliser::Layer { .. } => true,
    };
    let train = if general { n } else { 0 };
    train + FORWARD_BACKWARD * n
}

fn seed_result(seed: u64, e: Evaluation, max_lag: usize) -> SeedGradients {
    let g = e.gradient;
    let (autocorrelation, lag1) = if e.overflow_from_layer.is_some() {
        (vec![f64::NAN; max_lag + 1], f64::NAN)
    } else {
        (autocorrelation(&g, max_lag), lag1_pearson(&g))
    };
    SeedGradients {
        seed,
        autocorrelation: autocorrelation.into_iter().map(Num).collect(),
        lag1_correlation: Num(lag1),
        nonfinite_points: g.iter().filter(|v| !v.is_finite()).count(),
        overflow_from_layer: e.overflow_from_layer,
        constant: g.iter().all(|&v| v == g[0]),
        gradient: g.into_iter().map(Num).collect(),
    }
}

fn summarise(
    cfg: &ShatteredConfig,
    arch: Arch,
    depth: usize,
    seeds: Vec<SeedGradients>,
) -> ShatteredArm {
    let band = mean_noise_band(cfg.points(), cfg.seeds);
    let lags = cfg.max_lag + 1;
    let at = |k: usize| seeds.iter().map(move |s| s.autocorrelation[k].0);
    let autocorrelation = AutocorrelationSummary {
        mean: (0..lags).map(|k| Num(mean_nan(at(k)))).collect(),
        min: (0..lags).map(|k| Num(min_nan(at(k)))).collect(),
        max: (0..lags).map(|k| Num(max_nan(at(k)))).collect(),
    };
    let lag1: Vec<f64> = seeds.iter().map(|s| s.lag1_correlation.0).collect();
    let mean = mean_nan(lag1.iter().copied());
    let sd = if lag1.len() > 1 {
        (lag1.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (lag1.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    let reason = mean.is_nan().then(|| {
        let bad: Vec<String> = seeds
            .iter()
            .filter(|s| s.lag1_correlation.0.is_nan())
            .map(|s| {
                if let Some(l) = s.overflow_from_layer {
                    format!(
                        "seed {}: the forward pass overflowed (activations inf/NaN from layer {l}), so its gradients are no evidence",
                        s.seed
                    )
                } else if s.nonfinite_points > 0 {
                    format!(
                        "seed {}: {} of {} gradients are inf/NaN",
                        s.seed,
                        s.nonfinite_points,
                        s.gradient.len()
                    )
                } else {
                    format!(
                        "seed {}: one side of the neighbour pairs is constant (correlation undefined)",
                        s.seed
                    )
                }
            })
            .collect();
        bad.join("; ")
    });
    ShatteredArm {
        name: arch,
        depth,
        net: cfg.net(arch, depth),
        seeds,
        autocorrelation,
        lag1_correlation: Num(mean),
        lag1_abs: Num(mean.abs()),
        white_noise: mean.abs() < band,
        lag1_sd: Num(sd),
        reason,
    }
}

/// Per depth run with both BN architectures, `resnet+bn`'s lag-1 correlation minus
/// `feedforward+bn`'s, in depth order of the run.
fn skip_gains(arms: &[ShatteredArm]) -> Vec<SkipGain> {
    let of = |arch: Arch, depth: usize| {
        arms.iter()
            .find(|a| a.name == arch && a.depth == depth)
            .map(|a| a.lag1_correlation.0)
    };
    arms.iter()
        .filter(|a| a.name == Arch::ResnetBn)
        .filter_map(|a| {
            let ff = of(Arch::FeedforwardBn, a.depth)?;
            Some(SkipGain {
                depth: a.depth,
                gain: Num(a.lag1_correlation.0 - ff),
            })
        })
        .collect()
}

/// The results of Balduzzi et al. 2017 ("The Shattered Gradients Problem: If resnets are the
/// answer, then what is the question?", ICML, arXiv 1702.08591, section 3) for the
/// correlation `R(i, j) = C(i, j) / C(i)` between the gradients at two inputs `x^(i)`,
/// `x^(j)` of a net of `L` layers of `N` rectifiers at He initialisation (`sigma^2 = 2/N`),
/// `C(i)` the variance of the gradient at one input and `C(i, j)` the covariance at the two,
/// both over the random weights:
///
/// - **Theorem 1** (covariance of gradients in feedforward nets): `C(i) = 1`,
///   `C(i, j) = 2^-L`, so `R = 2^-L`.
/// - **Theorem 2** (resnets without batch normalisation, `beta = 1`): `C(i) = 2^L`,
///   `C(i, j) = (3/2)^L`, so `R = (3/4)^L`. For `beta != 1` this tool draws the same path count
///   with the branch scaled (its own step, not the paper's statement): a layer multiplies the
///   variance by `1 + beta^2` and the covariance by `1 + beta^2/2`, so
///   `R = ((1 + beta^2/2) / (1 + beta^2))^L`, which is `(3/4)^L` at `beta = 1`.
/// - **Theorem 3** (resnets with batch normalisation and beta-rescaling):
///   `C(i) = beta^2 (L - 1) + 1`, `C(i, j) ~ beta sqrt(L)`, so `R ~ 1/(beta sqrt(L))`: an
///   asymptotic scale, drawn here as `min(1, 1/(beta sqrt(L)))`.
///
/// Theorem 1 is not stated for nets with batch normalisation; `feedforward+bn` is drawn with its
/// `2^-L` (the run shows whether BN's centring makes the feedforward net follow it).
///
/// **What is compared.** The proofs write the gradient as a sum over paths of active units and
/// count the paths active at both inputs. The per-layer factors above (variance `N sigma^2 / 2
/// = 1`, covariance `N sigma^2 / 4 = 1/2` for a plain layer) mean that a unit is active at both
/// inputs with probability `1/4 = (1/2)^2`, as if its activations at the two inputs were
/// independent: the theorems describe inputs far enough apart that their activation patterns
/// are unrelated. This experiment measures the lag-1 correlation of `dy/dx` along a grid, the
/// correlation at one grid step `h`: as `h -> 0` neighbours share their linear piece and their
/// gradient, so the measured correlation tends to 1 at every depth, and it sits above the
/// theorem's value at any finite `h` until depth has decorrelated the neighbours' activation
/// patterns. The curves are the theorems' values, to be compared in shape (exponential against
/// power-law decay, which falls into the white-noise band first), not number for number; how the
/// lag-1 correlation moves with `h` is measured by `--grids`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Theorem {
    /// Theorem 1, `2^-L`.
    Feedforward,
    /// Theorem 1's `2^-L`, drawn for the BN feedforward net (no theorem of its own).
    FeedforwardBn,
    /// Theorem 2, `(3/4)^L` at `beta = 1`.
    Resnet,
    /// Theorem 3, `~ 1/(beta sqrt(L))`.
    ResnetBn,
    /// Theorem 2's path count applied to a two-layer branch (this tool's step, not a stated
    /// result): `((1 + beta^2/4) / (1 + beta^2))^L`, `(5/8)^L` at `beta = 1`.
    PreactResnet,
    /// Theorem 3's `~ 1/(beta sqrt(L))`, drawn for standard blocks with a normaliser (stated
    /// for one-layer blocks).
    StdResnetBn,
    /// SkipInit at initialisation: every branch's gain is 0, the net is its linear stem and
    /// head, so `dy/dx` is one constant and the correlation 1 at every depth (exact, from the
    /// construction; no theorem).
    SkipInit,
}

impl Theorem {
    /// The predicted correlation at depth `depth` (hidden layers) with branch scale `beta`.
    pub fn correlation(self, depth: usize, beta: f64) -> f64 {
        let l = depth as f64;
        match self {
            Theorem::Feedforward | Theorem::FeedforwardBn => 0.5f64.powf(l),
            Theorem::Resnet => {
                let b2 = beta * beta;
                ((1.0 + b2 / 2.0) / (1.0 + b2)).powf(l)
            }
            Theorem::ResnetBn | Theorem::StdResnetBn => (1.0 / (beta * l.sqrt())).min(1.0),
            Theorem::PreactResnet => {
                let b2 = beta * beta;
                ((1.0 + b2 / 4.0) / (1.0 + b2)).powf(l)
            }
            Theorem::SkipInit => 1.0,
        }
    }

    /// Exponential decay in depth (falls below any band), or the sublinear `1/sqrt(L)`.
    pub fn exponential(self) -> bool {
        !matches!(
            self,
            Theorem::ResnetBn | Theorem::StdResnetBn | Theorem::SkipInit
        )
    }

    /// Where the prediction comes from: `Balduzzi et al. 2017, Thm 1`.
    pub fn source(self) -> &'static str {
        match self {
            Theorem::Feedforward => "Balduzzi et al. 2017, Thm 1",
            Theorem::FeedforwardBn => "Balduzzi et al. 2017, Thm 1, stated without BN",
            Theorem::Resnet => "Balduzzi et al. 2017, Thm 2",
            Theorem::ResnetBn => "Balduzzi et al. 2017, Thm 3",
            Theorem::PreactResnet => {
                "Balduzzi et al. 2017, Thm 2's path count for a two-layer branch (this tool's step)"
            }
            Theorem::StdResnetBn => "Balduzzi et al. 2017, Thm 3, stated for one-layer blocks",
            Theorem::SkipInit => "De & Smith 2020 (SkipInit): alpha = 0 at initialisation",
        }
    }

    /// The formula in ASCII, with `beta` written in where it is not 1: `2^-L`, `(3/4)^L`,
    /// `1/sqrt(L)`, `1/(0.1 sqrt(L))`.
    pub fn formula(self, beta: f64) -> String {
        let b = crate::stats::Short(beta);
        match self {
            Theorem::Feedforward | Theorem::FeedforwardBn => "2^-L".into(),
            Theorem::Resnet if beta == 1.0 => "(3/4)^L".into(),
            Theorem::Resnet => format!("((1+{b}^2/2)/(1+{b}^2))^L"),
            Theorem::ResnetBn | Theorem::StdResnetBn if beta == 1.0 => "1/sqrt(L)".into(),
            Theorem::ResnetBn | Theorem::StdResnetBn => format!("1/({b} sqrt(L))"),
            Theorem::PreactResnet if beta == 1.0 => "(5/8)^L".into(),
            Theorem::PreactResnet => format!("((1+{b}^2/4)/(1+{b}^2))^L"),
            Theorem::SkipInit => "1".into(),
        }
    }

    /// What the paper predicts, in words.
    fn words(self) -> &'static str {
        match self {
            Theorem::Feedforward => {
                "feedforward rectifier nets: correlation decays exponentially with depth, about 2^-L (white noise once below the band)"
            }
            Theorem::FeedforwardBn => {
                "no separate result here; tested against the feedforward prediction (BN alone does not stop shattering)"
            }
            Theorem::Resnet => {
                "resnets without BN: correlation decays exponentially, (3/4)^L at beta 1, slower than 2^-L (white noise once below the band)"
            }
            Theorem::ResnetBn => {
                "resnets with BN: correlation decays sublinearly, about 1/sqrt(L) (stays above the band while 1/sqrt(L) does)"
            }
            Theorem::PreactResnet => {
                "pre-activation blocks without BN: Thm 2's path count with two rectifier layers per branch, (5/8)^L at beta 1, exponential (white noise once below the band)"
            }
            Theorem::StdResnetBn => {
                "standard blocks with BN: tested against Thm 3's sublinear 1/sqrt(L) (stays above the band while 1/sqrt(L) does)"
            }
            Theorem::SkipInit => {
                "SkipInit at initialisation: alpha = 0 makes every block the identity, so the net is its linear stem and head (a depth-0 net) and dy/dx is constant: correlation 1 at every depth"
            }
        }
    }
}

/// The branch scale an architecture's prediction uses: `--residual-scale` for a skip
/// architecture, else 1.
fn beta_of(cfg: &ShatteredConfig, arch: Arch) -> f64 {
    if arch.has_branch() {
        cfg.net.residual_scale
    } else {
        1.0
    }
}

/// The predicted correlation of `arch` at `depth` in this run ([`Theorem::correlation`]).
fn predicted_scale(cfg: &ShatteredConfig, arch: Arch, depth: usize) -> f64 {
    arch.theory().correlation(depth, beta_of(cfg, arch))
}

/// Most points of a prediction's curve: every depth up to this, else this many log-spaced.
pub const CURVE_POINTS: usize = 200;

/// The depths a prediction's curve is computed at: every depth from 1 to `deepest` when there
/// are at most [`CURVE_POINTS`], else [`CURVE_POINTS`] depths spaced evenly in log (distinct,
/// from 1 to `deepest`).
pub fn curve_depths(deepest: usize) -> Vec<usize> {
    if deepest <= CURVE_POINTS {
        return (1..=deepest).collect();
    }
    let top = (deepest as f64).ln();
    let mut d: Vec<usize> = (0..CURVE_POINTS)
        .map(|i| (top * i as f64 / (CURVE_POINTS - 1) as f64).exp().round() as usize)
        .collect();
    d.dedup();
    d
}

/// Compare the arms of one architecture with its prediction.
fn predict(cfg: &ShatteredConfig, arch: Arch, arms: &[&ShatteredArm], floor: f64) -> Prediction {
    let theorem = arch.theory();
    let beta = beta_of(cfg, arch);
    let predicted: Vec<f64> = arms
        .iter()
        .map(|a| theorem.correlation(a.depth, beta))
        .collect();
    let exponential = theorem.exponential();
    let test = PredictionTest::of(cfg.act, arms, &predicted, exponential, floor);
    let (verdict, detail, reason) = test.words(cfg.act, exponential, floor);
    let deepest = cfg.depths.iter().copied().max().unwrap_or(1);
    Prediction {
        name: arch,
        theory: theorem.words().to_string(),
        source: theorem.source().to_string(),
        formula: theorem.formula(beta),
        predicted: predicted.into_iter().map(Num).collect(),
        curve: curve_depths(deepest)
            .into_iter()
            .map(|depth| CurvePoint {
                depth,
                r: Num(theorem.correlation(depth, beta)),
            })
            .collect(),
        decay: Decay::of(arms, theorem, beta, floor),
        verdict,
        detail,
        reason,
    }
}

/// What the lag-1 correlations say about one architecture's prediction, in numbers; [`predict`]
/// puts it in words with [`PredictionTest::words`].
enum PredictionTest {
    /// The run's units are not ReLU, which the results are about.
    OtherActivation,
    /// No depth has a predicted scale on the tested side of the band.
    NoDepth,
    /// The lag-1 correlation is NaN at these depths.
    Nan(Vec<usize>),
    /// The depths that test the claim, and those of them where it fails, with their lag-1
    /// correlation.
    Tested {
        depths: Vec<usize>,
        failing: Vec<(usize, f64)>,
    },
}

impl PredictionTest {
    /// The test on `arms` (one architecture, `predicted` their scales): with exponential decay,
    /// white noise (`|lag-1| < floor`) where the predicted scale is below `floor`; else
    /// correlated (`lag-1 >= floor`) where it is at or above.
    fn of(
        act: Activation,
        arms: &[&ShatteredArm],
        predicted: &[f64],
        exponential: bool,
        floor: f64,
    ) -> Self {
        // The depths that test the claim.
        let tested: Vec<&ShatteredArm> = arms
            .iter()
            .zip(predicted)
            .filter(|(_, p)| {
                if exponential {
                    **p < floor
                } else {
                    **p >= floor
                }
            })
            .map(|(a, _)| *a)
            .collect();
        let nan: Vec<usize> = tested
            .iter()
            .filter(|a| a.lag1_correlation.0.is_nan())
            .map(|a| a.depth)
            .collect();
        if act != Activation::Relu {
            PredictionTest::OtherActivation
        } else if tested.is_empty() {
            PredictionTest::NoDepth
        } else if !nan.is_empty() {
            PredictionTest::Nan(nan)
        } else {
            let failing = tested
                .iter()
                .map(|a| (a.depth, a.lag1_correlation.0))
                .filter(|&(_, r)| {
                    if exponential {
                        r.abs() >= floor
                    } else {
                        r < floor
                    }
                })
                .collect();
            PredictionTest::Tested {
                depths: tested.iter().map(|a| a.depth).collect(),
                failing,
            }
        }
    }

    /// The verdict, the sentence behind it and, when undetermined, why.
    fn words(
        &self,
        act: Activation,
        exponential: bool,
        floor: f64,
    ) -> (Agreement, String, Option<String>) {
        let at_depths = |d: &[usize]| {
            d.iter()
                .map(|d| format!("depth {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            PredictionTest::OtherActivation => (
                Agreement::NotTested,
                format!("the results are about ReLU units; this run uses {act}"),
                None,
            ),
            PredictionTest::NoDepth => (
                Agreement::NotTested,
                format!(
                    "no depth of this run has a predicted scale {} the band {}",
                    if exponential { "below" } else { "at or above" },
                    fmt_num(floor)
                ),
                None,
            ),
            PredictionTest::Nan(at) => (
                Agreement::Undetermined,
                String::new(),
                Some(format!(
                    "the lag-1 correlation is NaN at {} (see the arm's reason)",
                    at_depths(at)
                )),
            ),
            PredictionTest::Tested { depths, failing } => {
                let claim = if exponential {
                    "|lag-1| below"
                } else {
                    "lag-1 at or above"
                };
                let depths: Vec<String> = depths.iter().map(usize::to_string).collect();
                if failing.is_empty() {
                    return (
                        Agreement::Agrees,
                        format!(
                            "{claim} the band {} at depth {} as predicted",
                            fmt_num(floor),
                            depths.join(", ")
                        ),
                        None,
                    );
                }
                let failing: Vec<String> = failing
                    .iter()
                    .map(|&(d, r)| format!("depth {d} ({})", fmt_num(r)))
                    .collect();
                (
                    Agreement::Disagrees,
                    format!(
                        "predicted {claim} the band {} at depth {}, but not at {}",
                        fmt_num(floor),
                        depths.join(", "),
                        failing.join(", ")
                    ),
                    None,
                )
            }
        }
    }
}

/// Run every architecture, depth and seed (in parallel on rayon's pool).
pub fn run(cfg: &ShatteredConfig, progress: Progress) -> ShatteredReport {
    let arms = cfg.arms();
    let seeds = cfg.seed_list();
    let x = grid(cfg.points());
    let extra: Vec<Array2<f64>> = cfg.grids.iter().map(|&p| grid(p)).collect();
    let distance = SpacingReport::distance(cfg);
    let (main, spaced): (Vec<_>, Vec<_>) = cfg
        .jobs()
        .par_iter()
        .map_init(Pool::default, |pool, job| {
            // Told of nothing first: a cancelled run (`bn-lab serve`'s client left) stops here,
            // before the job's work, instead of finishing every job still queued on the pool.
            progress.units(0);
            let on = job.grid.map_or(x.view(), |i| extra[i].view());
            let e = grid_gradients(cfg, job.arch, job.depth, job.seed, on, pool);
            let r = match job.grid {
                None => Ok(seed_result(job.seed, e, cfg.max_lag)),
                Some(_) => Err(SpacingSeed::of(&e, distance, job.points)),
            };
            progress.units(job.units);
            r
        })
        .collect::<Vec<_>>()
        .into_iter()
        .partition(Result::is_ok);
    let mut results = main.into_iter().map(|r| r.expect("partitioned"));
    let arm_results: Vec<ShatteredArm> = arms
        .iter()
        .map(|&(arch, depth)| {
            let per_seed: Vec<SeedGradients> = results.by_ref().take(seeds.len()).collect();
            summarise(cfg, arch, depth, per_seed)
        })
        .collect();
    let spaced: Vec<SpacingSeed> = spaced
        .into_iter()
        .map(|r| r.expect_err("partitioned"))
        .collect();
    let spacing = (!cfg.grids.is_empty()).then(|| SpacingReport::of(cfg, &arm_results, spaced));
    let floor = mean_noise_band(cfg.points(), cfg.seeds);
    let predictions = cfg
        .archs
        .iter()
        .map(|&arch| {
            let of: Vec<&ShatteredArm> = arm_results.iter().filter(|a| a.name == arch).collect();
            predict(cfg, arch, &of, floor)
        })
        .collect();
    ShatteredReport {
        tool: ToolInfo::current(),
        config: cfg.clone(),
        x: x.column(0).iter().map(|&v| Num(v)).collect(),
        noise_floor: noise_floor(cfg.points()),
        mean_noise_band: floor,
        skips: skip_gains(&arm_results),
        spacing,
        arms: arm_results,
        predictions,
    }
}

/// `relu, he init, width 200, 256 points on [-2, 2], bias pytorch, 8 seeds from 0`.
pub fn title(cfg: &ShatteredConfig) -> String {
    let mut s = format!(
        "{}, {} init, width {}, {} points on [{}, {}], bias {}",
        cfg.act,
        cfg.net.init.resolve(cfg.act),
        cfg.net.width,
        cfg.points(),
        X_MIN,
        X_MAX,
        cfg.bias
    );
    if cfg.bn != Normaliser::BN {
        s.push_str(&format!(", +bn = {}", cfg.bn.label()));
    }
    if cfg.net.residual_scale != 1.0 && cfg.archs.iter().any(|a| a.has_branch()) {
        s.push_str(&format!(
            ", resnet beta {}",
            crate::stats::Short(cfg.net.residual_scale)
        ));
    }
    if cfg.seeds > 1 {
        s.push_str(&format!(", {} seeds from {}", cfg.seeds, cfg.net.seed));
    } else {
        s.push_str(&format!(", seed {}", cfg.net.seed));
    }
    s
}

/// The stdout table and the comparison with the paper.
pub fn table(report: &ShatteredReport) -> String {
    let cfg = &report.config;
    let floor = report.mean_noise_band;
    let mut out = format!("shattered: {}\n", title(cfg));
    out.push_str(&format!(
        "{:<15}  {:>5}  {:>9}  {:>8}  {:>10}  {:<12}  {}\n",
        "architecture", "depth", "lag-1 r", "sd", "predicted", "measured", "predicted scale"
    ));
    let mut notes = Vec::new();
    for a in &report.arms {
        let r = a.lag1_correlation.0;
        let looks = if r.is_nan() {
            "undetermined"
        } else if r.abs() < floor {
            "white noise"
        } else {
            "correlated"
        };
        let p = predicted_scale(cfg, a.name, a.depth);
        out.push_str(&format!(
            "{:<15}  {:>5}  {:>9}  {:>8}  {:>10}  {:<12}  {}\n",
            a.name.name(),
            a.depth,
            fmt_num(r),
            fmt_num(a.lag1_sd.0),
            fmt_num(p),
            looks,
            a.name.theory().formula(beta_of(cfg, a.name))
        ));
        if let Some(reason) = &a.reason {
            notes.push(format!(
                "  {} depth {}: undetermined: {reason}",
                a.name, a.depth
            ));
        }
        let constant = a.seeds.iter().filter(|s| s.constant).count();
        if constant > 0 {
            notes.push(format!(
                "  {} depth {}: the gradient is constant in {constant} of {} seeds (correlation 1 by convention)",
                a.name,
                a.depth,
                a.seeds.len()
            ));
        }
    }
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    out.push_str(&format!(
        "lag-1 r = Pearson correlation of dy/dx at neighbouring grid points, mean over seeds (sd over seeds);\n\
         white noise: |mean r| < {} = 3/sqrt({} points x {} seeds), three standard errors of a mean of white noise's r;\n\
         predicted = the paper's correlation scale at that depth.\n\
         What the paper predicts (Balduzzi et al. 2017), and whether this run agrees:\n",
        fmt_num(floor),
        cfg.points(),
        cfg.seeds
    ));
    for p in &report.predictions {
        out.push_str(&format!("  {} ({}): {}\n", p.name, p.source, p.theory));
        match &p.reason {
            Some(reason) => out.push_str(&format!("    undetermined: {reason}\n")),
            None => out.push_str(&format!("    {}: {}\n", p.verdict, p.detail)),
        }
    }
    out
}

/// `bn-lab shattered`.
pub struct Shattered;

impl Experiment for Shattered {
    type Config = ShatteredConfig;
    type Report = ShatteredReport;
    const NAME: &'static str = "shattered";
    const STEM: &'static str = "shattered";

    fn run(cfg: &ShatteredConfig, progress: Progress) -> ShatteredReport {
        run(cfg, progress)
    }

    fn summary(report: &ShatteredReport) -> String {
        table(report)
    }
}

// The command line: the flags of `bn-lab shattered` and the config they describe.

/// The shattered gradients problem (Balduzzi et al. 2017): dy/dx of scalar networks
/// (feedforward, with BN, resnet with BN) along a grid of inputs, and how correlated
/// neighbouring gradients are. Writes shattered.png and shattered.json.
// Flags of `bn-lab shattered`: the paper's setting by default (ReLU, He init, width 200,
// depths 1, 24 and 50, 256 grid points). The input and output are scalars and everything is
// computed in f64, so `--d-in`, `--d-out` and `--dtype` are hidden (and must stay 1, 1 and
// f64); skip connections come with `--arch resnet+bn`, not `--residual`.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.default_value("200")),
    mut_arg("batch", |a| a
        .long("points")
        .value_name("N")
        .value_parser(count::<3, { crate::limits::MAX_POINTS }>)
        .default_value("256")
        .help("Grid points on [-2, 2] (also the batch the BN statistics are computed over)")),
    mut_arg("d_in", |a| a.hide(true)),
    mut_arg("d_out", |a| a.default_value("1").hide(true)),
    mut_arg("dtype", |a| a.default_value("f64").hide(true)),
    mut_arg("residual", |a| a.hide(true))
)]
pub struct ShatteredArgs {
    /// Numbers of hidden layers, comma-separated: one panel column each (at most 8; the dense
    /// grid of Balduzzi et al.'s decay: --depth 1,2,4,8,16,24,32,50).
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, visible_alias = "depths", value_delimiter = ',', default_value = "1,24,50")]
    pub depth: Vec<usize>,
    /// Architectures, comma-separated: one panel row each.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "feedforward,feedforward+bn,resnet+bn"
    )]
    pub arch: Vec<crate::experiment::shattered::Arch>,
    /// The normaliser of the +bn architectures: batch (BatchNorm) or layer (LayerNorm).
    #[arg(long, value_enum, default_value_t = NormChoice::Batch)]
    pub norm: NormChoice,
    /// Biases after initialisation: pytorch (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), nn.Linear's
    /// default), zero, or normal:STD.
    #[arg(long, default_value = "pytorch", value_parser = parse_bias)]
    pub bias: crate::experiment::shattered::BiasInit,
    /// Repeat over K seeds (seed, seed+1, ...); the autocorrelation panels show the mean and a
    /// min-max band.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_SEEDS>, long, value_name = "K", default_value_t = 8)]
    pub seeds: usize,
    /// Largest lag of the recorded autocorrelation (below --points).
    #[arg(allow_hyphen_values = true, value_parser = count::<1, { crate::limits::MAX_POINTS }>, long, value_name = "K", default_value_t = 64)]
    pub max_lag: usize,
    /// Further grids, comma-separated point counts (e.g. 64,1024): every architecture, depth
    /// and seed is run on each too, and shattered_spacing.png shows how the lag-1 correlation
    /// moves with the grid step while the correlation at one fixed distance (the coarsest
    /// grid's step) does not.
    #[arg(allow_hyphen_values = true, value_parser = count::<3, { crate::limits::MAX_POINTS }>, long, value_name = "N,...", value_delimiter = ',')]
    pub grids: Vec<usize>,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Threads for the networks run side by side and their kernels [default: all cores].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long)]
    pub threads: Option<usize>,
}

fn parse_bias(s: &str) -> Result<crate::experiment::shattered::BiasInit, String> {
    s.parse()
}

impl ExperimentArgs for ShatteredArgs {
    type Experiment = Shattered;
    const QUICK: &'static str = "--depth 1,3 --width 8 --points 32 --seeds 2 --max-lag 8";
    const RENAMES: Renames = &[
        ("depths", "--depth"),
        ("archs", "--arch"),
        ("batch", "--points"),
        ("bn", "--norm"),
        ("grids", "--grids"),
    ];
    /// `--d-in` defaults to 1 here.
    fn config(&self) -> anyhow::Result<ShatteredConfig> {
        let mut net = self.net.spec();
        net.d_in = self.net.d_in.unwrap_or(1);
        Ok(ShatteredConfig {
            depths: self.depth.clone(),
            archs: self.arch.clone(),
            act: self.net.activation(),
            bn: self.net.normaliser(self.norm),
            bias: self.bias,
            net,
            seeds: self.seeds,
            max_lag: self.max_lag,
            grids: self.grids.clone(),
        })
    }
    fn output(&self) -> &OutputArgs {
        &self.output
    }
    fn threads(&self) -> Option<Option<usize>> {
        Some(self.threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_sequence_has_autocorrelation_one() {
        let g = vec![0.1; 50];
        assert!(autocorrelation(&g, 5).iter().all(|&r| r == 1.0));
        assert_eq!(lag1_pearson(&g), 1.0);
    }

    #[test]
    fn seeded_white_noise_is_uncorrelated_at_every_lag() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let g: Vec<f64> = (0..4096).map(|_| StandardNormal.sample(&mut rng)).collect();
        let r = autocorrelation(&g, 10);
        assert!((r[0] - 1.0).abs() < 1e-12);
        // Standard error about 1/sqrt(4096) = 0.016.
        for (k, v) in r.iter().enumerate().skip(1) {
            assert!(v.abs() < 0.06, "lag {k}: {v}");
        }
        assert!(lag1_pearson(&g).abs() < 0.06);
    }

    #[test]
    fn a_random_walk_is_strongly_correlated() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut s = 0.0;
        let g: Vec<f64> = (0..256)
            .map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                s += z;
                s
            })
            .collect();
        assert!(autocorrelation(&g, 1)[1] > 0.8);
        assert!(lag1_pearson(&g) > 0.9);
    }

    #[test]
    fn non_finite_gradients_give_nan_not_a_panic() {
        let g = [1.0, f64::NAN, 2.0, f64::INFINITY, 0.5];
        assert!(autocorrelation(&g, 3).iter().all(|r| r.is_nan()));
        assert!(lag1_pearson(&g).is_nan());
        // One constant side of the pairs: undefined.
        assert!(lag1_pearson(&[1.0, 1.0, 1.0, 2.0]).is_nan());
        // Lags without a pair are NaN.
        assert!(autocorrelation(&[1.0, 2.0, 4.0], 5)[4].is_nan());
    }

    /// The band of a mean of `k` white-noise lag-1 correlations: three standard errors, left by
    /// about 0.3% of the means (here at most 2% of 400 groups of 8 series of 256 points).
    #[test]
    fn the_mean_of_k_white_noise_correlations_stays_in_its_band() {
        let (n, k, groups) = (256, 8, 400);
        let band = mean_noise_band(n, k);
        assert!((band - 3.0 / 2048f64.sqrt()).abs() < 1e-15);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut outside = 0;
        let mut two_se = 0;
        for _ in 0..groups {
            let mean = (0..k)
                .map(|_| {
                    let g: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
                    lag1_pearson(&g)
                })
                .sum::<f64>()
                / k as f64;
            outside += usize::from(mean.abs() >= band);
            two_se += usize::from(mean.abs() >= band * 2.0 / 3.0);
        }
        assert!(
            outside <= groups / 50,
            "{outside} of {groups} outside ±{band}"
        );
        // The band is not loose: two standard errors are left about 5% of the time.
        assert!(
            two_se >= groups / 100,
            "{two_se} of {groups} outside two errors"
        );
    }

    #[test]
    fn bias_inits_parse_and_print_back() {
        for s in ["pytorch", "zero", "normal:0.5"] {
            assert_eq!(s.parse::<BiasInit>().unwrap().to_string(), s);
        }
        assert!("normal:-1".parse::<BiasInit>().is_err());
        assert!("normal:nan".parse::<BiasInit>().is_err());
        assert!("uniform".parse::<BiasInit>().is_err());
    }

    #[test]
    fn the_grid_spans_the_interval() {
        let x = grid(256);
        assert_eq!(x[[0, 0]], X_MIN);
        assert!((x[[255, 0]] - X_MAX).abs() < 1e-12);
    }
}
