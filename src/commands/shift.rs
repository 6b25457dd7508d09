//! `bn-lab noisy-bn` and `bn-lab input-shift`.

use anyhow::Result;

use crate::cli::{InputShiftArgs, MeasuredTrainArgs, NetArgs, NoisyBnArgs, UnitArgs};
use crate::commands::{Renames, Session, execute, measured_train};
use crate::config::BnNoise;
use crate::experiment::shift::{InputShift, NoisyBn, ShiftConfig};

/// Probe samples by default.
pub const DEFAULT_PROBE: usize = 512;

/// Config fields set by flags of another name.
pub const RENAMES: Renames = &[("norms", "--norm")];

fn config(
    train: &MeasuredTrainArgs,
    net: &NetArgs,
    unit: &UnitArgs,
    noise: Option<BnNoise>,
) -> Result<ShiftConfig> {
    let run = measured_train(train, net)?;
    Ok(ShiftConfig {
        layer: unit.layer.unwrap_or(run.depth),
        unit: unit.unit,
        probe: unit.probe.unwrap_or(DEFAULT_PROBE.min(run.data.n_train)),
        probe_mode: unit.probe_mode.into(),
        noise,
        run,
    })
}

/// The config of a `noisy-bn` command line.
pub fn noisy_config(args: &NoisyBnArgs) -> Result<ShiftConfig> {
    let n = &args.noise;
    let noise = BnNoise {
        mean: n.noise_mean,
        scale: n.noise_scale,
        jitter: n.noise_jitter,
    };
    config(&args.train, &args.net, &args.unit, Some(noise))
}

/// The config of an `input-shift` command line.
pub fn input_shift_config(args: &InputShiftArgs) -> Result<ShiftConfig> {
    config(&args.train, &args.net, &args.unit, None)
}

pub fn run_noisy(args: &NoisyBnArgs, session: &Session<'_>) -> Result<()> {
    execute::<NoisyBn>(&noisy_config(args)?, RENAMES, &args.output, &[], session)
}

pub fn run_input_shift(args: &InputShiftArgs, session: &Session<'_>) -> Result<()> {
    execute::<InputShift>(
        &input_shift_config(args)?,
        RENAMES,
        &args.output,
        &[],
        session,
    )
}
