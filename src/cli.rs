//! Command-line interface: clap derive structs only. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Activation, Dtype, Init, Placement};
use crate::data::Task;
use crate::experiment::grad_norms::BnArms;

/// Numerical-stability experiments on deep MLPs: vanishing and exploding gradients, and what
/// BatchNorm (with or without scale/shift), its placement and skip connections change.
#[derive(Debug, Parser)]
#[command(
    name = "bn-lab",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per-layer gradient norms of freshly initialised networks, BatchNorm off and on
    /// (one forward + one backward each). Writes grad_norms.png and grad_norms.json.
    GradNorms(GradNormsArgs),
    /// Compare the hand-written gradients of a small network with central finite
    /// differences in f64 and print the largest relative error per parameter tensor.
    Gradcheck(GradcheckArgs),
    /// Loss landscape while training, BN off vs on (Santurkar et al. 2018): loss variation,
    /// gradient predictiveness and effective beta-smoothness along the gradient, and a 2-D
    /// slice of the loss around the trained weights (Li et al. 2018). Writes landscape.png,
    /// landscape_slice.png and landscape.json.
    Landscape(LandscapeArgs),
    /// Internal covariate shift while training, BN off vs on (Santurkar et al. 2018): how much
    /// a layer's gradient changes when the layers before it take their update. Writes ics.png
    /// and ics.json.
    Ics(IcsArgs),
    /// Train the same network with BatchNorm off, on, without scale/shift and after the
    /// activation, over a sweep of learning rates: loss curves, divergence, per-layer update
    /// ratios and gradient norms. Writes train_loss.png, train_layers.png and train.json.
    Train(crate::commands::train::TrainArgs),
    /// Train sigmoid and ReLU networks with BatchNorm with scale/shift, without, and without BN
    /// on the non-linear task: per layer, how many activation inputs sit in (-1, 1), saturate,
    /// or leave ReLU units dead or linear, before and after training, and which fits better.
    /// Writes nonlinearity.png, nonlinearity_hist.png and nonlinearity.json.
    Nonlinearity(crate::commands::nonlinearity::NonlinearityArgs),
    /// Time one forward+backward pass (median after warm-up) and compare its speed with a
    /// matrix-multiply ceiling measured on the spot. Prints only; writes no files.
    Bench(BenchArgs),
}

/// Network and data flags shared by every experiment.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Hidden width, units per layer [default: 256; gradcheck: 6].
    #[arg(long)]
    pub width: Option<usize>,
    /// Samples per batch [default: 256; gradcheck: 8].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Activation function.
    #[arg(long, value_enum, default_value_t = Activation::Sigmoid)]
    pub act: Activation,
    /// Weight initialisation: he, xavier, lecun or normal:STD (e.g. normal:0.05).
    #[arg(long, default_value = "xavier", value_parser = parse_init)]
    pub init: Init,
    /// BatchNorm with learnable scale gamma and shift beta (the default).
    #[arg(long, overrides_with = "no_affine")]
    pub affine: bool,
    /// BatchNorm as pure standardisation, without gamma and beta.
    #[arg(long, overrides_with = "affine")]
    pub no_affine: bool,
    /// BatchNorm before the activation (pre: act(BN(z))) or after it (post: BN(act(z))).
    #[arg(long, value_enum, default_value_t = Placement::Pre)]
    pub placement: Placement,
    /// Add skip connections h_l = h_{l-1} + a_l wherever the shapes match.
    #[arg(long)]
    pub residual: bool,
    /// BatchNorm epsilon added to the variance.
    #[arg(long, default_value_t = 1e-5)]
    pub eps: f64,
    /// BatchNorm momentum of the running statistics (PyTorch's convention).
    #[arg(long, default_value_t = 0.1)]
    pub momentum: f64,
    /// Input dimension [default: the width].
    #[arg(long)]
    pub d_in: Option<usize>,
    /// Output dimension [default: 10; gradcheck: 3].
    #[arg(long)]
    pub d_out: Option<usize>,
    /// Random seed for data and weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Float type to compute in.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
}

impl NetArgs {
    pub fn affine(&self) -> bool {
        !self.no_affine
    }
}

