//! `bn-lab ics`.

use anyhow::Result;

use crate::cli::IcsArgs;
use crate::commands::{Renames, Session, execute, measured_train};
use crate::experiment::ics::{Ics, IcsConfig};

/// Config fields of `ics` set by flags of another name.
pub const RENAMES: Renames = &[("norms", "--norm"), ("sweep_lrs", "--sweep-lr")];

/// The validated-to-be config of a command line.
pub fn config(args: &IcsArgs) -> Result<IcsConfig> {
    Ok(IcsConfig {
        run: measured_train(&args.train, &args.net)?,
        sweep_lrs: args.sweep_lr.0.clone(),
    })
}

pub fn run(args: &IcsArgs, session: &Session<'_>) -> Result<()> {
    execute::<Ics>(&config(args)?, RENAMES, &args.output, &[], session)
}
