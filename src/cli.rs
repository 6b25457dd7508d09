//! The command line and the registry of subcommands. Every experiment is one line in
//! `experiments!`'s list below: its subcommand (the variant's name in kebab case, its help
//! the doc comment of its flags struct), its dispatch, and the lists that `run`, `reproduce`
//! and the tests that go over every experiment read. The tools (`gradcheck`, `bench`, `run`,
//! `reproduce`) are written out after them.

// Doc comments here are `--help` text for a terminal, where `<claim>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::commands::bench::BenchArgs;
use crate::commands::gradcheck::GradcheckArgs;
use crate::commands::{Registered, RunOptions, RunRecord, VisitConfig};
use crate::experiment::{
    grad_norms, ics, landscape, nonlinearity, shattered, shift, sweep, theory, train,
};
use crate::flags::{count, seed};

/// Numerical-stability experiments on deep MLPs: vanishing and exploding gradients, and what
/// BatchNorm (with or without scale/shift), its placement and skip connections change.
#[derive(Debug, Parser)]
#[command(
    name = "bn-lab",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Writes the [`Command`] enum with one variant per experiment (in the order listed, before
/// the tools), [`Command::run_in`]'s dispatch, [`Command::visit_config`] and [`EXPERIMENTS`]
/// from one list of `Variant(flags type)`. A macro because clap's derive needs the variants
/// written out; the flags type says everything else (see [`Registered`]).
macro_rules! experiments {
    ($($variant:ident($args:ty),)*) => {
        #[derive(Debug, Subcommand)]
        pub enum Command {
            $($variant($args),)*
    /// Compare the hand-written gradients of a small network with central finite
    /// differences in f64 and print the largest relative error per parameter tensor.
            Gradcheck(GradcheckArgs),
    /// Run one experiment file (experiments/*.toml; the format is in the README): its command,
    /// then its checks on the JSON the command wrote, and print the verdict (supported, mixed or
    /// not supported) with the numbers that decided it. Writes what the command writes.
            Run(RunArgs),
    /// Run every experiment file in experiments/ (several at once), then write a page for a
    /// class: per claim the diary's words, the picture, the numbers, the verdict and the command
    /// that reruns it. Writes DIR/index.html, DIR/summary.json and each claim's files in
    /// DIR/<claim>/.
            Reproduce(ReproduceArgs),
    /// Time one forward+backward pass (median after warm-up) and compare its speed with a
    /// matrix-multiply ceiling measured on the spot. Prints only; writes no files.
            Bench(BenchArgs),
    /// Serve the live page and its API (GET /api/run?args=...): a browser moves a control and
    /// the plot recomputes. Prints `listening on http://HOST:PORT/`; stops on Ctrl-C. Requests
    /// only compute: flags that write or read files are refused.
            Serve(ServeArgs),
        }

        /// The subcommands that run an experiment, in the order of the registry.
        pub const EXPERIMENTS: &[&str] = &[$(<$args as Registered>::NAME,)*];

        /// Each experiment's subcommand with the flags of a small run (separated by spaces)
        /// ([`crate::experiment::ExperimentArgs::QUICK`]), in the order of the registry.
        pub const QUICK_RUNS: &[(&str, &str)] =
            &[$((<$args as Registered>::NAME, <$args as Registered>::QUICK),)*];

        impl Command {
            /// Run the command, reporting to `options`; an experiment returns what it did.
            /// `run` and `reproduce` are refused here: [`crate::run`] runs them (they run
            /// the commands their files name through this).
            pub fn run_in(self, options: &RunOptions<'_>) -> Result<Option<RunRecord>> {
                match self {
                    $(Command::$variant(args) => args.run(options),)*
                    Command::Gradcheck(args) => crate::commands::gradcheck::run(&args).map(|()| None),
                    Command::Bench(args) => crate::commands::bench::run(&args).map(|()| None),
                    Command::Run(_) | Command::Reproduce(_) => Err(crate::flags::usage(
                        "run and reproduce run experiment files; a file cannot name them",
                    )),
                    Command::Serve(_) => Err(crate::flags::usage(
                        "serve serves the live page; a file or a request cannot name it",
                    )),
                }
            }

            /// For an experiment's command: its config, handed to `visitor` with the
            /// experiment's type (`None` for the tools).
            pub fn visit_config<V: VisitConfig>(&self, visitor: &mut V) -> Option<Result<V::Output>> {
                match self {
                    $(Command::$variant(args) => Some(args.visit(visitor)),)*
                    _ => None,
                }
            }

            /// The subcommand's name, as typed.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Command::$variant(_) => <$args as Registered>::NAME,)*
                    Command::Gradcheck(_) => "gradcheck",
                    Command::Run(_) => "run",
                    Command::Reproduce(_) => "reproduce",
                    Command::Bench(_) => "bench",
                    Command::Serve(_) => "serve",
                }
            }
        }
    };
}

