//! The server's limits: the work a request may ask for, and the places to compute in.
//!
//! - **Work limit** (`--max-seconds S`, default [`crate::cli::DEFAULT_MAX_SECONDS`]): a request's config says
//!   how many multiply-adds its run does ([`crate::experiment::Plan::macs`]); divided by the rate
//!   measured on the reference machine ([`MACS_PER_SECOND`]) that is an estimate of its seconds.
//!   [`App::admit`] refuses a run over `S` before any work, with a 400 naming the flag to raise
//!   and the flags of the command to reduce. A run still computing at [`BACKSTOP`] times `S`
//!   (the estimate was wrong, or the machine is loaded) is stopped and answered 503.
//! - **Places** ([`Slots`]): at most one run per core computes; `--queue N` more wait for a core;
//!   beyond, a new computation is answered 503 with `Retry-After`. A report from the cache, or
//!   one shared with an identical computation already admitted, takes no place.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use clap::CommandFactory;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::request::Request;
use super::{App, error};
use crate::cli::{Cli, Command};
use crate::commands::VisitConfig;
use crate::experiment::Plan;
use crate::flags::Renames;
use crate::plot::Figures;

/// `--max-seconds`'s default: a page's control answers within a few seconds.
/// A run still computing at this many times `--max-seconds` is stopped.
pub const BACKSTOP: f64 = 4.0;
/// Multiply-adds per second of a run on the reference machine (2 cores, release build), measured
/// over grad-norms, theory, train, sweep, shattered and nonlinearity at several sizes (the table
/// is in the README's "Live page"): the estimate `macs / MACS_PER_SECOND` was within 3x of the
/// measured seconds for the runs that take over a tenth of a second.
pub const MACS_PER_SECOND: f64 = 3.0e10;
/// Below this, an estimate is not worth a refusal's precision: every run "takes" at least it.
const FLOOR_SECONDS: f64 = 0.001;
/// The flags that size a run, in the order a refusal suggests reducing them (only those the
/// command has, at most four).
pub const SIZE_FLAGS: &[&str] = &[
    "--depth",
    "--steps",
    "--values",
    "--width",
    "--batch",
    "--seeds",
    "--points",
    "--n-train",
];

/// What a request's run is expected to cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// [`Plan::macs`] of its config.
    pub macs: f64,
    /// `macs / MACS_PER_SECOND`: seconds on the reference machine.
    pub seconds: f64,
}

impl Estimate {
    pub fn of_macs(macs: f64) -> Estimate {
        Estimate {
            macs,
            seconds: (macs / MACS_PER_SECOND).max(FLOOR_SECONDS),
        }
    }
}

/// The estimate of `command`'s run and the key of its report in the cache (the experiment and
/// its config as JSON: the report is a function of the config, so `--depth 50`, `--depth=50`
/// and no `--depth` at all share one). `None` when the config is invalid: the CLI's validation
/// refuses it in [`super::request::compute`], naming the flag, before any work.
pub fn estimate(command: &Command) -> Option<(Estimate, String)> {
    struct Estimator;
    impl VisitConfig for Estimator {
        type Output = Option<(Estimate, String)>;
        fn visit<E: Figures>(
            &mut self,
            cfg: E::Config,
            _: Renames,
        ) -> anyhow::Result<Self::Output> {
            if cfg.validate().is_err() {
                return Ok(None);
            }
            let key = format!("{} {}", E::NAME, serde_json::to_string(&cfg)?);
            Ok(Some((Estimate::of_macs(cfg.macs()), key)))
        }
    }
    command
        .visit_config(&mut Estimator)
        .and_then(|r| r.ok().flatten())
}

/// The refusal of a run of `command` estimated at `seconds`, over `limit`: one line naming the
/// server's flag and the command's flags to reduce.
pub fn over_limit_message(command: &str, seconds: f64, limit: f64) -> String {
    let flags = reduce_flags(command);
    let reduce = match flags.split_last() {
        Some((last, [])) => format!("; reduce {last}"),
        Some((last, rest)) => format!("; reduce {} or {last}", rest.join(", ")),
        None => String::new(),
    };
    format!(
        "this run is about {} of work here; the server takes runs of at most {} (bn-lab serve --max-seconds){reduce}",
        seconds_text(seconds),
        seconds_text(limit)
    )
}

/// `0.25 s`, `8.2 s`, `12 s`, `1.2e5 s`: two digits or so, for an estimate.
fn seconds_text(s: f64) -> String {
    if s.fract() == 0.0 && s < 1e5 {
        format!("{s:.0} s")
    } else if s < 1.0 {
        format!("{s:.2} s")
    } else if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 1e5 {
        format!("{:.0} s", s)
    } else {
        format!("{s:.1e} s")
    }
}

/// The flags of [`SIZE_FLAGS`] that `command` (a subcommand's name) has, at most four.
pub fn reduce_flags(command: &str) -> Vec<String> {
    let cli = Cli::command();
    let Some(sub) = cli.find_subcommand(command) else {
        return Vec::new();
    };
    let has = |flag: &str| {
        sub.get_arguments()
            .any(|a| a.get_long() == flag.strip_prefix("--"))
    };
    SIZE_FLAGS
        .iter()
        .filter(|f| has(f))
        .take(4)
        .map(|f| f.to_string())
        .collect()
}

/// A request let in: the key of its report and the estimate of its run.
#[derive(Clone, Debug)]
pub struct Admission {
    /// The key of its report in the cache ([`estimate`]), or its command line when the config
    /// is invalid (the run is then refused by the CLI's validation, and nothing is cached).
    pub key: String,
    pub estimate: Option<Estimate>,
}

