//! Command-line interface: clap derive structs only, no logic. Doc comments are the help text.
//! The shared groups ([`NetArgs`], [`DataArgs`], [`OutputArgs`]) are flattened into every
//! command that uses them; a command changes a default with `mut_arg`, never by redeclaring a
//! flag. `commands/` turns these into validated experiment configs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Activation, Dtype, Init, Loss, Norm, Placement};
use crate::data::Task;
use crate::experiment::landscape::MAX_SLICE_GRID;
use crate::limits::{MAX_BATCH, MAX_DEPTH, MAX_SAMPLES, MAX_SEEDS, MAX_STEPS, MAX_WIDTH};

/// Largest `bench --ceiling-size`: three 4096^2 f64 matrices are 400 MB.
pub const MAX_CEILING_SIZE: usize = 4096;

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
    /// Noisy BN (Santurkar et al. 2018, section 2.1): the same network plain, with BatchNorm,
    /// and with BatchNorm followed by noise that shifts and scales every unit anew at each step;
    /// training curves and how much each layer's input distribution shifts. Writes
    /// noisy_bn.png and noisy_bn.json.
    NoisyBn(NoisyBnArgs),
    /// Ioffe & Szegedy's Figure 1 (b, c): the 15th, 50th and 85th percentiles of one sigmoid
    /// unit's input over training, BatchNorm off and on (3 hidden layers of 100 sigmoid units
    /// on the digits). Writes input_shift.png and input_shift.json.
    InputShift(InputShiftArgs),
    /// Train the same network with BatchNorm off, on, without scale/shift and after the
    /// activation, over a sweep of learning rates: loss curves, divergence, per-layer update
    /// ratios and gradient norms. Writes train.png, train_loss.png, train_layers.png and train.json.
    Train(TrainArgs),
    /// Train sigmoid and ReLU networks with BatchNorm with scale/shift, without, and without BN
    /// on the non-linear task: per layer, how many activation inputs sit in (-1, 1), saturate,
    /// or leave ReLU units dead or linear, before and after training, and which fits better.
    /// Writes nonlinearity.png, nonlinearity_detail.png, nonlinearity_hist.png and nonlinearity.json.
    Nonlinearity(NonlinearityArgs),
    /// The shattered gradients problem (Balduzzi et al. 2017): dy/dx of scalar networks
    /// (feedforward, with BN, resnet with BN) along a grid of inputs, and how correlated
    /// neighbouring gradients are. Writes shattered.png and shattered.json.
    Shattered(ShatteredArgs),
    /// Mean-field theory for the board: Yang et al.'s lambda(B) per activation and batch size
    /// (BN before the activation) and the no-BN variance map q^l / chi^l per layer. Quadrature
    /// only, no network. Writes theory.png and theory.json.
    Theory(TheoryArgs),
    /// Sweep one axis (weight scale, batch size or depth) for no norm, BatchNorm and LayerNorm
    /// over seeds: gradient ratio and growth per layer at init, final losses of a short
    /// training run. Writes sweep.png and sweep.json; --plan/--point/--collect split it over
    /// a scheduler.
    Sweep(SweepArgs),
    /// Run one experiment file (experiments/*.toml; the format is in the README): its command,
    /// then its checks on the JSON the command wrote, and print the verdict (supported, mixed or
    /// not supported) with the numbers that decided it. Writes what the command writes.
    Run(RunArgs),
    /// Run every experiment file in experiments/ (several at once), then write a page for a
    /// class: per claim the diary's words, the picture, the numbers, the verdict and the command
    /// that reruns it. Writes DIR/index.html, DIR/summary.json and each claim's files in
    /// DIR/<claim>/.
    Reproduce(ReproduceArgs),
    /// Time one forward+backward pass (median after warm-up) and compare its speed with a
    /// matrix-multiply ceiling measured on the spot. Prints only; writes no files.
    Bench(BenchArgs),
}

