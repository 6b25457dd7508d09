//! `bn-lab nonlinearity`.

use anyhow::Result;

use crate::cli::NonlinearityArgs;
use crate::commands::{Renames, Session, execute, usage};
use crate::experiment::nonlinearity::{Nonlinearity, NonlinearityConfig, default_lr};

/// Config fields set by flags of another name.
pub const RENAMES: Renames = &[("norms", "--configs"), ("lrs", "--lr")];

/// The config the flags describe (validated by [`execute`]): `--lr` is resolved per
/// activation, and `--placement` moves every BN arm.
pub fn config(args: &NonlinearityArgs) -> Result<NonlinearityConfig> {
    if args.net.act.is_some() {
        return Err(usage(
            "--act: nonlinearity compares activations; choose them with --acts",
        ));
    }
    if args.net.no_affine {
        return Err(usage(
            "--no-affine: nonlinearity compares BN with and without scale/shift; choose the arms with --configs",
        ));
    }
    let lrs: Vec<f64> = match &args.lr {
        None => args.acts.iter().map(|&a| default_lr(a)).collect(),
        Some(v) if v.len() == 1 => vec![v[0]; args.acts.len()],
        Some(v) => v.clone(),
    };
    let (net, data) = args.data.specs(&args.net)?;
    Ok(NonlinearityConfig {
        data,
        depth: args.depth,
        acts: args.acts.clone(),
        net,
        norms: args
            .configs
            .iter()
            .map(|n| n.placed(args.net.placement))
            .collect(),
        lrs,
        sgd_momentum: args.sgd.sgd_momentum,
        weight_decay: args.sgd.weight_decay,
        warmup_steps: args.sgd.warmup_steps,
        steps: args.steps,
        eval_every: args.eval_every,
        diverge_factor: crate::train::DIVERGENCE_FACTOR,
        seeds: args.seeds,
    })
}

pub fn run(args: &NonlinearityArgs, session: &Session<'_>) -> Result<()> {
    execute::<Nonlinearity>(&config(args)?, RENAMES, &args.output, &[], session)
}
