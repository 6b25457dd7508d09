//! The specs an experiment's config is made of, above the vocabulary of [`crate::config`]:
//! [`NetSpec`] (every network setting that is not an axis an experiment compares along),
//! [`NetConfig`] (one network built from it: depth, activation, normaliser), and [`DataSpec`]
//! (the data set, its splits and the loss). Each checks itself; what a run of them holds in
//! memory is in [`crate::memory`].

use serde::{Deserialize, Serialize};

use crate::config::{
    Activation, ConfigError, Dtype, Init, Loss, NormConfig, NormKind, Normaliser, at_most, between,
    check_bn_constants, finite_in,
};
use crate::data::{self, Dataset, Task};
use crate::float::Float;
use crate::limits::{MAX_BATCH, MAX_DEPTH, MAX_SAMPLES, MAX_WIDTH};

/// Everything about a network and its input that is not an axis an experiment compares
/// along: the shape, initialisation, skip connections, BatchNorm constants, seed and float
/// type. Every experiment config flattens one, so its JSON keys sit beside the experiment's
/// own. Depth, activation and normalisation are the experiment's: some compare several.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetSpec {
    /// Units per hidden layer.
    pub width: usize,
    /// Samples per (mini-)batch.
    pub batch: usize,
    pub d_in: usize,
    pub d_out: usize,
    /// `auto`: He for (leaky) ReLU, Xavier otherwise.
    pub init: Init,
    /// `h_l = h_{l-1} + a_l` wherever the shapes match.
    pub residual: bool,
    /// Balduzzi et al.'s beta: `h_l = h_{l-1} + beta a_l` (needs `residual` or `block`; 1 by
    /// default).
    #[serde(default = "one")]
    pub residual_scale: f64,
    /// A standard two-layer residual block ([`StdBlock`]); `None`: one-layer blocks (`residual`
    /// says whether they have a skip). Left out of the JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<StdBlock>,
    /// SkipInit (De & Smith 2020): a learnable scalar on every residual branch, initialised to 0.
    /// Left out of the JSON when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_init: bool,
    /// BatchNorm's epsilon and running-statistics momentum, shared by every BN arm.
    pub eps: f64,
    pub momentum: f64,
    /// Seed of the data, the weights and the batch order (one stream each).
    pub seed: u64,
    pub dtype: Dtype,
}

impl NetSpec {
    /// The network with `depth` hidden blocks of activation `act`, normalised by `norm`.
    pub fn net(&self, depth: usize, act: Activation, norm: Normaliser) -> NetConfig {
        NetConfig {
            d_in: self.d_in,
            width: self.width,
            d_out: self.d_out,
            depth,
            act,
            init: self.init.resolve(act),
            norm: norm.bn_config(self.eps, self.momentum),
            residual: self.residual,
            residual_scale: self.residual_scale,
            block: self.block,
            skip_init: self.skip_init,
        }
    }

    /// The seeds of a run over `count` seeds: `seed, seed + 1, ...` (wrapping at `u64::MAX`).
    pub fn seed_list(&self, count: usize) -> Vec<u64> {
        (0..count as u64)
            .map(|i| self.seed.wrapping_add(i))
            .collect()
    }

    /// Check the fields themselves (every network built from them is checked again by
    /// [`NetConfig::validate`] with its depth and normalisation).
    pub fn validate(&self) -> Result<(), ConfigError> {
        between("width", 1, MAX_WIDTH, self.width)?;
        between("batch", 1, MAX_BATCH, self.batch)?;
        between("d_in", 1, MAX_WIDTH, self.d_in)?;
        between("d_out", 1, MAX_WIDTH, self.d_out)?;
        check_skips(
            self.residual,
            self.block,
            self.residual_scale,
            self.skip_init,
        )?;
        check_fixup(self.init, self.block, self.skip_init)?;
        check_bn_constants(self.eps, self.momentum)
    }
}

