//! `bn-lab landscape`.

use anyhow::Result;

use crate::cli::LandscapeArgs;
use crate::commands::{MEASURED_RENAMES, Session, execute, measured_train};
use crate::experiment::landscape::{Landscape, LandscapeConfig};
use crate::model::Mode;

/// The config the flags describe (validated by [`execute`]).
pub fn config(args: &LandscapeArgs) -> Result<LandscapeConfig> {
    Ok(LandscapeConfig {
        run: measured_train(&args.train, &args.net)?,
        probe_multipliers: args.probe_steps.clone(),
        probe_bn_mode: Mode::Train,
        slice_grid: args.slice_grid,
        slice_span: args.slice_span,
        slice_samples: args.slice_samples,
    })
}

pub fn run(args: &LandscapeArgs, session: &Session<'_>) -> Result<()> {
    execute::<Landscape>(&config(args)?, MEASURED_RENAMES, &args.output, &[], session)
}
