//! Mini-batch SGD with momentum and weight decay, over [`Mlp::params_mut`].
//!
//! PyTorch's convention: `g = grad + weight_decay * p`, `v = momentum * v + g`, `p -= lr * v`
//! (with `momentum = 0`, `v = g`). Weight decay applies to every parameter, as PyTorch's
//! default parameter group does. BN running statistics are buffers, not parameters, and are
//! never touched.
//!
//! Linear warmup (`warmup_steps = K`, as PyTorch's `LinearLR` or `transformers`' linear warmup):
//! the update with index `t` (0-based: `t` updates already done) uses
//!
//! ```text
//! lr_t = lr * min(1, (t + 1) / K)      (K >= 1; K = 0: lr_t = lr, no warmup)
//! ```
//!
//! so the first update is `lr / K`, update `K - 1` and every later one is `lr`. `K = 1` is
//! exactly no warmup (the factor is 1 from the first update on).

use ndarray::{ArrayD, Zip};
use serde::{Deserialize, Serialize};

use crate::float::Float;
use crate::model::Mlp;

/// Optimiser settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// The learning rate after warmup.
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Linear warmup over this many updates (0: none); see the module doc.
    #[serde(default)]
    pub warmup_steps: usize,
}

impl SgdConfig {
    /// The learning rate of the update with index `t` (0-based): `lr * min(1, (t + 1) / K)`.
    /// Exactly `lr` once `t + 1 >= K`, and always when `K` is 0 or 1.
    pub fn lr_at(&self, t: usize) -> f64 {
        let k = self.warmup_steps;
        if t.saturating_add(1) >= k {
            self.lr
        } else {
            self.lr * ((t + 1) as f64 / k as f64)
        }
    }
}

/// The optimiser settings every run of `train` and `nonlinearity` shares: momentum, weight
/// decay and warmup. Flattened into their configs, as [`crate::spec::NetSpec`] is, so the JSON
/// keys sit beside the experiment's own. The learning rates (`lrs`: they compare several) and
/// `steps` stay the experiment's fields: their JSON reads `lrs, sgd_momentum, weight_decay,
/// warmup_steps, steps`, an order no spec holding `steps, lr, warmup_steps` could keep.
///
/// The experiments that train with plain SGD (`landscape`, `ics`, `noisy-bn`, `input-shift`,
/// `sweep`) flatten a [`PlainSgdSpec`] instead: steps, one learning rate and the warmup, no
/// momentum and no weight decay (their JSON has neither key). [`SgdSpec::plain`] is the
/// `SgdSpec` a `PlainSgdSpec` trains with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdSpec {
    /// SGD momentum (PyTorch convention; 0: plain SGD).
    pub sgd_momentum: f64,
    /// L2 weight decay added to every gradient.
    pub weight_decay: f64,
    /// Linear learning-rate warmup over this many updates (0: none; see the module doc).
    #[serde(default)]
    pub warmup_steps: usize,
}

impl SgdSpec {
    /// Plain SGD (no momentum, no weight decay) with a linear warmup over `warmup_steps`.
    pub fn plain(warmup_steps: usize) -> Self {
        SgdSpec {
            sgd_momentum: 0.0,
            weight_decay: 0.0,
            warmup_steps,
        }
    }

    /// Check the fields (errors name them).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        check_sgd(self.sgd_momentum, self.weight_decay)?;
        check_warmup(self.warmup_steps)
    }

    /// The optimiser of one run at learning rate `lr`.
    pub fn at(&self, lr: f64) -> SgdConfig {
        SgdConfig {
            lr,
            momentum: self.sgd_momentum,
            weight_decay: self.weight_decay,
            warmup_steps: self.warmup_steps,
        }
    }
}

/// The training of the experiments that measure plain SGD (`landscape`, `ics`, `noisy-bn`,
/// `input-shift`, `sweep`): how many updates, at which learning rate, after which warmup. No
/// momentum, so one update moves the weights by exactly `-lr_t * g`. Flattened into their
/// configs, so the JSON keys stay `steps`, `lr`, `warmup_steps`, in that order; a file without
/// `warmup_steps` loads with no warmup. `train` and `nonlinearity` use [`SgdSpec`] beside their
/// own `lrs` and `steps` instead; [`PlainSgdSpec::sgd`] is [`SgdSpec::plain`] at `lr`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlainSgdSpec {
    /// SGD steps (updates).
    pub steps: usize,
    /// The learning rate after warmup.
    pub lr: f64,
    /// Linear learning-rate warmup over this many updates (0: none; see the module doc).
    #[serde(default)]
    pub warmup_steps: usize,
}

