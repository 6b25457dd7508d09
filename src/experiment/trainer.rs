//! The small mini-batch SGD loop that `landscape` and `ics` probe while it runs, and flat views
//! of a network's parameters and gradients (one `f64` vector in [`Mlp::params_mut`] order).
//!
//! Plain SGD (no momentum, no weight decay), so that one training step moves the weights by
//! exactly `-lr * g`: the point the landscape probe reaches at step size `1x lr` is the point
//! training goes to next, and the ICS update of the earlier layers is exactly `-lr * G`.

use ndarray::Array2;

use crate::config::NetConfig;
use crate::data::{self, Batch, Sampler, Stream, Task};
use crate::float::Float;
use crate::model::{Mlp, Mode};
use crate::ops;
use crate::optim::{Sgd, SgdConfig};

/// A run is stopped when its loss is inf/NaN or has grown by this factor over the first step's.
pub const DIVERGENCE_FACTOR: f64 = 1e6;

/// Whether `loss` counts as diverged relative to the first step's loss.
pub fn diverged(loss: f64, first: f64) -> bool {
    !loss.is_finite() || (first.is_finite() && first > 0.0 && loss > DIVERGENCE_FACTOR * first)
}

/// What a trainer needs besides the network.
#[derive(Clone, Copy, Debug)]
pub struct TrainSetup {
    pub task: Task,
    pub n_train: usize,
    pub n_test: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
}

/// One training run: network, optimiser, data, sampler and the current mini-batch.
pub struct Trainer<T: Float> {
    pub net: Mlp<T>,
    pub sgd: Sgd<T>,
    pub train: Batch<T>,
    pub test: Batch<T>,
    sampler: Sampler,
    /// The current mini-batch, `(batch, d_in)` and `(batch, d_out)`.
    pub x: Array2<T>,
    pub y: Array2<T>,
    d_o: Array2<T>,
}

impl<T: Float> Trainer<T> {
    /// Weights from the `Weights` stream of `seed`, data from its `Data` stream, batches from
    /// its `Shuffle` stream: two nets built from one seed (BN off and on) start from the same
    /// weights and see the same batches in the same order.
    pub fn new(net_cfg: &NetConfig, setup: &TrainSetup) -> Self {
        let ds = data::make_task::<T>(
            setup.task,
            setup.seed,
            setup.n_train,
            setup.n_test,
            net_cfg.d_in,
            net_cfg.d_out,
        );
        let net = Mlp::new(net_cfg, &mut data::rng(setup.seed, Stream::Weights));
        Trainer {
            net,
            sgd: Sgd::new(SgdConfig {
                lr: setup.lr,
                momentum: 0.0,
                weight_decay: 0.0,
            }),
            train: ds.train,
            test: ds.test,
            sampler: Sampler::new(setup.n_train, setup.seed),
            x: Array2::zeros((setup.batch, net_cfg.d_in)),
            y: Array2::zeros((setup.batch, net_cfg.d_out)),
            d_o: Array2::zeros((setup.batch, net_cfg.d_out)),
        }
    }

    /// Draw the next mini-batch, run forward (train mode) and backward on it; return its loss.
    pub fn forward_backward(&mut self) -> f64 {
        self.sampler
            .next_into(&self.train, self.x.view_mut(), self.y.view_mut());
        loss_and_grad(&mut self.net, &self.x, &self.y, &mut self.d_o)
    }

    /// One SGD step from the gradients of the last [`Trainer::forward_backward`].
    pub fn step(&mut self) {
        self.sgd.step(&mut self.net);
    }

    /// Loss on the test split with BN's running statistics (eval mode).
    pub fn test_loss(&mut self) -> f64 {
        let o = self
            .net
            .forward(self.test.x.view(), Mode::Eval)
            .expect("test data has the net's input width");
        ops::mse_loss_value(o, self.test.y.view())
    }
}

/// Forward in train mode on `(x, y)`, backward, and return the loss. `d_o: (batch, d_out)` scratch.
pub fn loss_and_grad<T: Float>(
    net: &mut Mlp<T>,
    x: &Array2<T>,
    y: &Array2<T>,
    d_o: &mut Array2<T>,
) -> f64 {
    let loss = {
        let o = net
            .forward(x.view(), Mode::Train)
            .expect("batches have the net's input width");
        ops::mse_loss(o, y.view(), d_o.view_mut())
    };
    net.backward(d_o.view()).expect("forward ran just before");
    loss
}

/// Every parameter, flattened in [`Mlp::params_mut`] order.
pub fn params_flat<T: Float>(net: &mut Mlp<T>) -> Vec<f64> {
    net.params_mut()
        .iter()
        .flat_map(|p| p.value.iter().map(|v| v.f64()).collect::<Vec<_>>())
        .collect()
}

/// Every gradient of the last backward, flattened in [`Mlp::params_mut`] order.
pub fn grads_flat<T: Float>(net: &mut Mlp<T>) -> Vec<f64> {
    let mut out = Vec::new();
    grads_flat_into(net, &mut out);
    out
}

/// [`grads_flat`] into a reused buffer.
pub fn grads_flat_into<T: Float>(net: &mut Mlp<T>, out: &mut Vec<f64>) {
    out.clear();
    for p in net.params_mut() {
        out.extend(p.grad.iter().map(|v| v.f64()));
    }
}

/// Overwrite every parameter from a flat vector in [`Mlp::params_mut`] order.
pub fn set_params_flat<T: Float>(net: &mut Mlp<T>, theta: &[f64]) {
    let mut i = 0;
    for mut p in net.params_mut() {
        for v in p.value.iter_mut() {
            *v = T::of(theta[i]);
            i += 1;
        }
    }
    assert_eq!(i, theta.len(), "flat parameter vector of the wrong length");
}

/// `||a||_2` in f64.
pub fn norm(a: &[f64]) -> f64 {
    crate::stats::frobenius_norm(&ndarray::ArrayView1::from(a))
}

/// `||a - b||_2` in f64.
pub fn dist(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&d)
}

/// Largest value, NaN if any is NaN (so a blown-up probe is never hidden).
pub fn max_nan(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(f64::NEG_INFINITY, |a, b| {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.max(b)
        }
    })
}

/// Smallest value, NaN if any is NaN.
pub fn min_nan(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(f64::INFINITY, |a, b| {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.min(b)
        }
    })
}

/// Mean of the finite values (NaN when there are none).
pub fn finite_mean(v: impl IntoIterator<Item = f64>) -> f64 {
    let (s, n) = v
        .into_iter()
        .filter(|x| x.is_finite())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// Median of the finite values (NaN when there are none); the upper median for an even count.
pub fn finite_median(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