/// Network flags shared by every command (defaults: `grad-norms`'s; other commands change
/// them with `mut_arg`).
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Hidden width, units per layer.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_WIDTH>, long, default_value_t = 256)]
    pub width: usize,
    /// Samples per batch.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_BATCH>, long, default_value_t = 256)]
    pub batch: usize,
    /// Activation function.
    #[arg(long, value_enum, default_value = "sigmoid")]
    pub act: Option<Activation>,
    /// Weight initialisation: he, xavier, lecun, normal:STD (e.g. normal:0.05) or auto (he for
    /// (leaky) ReLU, xavier otherwise).
    #[arg(long, default_value = "xavier", value_parser = parse_init)]
    pub init: Init,
    /// BatchNorm (or LayerNorm) with learnable scale gamma and shift beta (the default).
    #[arg(long, overrides_with = "no_affine")]
    pub affine: bool,
    /// BatchNorm (or LayerNorm) as pure standardisation, without gamma and beta.
    #[arg(long, overrides_with = "affine")]
    pub no_affine: bool,
    /// BatchNorm (or LayerNorm) before the activation (pre: act(BN(z))) or after it (post:
    /// BN(act(z))).
    #[arg(long, value_enum, default_value_t = Placement::Pre)]
    pub placement: Placement,
    /// Add skip connections h_l = h_{l-1} + a_l wherever the shapes match.
    #[arg(long)]
    pub residual: bool,
    /// Residual branch scale beta (Balduzzi et al. 2017): h_l = h_{l-1} + beta a_l; needs
    /// --residual. About 1/sqrt(depth) keeps the residual stream's variance bounded without BN.
    #[arg(allow_hyphen_values = true, long, default_value_t = 1.0)]
    pub residual_scale: f64,
    /// Epsilon added to the variance by BatchNorm and LayerNorm.
    #[arg(
        allow_hyphen_values = true,
        long,
        default_value_t = 1e-5,
        allow_negative_numbers = true
    )]
    pub eps: f64,
    /// BatchNorm momentum of the running statistics (PyTorch's convention; LayerNorm keeps none).
    #[arg(
        allow_hyphen_values = true,
        long,
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    pub momentum: f64,
    /// Input dimension [default: the width; an image set's pixels].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_WIDTH>, long)]
    pub d_in: Option<usize>,
    /// Output dimension [default: 10; a classification task's classes].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_WIDTH>, long)]
    pub d_out: Option<usize>,
    /// Random seed for data, weights and batch order.
    #[arg(allow_hyphen_values = true, value_parser = seed, long, default_value_t = 0)]
    pub seed: u64,
    /// Float type to compute in.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
}

fn parse_init(s: &str) -> Result<Init, String> {
    s.parse()
}

/// A count flag: a whole number. Text that is not one (`-1`, `2.5`, a number above `u64::MAX`)
/// is refused here with the flag's valid range; a whole number outside the range reaches the
/// config's validation, which says which bound it crosses. `MAX` 0: no upper bound.
pub fn count<const MIN: usize, const MAX: usize>(s: &str) -> Result<usize, String> {
    s.trim().parse::<usize>().map_err(|_| {
        if MAX == 0 {
            format!("expected a whole number of at least {MIN}")
        } else {
            format!("expected a whole number from {MIN} to {MAX}")
        }
    })
}

/// `--seed`: any whole number from 0 to 2^64 - 1.
fn seed(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("expected a whole number from 0 to {}", u64::MAX))
}

/// Which BatchNorm arms to run: off, on (with the `--affine`/`--no-affine` and `--placement`
/// settings), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BnFlag {
    Off,
    On,
    Both,
}

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

/// A normaliser family for `--norm`; `--affine`/`--no-affine` and `--placement` set the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NormChoice {
    /// No normalisation.
    None,
    /// BatchNorm: each unit over the batch.
    Batch,
    /// LayerNorm: each sample over its units.
    Layer,
}

/// Which normalisation arms a command runs: `--bn off|on|both` (BatchNorm only, as before) or
/// `--norm` with a list of normalisers (e.g. `none,batch,layer`).
#[derive(Debug, Clone, Args)]
pub struct NormArgs {
    /// BatchNorm arms to run (`--norm` chooses among none, batch and layer instead).
    #[arg(long, value_enum, default_value_t = BnFlag::Both)]
    pub bn: BnFlag,
    /// Normalisers to compare, comma-separated: none, batch (BatchNorm), layer (LayerNorm);
    /// replaces --bn.
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "bn")]
    pub norm: Option<Vec<NormChoice>>,
}

