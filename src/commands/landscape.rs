//! `bn-lab landscape`.

use anyhow::Result;

use crate::cli::{LandscapeArgs, MeasuredTrainArgs, NetArgs};
use crate::commands::{Renames, execute};
use crate::experiment::MeasuredTrainConfig;
use crate::experiment::landscape::{Landscape, LandscapeConfig};
use crate::model::Mode;

/// Config fields of `landscape` and `ics` set by flags of another name.
pub const RENAMES: Renames = &[("norms", "--bn"), ("probe_multipliers", "--probe-steps")];

/// The training runs `landscape` and `ics` measure, from their shared flags.
pub fn measured_train(t: &MeasuredTrainArgs, net: &NetArgs) -> MeasuredTrainConfig {
    MeasuredTrainConfig {
        depth: t.depth,
        act: net.activation(),
        norms: t.bn.norms(net.batch_norm()),
        net: net.spec(),
        data: t.data.spec(),
        steps: t.steps,
        lr: t.lr,
        every: t.every,
    }
}

/// The config the flags describe (validated by [`execute`]).
pub fn config(args: &LandscapeArgs) -> LandscapeConfig {
    LandscapeConfig {
        run: measured_train(&args.train, &args.net),
        probe_multipliers: args.probe_steps.clone(),
        probe_bn_mode: Mode::Train,
        slice_grid: args.slice_grid,
        slice_span: args.slice_span,
        slice_samples: args.slice_samples,
    }
}

pub fn run(args: &LandscapeArgs) -> Result<()> {
    execute::<Landscape>(&config(args), RENAMES, &args.output, &[]).map(|_| ())
}
