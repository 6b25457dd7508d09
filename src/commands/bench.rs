//! `bn-lab bench`.

use clap::Args;

use crate::flags::{NetArgs, NormArgs, count, flag_error, threads};
use crate::limits::MAX_DEPTH;
use anyhow::Result;

use crate::commands::print;
use crate::config::{at_most, between};
use crate::experiment::bench::{self, BenchConfig};
use crate::limits::MAX_STEPS;

/// Validate the flags into a config (the network and its memory are checked before anything runs).
pub fn config(args: &BenchArgs) -> Result<BenchConfig> {
    between("steps", 1, MAX_STEPS, args.steps)
        .and_then(|()| at_most("warmup", MAX_STEPS, args.warmup))
        .and_then(|()| between("ceiling_size", 1, MAX_CEILING_SIZE, args.ceiling_size))
        .map_err(|e| flag_error(&[], &e))?;
    let threads = threads(args.threads)?;
    let spec = args.net.spec();
    let norm = args.arms.single(&args.net, "bench times")?;
    let net = spec.net(args.depth, args.net.activation(), norm);
    let batch = spec.batch;
    spec.validate()
        .and_then(|()| net.validate(batch))
        .and_then(|()| net.check_memory(batch, spec.dtype.bytes()))
        .map_err(|e| flag_error(&[], &e))?;
    Ok(BenchConfig {
        net,
        batch,
        dtype: args.net.dtype,
        threads,
        steps: args.steps,
        warmup: args.warmup,
        seed: args.net.seed,
        ceiling_size: args.ceiling_size,
    })
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let cfg = config(args)?;
    let report = bench::run(&cfg)?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string(&report)?))?;
    } else {
        print(&bench::table(&report))?;
    }
    Ok(())
}

/// Largest `bench --ceiling-size`: three 4096^2 f64 matrices are 400 MB.
pub const MAX_CEILING_SIZE: usize = 4096;

/// `bench` takes the network flags of `grad-norms`, with ReLU and He init as defaults (the
/// setting of the PyTorch figures in the README).
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("bn", |a| a.default_value("on"))
)]
pub struct BenchArgs {
    /// Number of hidden layers.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, default_value_t = 50)]
    pub depth: usize,
    /// The one network timed: `--bn on|off` or `--norm none|batch|layer`.
    #[command(flatten)]
    pub arms: NormArgs,
    /// Threads for matrix products and BatchNorm/activation kernels [default: all cores].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long)]
    pub threads: Option<usize>,
    /// Timed forward+backward steps; the median is reported.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_STEPS>, long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed steps run first (buffers allocated, caches warm).
    #[arg(allow_hyphen_values = true, value_parser = count::<0, MAX_STEPS>, long, default_value_t = 3)]
    pub warmup: usize,
    /// Side n of the n x n x n matrix product timed as the speed ceiling.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_CEILING_SIZE>, long, default_value_t = 512)]
    pub ceiling_size: usize,
    #[command(flatten)]
    pub net: NetArgs,
    /// Print one JSON object (median_ms, gflops, ceiling_gflops, ...) instead of the summary.
    #[arg(long)]
    pub json: bool,
}
