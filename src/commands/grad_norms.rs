//! `bn-lab grad-norms`.

use anyhow::{Result, bail};

use crate::cli::GradNormsArgs;
use crate::commands::{STANDARD, print};
use crate::config::human_bytes;
use crate::experiment::grad_norms::{self, GradNormsConfig};
use crate::output::{self, Staged};
use crate::{parallel, plot};

/// Validate the flags into a config: every network it will build is checked, including its
/// memory estimate, before anything is allocated.
pub fn config(args: &GradNormsArgs) -> Result<GradNormsConfig> {
    if args.depth.is_empty() {
        bail!("--depth needs at least one value");
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1 (got 0)");
    }
    let s = args.net.shape(STANDARD);
    let cfg = GradNormsConfig {
        depths: args.depth.clone(),
        width: s.width,
        batch: s.batch,
        d_in: s.d_in,
        d_out: s.d_out,
        act: args.net.act,
        init: args.net.init,
        bn: args.bn,
        bn_settings: args.net.bn_config(),
        residual: args.net.residual,
        seed: args.net.seed,
        seeds: args.seeds,
        dtype: args.net.dtype,
        vanishing_below: 1e-2,
        exploding_above: 1e2,
    };
    if args.threads == Some(0) {
        bail!("--threads must be at least 1 (got 0)");
    }
    // Configurations run side by side, one per thread: the memory check allows for that.
    let parallel = threads(args).min(cfg.arms().len() * cfg.seeds).max(1);
    for (depth, bn) in cfg.arms() {
        let net = cfg.net(depth, bn);
        net.validate(cfg.batch)?;
        net.check_memory(cfg.batch * parallel, cfg.dtype.bytes())?;
    }
    Ok(cfg)
}

/// `--threads`, or every core.
fn threads(args: &GradNormsArgs) -> usize {
    args.threads.unwrap_or_else(parallel::available_threads)
}

/// Networks whose estimate is at least this large get it printed under the table.
const SHOW_MEMORY_FROM: f64 = 64.0 * 1024.0 * 1024.0;

pub fn run(args: &GradNormsArgs) -> Result<()> {
    let cfg = config(args)?;
    output::prepare_dir(&args.out, "--out")?;
    if let Some(path) = &args.save_net {
        output::check_file_writable(path, "--save-net")?;
    }
    let start = std::time::Instant::now();
    let (report, saved) = parallel::with_threads(threads(args), || {
        grad_norms::run(&cfg, args.save_net.is_some())
    })?;
    let json = serde_json::to_string_pretty(&report)?;

    let mut staged = Staged::new();
    let json_path = args.out.join("grad_norms.json");
    let png_path = args.out.join("grad_norms.png");
    staged.write(&json_path, json.as_bytes())?;
    staged.write_with(&png_path, |tmp| plot::grad_norms::draw(&report, tmp))?;
    if let (Some(path), Some(saved)) = (&args.save_net, &saved) {
        staged.write(path, serde_json::to_string(saved)?.as_bytes())?;
    }
    staged.commit()?;

    if args.json {
        print(&json);
        print("\n");
    } else {
        let mut text = grad_norms::table(&report);
        let largest = cfg
            .arms()
            .iter()
            .map(|&(depth, bn)| {
                cfg.net(depth, bn)
                    .memory_estimate_bytes(cfg.batch, cfg.dtype.bytes())
            })
            .fold(0.0, f64::max);
        if largest >= SHOW_MEMORY_FROM {
            text.push_str(&format!(
                "memory: the largest network needs about {} (parameters, gradients, cached activations); up to {} run at once\n",
                human_bytes(largest),
                threads(args).min(cfg.arms().len() * cfg.seeds).max(1)
            ));
        }
        text.push_str(&format!(
            "wrote {} and {}",
            png_path.display(),
            json_path.display()
        ));
        if let Some(path) = &args.save_net {
            text.push_str(&format!(" and {}", path.display()));
        }
        text.push_str(&format!(" in {:.2} s\n", start.elapsed().as_secs_f64()));
        print(&text);
    }
    Ok(())
}
