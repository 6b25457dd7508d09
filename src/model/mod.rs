//! The MLP: `Linear -> [BN] -> act` blocks with optional skip connections, and an output layer.
//!
//! ```text
//! h_0 = X                                   X: (batch, d_in)
//! z_l = h_{l-1} W_l + b_l                   W_l: (fan_in, width)
//! a_l = act(BN(z_l))   (placement pre)      or BN(act(z_l)) (post), act(z_l) (no BN)
//! h_l = h_{l-1} + beta a_l  (skip, where shapes match; beta = --residual-scale, 1 by default)
//!                                           else h_l = a_l
//! o   = h_depth W_out + b_out               o: (batch, d_out)
//! ```
//!
//! Each block owns its parameters, their gradients and the named buffers its forward pass
//! caches for the backward pass; the buffers are allocated on the first forward for a batch
//! size and reused afterwards, so a training loop allocates nothing per step.
//! [`Mlp::backward`] overwrites (does not accumulate) every gradient.
//!
//! - `mlp`: [`Mlp`], its forward and backward over the blocks and the output layer.
//! - `block`: one hidden [`Block`] and its forward and backward passes.
//! - `linear`: the [`Linear`] layer's parameters and gradients.
//! - `norm`: the normaliser [`NormLayer`] (BatchNorm or LayerNorm): statistics and backward.
//! - `noise`: noisy BN's per-step noise.
//! - `passes`: a block's cached buffers and the backward passes over them, split over threads.
//! - `unit`: a standard residual block ([`ResUnit`]) around two layers: its stream, gain and
//!   pre-activation normaliser.
//! - `params`: parameter names ([`ParamId`]) and the one accessor to every parameter.

use serde::Serialize;

mod block;
mod linear;
mod mlp;
mod noise;
mod norm;
mod params;
mod passes;
mod unit;

pub use block::Block;
pub use linear::Linear;
pub use mlp::Mlp;
pub use noise::BlockNoise;
pub use norm::{NormLayer, ScaleShift};
pub use params::{LayerId, Param, ParamId, ParamKind};
pub use unit::{Gain, ResUnit};

/// Whether BatchNorm normalises with the batch's statistics (and updates its running
/// statistics) or with the running statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Train,
    Eval,
}

/// Errors from using a model out of order or with the wrong shapes.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("backward called before forward")]
    BackwardBeforeForward,
    #[error("noisy BN needs BatchNorm before the activation in every block")]
    NoiseWithoutBatchNormPre,
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    Shape {
        what: &'static str,
        expected: (usize, usize),
        got: (usize, usize),
    },
}
