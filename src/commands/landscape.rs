//! `bn-lab landscape`.

use anyhow::{Result, bail};

use crate::cli::{LandscapeArgs, NetArgs, ProbeTrainArgs};
use crate::commands::{NetDefaults, print, progress_bar};
use crate::config::NetConfig;
use crate::experiment::ProbeRun;
use crate::experiment::landscape::{self, LandscapeConfig};
use crate::model::Mode;
use crate::output::{self, Staged};
use crate::plot;

/// Network defaults of `landscape` and `ics`: small enough that a default run (two nets, a few
/// hundred steps plus the probes) finishes in seconds.
pub const PROBE_DEFAULTS: NetDefaults = NetDefaults {
    width: 128,
    batch: 128,
    d_out: 10,
};

/// Check the training flags shared with `ics`.
pub fn check_train(t: &ProbeTrainArgs, batch: usize) -> Result<()> {
    if t.steps == 0 {
        bail!("--steps must be at least 1 (got 0)");
    }
    if t.every == 0 {
        bail!("--every must be at least 1 (got 0)");
    }
    if !(t.lr.is_finite() && t.lr > 0.0) {
        bail!("--lr must be a positive finite number (got {})", t.lr);
    }
    if t.n_train < batch {
        bail!(
            "--n-train must be at least the batch size {batch} (got {})",
            t.n_train
        );
    }
    if t.n_test == 0 {
        bail!("--n-test must be at least 1 (got 0)");
    }
    Ok(())
}

/// Validate and memory-check every network of the run; `samples` is the largest batch any of
/// them is run on, `copies` how many copies of it are alive at once.
pub fn check_nets(
    nets: &[NetConfig],
    batch: usize,
    samples: usize,
    copies: usize,
    net: &NetArgs,
) -> Result<()> {
    for cfg in nets {
        cfg.validate(batch)?;
        cfg.check_memory(samples * copies, net.dtype.bytes())?;
    }
    Ok(())
}

/// The paired training runs both `landscape` and `ics` measure, from their shared flags.
pub fn probe_run(t: &ProbeTrainArgs, net: &NetArgs) -> Result<ProbeRun> {
    let s = net.shape(PROBE_DEFAULTS);
    check_train(t, s.batch)?;
    Ok(ProbeRun {
        depth: t.depth,
        width: s.width,
        batch: s.batch,
        d_in: s.d_in,
        d_out: s.d_out,
        act: net.act,
        init: net.init,
        bn: t.bn,
        bn_settings: net.bn_config(),
        residual: net.residual,
        task: t.task,
        n_train: t.n_train,
        n_test: t.n_test,
        steps: t.steps,
        lr: t.lr,
        every: t.every,
        seed: net.seed,
        dtype: net.dtype,
    })
}

/// Validate the flags into a config.
pub fn config(args: &LandscapeArgs) -> Result<LandscapeConfig> {
    let t = &args.train;
    if args.probe_steps.is_empty() {
        bail!("--probe-steps needs at least one value");
    }
    if let Some(m) = args
        .probe_steps
        .iter()
        .find(|m| !(m.is_finite() && **m > 0.0))
    {
        bail!("--probe-steps must be positive finite multiples of --lr (got {m})");
    }
    if args.slice_grid < 3 {
        bail!("--slice-grid must be at least 3 (got {})", args.slice_grid);
    }
    if args.slice_grid > 401 {
        bail!("--slice-grid must be at most 401 (got {})", args.slice_grid);
    }
    if !(args.slice_span.is_finite() && args.slice_span > 0.0) {
        bail!(
            "--slice-span must be a positive finite number (got {})",
            args.slice_span
        );
    }
    if args.slice_samples == 0 || args.slice_samples > t.n_train {
        bail!(
            "--slice-samples must be between 1 and --n-train {} (got {})",
            t.n_train,
            args.slice_samples
        );
    }
    let cfg = LandscapeConfig {
        run: probe_run(t, &args.net)?,
        probe_multipliers: args.probe_steps.clone(),
        probe_bn_mode: Mode::Train,
        slice_grid: args.slice_grid,
        slice_span: args.slice_span,
        slice_samples: args.slice_samples,
    };
    let nets: Vec<NetConfig> = cfg.bn.arms().iter().map(|&bn| cfg.net(bn)).collect();
    for net in &nets {
        // The slice runs one batch of --slice-samples, so BN needs two of them as well.
        net.validate(cfg.slice_samples)
            .map_err(|e| anyhow::anyhow!(e.to_string().replace("--batch", "--slice-samples")))?;
    }
    // Per arm: the training net, a probe copy, and up to two slice copies; arms run two at a time.
    let samples = cfg.batch.max(cfg.slice_samples).max(cfg.n_test);
    check_nets(&nets, cfg.batch, samples, 4 * nets.len(), &args.net)?;
    Ok(cfg)
}

pub fn run(args: &LandscapeArgs) -> Result<()> {
    let cfg = config(args)?;
    output::prepare_dir(&args.out, "--out")?;
    let start = std::time::Instant::now();
    let pb = progress_bar(landscape::work_units(&cfg), "landscape");
    let report = landscape::run(&cfg, &|n| pb.inc(n));
    pb.finish_and_clear();
    let json = serde_json::to_string_pretty(&report)?;

    let mut staged = Staged::new();
    let json_path = args.out.join("landscape.json");
    let png_path = args.out.join("landscape.png");
    let slice_path = args.out.join("landscape_slice.png");
    staged.write(&json_path, json.as_bytes())?;
    staged.write_with(&png_path, |tmp| plot::landscape::draw(&report, tmp))?;
    staged.write_with(&slice_path, |tmp| plot::landscape::draw_slice(&report, tmp))?;
    staged.commit()?;

    if args.json {
        print(&json);
        print("\n");
    } else {
        let mut text = landscape::table(&report);
        text.push_str(&format!(
            "wrote {}, {} and {} in {:.2} s\n",
            png_path.display(),
            slice_path.display(),
            json_path.display(),
            start.elapsed().as_secs_f64()
        ));
        print(&text);
    }
    Ok(())
}