impl PlainSgdSpec {
    /// Check the fields (errors name them: `steps`, `lr`, `warmup_steps`). `min_steps` is 1
    /// where every run trains, 0 where a run may only measure at initialisation (`sweep`).
    pub fn validate(&self, min_steps: usize) -> Result<(), crate::config::ConfigError> {
        crate::config::between("steps", min_steps, crate::limits::MAX_STEPS, self.steps)?;
        crate::config::check_lr("lr", self.lr)?;
        check_warmup(self.warmup_steps)
    }

    /// The same training at learning rate `lr`.
    pub fn at_lr(self, lr: f64) -> Self {
        PlainSgdSpec { lr, ..self }
    }

    /// The optimiser: plain SGD at `lr` with the warmup.
    pub fn sgd(&self) -> SgdConfig {
        SgdSpec::plain(self.warmup_steps).at(self.lr)
    }
}

/// SGD state: one velocity tensor per parameter, in [`Mlp::params_mut`] order, and the number
/// of updates done (the warmup's `t`).
#[derive(Clone, Debug)]
pub struct Sgd<T> {
    pub config: SgdConfig,
    velocity: Vec<ArrayD<T>>,
    steps_done: usize,
}

impl<T: Float> Sgd<T> {
    pub fn new(config: SgdConfig) -> Self {
        Sgd {
            config,
            velocity: Vec::new(),
            steps_done: 0,
        }
    }

    /// Updates applied so far.
    pub fn steps_done(&self) -> usize {
        self.steps_done
    }

    /// The learning rate the next [`Sgd::step`] applies (after warmup: `config.lr`).
    pub fn current_lr(&self) -> f64 {
        self.config.lr_at(self.steps_done)
    }

    /// Apply one update from the gradients of the last backward, at [`Sgd::current_lr`].
    pub fn step(&mut self, net: &mut Mlp<T>) {
        let SgdConfig {
            momentum,
            weight_decay,
            ..
        } = self.config;
        let lr = self.current_lr();
        self.steps_done = self.steps_done.saturating_add(1);
        let (lr, mu, wd) = (T::of(lr), T::of(momentum), T::of(weight_decay));
        if momentum != 0.0 && self.velocity.is_empty() {
            // First step: one zero velocity per parameter (the only allocation SGD makes).
            self.velocity = net
                .params_mut()
                .iter()
                .map(|p| ArrayD::zeros(p.value.raw_dim()))
                .collect();
        }
        let mut velocity = self.velocity.iter_mut();
        net.for_each_param_mut(|mut p| {
            if momentum == 0.0 {
                Zip::from(&mut p.value)
                    .and(&p.grad)
                    .for_each(|w, &g| *w -= lr * (g + wd * *w));
            } else {
                let v = velocity.next().expect("one velocity per parameter");
                Zip::from(&mut p.value)
                    .and(&p.grad)
                    .and(v)
                    .for_each(|w, &g, v| {
                        *v = mu * *v + g + wd * *w;
                        *w -= lr * *v;
                    });
            }
        });
    }
}

/// SGD momentum in [0, 1) and a weight decay >= 0.
pub fn check_sgd(sgd_momentum: f64, weight_decay: f64) -> Result<(), crate::config::ConfigError> {
    crate::config::finite_in("sgd_momentum", "in [0, 1)", sgd_momentum, |v| {
        (0.0..1.0).contains(&v)
    })?;
    crate::config::finite_in("weight_decay", ">= 0", weight_decay, |v| v >= 0.0)
}

/// `--warmup-steps`: at most [`crate::limits::MAX_STEPS`] (more than `steps` is allowed: the
/// run then ends before reaching `lr`).
pub fn check_warmup(warmup_steps: usize) -> Result<(), crate::config::ConfigError> {
    crate::config::at_most("warmup_steps", crate::limits::MAX_STEPS, warmup_steps)
}

/// `20 warmup steps` for a figure's or summary's settings line; `None` without warmup.
pub fn warmup_label(warmup_steps: usize) -> Option<String> {
    match warmup_steps {
        0 => None,
        1 => Some("1 warmup step".to_string()),
        k => Some(format!("{k} warmup steps")),
    }
}
