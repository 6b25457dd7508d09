//! Reports shared between identical requests: a computation running for a key is joined by every
//! request for the same key (one run, many answers), and the reports of recent runs are kept in a
//! bounded cache, least recently used dropped first ([`ReportCache`]).
//!
//! Sound because a report is a function of its command's config: seeds are in the config (an
//! absent `--seed` is seed 0, recorded as such), and the runs are deterministic whatever the
//! number of threads. The key is the experiment and its config as JSON ([`super::limits::estimate`]).
//!
//! Each computation runs in a task of its own, not in a request's handler: the handlers only
//! wait for its result, each holding a [`Waiter`]. A handler dropped (its client went away)
//! drops its waiter; when the last waiter of a computation is gone, the computation is cancelled
//! (it stops at its next progress report, or leaves the queue at once) and forgotten, so a later
//! identical request starts afresh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};

use super::limits::{Admission, BACKSTOP, busy};
use super::request::{self, Failure, Request};
use super::{App, error};

/// Bytes of report text kept at most.
pub const CACHE_BYTES: usize = 64 << 20;

/// A finished run: its report (the CLI's JSON, compact) and the seconds it computed.
#[derive(Clone, Debug)]
pub struct Computed {
    pub report: Arc<str>,
    pub seconds: f64,
}

/// How a computation ended, as every waiter sees it: the report, or the status and message to
/// answer.
pub type Outcome = Result<Computed, (StatusCode, String)>;

/// Where an answer came from (the `X-Bn-Lab-Cache` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The cache of recent reports: no computation.
    Hit,
    /// An identical computation already running: this request waited for it.
    Shared,
    /// A computation of its own.
    Miss,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hit => "hit",
            Source::Shared => "shared",
            Source::Miss => "miss",
        }
    }
}

/// Recent reports by key, at most `max_entries` and [`CACHE_BYTES`] of text; the least recently
/// used goes first.
pub struct ReportCache {
    entries: HashMap<String, (Computed, u64)>,
    max_entries: usize,
    bytes: usize,
    clock: u64,
}

impl ReportCache {
    pub fn new(max_entries: usize) -> ReportCache {
        ReportCache {
            entries: HashMap::new(),
            max_entries,
            bytes: 0,
            clock: 0,
        }
    }

