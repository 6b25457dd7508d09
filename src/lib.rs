//! bn-lab: numerical-stability experiments on deep multilayer perceptrons, with hand-written
//! backprop through BatchNorm.
//!
//! The library is what the `bn-lab` binary runs: [`model::Mlp`] (forward/backward, train and
//! eval modes, [`model::Mlp::params_mut`] as the one parameter/gradient accessor), the pure
//! kernels in [`ops`], [`gradcheck`], the experiment runners in [`experiment`] returning
//! serialisable results, and [`plot`] drawing those results.

// No function over 100 lines (clippy counts code lines, not comments); CI denies warnings.
#![warn(clippy::too_many_lines)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod experiment;
pub mod files;
pub mod flags;
pub mod float;
pub mod gradcheck;
pub mod histogram;
pub mod limits;
pub mod memory;
pub mod model;
pub mod ops;
pub mod optim;
pub mod output;
pub mod parallel;
pub mod plot;
pub mod reproduce;
pub mod serve;
pub mod spec;
pub mod stats;
pub mod text;
pub mod theory;
pub mod train;

pub use config::{Activation, Dtype, Init, NormConfig, Placement};
pub use float::Float;
pub use model::{Mlp, Mode};
pub use spec::NetConfig;

/// Run one parsed command line, reporting to the terminal: `run` and `reproduce` run experiment
/// files (whose commands come back through [`cli::Command::run_in`]), `serve` serves the live page
/// (whose requests come back the same way); every other command runs itself.
pub fn run(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Run(args) => reproduce::run_file(&args),
        cli::Command::Reproduce(args) => reproduce::reproduce(&args),
        cli::Command::Serve(args) => serve::run(&args),
        command => command.run_in(&commands::RunOptions::default()).map(|_| ()),
    }
}
