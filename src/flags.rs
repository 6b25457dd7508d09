//! The flags experiments share and what they mean: the clap groups flattened into every
//! command that uses them ([`NetArgs`], [`NormArgs`], [`DataArgs`], [`SgdArgs`],
//! [`MeasuredTrainArgs`], [`OutputArgs`]), the specs they describe, and the errors that name a
//! flag as the user typed it ([`UsageError`], [`flag_error`]). A command changes a default with
//! `mut_arg`, never by redeclaring a flag. Each experiment's own flags sit in its module (see
//! [`crate::experiment::ExperimentArgs`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::config::{Activation, ConfigError, Dtype, Init, Loss, NormKind, Normaliser, Placement};
use crate::data::Task;
use crate::limits::{MAX_BATCH, MAX_DEPTH, MAX_SAMPLES, MAX_STEPS, MAX_WIDTH};
use crate::spec::{DataSpec, NetSpec, StdBlock};

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
    /// Weight initialisation: he, xavier, lecun, normal:STD (e.g. normal:0.05), auto (he for
    /// (leaky) ReLU, xavier otherwise) or fixup (Zhang et al. 2019, for --block basic|preact:
    /// each branch's last matrix and the head 0, its first scaled by 1/sqrt(depth), a scalar
    /// multiplier on each branch from 1).
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
    /// Add skip connections h_l = h_{l-1} + a_l wherever the shapes match (the same as
    /// --block residual).
    #[arg(long)]
    pub residual: bool,
    /// The block: plain (Linear -> norm -> act, norm optional), residual (the same with a skip, h + a),
    /// basic (He et al. 2016a: act(h + norm(W2 act(norm(W1 h))))) or preact (He et al. 2016b:
    /// h + W2 act(norm(W1 act(norm(h))))); for basic and preact --depth counts blocks.
    #[arg(long, value_enum, conflicts_with = "residual")]
    pub block: Option<BlockChoice>,
    /// SkipInit (De & Smith 2020): a learnable scalar on each residual branch, initialised to
    /// 0; needs --block basic or preact.
    #[arg(long)]
    pub skip_init: bool,
    /// Residual branch scale beta (Balduzzi et al. 2017): h_l = h_{l-1} + beta a_l; needs
    /// a skip (--block residual, basic or preact). About 1/sqrt(depth) keeps the residual
    /// stream's variance bounded without BN.
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

pub fn parse_init(s: &str) -> Result<Init, String> {
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
pub fn seed(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| format!("expected a whole number from 0 to {}", u64::MAX))
}

/// `--block`: the one-layer blocks without and with a skip, or a standard residual block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BlockChoice {
    Plain,
    Residual,
    Basic,
    Preact,
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

pub fn parse_task(s: &str) -> Result<Task, String> {
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

impl SgdArgs {
    /// The optimiser flags as a spec.
    pub fn spec(&self) -> crate::optim::SgdSpec {
        crate::optim::SgdSpec {
            sgd_momentum: self.sgd_momentum,
            weight_decay: self.weight_decay,
            warmup_steps: self.warmup_steps,
        }
    }
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

/// Clap's multi-line error as one line: `invalid value 'x' for '--act <ACT>' [possible values:
/// ...]` (`main` puts `Error: ` before it).
pub fn clap_error_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    let joined = parts.join(" ");
    joined
        .strip_prefix("error: ")
        .unwrap_or(&joined)
        .to_string()
}

/// Config fields whose flag is not `--` + the field with `-` for `_`, per command.
pub type Renames = &'static [(&'static str, &'static str)];

/// The flag that sets config field `field`: `n_train` -> `--n-train`, or its rename.
pub fn flag_name(renames: Renames, field: &str) -> String {
    renames.iter().find(|(f, _)| *f == field).map_or_else(
        || format!("--{}", field.replace('_', "-")),
        |(_, flag)| flag.to_string(),
    )
}

/// A command line refused before any work: a value out of range, flags that do not go
/// together, a run too large for this machine. `main` exits with 2 for it (as clap does for
/// the errors it finds), and with 1 for failures while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Whether `e` is a refusal of the command line (exit code 2) rather than a run-time failure.
pub fn is_usage_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<UsageError>().is_some()
}

/// A config error as this command's users read it: with flag names.
pub fn flag_error(renames: Renames, e: &ConfigError) -> anyhow::Error {
    usage(e.render(&|f| flag_name(renames, f)))
}

/// `--threads`: at least 1; more than the cores available is capped to them (extra threads
/// only wait, and results are the same for every thread count).
pub fn threads(flag: Option<usize>) -> Result<usize> {
    let cores = crate::parallel::available_threads();
    match flag {
        Some(0) => Err(usage("--threads must be at least 1 (got 0)")),
        Some(n) => Ok(n.min(cores)),
        None => Ok(cores),
    }
}

impl NetArgs {
    /// The network flags as a spec (`--d-in` defaults to the width).
    pub fn spec(&self) -> NetSpec {
        NetSpec {
            width: self.width,
            batch: self.batch,
            d_in: self.d_in.unwrap_or(self.width),
            d_out: self.d_out.unwrap_or(DEFAULT_D_OUT),
            init: self.init,
            residual: self.residual || self.block == Some(BlockChoice::Residual),
            residual_scale: self.residual_scale,
            block: match self.block {
                Some(BlockChoice::Basic) => Some(StdBlock::Basic),
                Some(BlockChoice::Preact) => Some(StdBlock::Preact),
                _ => None,
            },
            skip_init: self.skip_init,
            eps: self.eps,
            momentum: self.momentum,
            seed: self.seed,
            dtype: self.dtype,
        }
    }

