//! Network configuration: the closed sets of activations, initialisations and
//! BatchNorm placements, and [`NetConfig`], validated once at the boundary.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
}

impl Init {
    /// Standard deviation of a weight of a `fan_in x fan_out` matrix.
    pub fn std(self, fan_in: usize, fan_out: usize) -> f64 {
        match self {
            Init::He => (2.0 / fan_in as f64).sqrt(),
            Init::Xavier => (2.0 / (fan_in + fan_out) as f64).sqrt(),
            Init::Lecun => (1.0 / fan_in as f64).sqrt(),
            Init::Normal(std) => std,
        }
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::He => f.write_str("he"),
            Init::Xavier => f.write_str("xavier"),
            Init::Lecun => f.write_str("lecun"),
            Init::Normal(std) => write!(f, "normal:{std}"),
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
            _ => {
                if let Some(std) = s.strip_prefix("normal:") {
                    let std: f64 = std.trim().parse().map_err(|_| {
                        format!(
                            "'normal:' needs a number after the colon, e.g. normal:0.05 (got '{s}')"
                        )
                    })?;
                    if !(std.is_finite() && std > 0.0) {
                        return Err(format!(
                            "the std in 'normal:STD' must be a positive finite number (got {std})"
                        ));
                    }
                    Ok(Init::Normal(std))
                } else if s == "normal" {
                    Err("'normal' needs a std, e.g. normal:0.05".to_string())
                } else {
                    Err(format!(
                        "unknown init '{s}' (expected he, xavier, lecun or normal:STD)"
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

/// BatchNorm settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BnConfig {
    /// Learnable scale gamma (init 1) and shift beta (init 0); `false` is pure standardisation.
    pub affine: bool,
    pub placement: Placement,
    /// Added to the variance before the square root (PyTorch default 1e-5).
    pub eps: f64,
    /// Running statistics: `running = (1 - momentum) * running + momentum * batch` (PyTorch default 0.1).
    pub momentum: f64,
}

impl BnConfig {
    /// `BN on`, with `(no affine, after act)` where those apply: the label of a BN-on arm.
    pub fn label(&self) -> String {
        let mut extra = Vec::new();
        if !self.affine {
            extra.push("no affine");
        }
        if self.placement == Placement::Post {
            extra.push("after act");
        }
        if extra.is_empty() {
            "BN on".into()
        } else {
            format!("BN on ({})", extra.join(", "))
        }
    }
}

impl Default for BnConfig {
    fn default() -> Self {
        BnConfig {
            affine: true,
            placement: Placement::Pre,
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// The architecture of one MLP (see the README's "The network").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    pub d_in: usize,
    pub width: usize,
    pub d_out: usize,
    /// Number of hidden blocks `Linear -> [BN] -> act`.
    pub depth: usize,
    pub act: Activation,
    pub init: Init,
    /// `None`: no BatchNorm.
    pub bn: Option<BnConfig>,
    /// `h_l = h_{l-1} + a_l` wherever the shapes match.
    pub residual: bool,
}

/// A configuration or input that cannot be run. The message names the flag.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{flag} must be at least {min} (got {got})")]
    TooSmall {
        flag: &'static str,
        min: usize,
        got: usize,
    },
    #[error(
        "--batch must be at least 2 with BatchNorm on (the variance of a batch of 1 is 0, so BN is undefined); got --batch {0}"
    )]
    BatchTooSmallForBn(usize),
    #[error("{flag} must be a finite number {what} (got {got})")]
    BadNumber {
        flag: &'static str,
        what: &'static str,
        got: f64,
    },
    #[error(
        "this network needs about {need} of memory but only {have} is available; reduce --depth, --width or --batch"
    )]
    TooMuchMemory { need: String, have: String },
}

/// Largest total of any single dimension we accept before even estimating memory.
const MAX_DIM: usize = 1 << 28;

impl NetConfig {
    /// Check that a network of this shape can be built and run on `batch` samples.
    pub fn validate(&self, batch: usize) -> Result<(), ConfigError> {
        let at_least = |flag, min, got| {
            if got < min {
                Err(ConfigError::TooSmall { flag, min, got })
            } else {
                Ok(())
            }
        };
        at_least("--depth", 1, self.depth)?;
        at_least("--width", 1, self.width)?;
        at_least("--d-in", 1, self.d_in)?;
        at_least("--d-out", 1, self.d_out)?;
        at_least("--batch", 1, batch)?;
        if let Some(bn) = &self.bn {
            if batch < 2 {
                return Err(ConfigError::BatchTooSmallForBn(batch));
            }
            if !(bn.eps.is_finite() && bn.eps >= 0.0) {
                return Err(ConfigError::BadNumber {
                    flag: "--eps",
                    what: ">= 0",
                    got: bn.eps,
                });
            }
            if !(bn.momentum.is_finite() && (0.0..=1.0).contains(&bn.momentum)) {
                return Err(ConfigError::BadNumber {
                    flag: "--momentum",
                    what: "in [0, 1]",
                    got: bn.momentum,
                });
            }
        }
        Ok(())
    }

    /// Whether block `l` (0-based) adds a skip connection: only where input and output shapes match.
    pub fn block_has_skip(&self, l: usize) -> bool {
        self.residual && (l > 0 || self.d_in == self.width)
    }

    /// Bytes the model holds for one forward+backward on `batch` samples in a float of
    /// `dtype_bytes` bytes: parameters and their gradients, BN running statistics, the cached
    /// activations of every block, and the gradient scratch buffers. Computed in `f64` so
    /// absurd sizes do not overflow.
    pub fn memory_estimate_bytes(&self, batch: usize, dtype_bytes: usize) -> f64 {
        let (b, w, din, dout) = (
            batch as f64,
            self.width as f64,
            self.d_in as f64,
            self.d_out as f64,
        );
        let depth = self.depth as f64;
        let mut params = din * w + w + (depth - 1.0) * (w * w + w) + w * dout + dout;
        let mut per_block_acts = 1.0; // activation output a_l
        let post_affine = self
            .bn
            .is_some_and(|bn| bn.affine && bn.placement == Placement::Post);
        if self.bn.is_some() {
            params += depth * 4.0 * w; // gamma, beta, running mean, running var
            per_block_acts += 1.0; // x_hat
        }
        if self.residual || post_affine {
            // h_l in a buffer of its own: h_{l-1} + branch, or gamma x_hat + beta after the activation.
            per_block_acts += 1.0;
        }
        let acts = depth * per_block_acts * b * w;
        let io = 3.0 * b * din + 3.0 * b * dout; // x, y, dx; o, d_o, targets
        let scratch = 3.0 * b * w;
        (2.0 * params + acts + io + scratch) * dtype_bytes as f64
    }

    /// Refuse networks whose dimensions or memory estimate exceed what this machine has.
    pub fn check_memory(&self, batch: usize, dtype_bytes: usize) -> Result<(), ConfigError> {
        let need = self.memory_estimate_bytes(batch, dtype_bytes);
        let have = available_memory_bytes();
        let too_big_dim = [self.width, self.d_in, self.d_out, self.depth, batch]
            .iter()
            .any(|&d| d > MAX_DIM);
        if too_big_dim || need > have as f64 {
            return Err(ConfigError::TooMuchMemory {
                need: human_bytes(need),
                have: human_bytes(have as f64),
            });
        }
        Ok(())
    }
}

/// Memory this process may still use: `MemAvailable` from `/proc/meminfo`, or 16 GiB where
/// that cannot be read (non-Linux systems).
pub fn available_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|kb| kb.parse::<u64>().ok())
                        .map(|kb| kb * 1024)
                })
        })
        .unwrap_or(16 << 30)
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
