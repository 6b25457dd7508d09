//! `bn-lab nonlinearity`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::commands::print;
use crate::commands::train::{check_data, check_lr, check_sgd};
use crate::config::{Activation, BnConfig, Dtype, Init, Placement};
use crate::data::Task;
use crate::experiment::nonlinearity::{self, NlArm, NonlinearityConfig};
use crate::output::{self, Staged};
use crate::plot;

fn parse_init(s: &str) -> Result<Init, String> {
    s.parse()
}

/// Flags of `bn-lab nonlinearity`. The network flags are its own: it compares activations
/// (`--acts`) and BN variants (`--configs`), and picks the initialisation per activation.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct NonlinearityArgs {
    /// Activations to compare, comma-separated (sigmoid, tanh, relu, leaky-relu, linear).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sigmoid,relu"
    )]
    pub acts: Vec<Activation>,
    /// BN variants to compare, comma-separated: affine (BN with scale/shift), no-affine (BN
    /// without), off (no BN).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "affine,no-affine,off"
    )]
    pub configs: Vec<NlArm>,
    /// Regression task.
    #[arg(long, value_enum, default_value_t = Task::Nonlinear)]
    pub task: Task,
    /// Number of hidden layers.
    #[arg(long, default_value_t = 6)]
    pub depth: usize,
    /// Hidden width.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Samples per mini-batch (also the size of the probe batch the fractions are measured on).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Learning rate: one for every run, or one per --acts entry (comma-separated, same order)
    /// [default: 0.1 for sigmoid and tanh, 0.01 otherwise].
    #[arg(long, value_delimiter = ',')]
    pub lr: Option<Vec<f64>>,
    /// SGD updates per run.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Repeat over K seeds (seed, seed+1, ...): weights and batch order change, the data set does not.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub seeds: usize,
    /// Weight initialisation: he, xavier, lecun or normal:STD [default: he for (leaky) ReLU,
    /// xavier otherwise].
    #[arg(long, value_parser = parse_init)]
    pub init: Option<Init>,
    /// BatchNorm before the activation (pre, the diary's setting) or after it (post).
    #[arg(long, value_enum, default_value_t = Placement::Pre)]
    pub placement: Placement,
    /// BatchNorm epsilon added to the variance.
    #[arg(long, default_value_t = 1e-5)]
    pub eps: f64,
    /// BatchNorm momentum of the running statistics (PyTorch's convention).
    #[arg(long, default_value_t = 0.1)]
    pub momentum: f64,
    /// SGD momentum (PyTorch's convention; 0: plain SGD).
    #[arg(long, default_value_t = 0.0)]
    pub sgd_momentum: f64,
    /// L2 weight decay added to every gradient.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Training samples.
    #[arg(long, default_value_t = 2048)]
    pub n_train: usize,
    /// Test samples (the first --batch of them are the probe batch).
    #[arg(long, default_value_t = 1024)]
    pub n_test: usize,
    /// Input dimension [default: the width].
    #[arg(long)]
    pub d_in: Option<usize>,
    /// Output dimension.
    #[arg(long, default_value_t = 10)]
    pub d_out: usize,
    /// Evaluate the train and test loss every K steps.
    #[arg(long, value_name = "K", default_value_t = 50)]
    pub eval_every: usize,
    /// First random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Float type to compute in.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
    /// Output directory for nonlinearity.png, nonlinearity_hist.png and nonlinearity.json.
    #[arg(long, default_value = "bn-lab-out")]
    pub out: PathBuf,
    /// Write the JSON results to stdout instead of the summary (files are still written).
    #[arg(long)]
    pub json: bool,
}

fn no_duplicates<T: PartialEq + std::fmt::Debug>(v: &[T], flag: &str) -> Result<()> {
    for (i, a) in v.iter().enumerate() {
        if v[..i].contains(a) {
            bail!("{flag}: {a:?} is given twice");
        }
    }
    Ok(())
}

