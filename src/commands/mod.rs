//! Running a command: an experiment's flags become its config once ([`run_experiment`]), then
//! [`execute`], the same for every experiment, validates it, runs it with a progress bar,
//! writes JSON and figures all-or-nothing, prints the summary and returns its [`RunRecord`].
//! Errors name the flags the user typed: config fields are spelled as flags by
//! [`crate::flags::flag_name`]. The tools `gradcheck` and `bench`, and `sweep`'s plans and
//! collections, are here too.

pub mod bench;
pub mod gradcheck;
pub mod sweep;

use std::io::Write;

use anyhow::{Result, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::experiment::{Experiment, ExperimentArgs, Extra, Plan};
use crate::flags::usage;
use crate::flags::{OutputArgs, Renames, flag_error, threads};
use crate::output;
use crate::plot::Figures;
use crate::train::Report;

/// A check run on a command's JSON before anything is written (`bn-lab run` names a
/// quantity the JSON lacks: an error, and no file appears).
pub type CheckJson<'a> = dyn Fn(&serde_json::Value) -> Result<()> + Sync + 'a;

/// Where partial results go: `(arm, step, loss)` (see [`RunOptions::partial`]).
pub type PartialSink<'a> = dyn Fn(&str, usize, f64) + Sync + 'a;

/// How a command runs and whom it reports to. The default is the terminal's: a progress bar on stderr, the
/// summary on stdout. `bn-lab run` and `bn-lab reproduce` run commands as steps of a larger
/// job: they look at the JSON before it is written, follow the progress themselves, and keep
/// stdout for their own report.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Stop after the checks that come before any work (the flags, the memory footprint):
    /// nothing is run or written, and the returned [`RunRecord`] lists the figures a run would draw.
    pub dry_run: bool,
    /// Print nothing (the summary is in the returned [`RunRecord::summary`]).
    pub quiet: bool,
    /// Instead of the progress bar: called with the units just done and the run's total
    /// (once with 0 done at the start).
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    /// Called with partial results of a training command as it runs (`bn-lab serve`'s
    /// stream): an arm's key, a step and its mini-batch loss, on about 200 evenly spaced steps
    /// of each training run (see [`crate::train::Progress`]).
    pub partial: Option<&'a PartialSink<'a>>,
    /// Called with the run's JSON before anything is written; its error stops the run and
    /// nothing is written.
    pub check: Option<&'a CheckJson<'a>>,
    /// Write the JSON only, no figures (the runs of a claim after its first seed).
    pub json_only: bool,
    /// Compute only (`bn-lab serve`): nothing is written or created, no signal handler is
    /// installed, no summary is printed; the JSON is returned in [`RunRecord::json`].
    pub in_memory: bool,
}

/// What one command did: its JSON, its summary and the files it wrote.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The report as written to `<STEM>.json` (`None` for a dry run).
    pub json: Option<serde_json::Value>,
    /// The same report as compact JSON text, its keys in the file's order (only for
    /// [`RunOptions::in_memory`]).
    pub json_text: Option<String>,
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