/// The data flags of the commands that train.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// What to learn: linear or nonlinear (synthetic regression: a linear teacher, or
    /// sin(3 u1) cos(2 u2) of a 2-D latent lifted to the input width), digits (the shipped UCI
    /// handwritten digits, 10 classes), or mnist:DIR / fashion-mnist:DIR (the four IDX files in
    /// DIR, plain or .gz). See the README.
    #[arg(long, value_parser = parse_task, default_value = "nonlinear")]
    pub task: Task,
    /// Training samples (mini-batches are drawn from these without replacement per epoch)
    /// [default: 2048; an image set's whole training split].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_SAMPLES>, long)]
    pub n_train: Option<usize>,
    /// Test samples [default: 1024; an image set's whole test split].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_SAMPLES>, long)]
    pub n_test: Option<usize>,
    /// Loss: mse (1/2 (o - y)^2) or ce (softmax cross-entropy, classification tasks only)
    /// [default: ce for a classification task, else mse].
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
}

fn parse_task(s: &str) -> Result<Task, String> {
    s.parse()
}

/// The optimiser flags of `train` and `nonlinearity` (landscape and ics use plain SGD).
#[derive(Debug, Clone, Args)]
pub struct SgdArgs {
    /// SGD momentum (PyTorch's convention; 0: plain SGD). Not BN's --momentum.
    #[arg(
        allow_hyphen_values = true,
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub sgd_momentum: f64,
    /// L2 weight decay added to every gradient.
    #[arg(
        allow_hyphen_values = true,
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true
    )]
    pub weight_decay: f64,
    /// Linear learning-rate warmup: update t (0-based) uses lr * min(1, (t + 1) / K); 0: none
    /// (1 is the same as none).
    #[arg(allow_hyphen_values = true, value_parser = count::<0, MAX_STEPS>, long, value_name = "K", default_value_t = 0)]
    pub warmup_steps: usize,
}

/// Where the files go and what stdout shows.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output directory for the command's PNG and JSON files.
    #[arg(long, default_value = "bn-lab-out")]
    pub out: PathBuf,
    /// Write the JSON results to stdout instead of the summary (files are still written).
    #[arg(long)]
    pub json: bool,
}

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

/// A tiny network by default: every parameter is perturbed twice.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("width", |a| a.default_value("6")),
    mut_arg("batch", |a| a.default_value("8")),
    mut_arg("d_out", |a| a.default_value("3")),
    mut_arg("dtype", |a| a.hide(true)),
    mut_arg("bn", |a| a.default_value("on"))
)]
pub struct GradcheckArgs {
    /// Number of hidden layers.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, default_value_t = 3)]
    pub depth: usize,
    /// The one network checked: `--bn on|off` or `--norm none|batch|layer`.
    #[command(flatten)]
    pub arms: NormArgs,
    /// Check BatchNorm in eval mode (running statistics) instead of train mode.
    #[arg(long)]
    pub eval: bool,
    /// Finite-difference step h in (L(p+h) - L(p-h)) / 2h.
    #[arg(
        allow_hyphen_values = true,
        long,
        default_value_t = 1e-5,
        allow_negative_numbers = true
    )]
    pub step: f64,
    /// Relative error above which the check fails (exit code 1).
    #[arg(allow_hyphen_values = true, long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Loss to check through: mse, or ce (softmax cross-entropy on the teacher's argmax).
    #[arg(long, value_enum, default_value_t = Loss::Mse)]
    pub loss: Loss,
    /// Network flags (gradcheck always computes in f64).
    #[command(flatten)]
    pub net: NetArgs,
}