impl App {
    /// Let `request` in or refuse it, before any work: a run estimated over `--max-seconds` is
    /// answered 400 naming the flags to reduce. Cheap (no allocation of the run's size): call it
    /// on the async threads, then [`App::report_for`] (or, for a run of its own,
    /// [`App::run_exclusive`]) with the admission.
    pub fn admit(&self, request: &Request) -> Result<Admission, Response> {
        let Some((estimate, key)) = estimate(&request.command) else {
            return Ok(Admission {
                key: request.line.clone(),
                estimate: None,
            });
        };
        if estimate.seconds > self.max_seconds {
            let message =
                over_limit_message(request.command.name(), estimate.seconds, self.max_seconds);
            return Err(error(StatusCode::BAD_REQUEST, &message));
        }
        Ok(Admission {
            key,
            estimate: Some(estimate),
        })
    }

    /// A request's `?args=` read ([`super::request::parse`], 400 naming the flag) and let in
    /// ([`App::admit`]): what every computing endpoint does first.
    pub fn read(&self, q: &super::ArgsQuery) -> Result<(Request, Admission), Response> {
        let request = super::request::parse(q.args.as_deref().unwrap_or(""))
            .map_err(|message| error(StatusCode::BAD_REQUEST, &message))?;
        let admission = self.admit(&request)?;
        Ok((request, admission))
    }

    /// Why `line` would be refused for its work ([`App::admit`]'s message), if it would.
    pub fn over_limit(&self, line: &str) -> Option<String> {
        let request = super::request::parse(line).ok()?;
        let (estimate, _) = estimate(&request.command)?;
        (estimate.seconds > self.max_seconds)
            .then(|| over_limit_message(request.command.name(), estimate.seconds, self.max_seconds))
    }

    /// The wall-clock time after which a running computation is stopped.
    pub fn backstop(&self) -> Duration {
        Duration::from_secs_f64(self.max_seconds * BACKSTOP)
    }
}

/// The places to compute in: one per core, and a bounded queue of computations waiting for one.
pub struct Slots {
    /// One permit per run computing at once.
    running: Arc<Semaphore>,
    /// One permit per computation admitted (computing or waiting for a core).
    places: Arc<Semaphore>,
    /// The permits of `running` and `places`.
    cores: usize,
    places_total: usize,
}

impl Slots {
    /// `cores` runs at once, `queue` more waiting.
    pub fn new(cores: usize, queue: usize) -> Slots {
        let (cores, places_total) = (cores.max(1), cores.max(1) + queue);
        Slots {
            running: Arc::new(Semaphore::new(cores)),
            places: Arc::new(Semaphore::new(places_total)),
            cores,
            places_total,
        }
    }

    /// A place in the queue, if one is free (else the caller answers [`busy`]). Dropping it
    /// frees the place.
    pub fn place(&self) -> Option<OwnedSemaphorePermit> {
        self.places.clone().try_acquire_owned().ok()
    }

    /// `(computing, waiting)`: the computations on a core now, and those holding a place in
    /// the queue without one (`GET /api/status`).
    pub fn load(&self) -> (usize, usize) {
        let running = self.cores - self.running.available_permits();
        let placed = self.places_total - self.places.available_permits();
        (running, placed.saturating_sub(running))
    }

    /// Wait for a core (holding a place). Dropping it frees the core.
    pub async fn core(&self) -> OwnedSemaphorePermit {
        self.running
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

/// 503 with `Retry-After: 1`: every core is computing and the queue is full.
pub fn busy() -> Response {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is busy: every core is computing and the queue is full (bn-lab serve --queue); retry in a second",
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::QUICK_RUNS;

    fn command(line: &str) -> Command {
        super::super::request::parse(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
    }

    #[test]
    fn every_quick_run_has_work_and_fits_the_default_limit() {
        for (name, quick) in QUICK_RUNS {
            let line = format!("{name} {quick}");
            let (estimate, key) = estimate(&command(&line)).expect("a quick run is valid");
            assert!(estimate.macs > 0.0, "{line}: {estimate:?}");
            assert!(
                estimate.seconds < crate::cli::DEFAULT_MAX_SECONDS,
                "{line}: {estimate:?}"
            );
            assert!(key.starts_with(&format!("{name} {{")), "{key}");
        }
    }

    #[test]
    fn the_key_is_the_config_not_the_spelling() {
        let key = |l: &str| estimate(&command(l)).expect("valid").1;
        assert_eq!(key("grad-norms --depth 50"), key("grad-norms   --depth=50"));
        assert_eq!(key("grad-norms"), key("grad-norms --seed 0 --depth 50"));
        assert_ne!(key("grad-norms --seed 1"), key("grad-norms --seed 0"));
    }

    #[test]
    fn the_refusal_names_the_server_flag_and_the_commands_flags() {
        let m = over_limit_message("grad-norms", 40.0, 5.0);
        assert_eq!(
            m,
            "this run is about 40 s of work here; the server takes runs of at most 5 s (bn-lab serve --max-seconds); reduce --depth, --width, --batch or --seeds"
        );
        assert!(over_limit_message("train", 9.0, 5.0).contains("--steps"));
        let m = over_limit_message("ics", 8.1868594176, 2.5);
        assert!(
            m.starts_with(
                "this run is about 8.2 s of work here; the server takes runs of at most 2.5 s"
            ),
            "{m}"
        );
        assert!(over_limit_message("ics", 0.123, 0.05).contains("about 0.12 s"));
    }

    #[test]
    fn more_work_is_estimated_longer() {
        let secs = |l: &str| estimate(&command(l)).expect("valid").0.seconds;
        assert!(secs("grad-norms --depth 400") > secs("grad-norms --depth 50"));
        assert!(secs("train --steps 4000") > secs("train --steps 400"));
        assert!(secs("theory --depth 400") > secs("theory --depth 50"));
    }
}