/// Run experiment `E` on `cfg` the way every command does: validate (errors with flag names),
/// refuse unwritable or colliding outputs before any work, run with a progress bar, write the
/// JSON, figures and `extras` all-or-nothing (see [`crate::output`]), and print the summary
/// (or the JSON with `--json`) and the time taken.
/// Validation runs inside the caller's thread pool, so memory checks see its size.
/// With [`RunOptions`] other than the terminal's, the dry run, the check of the JSON, the
/// progress and the summary go where they say.
pub fn execute<E: Figures>(
    cfg: &E::Config,
    renames: Renames,
    out: &OutputArgs,
    extras: &[Extra<E::Report>],
    options: &RunOptions<'_>,
) -> Result<RunRecord> {
    cfg.validate()
        .and_then(|()| cfg.footprint().check())
        .map_err(|e| flag_error(renames, &e))?;
    if options.in_memory {
        return compute_in_memory::<E>(cfg, options);
    }
    let figures = if options.json_only {
        Vec::new()
    } else {
        E::figures_for(cfg)
    };
    let extras = if options.json_only { &[] } else { extras };
    let mut ran = RunRecord {
        json: None,
        json_text: None,
        json_file: format!("{}.json", E::STEM),
        figures: figures.iter().map(|f| f.file.to_string()).collect(),
        summary: String::new(),
        written: Vec::new(),
        seconds: 0.0,
    };
    if options.dry_run {
        return Ok(ran);
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
    let total = cfg.work_units();
    let report = match options.progress {
        Some(progress) => {
            progress(0, total);
            E::run(cfg, &Reporter::new(progress, total, options))
        }
        None => {
            let pb = progress_bar(total, E::NAME);
            let report = E::run(cfg, &|n| pb.inc(n));
            pb.finish_and_clear();
            report
        }
    };
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(check) = options.check {
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
    if !options.quiet {
        if out.json {
            print(&format!("{json}\n"))?;
        } else {
            print(&text)?;
        }
    }
    ran.summary = text;
    ran.written = written;
    Ok(ran)
}

/// [`execute`] without files: run `E` on the validated `cfg`, reporting to `options.progress`,
/// and return its JSON (as the CLI would write it) and summary.
fn compute_in_memory<E: Figures>(cfg: &E::Config, options: &RunOptions<'_>) -> Result<RunRecord> {
    let start = std::time::Instant::now();
    let total = cfg.work_units();
    let progress = options.progress.unwrap_or(&|_, _| {});
    progress(0, total);
    let report = E::run(cfg, &Reporter::new(progress, total, options));
    // Compact: the same values and key order as the file, without its indentation.
    let json = serde_json::to_string(&report)?;
    Ok(RunRecord {
        json: Some(serde_json::from_str(&json)?),
        json_text: Some(json),
        json_file: format!("{}.json", E::STEM),
        figures: Vec::new(),
        summary: E::summary(&report),
        written: Vec::new(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The reporter of a run with [`RunOptions::progress`]: units go to `progress` with the run's
/// total, partial results to [`RunOptions::partial`].
struct Reporter<'a> {
    progress: &'a (dyn Fn(u64, u64) + Sync),
    total: u64,
    partial: Option<&'a PartialSink<'a>>,
}

impl<'a> Reporter<'a> {
    fn new(
        progress: &'a (dyn Fn(u64, u64) + Sync),
        total: u64,
        options: &RunOptions<'a>,
    ) -> Reporter<'a> {
        Reporter {
            progress,
            total,
            partial: options.partial,
        }
    }
}

impl Report for Reporter<'_> {
    fn units(&self, n: u64) {
        (self.progress)(n, self.total);
    }

    fn point(&self, arm: &str, step: usize, loss: f64) {
        if let Some(partial) = self.partial {
            partial(arm, step, loss);
        }
    }
}

/// What the registry in [`crate::cli`] needs of a subcommand's flags: its name, how to run it
/// and how to hand its config to a [`VisitConfig`]. Every [`ExperimentArgs`] has it through
/// [`run_experiment`]; `sweep`, which also plans and collects, writes its own.
pub trait Registered {
    /// The subcommand, e.g. `grad-norms`.
    const NAME: &'static str;
    /// The flags of a small run (see [`ExperimentArgs::QUICK`]).
    const QUICK: &'static str;
    /// Run the command, reporting to `options`; what an experiment's run did.
    fn run(&self, options: &RunOptions<'_>) -> Result<Option<RunRecord>>;
    /// The config the flags describe, handed to `visitor` with its experiment's type.
    fn visit<V: VisitConfig>(&self, visitor: &mut V) -> Result<V::Output>;
}

/// Something done with any experiment's config, generic over the experiment (the tests that go
/// over every experiment measure footprints and write figures this way).
pub trait VisitConfig {
    type Output;
    fn visit<E: Figures>(&mut self, cfg: E::Config, renames: Renames) -> Result<Self::Output>;
}

impl<A: ExperimentArgs> Registered for A
where
    A::Experiment: Figures,
{
    const NAME: &'static str = <A::Experiment as Experiment>::NAME;
    const QUICK: &'static str = A::QUICK;

    fn run(&self, options: &RunOptions<'_>) -> Result<Option<RunRecord>> {
        run_experiment(self, options).map(Some)
    }

    fn visit<V: VisitConfig>(&self, visitor: &mut V) -> Result<V::Output> {
        visitor.visit::<A::Experiment>(self.config()?, A::RENAMES)
    }
}

/// Run an experiment's command line: its config from the flags, then [`execute`], on a pool of
/// `--threads` threads where the command has the flag.
pub fn run_experiment<A: ExperimentArgs>(args: &A, options: &RunOptions<'_>) -> Result<RunRecord>
where
    A::Experiment: Figures,
{
    let cfg = args.config()?;
    let extras = args.extras();
    let run = || execute::<A::Experiment>(&cfg, A::RENAMES, args.output(), &extras, options);
    match args.threads() {
        Some(flag) => crate::parallel::with_threads(threads(flag)?, run)?,
        None => run(),
    }
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
