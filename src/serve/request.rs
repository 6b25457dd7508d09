//! One request of `bn-lab serve`: its command line read the way the CLI reads it, refused where
//! it would write, read a file or run something other than one experiment, then computed in
//! memory ([`compute`]). Nothing here touches the disk.

use std::panic::AssertUnwindSafe;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, EXPERIMENTS};
use crate::commands::{PartialSink, RunOptions};

/// The longest command line a request may carry, in bytes.
pub const MAX_ARGS_BYTES: usize = 2048;

/// Flags a request may not give, by clap's id: they write files (`--out`, `--save-net`,
/// `--plan`), print instead of answering (`--json`), read files (`--collect`), or set the
/// server's own threads (`--threads`: the server shares its cores between requests).
const REFUSED: &[(&str, &str)] = &[
    ("out", "--out"),
    ("json", "--json"),
    ("save_net", "--save-net"),
    ("plan", "--plan"),
    ("collect", "--collect"),
    ("threads", "--threads"),
];

/// A command line the server will run: the parsed command and its words as one line (single
/// spaces, without `bn-lab`), which is also its key in the cache of reports.
#[derive(Debug)]
pub struct Request {
    pub command: Command,
    pub line: String,
}

/// Read `args` (a bn-lab command line, with or without the leading `bn-lab`) as the CLI
/// would, and refuse what the server does not run. The error is one line naming the flag.
pub fn parse(args: &str) -> Result<Request, String> {
    if args.len() > MAX_ARGS_BYTES {
        return Err(format!(
            "the command line is {} bytes; the server takes at most {MAX_ARGS_BYTES}",
            args.len()
        ));
    }
    let mut words: Vec<&str> = args.split_whitespace().collect();
    if words.first() == Some(&"bn-lab") {
        words.remove(0);
    }
    let Some(&sub) = words.first() else {
        return Err(format!(
            "no command: give one of {} (for example ?args=grad-norms --depth 50)",
            EXPERIMENTS.join(", ")
        ));
    };
    if !EXPERIMENTS.contains(&sub) {
        return Err(match sub {
            "run" | "reproduce" => format!(
                "`{sub}` reads experiment files and writes a page; the server runs one experiment's command (its claims are on the page)"
            ),
            "gradcheck" | "bench" | "serve" => format!(
                "`{sub}` writes no report; the server runs the experiments: {}",
                EXPERIMENTS.join(", ")
            ),
            _ => format!(
                "unknown command `{sub}`: the server runs {}",
                EXPERIMENTS.join(", ")
            ),
        });
    }
    let line = words.join(" ");
    let mut full = vec!["bn-lab"];
    full.extend(&words);
    let matches = Cli::command()
        .try_get_matches_from(full)
        .map_err(|e| match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                "--help and --version print text; the page shows every flag".to_string()
            }
            _ => crate::flags::clap_error_line(&e),
        })?;
    let (_, sub_matches) = matches
        .subcommand()
        .ok_or_else(|| "no command".to_string())?;
    refuse_flags(sub_matches)?;
    let cli = Cli::from_arg_matches(&matches).map_err(|e| crate::flags::clap_error_line(&e))?;
    Ok(Request {
        command: cli.command,
        line,
    })
}

/// Refuse the flags of [`REFUSED`] and a `--task` that names a directory.
fn refuse_flags(m: &clap::ArgMatches) -> Result<(), String> {
    let given = |id: &str| {
        m.ids().any(|i| i.as_str() == id) && m.value_source(id) == Some(ValueSource::CommandLine)
    };
    if let Some((_, flag)) = REFUSED.iter().find(|(id, _)| given(id)) {
        return Err(format!(
            "{flag} is not available on the server: a request only computes (run the command in a terminal for files)"
        ));
    }
    if given("task") {
        let raw = m
            .get_raw("task")
            .into_iter()
            .flatten()
            .filter_map(|v| v.to_str())
            .find(|v| v.contains(':'));
        if let Some(v) = raw {
            return Err(format!(
                "--task {v}: the server does not read files; use --task digits (shipped in the binary) or a synthetic task"
            ));
        }
    }
    Ok(())
}

/// Why a computation ended without a report.
#[derive(Debug)]
pub enum Failure {
    /// The command was refused before any work (its one-line message, naming the flag).
    Refused(String),
    /// The client went away or the server is stopping.
    Cancelled,
    /// The run failed after it started.
    Failed(String),
}

/// The payload a cancelled run unwinds with (see [`compute`]).
struct Cancelled;

/// Run `request` in memory: the CLI's validation and memory refusal, then the experiment, with
/// `progress(done, total)` told of its work. The report is the JSON the CLI writes for the
/// command, as compact text. When `cancelled()` holds, the run stops at its next progress report: it unwinds with a
/// private payload through `std::panic::resume_unwind` (which runs no panic hook, so nothing is
/// printed), and every buffer it held is dropped on the way. Rayon carries the unwinding from
/// its worker threads back to this caller. This is how salsa (rust-analyzer) cancels queries.
pub fn compute(
    request: Request,
    cancelled: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<String, Failure> {
    compute_with(request, cancelled, progress, None)
}

/// [`compute`], also handing the partial results of a training command to `partial` (see
/// [`RunOptions::partial`]).
pub fn compute_with(
    request: Request,
    cancelled: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(u64, u64) + Sync),
    partial: Option<&PartialSink<'_>>,
) -> Result<String, Failure> {
    let tick = |done: u64, total: u64| {
        if cancelled() {
            std::panic::resume_unwind(Box::new(Cancelled));
        }
        progress(done, total);
    };
    let options = RunOptions {
        in_memory: true,
        quiet: true,
        progress: Some(&tick),
        partial,
        ..RunOptions::default()
    };
    let command = request.command;
    match std::panic::catch_unwind(AssertUnwindSafe(move || command.run_in(&options))) {
        Ok(Ok(Some(record))) => record
            .json_text
            .ok_or_else(|| Failure::Failed("the command wrote no report".into())),
        Ok(Ok(None)) => Err(Failure::Failed("the command writes no report".into())),
        Ok(Err(e)) if crate::flags::is_usage_error(&e) => Err(Failure::Refused(
            crate::text::visible_except(&format!("{e:#}"), ""),
        )),
        Ok(Err(e)) => Err(Failure::Failed(format!("{e:#}"))),
        Err(payload) if payload.is::<Cancelled>() => Err(Failure::Cancelled),
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