impl NetSpec {
    /// Refuse the standard blocks in a command that studies one-layer blocks layer by layer
    /// (`why` says what it looks at), naming `--block`.
    pub fn one_layer_blocks(&self, why: &str) -> Result<(), ConfigError> {
        match self.block {
            None => Ok(()),
            Some(b) => Err(ConfigError::Invalid {
                field: "block",
                message: format!(
                    "{b} is not supported here: this command {why}, which a two-layer block does not have (use plain or residual)"
                ),
            }),
        }
    }
}

fn one() -> f64 {
    1.0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The standard residual blocks of He et al. (2016), for `--block basic|preact`. With
/// `norm` the block's normaliser (none, BatchNorm or LayerNorm), `act` its activation and `s`
/// the branch's multiplier (`--residual-scale` beta, times SkipInit's learnable `alpha` with
/// `--skip-init`):
///
/// ```text
/// basic   (He et al. 2016a, post-activation):  h_{l+1} = act(h_l + s norm(W2 act(norm(W1 h_l))))
/// preact  (He et al. 2016b, pre-activation):   h_{l+1} = h_l + s W2 act(norm(W1 act(norm(h_l))))
/// ```
///
/// A stem maps the input to the width first: `act(norm(x W0))` for `basic` (as the first
/// convolution, BN and ReLU of He et al. 2016a), the linear `x W0` for `preact` (whose first
/// block normalises and activates it). Every matrix has a bias, as every layer of this tool's
/// networks has (BatchNorm before an activation cancels it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StdBlock {
    Basic,
    Preact,
}

impl StdBlock {
    pub fn name(self) -> &'static str {
        match self {
            StdBlock::Basic => "basic",
            StdBlock::Preact => "preact",
        }
    }
}

impl std::fmt::Display for StdBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The skip settings go together: one architecture (`residual` or a `block`, not both), and
/// `residual_scale` other than 1 and `skip_init` only with one of them.
fn check_skips(
    residual: bool,
    block: Option<StdBlock>,
    scale: f64,
    skip_init: bool,
) -> Result<(), ConfigError> {
    if let (true, Some(b)) = (residual, block) {
        return Err(ConfigError::Invalid {
            field: "block",
            message: format!(
                "{b} and residual are two architectures (residual is the one-layer block); choose one"
            ),
        });
    }
    check_residual_scale(residual || block.is_some(), scale)?;
    if skip_init && block.is_none() {
        return Err(ConfigError::Invalid {
            field: "skip_init",
            message: "puts a learnable gain on each residual branch of a standard block, so it needs --block basic or preact".into(),
        });
    }
    Ok(())
}

/// Fixup initialises the branches of a standard block, and brings its own multiplier on each
/// branch (from 1), so it needs `block` and is not combined with SkipInit's (from 0).
fn check_fixup(init: Init, block: Option<StdBlock>, skip_init: bool) -> Result<(), ConfigError> {
    if init != Init::Fixup {
        return Ok(());
    }
    if block.is_none() {
        return Err(ConfigError::Invalid {
            field: "init",
            message: "fixup initialises the two-layer branches of a standard block, so it needs --block basic or preact".into(),
        });
    }
    if skip_init {
        return Err(ConfigError::Invalid {
            field: "init",
            message: "fixup puts its own multiplier on each branch (from 1), and SkipInit's starts at 0; choose one (drop --skip-init or --init fixup)".into(),
        });
    }
    Ok(())
}

/// `residual` or `residual x 0.14` (with a branch scale other than 1), for titles; `None` without
/// skip connections.
pub fn residual_label(residual: bool, scale: f64) -> Option<String> {
    match (residual, scale == 1.0) {
        (false, _) => None,
        (true, true) => Some("residual".to_string()),
        (true, false) => Some(format!("residual x {}", crate::stats::Short(scale))),
    }
}

/// [`residual_label`] for any architecture: `preact blocks`, `basic blocks x 0.14 + SkipInit`,
/// `residual`, ...; `None` for one-layer blocks without skips.
pub fn arch_label(
    residual: bool,
    block: Option<StdBlock>,
    skip_init: bool,
    scale: f64,
) -> Option<String> {
    let Some(b) = block else {
        return residual_label(residual, scale);
    };
    let mut s = format!("{b} blocks");
    if scale != 1.0 {
        s.push_str(&format!(" x {}", crate::stats::Short(scale)));
    }
    if skip_init {
        s.push_str(" + SkipInit");
    }
    Some(s)
}

