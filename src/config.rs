//! The vocabulary every layer uses: the closed sets of activations, initialisations, float types,
//! placements and normalisers ([`Normaliser`]), the loss, and the typed [`ConfigError`]s (with
//! the validators that make them) that name the config field they are about. The specs built
//! from these words are in [`crate::spec`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::limits::MAX_POINTS;

/// Element-wise non-linearity applied in every hidden block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// sigma(x) = 1 / (1 + e^-x); sigma' = sigma (1 - sigma) <= 1/4.
    Sigmoid,
    /// tanh(x); tanh' = 1 - tanh^2 <= 1.
    Tanh,
    /// max(0, x).
    Relu,
    /// x for x > 0, 0.01 x otherwise.
    LeakyRelu,
    /// The identity: a deep linear network.
    Linear,
}

impl Activation {
    /// Every activation, in the order the CLI lists them.
    pub const ALL: [Activation; 5] = [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Linear,
    ];

    /// Negative-side slope of the leaky ReLU (PyTorch's default).
    pub const LEAKY_SLOPE: f64 = 0.01;

    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky-relu",
            Activation::Linear => "linear",
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where BatchNorm sits relative to the activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// `a = act(BN(z))`, as in the original BatchNorm paper.
    Pre,
    /// `a = BN(act(z))`.
    Post,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Pre => "pre",
            Placement::Post => "post",
        })
    }
}

/// Float type a run computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Dtype {
    F32,
    F64,
}

impl Dtype {
    pub fn bytes(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        })
    }
}

/// Weight initialisation. Biases always start at 0.
///
/// ```
/// use bn_lab::config::Init;
/// assert_eq!("normal:0.05".parse::<Init>(), Ok(Init::Normal(0.05)));
/// assert_eq!(Init::He.std(8, 4), 0.5); // sqrt(2 / 8)
/// assert!("normal:-1".parse::<Init>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, 2 / fan_in) (He et al. 2015), for ReLU.
    He,
    /// N(0, 2 / (fan_in + fan_out)) (Glorot & Bengio 2010).
    Xavier,
    /// N(0, 1 / fan_in) (LeCun et al. 1998).
    Lecun,
    /// N(0, std^2) with the given std.
    Normal(f64),
    /// He for (leaky) ReLU, Xavier otherwise: resolved per activation by [`Init::resolve`]
    /// before a network is built.
    Auto,
    /// Fixup (Zhang, Dauphin & Ma 2019, "Fixup Initialization: Residual Learning Without
    /// Normalization", ICLR, arXiv 1901.09321, section 3, rules 1-3) for the standard residual
    /// blocks: He for the stem; each branch's first matrix He scaled by `L^(-1/(2m-2))`
    /// = `L^(-1/2)` (`L` blocks of `m = 2` matrices); each branch's last matrix and the head 0;
    /// a learnable scalar multiplier on each branch, from 1. The paper's scalar biases before
    /// each layer are not added (every layer here has its own bias vector after it, from 0).
    Fixup,
}

impl Init {
    /// Standard deviation of a weight of a `fan_in x fan_out` matrix.
    pub fn std(self, fan_in: usize, fan_out: usize) -> f64 {
        match self {
            Init::He => (2.0 / fan_in as f64).sqrt(),
            Init::Xavier => (2.0 / (fan_in + fan_out) as f64).sqrt(),
            Init::Lecun => (1.0 / fan_in as f64).sqrt(),
            Init::Normal(std) => std,
            // `NetSpec::net` resolves `auto`; a hand-built config means what `xavier` means.
            Init::Auto => Init::Xavier.std(fan_in, fan_out),
            // The draw before Fixup's rescaling (`Mlp::new` scales and zeroes the branches).
            Init::Fixup => Init::He.std(fan_in, fan_out),
        }
    }

