//! The CLI's commands: turn parsed arguments into a validated experiment config once, then run
//! it with [`execute`], which is the same for every experiment: validate, run with a progress
//! bar, write JSON and figures all-or-nothing, print the summary. Errors name the flags the
//! user typed: config fields are spelled as flags by [`flag_name`].

pub mod bench;
pub mod grad_norms;
pub mod gradcheck;
pub mod ics;
pub mod landscape;
pub mod nonlinearity;
pub mod shattered;
pub mod shift;
pub mod sweep;
pub mod theory;
pub mod train;

use std::io::Write;

use anyhow::{Result, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{
    BnFlag, Cli, Command, DataArgs, MeasuredTrainArgs, NetArgs, NormArgs, NormChoice, OutputArgs,
};
use crate::config::{Activation, ConfigError, DataSpec, Loss, NetSpec, Norm, NormKind};
use crate::experiment::MeasuredTrainConfig;
use crate::output::{self, Extra};
use crate::plot::Figures;

/// Run one parsed command line, reporting to the terminal.
pub fn run(cli: Cli) -> Result<()> {
    run_in(cli.command, &Session::default())
}

/// Run one command, reporting to `session` (`bn-lab run` and `bn-lab reproduce` run the
/// commands their files name this way).
pub fn run_in(command: Command, session: &Session<'_>) -> Result<()> {
    match command {
        Command::GradNorms(args) => grad_norms::run(&args, session),
        Command::Gradcheck(args) => gradcheck::run(&args),
        Command::Landscape(args) => landscape::run(&args, session),
        Command::Ics(args) => ics::run(&args, session),
        Command::NoisyBn(args) => shift::run_noisy(&args, session),
        Command::InputShift(args) => shift::run_input_shift(&args, session),
        Command::Train(args) => train::run(&args, session),
        Command::Nonlinearity(args) => nonlinearity::run(&args, session),
        Command::Shattered(args) => shattered::run(&args, session),
        Command::Theory(args) => theory::run(&args, session),
        Command::Sweep(args) => sweep::run(&args, session),
        Command::Bench(args) => bench::run(&args),
        Command::Run(args) => crate::reproduce::run_file(&args),
        Command::Reproduce(args) => crate::reproduce::reproduce(&args),
    }
}

/// A check run on a command's JSON before anything is written (`bn-lab run` names a
/// quantity the JSON lacks: an error, and no file appears).
pub type CheckJson<'a> = dyn Fn(&serde_json::Value) -> Result<()> + Sync + 'a;

/// Who a command reports to. The default is the terminal's: a progress bar on stderr, the
/// summary on stdout. `bn-lab run` and `bn-lab reproduce` run commands as steps of a larger
/// job: they look at the JSON before it is written, follow the progress themselves, and keep
/// stdout for their own report.
#[derive(Default)]
pub struct Session<'a> {
    /// Stop after the checks that come before any work (the flags, the memory footprint):
    /// nothing is run or written, and [`Session::ran`] lists the figures a run would draw.
    pub dry_run: bool,
    /// Print nothing: the summary goes to [`Ran::summary`].
    pub quiet: bool,
    /// Instead of the progress bar: called with the units just done and the run's total
    /// (once with 0 done at the start).
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// Called with the run's JSON before anything is written; its error stops the run and
    /// nothing is written.
    pub check: Option<&'a CheckJson<'a>>,
    /// Write the JSON only, no figures (the runs of a claim after its first seed).
    pub json_only: bool,
    /// What the run did (set by [`execute`]).
    pub ran: std::sync::Mutex<Option<Ran>>,
}

/// What one command did: its JSON, its summary and the files it wrote.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The report as written to `<STEM>.json` (`None` for a dry run).
    pub json: Option<serde_json::Value>,
    /// The JSON file's name, e.g. `grad_norms.json`.
    pub json_file: String,
    /// The figures' file names, headline first.
    pub figures: Vec<String>,
    /// What the summary printed (empty for a dry run).
    pub summary: String,
    /// Every path written.
    pub written: Vec<std::path::PathBuf>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