    /// `--act`; every command that shows the flag gives it a default.
    pub fn activation(&self) -> Activation {
        self.act.unwrap_or(Activation::Sigmoid)
    }

    /// The BatchNorm variant `--affine`/`--no-affine` and `--placement` describe.
    pub fn batch_norm(&self) -> Normaliser {
        Normaliser::Batch {
            affine: !self.no_affine,
            placement: self.placement,
        }
    }
}

impl NetArgs {
    /// The normaliser `--norm` names, with the `--affine`/`--no-affine` and `--placement` settings.
    pub fn normaliser(&self, choice: NormChoice) -> Normaliser {
        let (affine, placement) = (!self.no_affine, self.placement);
        match choice {
            NormChoice::None => Normaliser::Off,
            NormChoice::Batch => Normaliser::of(NormKind::Batch, affine, placement),
            NormChoice::Layer => Normaliser::of(NormKind::Layer, affine, placement),
        }
    }
}

impl NormArgs {
    /// The arms `--norm` lists, or else the ones `--bn` selects (`on` meaning the BatchNorm of
    /// `net`'s flags).
    pub fn norms(&self, net: &NetArgs) -> Vec<Normaliser> {
        match &self.norm {
            Some(list) => list.iter().map(|&c| net.normaliser(c)).collect(),
            None => match self.bn {
                BnFlag::Off => vec![Normaliser::Off],
                BnFlag::On => vec![net.batch_norm()],
                BnFlag::Both => vec![Normaliser::Off, net.batch_norm()],
            },
        }
    }

    /// `--norm` lists each normaliser once; a repeat is named as typed (`none`, where the arm
    /// it makes is called `off`).
    pub fn check_distinct(&self) -> Result<()> {
        distinct_norms(self.norm.as_deref().unwrap_or_default())
    }

    /// The one network of `gradcheck` and `bench`.
    pub fn single(&self, net: &NetArgs, what: &str) -> Result<Normaliser> {
        match (&self.norm, self.bn) {
            (Some(list), _) if list.len() == 1 => Ok(net.normaliser(list[0])),
            (Some(_), _) => Err(usage(format!(
                "--norm: {what} one network; give one of none, batch or layer"
            ))),
            (None, BnFlag::Both) => Err(usage(format!(
                "--bn both: {what} one network; give --bn on or --bn off"
            ))),
            (None, _) => Ok(self.norms(net)[0]),
        }
    }
}

/// A `--norm` list without repeats, or the error naming the repeat as typed.
pub fn distinct_norms(list: &[NormChoice]) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let typed: Vec<String> = list
        .iter()
        .map(|c| {
            clap::ValueEnum::to_possible_value(c)
                .map_or_else(|| format!("{c:?}"), |v| v.get_name().to_string())
        })
        .collect();
    crate::config::distinct("norm", &typed).map_err(|e| flag_error(&[], &e))
}

/// `--d-out` when not given (and the task has no classes).
pub const DEFAULT_D_OUT: usize = 10;

impl DataArgs {
    /// The data spec and the network spec of a command that trains, with what the flags leave
    /// open filled in from the task: an image set's whole splits, its pixels as `d_in` and its
    /// classes as `d_out`, cross-entropy for classes. A flag given is kept as given (a mismatch
    /// with the image set is the config's validation error). Reading an image set that is not
    /// there is `--task: cannot read ...`.
    pub fn specs(&self, net: &NetArgs) -> Result<(NetSpec, DataSpec)> {
        self.specs_with(net, (2048, 1024))
    }

    /// [`DataArgs::specs`] with `synthetic` as the `(n_train, n_test)` of a synthetic task.
    pub fn specs_with(
        &self,
        net: &NetArgs,
        synthetic: (usize, usize),
    ) -> Result<(NetSpec, DataSpec)> {
        let shape = self
            .task
            .shape()
            .map_err(|e| usage(format!("--task: {e}")))?;
        let mut spec = net.spec();
        let (n_train, n_test) = match shape {
            Some(s) => {
                spec.d_in = net.d_in.unwrap_or(s.pixels);
                spec.d_out = net.d_out.unwrap_or(s.classes);
                (s.n_train, s.n_test)
            }
            None => synthetic,
        };
        let data = DataSpec {
            n_train: self.n_train.unwrap_or(n_train),
            n_test: self.n_test.unwrap_or(n_test),
            loss: self.loss.unwrap_or(Loss::default_for(&self.task)),
            task: self.task.clone(),
        };
        Ok((spec, data))
    }
}

/// `--n-train`'s help in the commands that flatten [`MeasuredTrainArgs`], whose synthetic
/// default is 4096 (`DataArgs::specs_with`), not the 2048 of the others.
pub const MEASURED_N_TRAIN_HELP: &str = "Training samples (mini-batches are drawn from these without replacement per epoch) [default: 4096; an image set's whole training split]";

/// Config fields of `landscape` and `ics` set by flags of another name.
pub const MEASURED_RENAMES: Renames =
    &[("norms", "--norm"), ("probe_multipliers", "--probe-steps")];