    /// Refuse Fixup in a command that looks at gradients at initialisation (`what` it does):
    /// Fixup's head is 0 there, so every gradient below the head is exactly 0.
    pub fn refuse_fixup(self, what: &str) -> Result<(), ConfigError> {
        if self != Init::Fixup {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            field: "init",
            message: format!(
                "fixup is not supported here: this command {what}, where Fixup's head is 0 and so is every gradient below it (train it instead: bn-lab train --init fixup)"
            ),
        })
    }

    /// `auto` made concrete for `act`: He for (leaky) ReLU, Xavier otherwise.
    pub fn resolve(self, act: Activation) -> Init {
        match (self, act) {
            (Init::Auto, Activation::Relu | Activation::LeakyRelu) => Init::He,
            (Init::Auto, _) => Init::Xavier,
            (init, _) => init,
        }
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::He => f.write_str("he"),
            Init::Xavier => f.write_str("xavier"),
            Init::Lecun => f.write_str("lecun"),
            Init::Normal(std) => write!(f, "normal:{}", crate::stats::Short(*std)),
            Init::Auto => f.write_str("auto"),
            Init::Fixup => f.write_str("fixup"),
        }
    }
}

impl FromStr for Init {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "he" => Ok(Init::He),
            "xavier" => Ok(Init::Xavier),
            "lecun" => Ok(Init::Lecun),
            "auto" => Ok(Init::Auto),
            "fixup" => Ok(Init::Fixup),
            _ => {
                if let Some(std) = s.strip_prefix("normal:") {
                    let std: f64 = std.trim().parse().map_err(|_| {
                        format!(
                            "'normal:' needs a number after the colon, e.g. normal:0.05 (got '{s}')"
                        )
                    })?;
                    if !(std.is_finite() && std > 0.0 && std <= crate::limits::MAX_WEIGHT_SCALE) {
                        return Err(format!(
                            "the std in 'normal:STD' must be a finite number > 0 and at most 1e8 (got {})",
                            crate::stats::Short(std)
                        ));
                    }
                    Ok(Init::Normal(std))
                } else if s == "normal" {
                    Err("'normal' needs a std, e.g. normal:0.05".to_string())
                } else {
                    Err(format!(
                        "unknown init '{s}' (expected he, xavier, lecun, normal:STD, auto or fixup)"
                    ))
                }
            }
        }
    }
}

impl Serialize for Init {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Init {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which statistics a normalisation layer standardises with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NormKind {
    /// BatchNorm (Ioffe & Szegedy 2015): each unit over the batch; running statistics in eval mode.
    #[default]
    Batch,
    /// LayerNorm (Ba et al. 2016): each sample over its units; the same in train and eval mode.
    Layer,
}

impl NormKind {
    /// `BN` or `LN`, for labels.
    pub fn short(self) -> &'static str {
        match self {
            NormKind::Batch => "BN",
            NormKind::Layer => "LN",
        }
    }
}

impl fmt::Display for NormKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NormKind::Batch => "batch",
            NormKind::Layer => "layer",
        })
    }
}

/// Noise injected after every BatchNorm layer, between BN and the activation ("noisy BN",
/// Santurkar et al. 2018, section 2.1): the distribution each layer sees is shifted on purpose,
/// anew at every training step and independently per unit, so that it moves *more* than without
/// BN. At step `t`, for every BN layer and unit `j`, and then every sample `i` of the mini-batch:
///
/// ```text
/// mu_tj    ~ U(-mean, mean)          the step's shift of unit j    (non-zero mean)
/// sigma_tj ~ U(1, scale)             the step's scale of unit j    (non-unit variance)
/// s_ij = sigma_tj (1 + jitter xi_ij),  m_ij = mu_tj + jitter zeta_ij,  xi, zeta ~ N(0, 1)
/// y'_ij = s_ij y_ij + m_ij            y = gamma x_hat + beta, BN's output; a = act(y')
/// ```
///
/// Drawn in f64 from the run's own `Noise` stream (so the weights and batches are those of the
/// run without noise), units in order, then samples. Eval mode replaces the noise by its mean,
/// `y' = (1 + scale) / 2 * y`, as dropout does. `mean = 0, scale = 1, jitter = 0` is no noise:
/// `s = 1, m = 0` exactly, and the run equals plain BN bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BnNoise {
    /// Half-width of the uniform distribution of each step's per-unit shift.
    pub mean: f64,
    /// Upper end of the uniform distribution of each step's per-unit scale (at least 1).
    pub scale: f64,
    /// Standard deviation of the per-sample jitter around the step's scale (relative) and shift.
    pub jitter: f64,
}

