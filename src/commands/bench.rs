//! `bn-lab bench`.

use anyhow::Result;

use crate::cli::{BenchArgs, MAX_CEILING_SIZE};
use crate::commands::{flag_error, print, threads};
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