impl Session<'_> {
    /// What [`execute`] recorded, if it ran.
    pub fn take_ran(&self) -> Option<Ran> {
        self.ran
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn record(&self, ran: Ran) {
        *self
            .ran
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ran);
    }
}

/// Clap's multi-line error as one line: `invalid value 'x' for '--act <ACT>' [possible values:
/// ...]` (`main` puts `Error: ` before it).
pub fn clap_error_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    let joined = parts.join(" ");
    joined
        .strip_prefix("error: ")
        .unwrap_or(&joined)
        .to_string()
}

/// Config fields whose flag is not `--` + the field with `-` for `_`, per command.
pub type Renames = &'static [(&'static str, &'static str)];

/// The flag that sets config field `field`: `n_train` -> `--n-train`, or its rename.
pub fn flag_name(renames: Renames, field: &str) -> String {
    renames.iter().find(|(f, _)| *f == field).map_or_else(
        || format!("--{}", field.replace('_', "-")),
        |(_, flag)| flag.to_string(),
    )
}

/// A command line refused before any work: a value out of range, flags that do not go
/// together, a run too large for this machine. `main` exits with 2 for it (as clap does for
/// the errors it finds), and with 1 for failures while running.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Whether `e` is a refusal of the command line (exit code 2) rather than a run-time failure.
pub fn is_usage_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<UsageError>().is_some()
}

/// A config error as this command's users read it: with flag names.
pub fn flag_error(renames: Renames, e: &ConfigError) -> anyhow::Error {
    usage(e.render(&|f| flag_name(renames, f)))
}

/// `--threads`: at least 1; more than the cores available is capped to them (extra threads
/// only wait, and results are the same for every thread count).
pub fn threads(flag: Option<usize>) -> Result<usize> {
    let cores = crate::parallel::available_threads();
    match flag {
        Some(0) => Err(usage("--threads must be at least 1 (got 0)")),
        Some(n) => Ok(n.min(cores)),
        None => Ok(cores),
    }
}

impl NetArgs {
    /// The network flags as a spec (`--d-in` defaults to the width).
    pub fn spec(&self) -> NetSpec {
        NetSpec {
            width: self.width,
            batch: self.batch,
            d_in: self.d_in.unwrap_or(self.width),
            d_out: self.d_out.unwrap_or(DEFAULT_D_OUT),
            init: self.init,
            residual: self.residual,
            residual_scale: self.residual_scale,
            eps: self.eps,
            momentum: self.momentum,
            seed: self.seed,
            dtype: self.dtype,
        }
    }

    /// `--act`; every command that shows the flag gives it a default.
    pub fn activation(&self) -> Activation {
        self.act.unwrap_or(Activation::Sigmoid)
    }

    /// The BatchNorm variant `--affine`/`--no-affine` and `--placement` describe.
    pub fn batch_norm(&self) -> Norm {
        Norm::Batch {
            affine: !self.no_affine,
            placement: self.placement,
        }
    }
}

impl NetArgs {
    /// The normaliser `--norm` names, with the `--affine`/`--no-affine` and `--placement` settings.
    pub fn normaliser(&self, choice: NormChoice) -> Norm {
        let (affine, placement) = (!self.no_affine, self.placement);
        match choice {
            NormChoice::None => Norm::Off,
            NormChoice::Batch => Norm::of(NormKind::Batch, affine, placement),
            NormChoice::Layer => Norm::of(NormKind::Layer, affine, placement),
        }
    }
}