impl BnNoise {
    /// `E[s_ij]`: the scale eval mode applies.
    pub fn mean_scale(&self) -> f64 {
        0.5 * (1.0 + self.scale)
    }

    /// Errors name `noise_mean`, `noise_scale`, `noise_jitter`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        finite_in("noise_mean", "in [0, 100]", self.mean, |v| {
            (0.0..=100.0).contains(&v)
        })?;
        finite_in("noise_scale", "in [1, 100]", self.scale, |v| {
            (1.0..=100.0).contains(&v)
        })?;
        finite_in("noise_jitter", "in [0, 10]", self.jitter, |v| {
            (0.0..=10.0).contains(&v)
        })
    }
}

/// Normalisation-layer settings (BatchNorm or LayerNorm: `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormConfig {
    /// `batch` (BatchNorm) or `layer` (LayerNorm); files written before LayerNorm existed mean `batch`.
    #[serde(default)]
    pub kind: NormKind,
    /// Learnable scale gamma (init 1) and shift beta (init 0); `false` is pure standardisation.
    pub affine: bool,
    pub placement: Placement,
    /// Added to the variance before the square root (PyTorch default 1e-5).
    pub eps: f64,
    /// Running statistics: `running = (1 - momentum) * running + momentum * batch` (PyTorch
    /// default 0.1). LayerNorm keeps no running statistics and ignores it.
    pub momentum: f64,
}