experiments! {
    GradNorms(grad_norms::GradNormsArgs),
    Landscape(landscape::LandscapeArgs),
    Ics(ics::IcsArgs),
    NoisyBn(shift::NoisyBnArgs),
    InputShift(shift::InputShiftArgs),
    Train(train::TrainArgs),
    Nonlinearity(nonlinearity::NonlinearityArgs),
    Shattered(shattered::ShatteredArgs),
    Theory(theory::TheoryArgs),
    Sweep(sweep::SweepArgs),
}

/// The config an experiment's command line describes, as experiment `E`'s config type (`None`
/// when the command is not `E`'s).
pub fn config_of<E: crate::experiment::Experiment>(command: &Command) -> Option<Result<E::Config>> {
    struct Take<E: crate::experiment::Experiment>(std::marker::PhantomData<E>);
    impl<E: crate::experiment::Experiment> VisitConfig for Take<E> {
        type Output = Option<E::Config>;
        fn visit<F: crate::plot::Figures>(
            &mut self,
            cfg: F::Config,
            _: crate::flags::Renames,
        ) -> Result<Self::Output> {
            let any: Box<dyn std::any::Any> = Box::new(cfg);
            Ok(any.downcast::<E::Config>().ok().map(|b| *b))
        }
    }
    command
        .visit_config(&mut Take::<E>(std::marker::PhantomData))
        .and_then(|r| r.transpose())
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file (TOML; see the README's "Experiment files").
    pub file: PathBuf,
    /// Output directory for the command's PNG and JSON files [default: bn-lab-out/<claim>,
    /// the file's name without .toml and its NN- prefix].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How many seeds [default: the file's `seeds`]; the verdict needs every check to hold in
    /// every seed.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 100>, long)]
    pub seeds: Option<usize>,
    /// The first seed; run i uses --seed K + i (times the command's own --seeds, if any).
    #[arg(long, default_value_t = 0, value_parser = seed)]
    pub seed: u64,
    /// Run the file's `[control]` too: the command changed the least that should flip the verdict.
    #[arg(long)]
    pub control: bool,
}

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// Output directory: index.html, summary.json and one directory per claim.
    #[arg(long, default_value = "bn-lab-out/reproduce")]
    pub out: PathBuf,
    /// Only these claims, comma-separated (file names without .toml and the NN- prefix, e.g.
    /// vanishing-sigmoid).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub only: Option<Vec<String>>,
    /// The directory of experiment files (every *.toml in it, by name).
    #[arg(long, default_value = "experiments")]
    pub experiments: PathBuf,
    /// Claims run at once [default: the cores available; more are capped to them].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 0>, long)]
    pub jobs: Option<usize>,
    /// How many seeds each claim runs [default: each file's `seeds`].
    #[arg(allow_hyphen_values = true, value_parser = count::<1, 100>, long)]
    pub seeds: Option<usize>,
    /// The first seed; run i of a claim uses --seed K + i (times its command's own --seeds).
    #[arg(long, default_value_t = 0, value_parser = seed)]
    pub seed: u64,
    /// Run every claim's control as well, and show its verdict beside the claim's.
    #[arg(long)]
    pub controls: bool,
}

/// `bn-lab serve`'s flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. The default, 127.0.0.1, lets only this machine in; 0.0.0.0 lets
    /// every machine on the network in (a classroom: students open http://<this machine>:PORT/).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Work limit: refuse (400, before any work) a request whose run is estimated to take more
    /// than this many seconds on this machine, estimated from its config (networks, passes,
    /// samples). A run still computing at 4 times the limit is stopped (503).
    #[arg(long, value_name = "S", default_value_t = DEFAULT_MAX_SECONDS, value_parser = max_seconds)]
    pub max_seconds: f64,
    /// Runs that may wait for a core while every core computes; beyond, a request is answered
    /// 503 with Retry-After [default: 3 per core].
    #[arg(long, value_name = "N", value_parser = crate::flags::count::<0, 10000>)]
    pub queue: Option<usize>,
    /// Reports kept for identical requests (the least recently used goes first; at most 64 MB in
    /// all); 0 keeps none.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CACHE_ENTRIES, value_parser = crate::flags::count::<0, 100000>)]
    pub cache: usize,
}

/// `bn-lab serve --max-seconds`'s default: a request's run may take about this many seconds.
pub const DEFAULT_MAX_SECONDS: f64 = 5.0;
/// The largest `--max-seconds` (an hour).
pub const MAX_MAX_SECONDS: f64 = 3600.0;
/// `bn-lab serve --cache`'s default: reports kept for identical requests.
pub const DEFAULT_CACHE_ENTRIES: usize = 64;

/// `--max-seconds`: seconds above 0, at most [`MAX_MAX_SECONDS`].
pub fn max_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= MAX_MAX_SECONDS => Ok(v),
        _ => Err(format!(
            "expected seconds above 0 and at most {MAX_MAX_SECONDS} (got {s})"
        )),
    }
}
