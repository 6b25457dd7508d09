//! `bn-lab theory`.

use anyhow::Result;

use crate::cli::TheoryArgs;
use crate::commands::{Renames, Session, execute};
use crate::experiment::grad_norms::INPUT_SECOND_MOMENT;
use crate::experiment::theory::{Theory, TheoryConfig};

/// Config fields set by flags of another name.
pub const RENAMES: Renames = &[("batches", "--batch")];

/// The config the flags describe (validated by [`execute`]).
pub fn config(args: &TheoryArgs) -> TheoryConfig {
    TheoryConfig {
        acts: args.acts.clone(),
        batches: args.batch.clone(),
        depth: args.depth,
        width: args.width,
        d_in: args.d_in.unwrap_or(args.width),
        init: args.init,
        input_second_moment: INPUT_SECOND_MOMENT,
    }
}

pub fn run(args: &TheoryArgs, session: &Session<'_>) -> Result<()> {
    execute::<Theory>(&config(args), RENAMES, &args.output, &[], session)
}