impl Default for NormConfig {
    fn default() -> Self {
        NormConfig {
            kind: NormKind::Batch,
            affine: true,
            placement: Placement::Pre,
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// Which normalisation the hidden blocks use: the one type every command compares arms of.
///
/// The text form (flags, JSON, experiment files) is `off`, `on` (BatchNorm with scale/shift
/// before the activation; `affine`, its old name in `nonlinearity`, and `batch` are accepted
/// too), `no-affine`, `post`, `post-no-affine`, and for LayerNorm `layer`, `layer-no-affine`,
/// `layer-post`, `layer-post-no-affine` (`none` is accepted for `off`). The numeric constants
/// (`eps`, `momentum`) are not part of the variant: they live in [`crate::spec::NetSpec`], so every arm of
/// one run shares them.
///
/// ```
/// use bn_lab::config::{Normaliser, NormKind, Placement};
/// let n: Normaliser = "post-no-affine".parse().unwrap();
/// assert_eq!(n, Normaliser::Batch { affine: false, placement: Placement::Post });
/// assert_eq!(n.to_string(), "post-no-affine");
/// assert_eq!(n.label(), "BN after act, no affine");
/// assert_eq!("affine".parse::<Normaliser>(), Ok(Normaliser::BN));
/// let ln: Normaliser = "layer".parse().unwrap();
/// assert_eq!(ln, Normaliser::LN);
/// assert_eq!((ln.kind(), ln.label()), (Some(NormKind::Layer), "LN"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Normaliser {
    /// No normalisation: `a = act(z)`.
    Off,
    /// BatchNorm (Ioffe & Szegedy 2015): per unit over the batch, with or without learnable
    /// scale/shift, before (`act(BN(z))`) or after (`BN(act(z))`) the activation.
    Batch { affine: bool, placement: Placement },
    /// LayerNorm (Ba et al. 2016): per sample over the units, with or without learnable
    /// scale/shift, before or after the activation.
    Layer { affine: bool, placement: Placement },
}

impl Normaliser {
    /// BatchNorm with scale/shift before the activation, as in the original paper.
    pub const BN: Normaliser = Normaliser::Batch {
        affine: true,
        placement: Placement::Pre,
    };

    /// LayerNorm with scale/shift before the activation.
    pub const LN: Normaliser = Normaliser::Layer {
        affine: true,
        placement: Placement::Pre,
    };

    /// Every variant, in the order the CLI lists them.
    pub const ALL: [Normaliser; 9] = [
        Normaliser::Off,
        Normaliser::BN,
        Normaliser::of(NormKind::Batch, false, Placement::Pre),
        Normaliser::of(NormKind::Batch, true, Placement::Post),
        Normaliser::of(NormKind::Batch, false, Placement::Post),
        Normaliser::LN,
        Normaliser::of(NormKind::Layer, false, Placement::Pre),
        Normaliser::of(NormKind::Layer, true, Placement::Post),
        Normaliser::of(NormKind::Layer, false, Placement::Post),
    ];

    /// The normaliser of `kind` with these settings.
    pub const fn of(kind: NormKind, affine: bool, placement: Placement) -> Normaliser {
        match kind {
            NormKind::Batch => Normaliser::Batch { affine, placement },
            NormKind::Layer => Normaliser::Layer { affine, placement },
        }
    }

    /// `(kind, affine, placement)`, or `None` without normalisation.
    pub fn parts(self) -> Option<(NormKind, bool, Placement)> {
        match self {
            Normaliser::Off => None,
            Normaliser::Batch { affine, placement } => Some((NormKind::Batch, affine, placement)),
            Normaliser::Layer { affine, placement } => Some((NormKind::Layer, affine, placement)),
        }
    }

    /// BatchNorm or LayerNorm; `None` without normalisation.
    pub fn kind(self) -> Option<NormKind> {
        self.parts().map(|(k, _, _)| k)
    }

    /// The text form: `off`, `on`, `no-affine`, `post`, `post-no-affine`, `layer`, ...
    pub fn name(self) -> &'static str {
        use Placement::{Post, Pre};
        match self.parts() {
            None => "off",
            Some((NormKind::Batch, true, Pre)) => "on",
            Some((NormKind::Batch, false, Pre)) => "no-affine",
            Some((NormKind::Batch, true, Post)) => "post",
            Some((NormKind::Batch, false, Post)) => "post-no-affine",
            Some((NormKind::Layer, true, Pre)) => "layer",
            Some((NormKind::Layer, false, Pre)) => "layer-no-affine",
            Some((NormKind::Layer, true, Post)) => "layer-post",
            Some((NormKind::Layer, false, Post)) => "layer-post-no-affine",
        }
    }

    /// The legend and table label of an arm with this normalisation.
    pub fn label(self) -> &'static str {
        use Placement::{Post, Pre};
        match self.parts() {
            None => "BN off",
            Some((NormKind::Batch, true, Pre)) => "BN on",
            Some((NormKind::Batch, false, Pre)) => "BN, no affine",
            Some((NormKind::Batch, true, Post)) => "BN after act",
            Some((NormKind::Batch, false, Post)) => "BN after act, no affine",
            Some((NormKind::Layer, true, Pre)) => "LN",
            Some((NormKind::Layer, false, Pre)) => "LN, no affine",
            Some((NormKind::Layer, true, Post)) => "LN after act",
            Some((NormKind::Layer, false, Post)) => "LN after act, no affine",
        }
    }

    /// What `--help` says about the variant.
    fn help(self) -> String {
        match self.parts() {
            None => "no normalisation".to_string(),
            Some((kind, affine, placement)) => format!(
                "{} {} scale/shift {} the activation",
                kind.short(),
                if affine { "with" } else { "without" },
                if placement == Placement::Pre {
                    "before"
                } else {
                    "after"
                }
            ),
        }
    }

    /// Whether the blocks are normalised at all.
    pub fn is_on(self) -> bool {
        self != Normaliser::Off
    }

    /// Whether the blocks are normalised with batch statistics (BatchNorm), so that a batch of
    /// one sample is undefined.
    pub fn is_batch(self) -> bool {
        self.kind() == Some(NormKind::Batch)
    }

    /// Whether the normaliser has learnable scale/shift.
    pub fn affine(self) -> bool {
        self.parts().is_some_and(|(_, affine, _)| affine)
    }

    /// The same variant with the normaliser moved to `placement` (no norm stays no norm).
    pub fn placed(self, placement: Placement) -> Normaliser {
        match self.parts() {
            None => Normaliser::Off,
            Some((kind, affine, _)) => Normaliser::of(kind, affine, placement),
        }
    }

    /// The normalisation settings of a block, with the run's shared constants.
    pub fn bn_config(self, eps: f64, momentum: f64) -> Option<NormConfig> {
        self.parts().map(|(kind, affine, placement)| NormConfig {
            kind,
            affine,
            placement,
            eps,
            momentum,
        })
    }
}

