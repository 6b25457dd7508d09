//! Mini-batch SGD with momentum and weight decay, over [`Mlp::params_mut`].
//!
//! PyTorch's convention: `g = grad + weight_decay * p`, `v = momentum * v + g`, `p -= lr * v`
//! (with `momentum = 0`, `v = g`). Weight decay applies to every parameter, as PyTorch's
//! default parameter group does. BN running statistics are buffers, not parameters, and are
//! never touched.

use ndarray::{ArrayD, Zip};
use serde::{Deserialize, Serialize};

use crate::float::Float;
use crate::model::Mlp;

/// Optimiser settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

/// SGD state: one velocity tensor per parameter, in [`Mlp::params_mut`] order.
#[derive(Clone, Debug)]
pub struct Sgd<T> {
    pub config: SgdConfig,
    velocity: Vec<ArrayD<T>>,
}

impl<T: Float> Sgd<T> {
    pub fn new(config: SgdConfig) -> Self {
        Sgd {
            config,
            velocity: Vec::new(),
        }
    }

    /// Apply one update from the gradients of the last backward.
    pub fn step(&mut self, net: &mut Mlp<T>) {
        let SgdConfig {
            lr,
            momentum,
            weight_decay,
        } = self.config;
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