fn parse_init(s: &str) -> Result<Init, String> {
    s.parse()
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct GradNormsArgs {
    /// Number of hidden layers; several, comma-separated, compare depths (e.g. 3,50).
    #[arg(long, value_delimiter = ',', default_value = "50")]
    pub depth: Vec<usize>,
    /// BatchNorm arms to run.
    #[arg(long, value_enum, default_value_t = BnArms::Both)]
    pub bn: BnArms,
    /// Repeat over K seeds (seed, seed+1, ...); plots show the geometric mean and a min-max band.
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    #[command(flatten)]
    pub net: NetArgs,
    /// Output directory for grad_norms.png and grad_norms.json.
    #[arg(long, default_value = "bn-lab-out")]
    pub out: PathBuf,
    /// Also save the batch, targets, every parameter and every gradient of the first
    /// configuration (first depth, BN off before on, first seed) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub save_net: Option<PathBuf>,
    /// Write the JSON results to stdout instead of the table (files are still written).
    #[arg(long)]
    pub json: bool,
    /// Threads for the configurations run side by side and for each network's matrix
    /// products and BatchNorm/activation passes [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct GradcheckArgs {
    /// Number of hidden layers.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// BatchNorm on or off.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub bn: OnOff,
    /// Check BatchNorm in eval mode (running statistics) instead of train mode.
    #[arg(long)]
    pub eval: bool,
    /// Finite-difference step h in (L(p+h) - L(p-h)) / 2h.
    #[arg(long, default_value_t = 1e-5)]
    pub step: f64,
    /// Relative error above which the check fails (exit code 1).
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Network flags (gradcheck always computes in f64; --dtype is ignored).
    #[command(flatten)]
    pub net: NetArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// Training flags shared by `landscape` and `ics` (plain SGD: no momentum, no weight decay).
#[derive(Debug, Clone, Args)]
pub struct ProbeTrainArgs {
    /// Number of hidden layers.
    #[arg(long, default_value_t = 8)]
    pub depth: usize,
    /// BatchNorm arms to run.
    #[arg(long, value_enum, default_value_t = BnArms::Both)]
    pub bn: BnArms,
    /// Regression task: linear teacher, or the non-linear sin/cos target (see the README).
    #[arg(long, value_enum, default_value_t = Task::Nonlinear)]
    pub task: Task,
    /// SGD steps.
    #[arg(long, default_value_t = 400)]
    pub steps: usize,
    /// SGD learning rate.
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub lr: f64,
    /// Measure every K steps (steps 0, K, 2K, ...).
    #[arg(long, value_name = "K", default_value_t = 10)]
    pub every: usize,
    /// Training samples (mini-batches are drawn from these without replacement per epoch).
    #[arg(long, default_value_t = 4096)]
    pub n_train: usize,
    /// Test samples (for the final test loss, BN in eval mode).
    #[arg(long, default_value_t = 1024)]
    pub n_test: usize,
}

/// ReLU with He init by default: deep sigmoid nets without BN barely move on these tasks, and
/// Santurkar et al. measured ReLU networks.
#[derive(Debug, Args)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.help("Hidden width, units per layer [default: 128]")),
    mut_arg("batch", |a| a.help("Samples per batch [default: 128]"))
)]
pub struct LandscapeArgs {
    #[command(flatten)]
    pub train: ProbeTrainArgs,
    /// Probe step sizes as multiples of the learning rate, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.5,1,1.5,2,2.5,3,3.5,4",
        allow_negative_numbers = true
    )]
    pub probe_steps: Vec<f64>,
    /// Points per side of the 2-D slice grid.
    #[arg(long, default_value_t = 25)]
    pub slice_grid: usize,
    /// The slice covers [-S, S] along each filter-normalised direction.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub slice_span: f64,
    /// Training samples the slice's loss is computed on (one batch, BN in train mode).
    #[arg(long, default_value_t = 512)]
    pub slice_samples: usize,
    #[command(flatten)]
    pub net: NetArgs,
    /// Output directory for landscape.png, landscape_slice.png and landscape.json.
    #[arg(long, default_value = "bn-lab-out")]
    pub out: PathBuf,
    /// Write the JSON results to stdout instead of the summary (files are still written).
    #[arg(long)]
    pub json: bool,
}

/// Same network defaults as `landscape`.
#[derive(Debug, Args)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.help("Hidden width, units per layer [default: 128]")),
    mut_arg("batch", |a| a.help("Samples per batch [default: 128]"))
)]
pub struct IcsArgs {
    #[command(flatten)]
    pub train: ProbeTrainArgs,
    #[command(flatten)]
    pub net: NetArgs,
    /// Output directory for ics.png and ics.json.
    #[arg(long, default_value = "bn-lab-out")]
    pub out: PathBuf,
    /// Write the JSON results to stdout instead of the summary (files are still written).
    #[arg(long)]
    pub json: bool,
}

/// `bench` takes the network flags of `grad-norms`, with ReLU and He init as defaults (the
/// setting of the PyTorch figures in the README).
#[derive(Debug, Args)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he"))
)]
pub struct BenchArgs {
    /// Number of hidden layers.
    #[arg(long, default_value_t = 50)]
    pub depth: usize,
    /// BatchNorm on or off.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub bn: OnOff,
    /// Threads for matrix products and BatchNorm/activation kernels [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed forward+backward steps; the median is reported.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps run first (buffers allocated, caches warm).
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Side n of the n x n x n matrix product timed as the speed ceiling.
    #[arg(long, default_value_t = 512)]
    pub ceiling_size: usize,
    #[command(flatten)]
    pub net: NetArgs,
    /// Print one JSON object (median_ms, gflops, ceiling_gflops, ...) instead of the summary.
    #[arg(long)]
    pub json: bool,
}