impl fmt::Display for Normaliser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Normaliser {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "affine" | "batch" => Ok(Normaliser::BN),
            "none" => Ok(Normaliser::Off),
            _ => Normaliser::ALL.into_iter().find(|n| n.name() == s).ok_or_else(|| {
                format!(
                    "unknown normalisation '{s}' (expected off, on, no-affine, post, post-no-affine, layer, layer-no-affine, layer-post or layer-post-no-affine)"
                )
            }),
        }
    }
}

impl Serialize for Normaliser {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Normaliser {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl clap::ValueEnum for Normaliser {
    fn value_variants<'a>() -> &'a [Self] {
        &Normaliser::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let v = clap::builder::PossibleValue::new(self.name()).help(self.help());
        Some(match *self {
            Normaliser::BN => v.aliases(["affine", "batch"]),
            Normaliser::Off => v.alias("none"),
            _ => v,
        })
    }
}

/// The loss a network is trained on and measured with.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// `1/(2N) sum (o - y)^2`: the diary's loss; regression tasks default to it.
    #[default]
    Mse,
    /// Softmax cross-entropy with the classes as one-hot targets; classification tasks default to it.
    Ce,
}

impl Loss {
    /// The y label of a loss axis.
    pub fn axis_label(self) -> &'static str {
        match self {
            Loss::Mse => "loss ½‖o − y‖² per sample (log scale)",
            Loss::Ce => "cross-entropy per sample (log scale)",
        }
    }

    /// `MSE` or `cross-entropy`, for titles and axis labels.
    pub fn title(self) -> &'static str {
        match self {
            Loss::Mse => "MSE",
            Loss::Ce => "cross-entropy",
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loss::Mse => "mse",
            Loss::Ce => "ce",
        })
    }
}

/// BatchNorm's `eps >= 0` and running-statistics `momentum` in [0, 1].
pub fn check_bn_constants(eps: f64, momentum: f64) -> Result<(), ConfigError> {
    finite_in("eps", ">= 0", eps, |v| v >= 0.0)?;
    finite_in("momentum", "in [0, 1]", momentum, |v| {
        (0.0..=1.0).contains(&v)
    })
}

/// `got >= min`, or a [`ConfigError::TooSmall`] naming `field`.
pub fn at_least(field: &'static str, min: usize, got: usize) -> Result<(), ConfigError> {
    if got < min {
        Err(ConfigError::TooSmall { field, min, got })
    } else {
        Ok(())
    }
}

/// `min <= got <= max`, or the error naming `field`.
pub fn between(field: &'static str, min: usize, max: usize, got: usize) -> Result<(), ConfigError> {
    at_least(field, min, got)?;
    at_most(field, max, got)
}

/// `got <= max`, or a [`ConfigError::TooLarge`] naming `field`.
pub fn at_most(field: &'static str, max: usize, got: usize) -> Result<(), ConfigError> {
    if got > max {
        Err(ConfigError::TooLarge { field, max, got })
    } else {
        Ok(())
    }
}

/// A finite `got` for which `ok` holds, or a [`ConfigError::BadNumber`] saying `what` it must be.
pub fn finite_in(
    field: &'static str,
    what: &'static str,
    got: f64,
    ok: impl Fn(f64) -> bool,
) -> Result<(), ConfigError> {
    if got.is_finite() && ok(got) {
        Ok(())
    } else {
        Err(ConfigError::BadNumber { field, what, got })
    }
}

/// A learning rate: finite, positive and at most [`crate::limits::MAX_LR`].
pub fn check_lr(field: &'static str, lr: f64) -> Result<(), ConfigError> {
    finite_in(field, "> 0 and at most 1e10", lr, |v| {
        v > 0.0 && v <= crate::limits::MAX_LR
    })
}

/// A list of at most `max` values (each becomes a panel or a line of a figure).
pub fn at_most_values<T>(field: &'static str, max: usize, v: &[T]) -> Result<(), ConfigError> {
    if v.len() > max {
        return Err(ConfigError::Invalid {
            field,
            message: format!("at most {max} values (got {})", v.len()),
        });
    }
    Ok(())
}

