//! `bn-lab ics`.

use anyhow::Result;

use crate::cli::IcsArgs;
use crate::commands::{MEASURED_RENAMES, execute, measured_train};
use crate::experiment::ics::Ics;

pub fn run(args: &IcsArgs) -> Result<()> {
    let cfg = measured_train(&args.train, &args.net);
    execute::<Ics>(&cfg, MEASURED_RENAMES, &args.output, &[]).map(|_| ())
}
