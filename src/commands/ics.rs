//! `bn-lab ics`.

use anyhow::Result;

use crate::cli::IcsArgs;
use crate::commands::landscape::{check_nets, probe_run};
use crate::commands::print;
use crate::commands::progress_bar;
use crate::config::NetConfig;
use crate::experiment::ics::{self, IcsConfig};
use crate::output::{self, Staged};
use crate::plot;

/// Validate the flags into a config.
pub fn config(args: &IcsArgs) -> Result<IcsConfig> {
    let cfg: IcsConfig = probe_run(&args.train, &args.net)?;
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