/// The largest `residual_scale` (a branch multiplied by more than this is no longer a residual).
pub const MAX_RESIDUAL_SCALE: f64 = 1000.0;

/// `residual_scale` is finite, in `(0, MAX_RESIDUAL_SCALE]`, and only set with `residual`.
fn check_residual_scale(residual: bool, scale: f64) -> Result<(), ConfigError> {
    finite_in("residual_scale", "> 0 and at most 1000", scale, |v| {
        v > 0.0 && v <= MAX_RESIDUAL_SCALE
    })?;
    if !residual && scale != 1.0 {
        return Err(ConfigError::Invalid {
            field: "residual_scale",
            message: format!(
                "scales the residual branch, so it needs a skip: --block residual (--residual), basic or preact (got {} without one)",
                crate::stats::Short(scale)
            ),
        });
    }
    Ok(())
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
    /// The normalisation layer of every hidden block (BatchNorm or LayerNorm: its `kind`);
    /// `None`: none. Written `bn` in JSON, as files have always had it.
    #[serde(rename = "bn")]
    pub norm: Option<NormConfig>,
    /// `h_l = h_{l-1} + residual_scale * a_l` wherever the shapes match.
    pub residual: bool,
    /// Balduzzi et al.'s beta (1: a plain skip connection).
    #[serde(default = "one")]
    pub residual_scale: f64,
    /// A standard two-layer residual block; `None`: one-layer blocks. `depth` then counts these
    /// blocks (each holds two matrices), after a stem layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<StdBlock>,
    /// SkipInit (De & Smith 2020): a learnable gain `alpha` on every residual branch, from 0.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_init: bool,
}

impl NetConfig {
    /// Check that a network of this shape can be built and run on `batch` samples.
    pub fn validate(&self, batch: usize) -> Result<(), ConfigError> {
        self.validate_as(batch, "batch")
    }

    /// [`NetConfig::validate`] for a batch that config field `batch_field` sets.
    pub fn validate_as(&self, batch: usize, batch_field: &'static str) -> Result<(), ConfigError> {
        between("depth", 1, MAX_DEPTH, self.depth)?;
        between("width", 1, MAX_WIDTH, self.width)?;
        between("d_in", 1, MAX_WIDTH, self.d_in)?;
        between("d_out", 1, MAX_WIDTH, self.d_out)?;
        between(batch_field, 1, MAX_BATCH, batch)?;
        check_skips(
            self.residual,
            self.block,
            self.residual_scale,
            self.skip_init,
        )?;
        check_fixup(self.init, self.block, self.skip_init)?;
        if let Some(bn) = &self.norm {
            if self.block.is_some() && bn.placement == crate::config::Placement::Post {
                return Err(ConfigError::Invalid {
                    field: "placement",
                    message: "the standard blocks fix where the normaliser goes (before each activation); use --placement pre".into(),
                });
            }
            if batch < 2 && bn.kind == NormKind::Batch {
                return Err(ConfigError::BatchTooSmallForBn {
                    field: batch_field,
                    got: batch,
                });
            }
            check_bn_constants(bn.eps, bn.momentum)?;
        }
        Ok(())
    }

    /// Whether each residual branch carries a learnable scalar gain `alpha`: SkipInit's (from 0)
    /// or Fixup's multiplier (from 1).
    pub fn has_gain(&self) -> bool {
        self.block.is_some() && (self.skip_init || self.init == Init::Fixup)
    }

    /// The gain's value at initialisation: 0 for SkipInit, 1 for Fixup.
    pub fn initial_gain(&self) -> f64 {
        if self.skip_init { 0.0 } else { 1.0 }
    }

    /// Whether block `l` (0-based) adds a skip connection: only where input and output shapes match.
    pub fn block_has_skip(&self, l: usize) -> bool {
        self.residual && (l > 0 || self.d_in == self.width)
    }

