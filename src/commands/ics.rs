//! `bn-lab ics`.

use anyhow::Result;

use crate::cli::IcsArgs;
use crate::commands::landscape::{PROBE_DEFAULTS, check_nets, check_train, progress_bar};
use crate::commands::print;
use crate::config::NetConfig;
use crate::experiment::ics::{self, IcsConfig};
use crate::output::{self, Staged};
use crate::plot;

/// Validate the flags into a config.
pub fn config(args: &IcsArgs) -> Result<IcsConfig> {
    let s = args.net.shape(PROBE_DEFAULTS);
    let t = &args.train;
    check_train(t, s.batch)?;
    let cfg = IcsConfig {
        depth: t.depth,
        width: s.width,
        batch: s.batch,
        d_in: s.d_in,
        d_out: s.d_out,
        act: args.net.act,
        init: args.net.init,
        bn: t.bn,
        bn_settings: args.net.bn_config(),
        residual: args.net.residual,
        task: t.task,
        n_train: t.n_train,
        n_test: t.n_test,
        steps: t.steps,
        lr: t.lr,
        every: t.every,
        seed: args.net.seed,
        dtype: args.net.dtype,
    };
    let nets: Vec<NetConfig> = cfg.bn.arms().iter().map(|&bn| cfg.net(bn)).collect();
    // Per arm: the training net, the copy before the update, and the measuring copy.
    let samples = cfg.batch.max(cfg.n_test);
    check_nets(&nets, cfg.batch, samples, 3 * nets.len(), &args.net)?;
    Ok(cfg)
}

pub fn run(args: &IcsArgs) -> Result<()> {
    let cfg = config(args)?;
    output::prepare_dir(&args.out, "--out")?;
    let start = std::time::Instant::now();
    let pb = progress_bar(ics::work_units(&cfg), "ics");
    let report = ics::run(&cfg, &|n| pb.inc(n));
    pb.finish_and_clear();
    let json = serde_json::to_string_pretty(&report)?;

    let mut staged = Staged::new();
    let json_path = args.out.join("ics.json");
    let png_path = args.out.join("ics.png");
    staged.write(&json_path, json.as_bytes())?;
    staged.write_with(&png_path, |tmp| plot::ics::draw(&report, tmp))?;
    staged.commit()?;

    if args.json {
        print(&json);
        print("\n");
    } else {
        let mut text = ics::table(&report);
        text.push_str(&format!(
            "wrote {} and {} in {:.2} s\n",
            png_path.display(),
            json_path.display(),
            start.elapsed().as_secs_f64()
        ));
        print(&text);
    }
    Ok(())
}