/// Training flags shared by `landscape` and `ics` (plain SGD: no momentum, no weight decay).
#[derive(Debug, Clone, Args)]
pub struct MeasuredTrainArgs {
    /// Number of hidden layers.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, default_value_t = 8)]
    pub depth: usize,
    #[command(flatten)]
    pub arms: NormArgs,
    /// SGD steps.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_STEPS>, long, default_value_t = 400)]
    pub steps: usize,
    /// SGD learning rate.
    #[arg(
        allow_hyphen_values = true,
        long,
        default_value_t = 0.01,
        allow_negative_numbers = true
    )]
    pub lr: f64,
    /// Linear learning-rate warmup: update t (0-based) uses lr * min(1, (t + 1) / K); 0: none
    /// (1 is the same as none).
    #[arg(allow_hyphen_values = true, value_parser = count::<0, MAX_STEPS>, long, value_name = "K", default_value_t = 0)]
    pub warmup_steps: usize,
    /// Measure every K steps (steps 0, K, 2K, ...).
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long, value_name = "K", default_value_t = 10)]
    pub every: usize,
    #[command(flatten)]
    pub data: DataArgs,
}

/// ReLU with He init by default: deep sigmoid nets without BN barely move on these tasks, and
/// Santurkar et al. measured ReLU networks.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.default_value("128")),
    mut_arg("batch", |a| a.default_value("128")),
    mut_arg("n_train", |a| a.help("Training samples (mini-batches are drawn from these without replacement per epoch) [default: 4096; an image set's whole training split]"))
)]
pub struct LandscapeArgs {
    #[command(flatten)]
    pub train: MeasuredTrainArgs,
    /// Probe step sizes as multiples of the learning rate, comma-separated.
    #[arg(
        allow_hyphen_values = true,
        long,
        value_delimiter = ',',
        default_value = "0.5,1,1.5,2,2.5,3,3.5,4",
        allow_negative_numbers = true
    )]
    pub probe_steps: Vec<f64>,
    /// Points per side of the 2-D slice grid.
    #[arg(allow_hyphen_values = true, value_parser = count::<3, MAX_SLICE_GRID>, long, default_value_t = 25)]
    pub slice_grid: usize,
    /// The slice covers [-S, S] along each filter-normalised direction.
    #[arg(
        allow_hyphen_values = true,
        long,
        value_name = "S",
        default_value_t = 1.0,
        allow_negative_numbers = true
    )]
    pub slice_span: f64,
    /// Training samples the slice's loss is computed on (one batch, BN in train mode).
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_SAMPLES>, long, default_value_t = 512)]
    pub slice_samples: usize,
    #[command(flatten)]
    pub net: NetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Same network defaults as `landscape`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.default_value("128")),
    mut_arg("batch", |a| a.default_value("128")),
    mut_arg("n_train", |a| a.help("Training samples (mini-batches are drawn from these without replacement per epoch) [default: 4096; an image set's whole training split]"))
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

/// ReLU nets on the digits, as deep as Santurkar et al.'s point needs.
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
    mut_arg("n_train", |a| a.help("Training samples (mini-batches are drawn from these without replacement per epoch) [default: 4096; an image set's whole training split]"))
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

/// Ioffe & Szegedy's network: 3 hidden layers of 100 sigmoid units, mini-batches of 60.
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
    mut_arg("n_train", |a| a.help("Training samples (mini-batches are drawn from these without replacement per epoch) [default: 4096; an image set's whole training split]"))
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

/// Flags of `bn-lab train`: small networks, so 16 runs finish in seconds.
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
    /// Configurations to compare, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "off,on,no-affine,post"
    )]
    pub configs: Vec<Norm>,
    /// Number of hidden layers.
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

/// Flags of `bn-lab nonlinearity`: it compares activations (`--acts`) and BN variants
/// (`--configs`), and picks the initialisation per activation unless `--init` is given.
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
    pub configs: Vec<Norm>,
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