    /// The report kept for `key`, now the most recently used.
    pub fn get(&mut self, key: &str) -> Option<Computed> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(c, used)| {
            *used = clock;
            c.clone()
        })
    }

    /// Keep `computed` for `key`, dropping the least recently used reports beyond the bounds.
    /// A report larger than the byte bound on its own is not kept.
    pub fn put(&mut self, key: String, computed: Computed) {
        let size = key.len() + computed.report.len();
        if self.max_entries == 0 || size > CACHE_BYTES {
            return;
        }
        self.clock += 1;
        if let Some((old, _)) = self.entries.insert(key.clone(), (computed, self.clock)) {
            self.bytes -= key.len() + old.report.len();
        }
        self.bytes += size;
        while self.entries.len() > self.max_entries || self.bytes > CACHE_BYTES {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
                .expect("over a bound, so not empty");
            let (gone, _) = self.entries.remove(&oldest).expect("just found");
            self.bytes -= oldest.len() + gone.report.len();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys and reports kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One computation and the requests waiting for it.
pub struct Flight {
    /// Set when nobody waits any more: the run stops at its next progress report.
    cancel: AtomicBool,
    /// Wakes the task while it waits for a core, when nobody waits any more.
    abandoned: Notify,
    outcome: watch::Receiver<Option<Outcome>>,
}

/// What the handlers share about computations: the running ones by key (with their number of
/// waiters) and the cache of finished ones, under one lock so that a request sees a key either
/// running or cached, never neither in between.
pub struct Shared {
    running: HashMap<String, (Arc<Flight>, usize)>,
    pub cache: ReportCache,
}

impl Shared {
    pub fn new(cache_entries: usize) -> Shared {
        Shared {
            running: HashMap::new(),
            cache: ReportCache::new(cache_entries),
        }
    }
}

/// A request waiting for a computation. Dropped (the handler's future is dropped when its client
/// goes away), it leaves; the last to leave a running computation cancels it.
pub struct Waiter {
    app: Arc<App>,
    key: String,
    flight: Arc<Flight>,
    /// Whether the flight is in `Shared::running` (a run of its own is not: it has one waiter).
    listed: bool,
    outcome: watch::Receiver<Option<Outcome>>,
}

impl Waiter {
    /// The computation's outcome.
    pub async fn outcome(&mut self) -> Outcome {
        match self.outcome.wait_for(Option::is_some).await {
            Ok(v) => v.clone().expect("waited for Some"),
            Err(_) => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "the run ended without a report".into(),
            )),
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.outcome.borrow().is_some() {
            return;
        }
        if !self.listed {
            self.flight.cancel.store(true, Ordering::Relaxed);
            self.flight.abandoned.notify_one();
            return;
        }
        let mut shared = self.app.shared();
        let Some((flight, waiters)) = shared.running.get_mut(&self.key) else {
            return;
        };
        if !Arc::ptr_eq(flight, &self.flight) {
            return;
        }
        *waiters -= 1;
        if *waiters == 0 {
            shared.running.remove(&self.key);
            self.flight.cancel.store(true, Ordering::Relaxed);
            self.flight.abandoned.notify_one();
        }
    }
}

/// The work of a computation: given the check that says when to stop, the report's JSON text.
pub type Work = Box<dyn FnOnce(&(dyn Fn() -> bool + Sync)) -> Result<String, Failure> + Send>;

impl App {
    /// The shared state, locked (never held across an `.await`).
    pub(super) fn shared(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The report kept for `key`, if any.
    pub fn cached(&self, key: &str) -> Option<Computed> {
        self.shared().cache.get(key)
    }

    /// The report of an admitted `request` ([`App::admit`]): from the cache, or from an identical
    /// computation already running (joined, not repeated), or computed in a place of its own (a
    /// 503 from [`busy`] when there is none). Computing happens in a task of its own; dropping
    /// this future leaves it, and the last request to leave cancels it.
    pub async fn report_for(
        self: &Arc<Self>,
        request: Request,
        admission: Admission,
    ) -> Result<(Computed, Source), Response> {
        let cacheable = admission.estimate.is_some();
        let (mut waiter, source) = {
            let mut shared = self.shared();
            if let Some(c) = shared.cache.get(&admission.key) {
                return Ok((c, Source::Hit));
            }
            if let Some((flight, waiters)) = shared.running.get_mut(&admission.key) {
                *waiters += 1;
                let waiter = Waiter {
                    app: self.clone(),
                    key: admission.key.clone(),
                    outcome: flight.outcome.clone(),
                    flight: flight.clone(),
                    listed: true,
                };
                (waiter, Source::Shared)
            } else {
                let place = self.slots.place().ok_or_else(busy)?;
                let work: Work =
                    Box::new(move |cancelled| request::compute(request, cancelled, &|_, _| {}));
                let waiter = self.launch(&mut shared, admission.key, place, work, cacheable);
                (waiter, Source::Miss)
            }
        };
        waiter
            .outcome()
            .await
            .map(|c| (c, source))
            .map_err(|(status, message)| error(status, &message))
    }

    /// Run `work` (for example [`request::compute`] with a progress callback that feeds a
    /// stream) in a place of its own, not shared with other requests; its report is cached under
    /// `admission.key` when it succeeds. Answers 503 ([`busy`]) when the queue is full. Dropping
    /// the returned [`Waiter`] cancels the run.
    pub fn run_exclusive(
        self: &Arc<Self>,
        admission: Admission,
        work: Work,
    ) -> Result<Waiter, Response> {
        let place = self.slots.place().ok_or_else(busy)?;
        let mut shared = self.shared();
        let mut waiter = self.launch(&mut shared, admission.key, place, work, false);
        waiter.listed = false;
        drop(shared);
        Ok(waiter)
    }

    /// Start a computation of `work` holding `place` (listed in `shared.running` under `key`
    /// when `share`): it waits for a core, runs on a blocking thread with the backstop and the
    /// cancellation checks, then caches its report and tells its waiters.
    fn launch(
        self: &Arc<Self>,
        shared: &mut Shared,
        key: String,
        place: OwnedSemaphorePermit,
        work: Work,
        share: bool,
    ) -> Waiter {
        let (tx, rx) = watch::channel(None);
        let flight = Arc::new(Flight {
            cancel: AtomicBool::new(false),
            abandoned: Notify::new(),
            outcome: rx.clone(),
        });
        if share {
            shared.running.insert(key.clone(), (flight.clone(), 1));
        }
        let app = self.clone();
        let (task_flight, task_key) = (flight.clone(), key.clone());
        tokio::spawn(async move {
            let outcome = app.compute(&task_flight, place, work).await;
            let mut shared = app.shared();
            let listed = shared
                .running
                .get(&task_key)
                .is_some_and(|(f, _)| Arc::ptr_eq(f, &task_flight));
            if listed {
                shared.running.remove(&task_key);
            }
            // Every report is cached, a stream's too: it is the same function of the config.
            if let Ok(c) = &outcome {
                shared.cache.put(task_key, c.clone());
            }
            // Under the lock: a request now finds the report cached, or this flight gone.
            let _ = tx.send(Some(outcome));
        });
        Waiter {
            app: self.clone(),
            key,
            flight,
            listed: share,
            outcome: rx,
        }
    }

    /// Wait for a core (or for every waiter to leave), then run `work` on a blocking thread.
    async fn compute(
        &self,
        flight: &Arc<Flight>,
        place: OwnedSemaphorePermit,
        work: Work,
    ) -> Outcome {
        let gone = || {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the request was cancelled".to_string(),
            )
        };
        let core = tokio::select! {
            core = self.slots.core() => core,
            () = flight.abandoned.notified() => return Err(gone()),
        };
        if flight.cancel.load(Ordering::Relaxed) {
            return Err(gone());
        }
        let start = Instant::now();
        let deadline = start + self.backstop();
        let (flight2, stopping) = (flight.clone(), self.stopping.clone());
        let result = tokio::task::spawn_blocking(move || {
            let cancelled = || {
                flight2.cancel.load(Ordering::Relaxed)
                    || stopping.load(Ordering::Relaxed)
                    || Instant::now() > deadline
            };
            work(&cancelled)
        })
        .await;
        drop((core, place));
        let seconds = start.elapsed().as_secs_f64();
        match result {
            Ok(Ok(report)) => Ok(Computed {
                report: report.into(),
                seconds,
            }),
            Ok(Err(Failure::Refused(message))) => Err((StatusCode::BAD_REQUEST, message)),
            Ok(Err(Failure::Cancelled)) if self.stopping.load(Ordering::Relaxed) => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the run was cancelled: the server is stopping".into(),
            )),
            Ok(Err(Failure::Cancelled)) if Instant::now() > deadline => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the run was stopped after {seconds:.0} s, {BACKSTOP} times the server's limit of {} s (bn-lab serve --max-seconds): the machine is busy or the estimate was low; reduce the run",
                    self.max_seconds
                ),
            )),
            Ok(Err(Failure::Cancelled)) => Err(gone()),
            Ok(Err(Failure::Failed(message))) => Err((StatusCode::INTERNAL_SERVER_ERROR, message)),
            Err(e) => Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the run failed: {e}"),
            )),
        }
    }
}

