//! The CLI's commands: turn parsed arguments into validated configs once, run the experiment,
//! write its files and print its summary.

pub mod bench;
pub mod grad_norms;
pub mod gradcheck;
pub mod ics;
pub mod landscape;
pub mod nonlinearity;
pub mod train;

use std::io::Write;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use anyhow::Result;

use crate::cli::{Cli, Command, NetArgs};
use crate::config::{BnConfig, NetConfig};

/// Run one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::GradNorms(args) => grad_norms::run(&args),
        Command::Gradcheck(args) => gradcheck::run(&args),
        Command::Landscape(args) => landscape::run(&args),
        Command::Ics(args) => ics::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Nonlinearity(args) => nonlinearity::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}

/// Defaults that differ between commands (a finite-difference check wants a tiny net).
#[derive(Clone, Copy, Debug)]
pub struct NetDefaults {
    pub width: usize,
    pub batch: usize,
    pub d_out: usize,
}

/// What most commands use: width 256, batch 256, 10 outputs.
pub const STANDARD: NetDefaults = NetDefaults {
    width: 256,
    batch: 256,
    d_out: 10,
};

/// Resolved shape flags.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub width: usize,
    pub batch: usize,
    pub d_in: usize,
    pub d_out: usize,
}

impl NetArgs {
    pub fn shape(&self, defaults: NetDefaults) -> Shape {
        let width = self.width.unwrap_or(defaults.width);
        Shape {
            width,
            batch: self.batch.unwrap_or(defaults.batch),
            d_in: self.d_in.unwrap_or(width),
            d_out: self.d_out.unwrap_or(defaults.d_out),
        }
    }

    /// BN settings from the flags.
    pub fn bn_config(&self) -> BnConfig {
        BnConfig {
            affine: self.affine(),
            placement: self.placement,
            eps: self.eps,
            momentum: self.momentum,
        }
    }

    /// The network these flags describe, with `depth` blocks and BN on or off.
    pub fn net_config(&self, defaults: NetDefaults, depth: usize, bn: bool) -> NetConfig {
        let s = self.shape(defaults);
        NetConfig {
            d_in: s.d_in,
            width: s.width,
            d_out: s.d_out,
            depth,
            act: self.act,
            init: self.init,
            bn: bn.then(|| self.bn_config()),
            residual: self.residual,
        }
    }
}

/// Print to stdout, ignoring a closed pipe (`bn-lab ... | head`).
pub fn print(s: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(s.as_bytes());
    let _ = out.flush();
}

/// A progress bar on stderr for commands that take over a second; hidden when stderr is not a
/// terminal (indicatif draws nothing to a pipe or file).
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {percent:>3}% ({elapsed}, eta {eta})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}