/// `bench` takes the network flags of `grad-norms`, with ReLU and He init as defaults (the
/// setting of the PyTorch figures in the README).
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("bn", |a| a.default_value("on"))
)]
pub struct BenchArgs {
    /// Number of hidden layers.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, default_value_t = 50)]
    pub depth: usize,
    /// The one network timed: `--bn on|off` or `--norm none|batch|layer`.
    #[command(flatten)]
    pub arms: NormArgs,
    /// Threads for matrix products and BatchNorm/activation kernels [default: all cores].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long)]
    pub threads: Option<usize>,
    /// Timed forward+backward steps; the median is reported.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_STEPS>, long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps run first (buffers allocated, caches warm).
    #[arg(allow_hyphen_values = true, value_parser = count::<0, MAX_STEPS>, long, default_value_t = 3)]
    pub warmup: usize,
    /// Side n of the n x n x n matrix product timed as the speed ceiling.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_CEILING_SIZE>, long, default_value_t = 512)]
    pub ceiling_size: usize,
    #[command(flatten)]
    pub net: NetArgs,
    /// Print one JSON object (median_ms, gflops, ceiling_gflops, ...) instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `bn-lab shattered`: the paper's setting by default (ReLU, He init, width 200,
/// depths 1, 24 and 50, 256 grid points). The input and output are scalars and everything is
/// computed in f64, so `--d-in`, `--d-out` and `--dtype` are hidden (and must stay 1, 1 and
/// f64); skip connections come with `--arch resnet+bn`, not `--residual`.
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
    /// Numbers of hidden layers, comma-separated: one panel column each.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, value_delimiter = ',', default_value = "1,24,50")]
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

/// Flags of `bn-lab sweep`: ReLU, width 64, batch 64 by default; the depth, steps and init
/// defaults depend on `--vary` (see the README).
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

/// Flags of `bn-lab theory`.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct TheoryArgs {
    /// Activations, comma-separated (sigmoid, tanh, relu, leaky-relu, linear).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sigmoid,tanh,relu,leaky-relu,linear"
    )]
    pub acts: Vec<Activation>,
    /// Batch sizes B of the BN rate lambda(B), comma-separated (each at least 4).
    #[arg(allow_hyphen_values = true, value_parser = count::<4, MAX_BATCH>, long, value_delimiter = ',', default_value = "4,5,6,8,16,32,64,128,256,1024")]
    pub batch: Vec<usize>,
    /// Hidden layers of the no-BN variance map.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, default_value_t = 50)]
    pub depth: usize,
    /// Width of the no-BN network.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_WIDTH>, long, default_value_t = 256)]
    pub width: usize,
    /// Input dimension of the no-BN network [default: the width].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_WIDTH>, long)]
    pub d_in: Option<usize>,
    /// Weight initialisation of the no-BN network (as grad-norms: he, xavier, lecun,
    /// normal:STD or auto).
    #[arg(long, default_value = "xavier", value_parser = parse_init)]
    pub init: Init,
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

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file (TOML; see the README's "Experiment files").
    pub file: PathBuf,
    /// Output directory for the command's PNG and JSON files [default: bn-lab-out/<claim>,
    /// the file's name without .toml and its NN- prefix].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How many seeds [default: the file's `seeds`]; the verdict needs every check to hold in
    /// every seed.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 100>, long)]
    pub seeds: Option<usize>,
    /// The first seed; run i uses --seed K + i (times the command's own --seeds, if any).
    #[arg(long, default_value_t = 0, value_parser = seed)]
    pub seed: u64,
    /// Run the file's [control] too: the command changed the least that should flip the verdict.
    #[arg(long)]
    pub control: bool,
}

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// Output directory: index.html, summary.json and one directory per claim.
    #[arg(long, default_value = "bn-lab-out/reproduce")]
    pub out: PathBuf,
    /// Only these claims, comma-separated (file names without .toml and the NN- prefix, e.g.
    /// vanishing-sigmoid).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub only: Option<Vec<String>>,
    /// The directory of experiment files (every *.toml in it, by name).
    #[arg(long, default_value = "experiments")]
    pub experiments: PathBuf,
    /// Claims run at once [default: the cores available; more are capped to them].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long)]
    pub jobs: Option<usize>,
    /// How many seeds each claim runs [default: each file's `seeds`].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 100>, long)]
    pub seeds: Option<usize>,
    /// The first seed; run i of a claim uses --seed K + i (times its command's own --seeds).
    #[arg(long, default_value_t = 0, value_parser = seed)]
    pub seed: u64,
    /// Run every claim's control as well, and show its verdict beside the claim's.
    #[arg(long)]
    pub controls: bool,
}