/// Validate the flags into a config; every network is checked before anything is allocated.
pub fn config(args: &NonlinearityArgs) -> Result<NonlinearityConfig> {
    if args.acts.is_empty() {
        bail!("--acts needs at least one value");
    }
    no_duplicates(&args.acts, "--acts")?;
    if args.configs.is_empty() {
        bail!("--configs needs at least one value");
    }
    no_duplicates(&args.configs, "--configs")?;
    let lrs: Vec<f64> = match &args.lr {
        None => args
            .acts
            .iter()
            .map(|&a| nonlinearity::default_lr(a))
            .collect(),
        Some(v) if v.len() == 1 => vec![v[0]; args.acts.len()],
        Some(v) if v.len() == args.acts.len() => v.clone(),
        Some(v) => bail!(
            "--lr: give one value, or one per --acts entry ({} values for {} activations)",
            v.len(),
            args.acts.len()
        ),
    };
    for &lr in &lrs {
        check_lr(lr, "--lr")?;
    }
    check_sgd(args.sgd_momentum, args.weight_decay)?;
    if args.steps == 0 {
        bail!("--steps must be at least 1 (got 0)");
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1 (got 0)");
    }
    if args.eval_every == 0 {
        bail!("--eval-every must be at least 1 (got 0)");
    }
    let d_in = args.d_in.unwrap_or(args.width);
    check_data(args.n_train, args.n_test, args.batch, d_in)?;
    if args.n_test < args.batch {
        bail!(
            "--n-test must be at least --batch ({}) (the probe batch is the first --batch test samples); got {}",
            args.batch,
            args.n_test
        );
    }
    let cfg = NonlinearityConfig {
        task: args.task,
        n_train: args.n_train,
        n_test: args.n_test,
        depth: args.depth,
        width: args.width,
        batch: args.batch,
        d_in,
        d_out: args.d_out,
        acts: args.acts.clone(),
        configs: args.configs.clone(),
        init: args.init,
        bn_settings: BnConfig {
            affine: true,
            placement: args.placement,
            eps: args.eps,
            momentum: args.momentum,
        },
        lrs,
        sgd_momentum: args.sgd_momentum,
        weight_decay: args.weight_decay,
        steps: args.steps,
        eval_every: args.eval_every,
        diverge_factor: 1e6,
        seed: args.seed,
        seeds: args.seeds,
        dtype: args.dtype,
    };
    let parallel = rayon::current_num_threads().min(cfg.runs().len()).max(1);
    for &act in &cfg.acts {
        for &arm in &cfg.configs {
            let net = cfg.net(act, arm);
            net.validate(cfg.batch)?;
            // Each run also holds a copy for the probe (batch rows) and one for the final
            // recalibration forward (up to RECALIBRATION_SAMPLES rows).
            let rows = 2 * cfg.batch + cfg.n_train.min(crate::train::RECALIBRATION_SAMPLES);
            net.check_memory(rows * parallel, cfg.dtype.bytes())?;
        }
    }
    Ok(cfg)
}

pub fn run(args: &NonlinearityArgs) -> Result<()> {
    let cfg = config(args)?;
    output::prepare_dir(&args.out, "--out")?;
    let start = std::time::Instant::now();
    let total = (cfg.runs().len() * cfg.steps) as u64;
    let pb = crate::commands::progress_bar(total, "nonlinearity");
    let report = nonlinearity::run(&cfg, &|n| pb.inc(n));
    pb.finish_and_clear();
    let json = serde_json::to_string_pretty(&report)?;

    let mut staged = Staged::new();
    let json_path = args.out.join("nonlinearity.json");
    let main_path = args.out.join("nonlinearity.png");
    let hist_path = args.out.join("nonlinearity_hist.png");
    staged.write(&json_path, json.as_bytes())?;
    staged.write_with(&main_path, |tmp| plot::nonlinearity::draw(&report, tmp))?;
    staged.write_with(&hist_path, |tmp| {
        plot::nonlinearity::draw_histograms(&report, tmp)
    })?;
    staged.commit()?;

    if args.json {
        print(&json);
        print("\n");
    } else {
        let mut text = nonlinearity::table(&report);
        text.push_str(&format!(
            "wrote {}, {} and {} in {:.2} s\n",
            main_path.display(),
            hist_path.display(),
            json_path.display(),
            start.elapsed().as_secs_f64()
        ));
        print(&text);
    }
    Ok(())
}
