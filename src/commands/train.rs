//! `bn-lab train`.

use anyhow::Result;

use crate::cli::TrainArgs;
use crate::commands::{Renames, Session, execute, usage};
use crate::config::Placement;
use crate::experiment::train::{Train, TrainConfig, default_histogram_steps};

/// Config fields set by flags of another name.
pub const RENAMES: Renames = &[
    ("norms", "--configs"),
    ("lrs", "--lr"),
    ("histogram_steps", "--histogram-steps"),
];

/// The config the flags describe (validated by [`execute`]). `train` compares fixed BN
/// variants, so the flags that would change all of them at once are refused.
pub fn config(args: &TrainArgs) -> Result<TrainConfig> {
    if args.net.no_affine {
        return Err(usage(
            "--no-affine: train compares fixed configurations; choose them with --configs (e.g. --configs off,no-affine)",
        ));
    }
    if args.net.placement == Placement::Post {
        return Err(usage(
            "--placement: train compares fixed configurations; choose them with --configs (post puts BN after the activation)",
        ));
    }
    let (net, data) = args.data.specs(&args.net)?;
    Ok(TrainConfig {
        data,
        depth: args.depth,
        act: args.net.activation(),
        net,
        norms: args.configs.clone(),
        lrs: args.lr.clone(),
        sgd_momentum: args.sgd.sgd_momentum,
        weight_decay: args.sgd.weight_decay,
        warmup_steps: args.sgd.warmup_steps,
        steps: args.steps,
        eval_every: args.eval_every,
        diag_every: args.diag_every,
        diverge_factor: args.diverge_factor,
        diag_lr: args.diag_lr,
        histogram_steps: match (&args.histogram_steps, args.histograms) {
            (Some(steps), _) => Some(steps.clone()),
            (None, true) => Some(default_histogram_steps(args.steps)),
            (None, false) => None,
        },
    })
}

pub fn run(args: &TrainArgs, session: &Session<'_>) -> Result<()> {
    execute::<Train>(&config(args)?, RENAMES, &args.output, &[], session)
}
