//! `bn-lab grad-norms`.

use anyhow::Result;

use crate::cli::GradNormsArgs;
use crate::commands::{Renames, Session, execute, threads};
use crate::experiment::grad_norms::{
    EXPLODING_ABOVE, EXPLODING_SCALE, GradNorms, GradNormsConfig, STEADY_FACTOR, VANISHING_BELOW,
};
use crate::output::Extra;
use crate::parallel;

/// Config fields set by flags of another name.
pub const RENAMES: Renames = &[("depths", "--depth"), ("norms", "--norm")];

/// The config the flags describe (validated by [`execute`]).
pub fn config(args: &GradNormsArgs) -> GradNormsConfig {
    GradNormsConfig {
        depths: args.depth.clone(),
        act: args.net.activation(),
        norms: args.arms.norms(&args.net),
        net: args.net.spec(),
        seeds: args.seeds,
        skips: args.skips.clone().unwrap_or_default(),
        vanishing_below: VANISHING_BELOW,
        exploding_above: EXPLODING_ABOVE,
        steady_factor: STEADY_FACTOR,
        exploding_scale: EXPLODING_SCALE,
        loss: args.loss,
        histograms: args.histograms,
        save_net: args.save_net.is_some(),
    }
}

pub fn run(args: &GradNormsArgs, session: &Session<'_>) -> Result<()> {
    args.arms.check_distinct()?;
    let cfg = config(args);
    let save = |r: &<GradNorms as crate::experiment::Experiment>::Report| -> Result<Vec<u8>> {
        let saved = r
            .saved_net
            .as_ref()
            .expect("save_net is set whenever --save-net is given");
        Ok(serde_json::to_string(saved)?.into_bytes())
    };
    let extras: Vec<Extra<'_, _>> = args
        .save_net
        .iter()
        .map(|path| Extra {
            path: path.clone(),
            flag: "--save-net",
            bytes: &save,
        })
        .collect();
    let threads = threads(args.threads)?;
    parallel::with_threads(threads, || {
        execute::<GradNorms>(&cfg, RENAMES, &args.output, &extras, session)
    })?
}
