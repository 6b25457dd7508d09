//! `bn-lab shattered`.

use anyhow::Result;

use crate::cli::ShatteredArgs;
use crate::commands::{Renames, Session, execute, threads};
use crate::experiment::shattered::{Shattered, ShatteredConfig};
use crate::parallel;

/// Config fields set by flags of another name.
pub const RENAMES: Renames = &[
    ("depths", "--depth"),
    ("archs", "--arch"),
    ("batch", "--points"),
    ("bn", "--norm"),
];

/// The config the flags describe (validated by [`execute`]): `--d-in` defaults to 1 here.
pub fn config(args: &ShatteredArgs) -> ShatteredConfig {
    let mut net = args.net.spec();
    net.d_in = args.net.d_in.unwrap_or(1);
    ShatteredConfig {
        depths: args.depth.clone(),
        archs: args.arch.clone(),
        act: args.net.activation(),
        bn: args.net.normaliser(args.norm),
        bias: args.bias,
        net,
        seeds: args.seeds,
        max_lag: args.max_lag,
    }
}

pub fn run(args: &ShatteredArgs, session: &Session<'_>) -> Result<()> {
    let cfg = config(args);
    let threads = threads(args.threads)?;
    parallel::with_threads(threads, || {
        execute::<Shattered>(&cfg, RENAMES, &args.output, &[], session)
    })?
}