/// A non-empty list of numbers without repeated values; a repeat is echoed short (`1e-300`).
pub fn distinct_numbers(field: &'static str, v: &[f64]) -> Result<(), ConfigError> {
    let short: Vec<crate::stats::Short> = v.iter().map(|&x| crate::stats::Short(x)).collect();
    distinct(field, &short)
}

/// A non-empty list of normalisers (`--configs`) without repeats. The typed words are gone by
/// now and several spell one configuration (`off` and `none`), so a repeat is named with every
/// spelling: `'off' (also written 'none') is given twice`.
pub fn distinct_norms(field: &'static str, v: &[Normaliser]) -> Result<(), ConfigError> {
    distinct_spelt(field, v)
}

/// [`distinct`] for values several words spell (`clap::ValueEnum` aliases): a repeat is named
/// with every spelling.
pub fn distinct_spelt<T: PartialEq + Copy + fmt::Display + clap::ValueEnum>(
    field: &'static str,
    v: &[T],
) -> Result<(), ConfigError> {
    distinct(field, v).map_err(|e| match e {
        ConfigError::Repeated { field, .. } => {
            let repeated = v
                .iter()
                .enumerate()
                .find(|(i, n)| v[..*i].contains(n))
                .map(|(_, n)| *n)
                .expect("a repeat was found");
            let aliases: Vec<String> = clap::ValueEnum::to_possible_value(&repeated)
                .map(|p| {
                    p.get_name_and_aliases()
                        .skip(1)
                        .map(|a| format!("'{a}'"))
                        .collect()
                })
                .unwrap_or_default();
            let also = if aliases.is_empty() {
                String::new()
            } else {
                format!(" (also written {})", aliases.join(" or "))
            };
            ConfigError::Invalid {
                field,
                message: format!("'{repeated}'{also} is given twice"),
            }
        }
        other => other,
    })
}

/// A non-empty list without repeated values.
pub fn distinct<T: PartialEq + fmt::Display>(
    field: &'static str,
    v: &[T],
) -> Result<(), ConfigError> {
    if v.is_empty() {
        return Err(ConfigError::Empty { field });
    }
    for (i, a) in v.iter().enumerate() {
        if v[..i].contains(a) {
            return Err(ConfigError::Repeated {
                field,
                value: a.to_string(),
            });
        }
    }
    Ok(())
}

