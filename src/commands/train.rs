//! `bn-lab train`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::cli::NetArgs;
use crate::commands::{NetDefaults, print};
use crate::config::{Placement, available_memory_bytes, human_bytes};
use crate::data::Task;
use crate::experiment::train::{self, TrainArm, TrainConfig};
use crate::output::{self, Staged};
use crate::plot;

/// Flags of `bn-lab train`.
#[derive(Debug, Args)]
#[command(
    allow_negative_numbers = true,
    mut_arg("act", |a| a.default_value("relu")),
    mut_arg("init", |a| a.default_value("he")),
    mut_arg("width", |a| a.help("Hidden width, units per layer [default: 64]")),
    mut_arg("batch", |a| a.help("Samples per mini-batch [default: 64]")),
    mut_arg("affine", |a| a.hide(true)),
    mut_arg("no_affine", |a| a.hide(true)),
    mut_arg("placement", |a| a.hide(true))
)]
pub struct TrainArgs {
    /// Learning rates to compare, comma-separated; one loss panel each.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.1,0.3,1")]
    pub lr: Vec<f64>,
    /// Configurations to compare, comma-separated: off (no BN), on (BN with scale/shift before
    /// the activation), no-affine (BN without scale/shift), post (BN with scale/shift after the
    /// activation), post-no-affine.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "off,on,no-affine,post"
    )]
    pub configs: Vec<TrainArm>,
    /// Regression task: linear (a linear teacher) or nonlinear (sin(3 u1) cos(2 u2) of a 2-D
    /// latent lifted to the input width).
    #[arg(long, value_enum, default_value_t = Task::Nonlinear)]
    pub task: Task,
    /// Number of hidden layers.
    #[arg(long, default_value_t = 10)]
    pub depth: usize,
    /// SGD updates per run.
    #[arg(long, default_value_t = 600)]
    pub steps: usize,
    /// Training samples.
    #[arg(long, default_value_t = 2048)]
    pub n_train: usize,
    /// Test samples.
    #[arg(long, default_value_t = 1024)]
    pub n_test: usize,
    /// SGD momentum (PyTorch's convention; 0: plain SGD). Not BN's --momentum.
    #[arg(long, default_value_t = 0.0)]
    pub sgd_momentum: f64,
    /// L2 weight decay added to every gradient.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Evaluate the train and test loss every K steps.
    #[arg(long, value_name = "K", default_value_t = 20)]
    pub eval_every: usize,
    /// Record per-layer update ratios and gradient norms every K steps.
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub diag_every: usize,
    /// A run diverges when its mini-batch loss exceeds this factor times its first one.
    #[arg(long, default_value_t = crate::train::DIVERGENCE_FACTOR)]
    pub diverge_factor: f64,
    /// Learning rate whose per-layer diagnostics train_layers.png shows [default: the largest
    /// at which no configuration diverged, else the smallest].
    #[arg(long)]
    pub diag_lr: Option<f64>,
    #[command(flatten)]
    pub net: NetArgs,
    /// Output directory for train_loss.png, train_layers.png and train.json.
    #[arg(long, default_value = "bn-lab-out")]
    pub out: PathBuf,
    /// Write the JSON results to stdout instead of the table (files are still written).
    #[arg(long)]
    pub json: bool,
}

/// `train`'s network defaults: small enough that 16 runs finish in seconds.
pub const TRAIN_DEFAULTS: NetDefaults = NetDefaults {
    width: 64,
    batch: 64,
    d_out: 10,
};

fn no_duplicates<T: PartialEq + std::fmt::Display>(v: &[T], flag: &str) -> Result<()> {
    for (i, a) in v.iter().enumerate() {
        if v[..i].contains(a) {
            bail!("{flag}: '{a}' is given twice");
        }
    }
    Ok(())
}

/// Check `n_train`/`n_test` against `batch` and the memory the data set needs.
pub fn check_data(n_train: usize, n_test: usize, batch: usize, d_in: usize) -> Result<()> {
    if n_train < batch {
        bail!("--n-train must be at least --batch ({batch}) (got {n_train})");
    }
    if n_test == 0 {
        bail!("--n-test must be at least 1 (got 0)");
    }
    // Drawn in f64 (x, y and the split copies): a generous bound.
    let need = 4.0 * (n_train + n_test) as f64 * (d_in as f64 + 16.0) * 8.0;
    let have = available_memory_bytes() as f64;
    if need > have / 2.0 {
        bail!(
            "--n-train/--n-test: the data set needs about {} of memory, more than half of the {} available",
            human_bytes(need),
            human_bytes(have)
        );
    }
    Ok(())
}