/// A new lock around [`Shared`].
pub fn shared_state(cache_entries: usize) -> Mutex<Shared> {
    Mutex::new(Shared::new(cache_entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(n: usize) -> Computed {
        Computed {
            report: "x".repeat(n).into(),
            seconds: 0.0,
        }
    }

    #[test]
    fn the_cache_drops_the_least_recently_used_beyond_its_entries() {
        let mut c = ReportCache::new(2);
        c.put("a".into(), report(1));
        c.put("b".into(), report(1));
        assert!(c.get("a").is_some());
        c.put("c".into(), report(1));
        assert!(c.get("b").is_none(), "b was the least recently used");
        assert!(c.get("a").is_some() && c.get("c").is_some());
        assert_eq!(c.len(), 2);
        assert_eq!(c.bytes(), 4);
    }

    #[test]
    fn the_cache_keeps_within_its_bytes() {
        let mut c = ReportCache::new(64);
        c.put("big".into(), report(CACHE_BYTES + 1));
        assert!(c.is_empty(), "a report over the bound alone is not kept");
        for k in ["a", "b", "c"] {
            c.put(k.into(), report(CACHE_BYTES / 3));
        }
        assert!(c.bytes() <= CACHE_BYTES);
        assert!(c.get("a").is_none() && c.get("c").is_some());
        c.put("c".into(), report(1));
        assert_eq!(
            c.bytes(),
            c.entries
                .iter()
                .map(|(k, (v, _))| k.len() + v.report.len())
                .sum::<usize>()
        );
    }
}