impl NormArgs {
    /// The arms `--norm` lists, or else the ones `--bn` selects (`on` meaning the BatchNorm of
    /// `net`'s flags).
    pub fn norms(&self, net: &NetArgs) -> Vec<Norm> {
        match &self.norm {
            Some(list) => list.iter().map(|&c| net.normaliser(c)).collect(),
            None => match self.bn {
                BnFlag::Off => vec![Norm::Off],
                BnFlag::On => vec![net.batch_norm()],
                BnFlag::Both => vec![Norm::Off, net.batch_norm()],
            },
        }
    }

    /// `--norm` lists each normaliser once; a repeat is named as typed (`none`, where the arm
    /// it makes is called `off`).
    pub fn check_distinct(&self) -> Result<()> {
        distinct_norms(self.norm.as_deref().unwrap_or_default())
    }

    /// The one network of `gradcheck` and `bench`.
    pub fn single(&self, net: &NetArgs, what: &str) -> Result<Norm> {
        match (&self.norm, self.bn) {
            (Some(list), _) if list.len() == 1 => Ok(net.normaliser(list[0])),
            (Some(_), _) => Err(usage(format!(
                "--norm: {what} one network; give one of none, batch or layer"
            ))),
            (None, BnFlag::Both) => Err(usage(format!(
                "--bn both: {what} one network; give --bn on or --bn off"
            ))),
            (None, _) => Ok(self.norms(net)[0]),
        }
    }
}

/// A `--norm` list without repeats, or the error naming the repeat as typed.
pub fn distinct_norms(list: &[NormChoice]) -> Result<()> {
    if list.is_empty() {
        return Ok(());
    }
    let typed: Vec<String> = list
        .iter()
        .map(|c| {
            clap::ValueEnum::to_possible_value(c)
                .map_or_else(|| format!("{c:?}"), |v| v.get_name().to_string())
        })
        .collect();
    crate::config::distinct("norm", &typed).map_err(|e| flag_error(&[], &e))
}

/// `--d-out` when not given (and the task has no classes).
pub const DEFAULT_D_OUT: usize = 10;

impl DataArgs {
    /// The data spec and the network spec of a command that trains, with what the flags leave
    /// open filled in from the task: an image set's whole splits, its pixels as `d_in` and its
    /// classes as `d_out`, cross-entropy for classes. A flag given is kept as given (a mismatch
    /// with the image set is the config's validation error). Reading an image set that is not
    /// there is `--task: cannot read ...`.
    pub fn specs(&self, net: &NetArgs) -> Result<(NetSpec, DataSpec)> {
        self.specs_with(net, (2048, 1024))
    }

    /// [`DataArgs::specs`] with `synthetic` as the `(n_train, n_test)` of a synthetic task.
    pub fn specs_with(
        &self,
        net: &NetArgs,
        synthetic: (usize, usize),
    ) -> Result<(NetSpec, DataSpec)> {
        let shape = self
            .task
            .shape()
            .map_err(|e| usage(format!("--task: {e}")))?;
        let mut spec = net.spec();
        let (n_train, n_test) = match shape {
            Some(s) => {
                spec.d_in = net.d_in.unwrap_or(s.pixels);
                spec.d_out = net.d_out.unwrap_or(s.classes);
                (s.n_train, s.n_test)
            }
            None => synthetic,
        };
        let data = DataSpec {
            n_train: self.n_train.unwrap_or(n_train),
            n_test: self.n_test.unwrap_or(n_test),
            loss: self.loss.unwrap_or(Loss::default_for(&self.task)),
            task: self.task.clone(),
        };
        Ok((spec, data))
    }
}

/// Config fields of `landscape` and `ics` set by flags of another name.
pub const MEASURED_RENAMES: Renames =
    &[("norms", "--norm"), ("probe_multipliers", "--probe-steps")];

/// The training runs `landscape` and `ics` measure, from their shared flags.
pub fn measured_train(t: &MeasuredTrainArgs, net: &NetArgs) -> Result<MeasuredTrainConfig> {
    t.arms.check_distinct()?;
    let (spec, data) = t.data.specs_with(net, (4096, 1024))?;
    Ok(MeasuredTrainConfig {
        depth: t.depth,
        act: net.activation(),
        norms: t.arms.norms(net),
        net: spec,
        data,
        steps: t.steps,
        lr: t.lr,
        warmup_steps: t.warmup_steps,
        every: t.every,
    })
}