    /// Layers with a weight matrix below the output layer: `depth`, or a stem and two per
    /// standard block.
    pub fn layers(&self) -> usize {
        match self.block {
            None => self.depth,
            Some(_) => 1 + 2 * self.depth,
        }
    }

    /// Learnable parameters (weights, biases, and BatchNorm's gamma and beta, counted whether
    /// or not they are learned), in `f64` so absurd shapes do not overflow.
    pub fn param_count(&self) -> f64 {
        let (w, din, dout, depth) = (
            self.width as f64,
            self.d_in as f64,
            self.d_out as f64,
            self.depth as f64,
        );
        let layers = self.layers() as f64;
        let linear = din * w + w + (layers - 1.0) * (w * w + w) + w * dout + dout;
        // The stem and each block's layers, plus a preact block's first normaliser.
        let norms = match self.block {
            Some(StdBlock::Preact) => 2.0 * depth,
            Some(StdBlock::Basic) => layers,
            None => depth,
        };
        let bn = if self.norm.is_some() {
            norms * 2.0 * w
        } else {
            0.0
        };
        let gains = if self.has_gain() { depth } else { 0.0 };
        linear + bn + gains
    }
}

/// The data set of the experiments that train: a seeded synthetic task or an image set, the
/// sizes of its splits, and the loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    pub task: Task,
    pub n_train: usize,
    pub n_test: usize,
    /// Results written before the loss could be chosen were all MSE.
    #[serde(default)]
    pub loss: Loss,
}

impl DataSpec {
    /// Mini-batches of `batch` samples are drawn from the training split, so it needs at least
    /// that many. An image set must be readable, hold the samples asked for, and match the
    /// network's `d_in` (pixels) and `d_out` (classes); cross-entropy needs classes.
    pub fn validate(&self, batch: usize, d_in: usize, d_out: usize) -> Result<(), ConfigError> {
        at_most("n_train", MAX_SAMPLES, self.n_train)?;
        if self.n_train < batch {
            return Err(ConfigError::BelowOther {
                field: "n_train",
                other: "batch",
                min: batch,
                got: self.n_train,
                why: "",
            });
        }
        between("n_test", 1, MAX_SAMPLES, self.n_test)?;
        if self.loss == Loss::Ce && !self.task.is_classification() {
            return Err(ConfigError::Invalid {
                field: "loss",
                message: format!(
                    "ce needs classes, and the {} task is a regression (use --task digits, mnist:DIR or fashion-mnist:DIR, or --loss mse)",
                    self.task
                ),
            });
        }
        let Some(shape) = self.task.shape().map_err(|e| ConfigError::Invalid {
            field: "task",
            message: e.to_string(),
        })?
        else {
            return Ok(());
        };
        for (field, have, got) in [
            ("n_train", shape.n_train, self.n_train),
            ("n_test", shape.n_test, self.n_test),
        ] {
            if got > have {
                return Err(ConfigError::Invalid {
                    field,
                    message: format!(
                        "the {} task has {have} {} images (got {got})",
                        self.task,
                        if field == "n_train" {
                            "training"
                        } else {
                            "test"
                        }
                    ),
                });
            }
        }
        for (field, have, got, what) in [
            ("d_in", shape.pixels, d_in, "pixels per image"),
            ("d_out", shape.classes, d_out, "classes"),
        ] {
            if got != have {
                return Err(ConfigError::Invalid {
                    field,
                    message: format!(
                        "the {} task has {have} {what}, so it must be {have} (got {got})",
                        self.task
                    ),
                });
            }
        }
        Ok(())
    }
}

impl DataSpec {
    /// The data set a run of this spec on the network `net` trains on: [`data::make_task`]
    /// with the spec's task and sizes and the network's seed, input and output widths.
    pub fn task_for<F: Float>(&self, net: &NetSpec) -> Dataset<F> {
        data::make_task(
            &self.task,
            net.seed,
            self.n_train,
            self.n_test,
            net.d_in,
            net.d_out,
        )
    }
}

impl Loss {
    /// The loss a task is trained on unless told otherwise.
    pub fn default_for(task: &Task) -> Loss {
        if task.is_classification() {
            Loss::Ce
        } else {
            Loss::Mse
        }
    }
}
