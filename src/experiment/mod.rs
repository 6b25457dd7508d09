//! One runner per experiment. Each takes a validated config and returns a `Serialize` results
//! struct; the CLI writes it to JSON and the plot code draws from the same struct.

pub mod bench;
pub mod grad_norms;
pub mod ics;
pub mod landscape;
pub mod nonlinearity;
pub mod train;

use serde::Serialize;

use crate::config::{Activation, BnConfig, Dtype, Init, NetConfig};
use crate::data::Task;
use crate::experiment::grad_norms::BnArms;
use crate::float::Float;
use crate::stats::Num;
use crate::train::{DIVERGENCE_FACTOR, TrainSetup, Trainer, divergence};

/// Which tool and version produced a results file.
#[derive(Clone, Debug, Serialize)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

impl ToolInfo {
    pub fn current() -> Self {
        ToolInfo {
            name: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// A validated configuration of the paired training runs (BN off and on, same weights, same
/// batches, plain SGD) that `landscape` and `ics` measure while they train.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeRun {
    pub depth: usize,
    pub width: usize,
    pub batch: usize,
    pub d_in: usize,
    pub d_out: usize,
    pub act: Activation,
    pub init: Init,
    pub bn: BnArms,
    /// BN settings used by the BN-on arm.
    pub bn_settings: BnConfig,
    pub residual: bool,
    pub task: Task,
    pub n_train: usize,
    pub n_test: usize,
    /// SGD steps (plain SGD: no momentum, no weight decay).
    pub steps: usize,
    pub lr: f64,
    /// Measure at steps 0, every, 2 every, ...
    pub every: usize,
    pub seed: u64,
    pub dtype: Dtype,
}

impl ProbeRun {
    /// The network of the BN-off or BN-on arm.
    pub fn net(&self, bn: bool) -> NetConfig {
        NetConfig {
            d_in: self.d_in,
            width: self.width,
            d_out: self.d_out,
            depth: self.depth,
            act: self.act,
            init: self.init,
            bn: bn.then_some(self.bn_settings),
            residual: self.residual,
        }
    }

    /// What the step-wise trainer needs besides the network.
    pub fn setup(&self) -> TrainSetup {
        TrainSetup {
            task: self.task,
            n_train: self.n_train,
            n_test: self.n_test,
            batch: self.batch,
            lr: self.lr,
            seed: self.seed,
        }
    }

    /// `8 x 128 relu (he init), non-linear task, batch 128, lr 0.01, 400 steps, seed 0, f32`.
    pub fn title(&self) -> String {
        format!(
            "{} x {} {}{} ({} init), {} task, batch {}, lr {}, {} steps, seed {}, {}",
            self.depth,
            self.width,
            self.act,
            if self.residual { " residual" } else { "" },
            self.init,
            self.task,
            self.batch,
            self.lr,
            self.steps,
            self.seed,
            self.dtype,
        )
    }

    /// `BN off`, or the BN-on arm's label.
    pub fn arm_label(&self, bn: bool) -> String {
        if bn {
            self.bn_settings.label()
        } else {
            "BN off".into()
        }
    }

    /// Train the BN-off or BN-on arm with plain SGD, calling `measure(trainer, step, loss)` at
    /// steps 0, every, 2 every, ... after the backward pass and before the update (the trainer
    /// holds that step's batch and gradients). Stops at a divergence. `progress` gets one unit
    /// per step. Returns the trained trainer and what every arm reports.
    pub fn train_measured<T: Float>(
        &self,
        bn: bool,
        progress: &(dyn Fn(u64) + Sync),
        mut measure: impl FnMut(&mut Trainer<T>, usize, f64),
    ) -> (Trainer<T>, TrainedArm) {
        let mut tr = Trainer::<T>::new(&self.net(bn), &self.setup());
        let mut train_loss = Vec::with_capacity(self.steps);
        let mut diverged_at = None;
        for step in 0..self.steps {
            let loss = tr.forward_backward();
            train_loss.push(Num(loss));
            if divergence(loss, train_loss[0].0, DIVERGENCE_FACTOR).is_some() {
                progress((self.steps - step) as u64);
                diverged_at = Some(step);
                break;
            }
            if step % self.every == 0 {
                measure(&mut tr, step, loss);
            }
            tr.step();
            progress(1);
        }
        let arm = TrainedArm {
            label: self.arm_label(bn),
            bn,
            net: self.net(bn),
            train_loss,
            diverged_at,
            final_test_loss: Num(tr.test_loss()),
        };
        (tr, arm)
    }

    /// Layer names: `1` .. `depth`, then `out`.
    pub fn layer_names(&self) -> Vec<String> {
        (1..=self.depth)
            .map(|l| l.to_string())
            .chain(std::iter::once("out".to_string()))
            .collect()
    }
}

/// What every measured training run reports, whatever it measured (flattened into the arms of
/// `landscape.json` and `ics.json`).
#[derive(Clone, Debug, Serialize)]
pub struct TrainedArm {
    /// `BN off`, `BN on`, `BN on (no affine)`, ...
    pub label: String,
    pub bn: bool,
    pub net: NetConfig,
    /// Loss of each step's mini-batch before its update (train mode).
    pub train_loss: Vec<Num>,
    /// Step at which the loss became inf/NaN or grew 1e6-fold (training stopped there).
    pub diverged_at: Option<usize>,
    /// Test loss after training, BN in eval mode (running statistics).
    pub final_test_loss: Num,
}