/// Check SGD flags.
pub fn check_sgd(sgd_momentum: f64, weight_decay: f64) -> Result<()> {
    if !(sgd_momentum.is_finite() && (0.0..1.0).contains(&sgd_momentum)) {
        bail!("--sgd-momentum must be in [0, 1) (got {sgd_momentum})");
    }
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        bail!("--weight-decay must be a finite number >= 0 (got {weight_decay})");
    }
    Ok(())
}

/// Check a learning rate.
pub fn check_lr(lr: f64, flag: &str) -> Result<()> {
    if !(lr.is_finite() && lr > 0.0) {
        bail!("{flag} must be a positive finite number (got {lr})");
    }
    Ok(())
}

/// Validate the flags into a config; every network is checked before anything is allocated.
pub fn config(args: &TrainArgs) -> Result<TrainConfig> {
    if args.lr.is_empty() {
        bail!("--lr needs at least one value");
    }
    for &lr in &args.lr {
        check_lr(lr, "--lr")?;
    }
    no_duplicates(&args.lr, "--lr")?;
    if args.configs.is_empty() {
        bail!("--configs needs at least one value");
    }
    no_duplicates(&args.configs, "--configs")?;
    if args.net.no_affine {
        bail!(
            "--no-affine: train compares fixed configurations; choose them with --configs (e.g. --configs off,no-affine)"
        );
    }
    if args.net.placement == Placement::Post {
        bail!(
            "--placement: train compares fixed configurations; choose them with --configs (post puts BN after the activation)"
        );
    }
    if args.steps == 0 {
        bail!("--steps must be at least 1 (got 0)");
    }
    if args.eval_every == 0 {
        bail!("--eval-every must be at least 1 (got 0)");
    }
    if args.diag_every == 0 {
        bail!("--diag-every must be at least 1 (got 0)");
    }
    if !(args.diverge_factor.is_finite() && args.diverge_factor > 1.0) {
        bail!(
            "--diverge-factor must be a finite number > 1 (got {})",
            args.diverge_factor
        );
    }
    check_sgd(args.sgd_momentum, args.weight_decay)?;
    if let Some(d) = args.diag_lr
        && !args.lr.contains(&d)
    {
        bail!("--diag-lr must be one of the --lr values (got {d})");
    }
    let s = args.net.shape(TRAIN_DEFAULTS);
    check_data(args.n_train, args.n_test, s.batch, s.d_in)?;
    let cfg = TrainConfig {
        task: args.task,
        n_train: args.n_train,
        n_test: args.n_test,
        depth: args.depth,
        width: s.width,
        batch: s.batch,
        d_in: s.d_in,
        d_out: s.d_out,
        act: args.net.act,
        init: args.net.init,
        residual: args.net.residual,
        bn_settings: args.net.bn_config(),
        configs: args.configs.clone(),
        lrs: args.lr.clone(),
        sgd_momentum: args.sgd_momentum,
        weight_decay: args.weight_decay,
        steps: args.steps,
        eval_every: args.eval_every,
        diag_every: args.diag_every,
        diverge_factor: args.diverge_factor,
        seed: args.net.seed,
        dtype: args.net.dtype,
        // Resolved after the runs when not given.
        diag_lr: args.diag_lr.unwrap_or(f64::NAN),
    };
    let parallel = rayon::current_num_threads().min(cfg.runs().len()).max(1);
    for &arm in &cfg.configs {
        let net = cfg.net(arm);
        net.validate(cfg.batch)?;
        net.check_memory(cfg.batch * parallel, cfg.dtype.bytes())?;
    }
    Ok(cfg)
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let mut cfg = config(args)?;
    output::prepare_dir(&args.out, "--out")?;
    let start = std::time::Instant::now();
    let total = (cfg.runs().len() * cfg.steps) as u64;
    let pb = crate::commands::progress_bar(total, "train");
    let mut report = train::run(&cfg, &|n| pb.inc(n));
    pb.finish_and_clear();
    if args.diag_lr.is_none() {
        cfg.diag_lr = train::default_diag_lr(&report);
        report.config.diag_lr = cfg.diag_lr;
    }
    let json = serde_json::to_string_pretty(&report)?;

    let mut staged = Staged::new();
    let json_path = args.out.join("train.json");
    let loss_path = args.out.join("train_loss.png");
    let layers_path = args.out.join("train_layers.png");
    staged.write(&json_path, json.as_bytes())?;
    staged.write_with(&loss_path, |tmp| plot::train::draw_loss(&report, tmp))?;
    staged.write_with(&layers_path, |tmp| plot::train::draw_layers(&report, tmp))?;
    staged.commit()?;

    if args.json {
        print(&json);
        print("\n");
    } else {
        let mut text = train::table(&report);
        text.push_str(&format!(
            "wrote {}, {} and {} in {:.2} s\n",
            loss_path.display(),
            layers_path.display(),
            json_path.display(),
            start.elapsed().as_secs_f64()
        ));
        print(&text);
    }
    Ok(())
}