/// A configuration that cannot be run. Each names the config field it is about (`n_train`,
/// `probe_multipliers`, ...); [`ConfigError::render`] writes the message with those names
/// spelled as the caller's users know them (the CLI passes its flag names, an experiment file
/// its keys). `Display` uses the field names themselves.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    TooSmall {
        field: &'static str,
        min: usize,
        got: usize,
    },
    TooLarge {
        field: &'static str,
        max: usize,
        got: usize,
    },
    /// `field` must be at least the value of another field.
    BelowOther {
        field: &'static str,
        other: &'static str,
        min: usize,
        got: usize,
        why: &'static str,
    },
    /// BatchNorm needs two samples per batch; `field` is the batch it would normalise.
    BatchTooSmallForBn {
        field: &'static str,
        got: usize,
    },
    BadNumber {
        field: &'static str,
        what: &'static str,
        got: f64,
    },
    Empty {
        field: &'static str,
    },
    Repeated {
        field: &'static str,
        value: String,
    },
    /// `field` is set (to `got`) without the switch `needs` that gives it a meaning.
    NeedsOther {
        field: &'static str,
        needs: &'static str,
        why: &'static str,
        got: String,
    },
    /// Anything else about one field, said in words.
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A history recorded every `field` steps of `steps_field` would keep more than
    /// [`crate::limits::MAX_POINTS`] points; `min` is the smallest `field` that fits.
    TooManyPoints {
        field: &'static str,
        steps_field: &'static str,
        steps: usize,
        min: usize,
        got: usize,
    },
    /// The run would need more memory than the machine has; `fields` are what to reduce.
    TooMuchMemory {
        fields: &'static [&'static str],
        need: String,
        have: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&|field| field.to_string()))
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The field the error is about (the first one to reduce, for memory).
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::TooSmall { field, .. }
            | ConfigError::TooLarge { field, .. }
            | ConfigError::BelowOther { field, .. }
            | ConfigError::BatchTooSmallForBn { field, .. }
            | ConfigError::BadNumber { field, .. }
            | ConfigError::Empty { field }
            | ConfigError::Repeated { field, .. }
            | ConfigError::Invalid { field, .. }
            | ConfigError::NeedsOther { field, .. }
            | ConfigError::TooManyPoints { field, .. } => field,
            ConfigError::TooMuchMemory { fields, .. } => fields.first().copied().unwrap_or(""),
        }
    }

    /// The message, with every field name written as `name(field)`.
    pub fn render(&self, name: &dyn Fn(&str) -> String) -> String {
        match self {
            ConfigError::TooSmall { field, min, got } => {
                format!("{} must be at least {min} (got {got})", name(field))
            }
            ConfigError::TooLarge { field, max, got } => {
                format!("{} must be at most {max} (got {got})", name(field))
            }
            ConfigError::BelowOther {
                field,
                other,
                min,
                got,
                why,
            } => format!(
                "{} must be at least {} ({min}){why} (got {got})",
                name(field),
                name(other)
            ),
            ConfigError::BatchTooSmallForBn { field, got } => format!(
                "{f} must be at least 2 with BatchNorm on (the variance of a batch of 1 is 0, so BN is undefined); got {f} {got}",
                f = name(field)
            ),
            ConfigError::BadNumber { field, what, got } => format!(
                "{} must be a finite number {what} (got {})",
                name(field),
                crate::stats::Short(*got)
            ),
            ConfigError::Empty { field } => format!("{} needs at least one value", name(field)),
            ConfigError::Repeated { field, value } => {
                format!("{}: '{value}' is given twice", name(field))
            }
            ConfigError::Invalid { field, message } => format!("{}: {message}", name(field)),
            ConfigError::NeedsOther {
                field,
                needs,
                why,
                got,
            } => format!(
                "{} {why}, so it needs {} (got {got} without it)",
                name(field),
                name(needs)
            ),
            ConfigError::TooManyPoints {
                field,
                steps_field,
                steps,
                min,
                got,
            } => format!(
                "{} must be at least {min} with {} {steps}: a recorded history keeps at most {} points (got {got})",
                name(field),
                name(steps_field),
                crate::limits::MAX_POINTS
            ),
            ConfigError::TooMuchMemory { fields, need, have } => {
                let names: Vec<String> = fields.iter().map(|f| name(f)).collect();
                let reduce = match names.split_last() {
                    None => String::new(),
                    Some((last, [])) => format!("; reduce {last}"),
                    Some((last, rest)) => format!("; reduce {} or {last}", rest.join(", ")),
                };
                format!(
                    "this run needs about {need} but only {have} of memory is available{reduce}"
                )
            }
        }
    }
}

/// The number of points a history recorded every `every` of `steps` steps keeps.
pub fn points(steps: usize, every: usize) -> usize {
    steps / every.max(1) + 1
}

/// Refuse a history of more than [`MAX_POINTS`] points: `every_field` must be at least
/// `steps / MAX_POINTS` (rounded up).
pub fn check_points(
    every_field: &'static str,
    steps_field: &'static str,
    steps: usize,
    every: usize,
) -> Result<(), ConfigError> {
    if points(steps, every) > MAX_POINTS {
        return Err(ConfigError::TooManyPoints {
            field: every_field,
            steps_field,
            steps,
            min: steps / MAX_POINTS + 1,
            got: every,
        });
    }
    Ok(())
}

/// `1536` -> `"1.5 KiB"`.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_POINTS;

    #[test]
    fn histories_are_capped() {
        assert!(check_points("every", "steps", 400, 10).is_ok());
        assert!(check_points("every", "steps", MAX_POINTS - 1, 1).is_ok());
        let e = check_points("every", "steps", 100_000_000, 1).unwrap_err();
        let min = 100_000_000 / MAX_POINTS + 1;
        assert!(points(100_000_000, min) <= MAX_POINTS);
        assert!(points(100_000_000, min - 1) > MAX_POINTS);
        assert!(e.to_string().contains(&format!("at least {min}")), "{e}");
    }
}
