//! `bn-lab bench`.

use anyhow::{Result, bail};

use crate::cli::BenchArgs;
use crate::commands::{flag_error, print};
use crate::experiment::bench::{self, BenchConfig};
use crate::parallel;

/// Largest `--ceiling-size`: three 4096^2 f64 matrices are 400 MB.
const MAX_CEILING_SIZE: usize = 4096;

/// Validate the flags into a config (the network and its memory are checked before anything runs).
pub fn config(args: &BenchArgs) -> Result<BenchConfig> {
    if args.steps == 0 {
        bail!("--steps must be at least 1 (got 0)");
    }
    if args.threads == Some(0) {
        bail!("--threads must be at least 1 (got 0)");
    }
    if !(1..=MAX_CEILING_SIZE).contains(&args.ceiling_size) {
        bail!(
            "--ceiling-size must be between 1 and {MAX_CEILING_SIZE} (got {})",
            args.ceiling_size
        );
    }
    let spec = args.net.spec();
    let norm = args.bn.single(args.net.batch_norm(), "bench times")?;
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
        threads: args.threads.unwrap_or_else(parallel::available_threads),
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