/// Run experiment `E` on `cfg` the way every command does: validate (errors with flag names),
/// refuse unwritable or colliding outputs before any work, run with a progress bar, write the
/// JSON, figures and `extras` all-or-nothing (see [`crate::output`]), and print the summary
/// (or the JSON with `--json`) and the time taken.
/// Validation runs inside the caller's thread pool, so memory checks see its size.
/// With a [`Session`] other than the terminal's, the dry run, the check of the JSON, the
/// progress and the summary go to the session.
pub fn execute<E: Figures>(
    cfg: &E::Config,
    renames: Renames,
    out: &OutputArgs,
    extras: &[Extra<'_, E::Report>],
    session: &Session<'_>,
) -> Result<()> {
    E::validate(cfg)
        .and_then(|()| E::footprint(cfg).check())
        .map_err(|e| flag_error(renames, &e))?;
    let figures = if session.json_only {
        Vec::new()
    } else {
        E::figures_for(cfg)
    };
    let extras = if session.json_only { &[] } else { extras };
    let mut ran = Ran {
        json: None,
        json_file: format!("{}.json", E::STEM),
        figures: figures.iter().map(|f| f.file.to_string()).collect(),
        summary: String::new(),
        written: Vec::new(),
        seconds: 0.0,
    };
    if session.dry_run {
        session.record(ran);
        return Ok(());
    }
    // The image set's sizes came from its headers; its data are read only now that the run
    // fits in memory (a bad body is still refused before anything is created).
    crate::data::read_pending_sets().map_err(|e| usage(format!("--task: {e}")))?;
    output::install_signal_handler()?;
    // Every destination is checked before any work (a refusal, exit 2); dropped on an error,
    // this removes the directories the run created.
    let outputs = output::Outputs::prepare::<E>(&out.out, &figures, extras)
        .map_err(|e| usage(format!("{e:#}")))?;
    let start = std::time::Instant::now();
    let total = E::work_units(cfg);
    let report = match session.progress {
        Some(progress) => {
            progress(0, total);
            E::run(cfg, &|n| progress(n, total))
        }
        None => {
            let pb = progress_bar(total, E::NAME);
            let report = E::run(cfg, &|n| pb.inc(n));
            pb.finish_and_clear();
            report
        }
    };
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(check) = session.check {
        let value: serde_json::Value = serde_json::from_str(&json)?;
        check(&value)?;
        ran.json = Some(value);
    }
    let written = output::export::<E>(&report, &json, &out.out, &figures, extras)?;
    outputs.keep();
    ran.seconds = start.elapsed().as_secs_f64();
    let mut text = E::summary(&report);
    text.push_str(&format!(
        "wrote {} in {:.2} s\n",
        output::join_paths(&written),
        ran.seconds
    ));
    if !session.quiet {
        if out.json {
            print(&format!("{json}\n"))?;
        } else {
            print(&text)?;
        }
    }
    ran.summary = text;
    ran.written = written;
    session.record(ran);
    Ok(())
}

/// Print to stdout. A closed pipe (`bn-lab ... | head`) is not an error: the reader has seen
/// what it wanted. Any other failure (`> /dev/full`) is: `cannot write to stdout: ...`.
/// Control characters (in a path typed, say) are printed as escapes, so that nothing printed
/// can act on the terminal ([`crate::text::visible`]); newlines stay.
pub fn print(s: &str) -> Result<()> {
    let s = crate::text::visible(s);
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow!("cannot write to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

/// A progress bar on stderr for commands that take over a second; hidden when stderr is not a
/// terminal (indicatif draws nothing to a pipe or file).
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {percent:>3}% ({elapsed}, eta {eta})")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}
