//! `GET /api/stream?args=...`: a run as server-sent events (`text/event-stream`).
//!
//! ```text
//! event: progress   data: {"done": <u64>, "total": <u64>}         at most every 100 ms, first and last
//! event: partial    data: {"points": [{"arm": "...", "step": n, "loss": x or null}, ...]}
//!                   (training commands: about 200 steps per arm, batched, at most every 100 ms)
//! event: report     data: {"command": "...", "report": {...}}      as /api/run's 200; then the end
//! event: error      data: {"error": "..."}                         a refusal or failure; then the end
//! ```
//!
//! A command refused before any work (its parse, the work limit) is answered 400 like
//! `/api/run`, and a full queue 503 with `Retry-After`, not a stream. A report in the cache is
//! streamed at once (a `report` event alone). Otherwise the run has a place of its own
//! ([`App::run_exclusive`]: it is not shared with identical requests, since its events are this
//! client's) and computes on a blocking thread, sending its events into a bounded channel whose
//! receiver is the response body. When the client goes away, hyper drops the body, the channel
//! closes, and the run stops at its next progress report ([`super::request::compute`]'s
//! cancellation), freeing its core and its place.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::cache::{Waiter, Work};
use super::request::{self, Failure, Request};
use super::{App, ArgsQuery};

/// The shortest time between two `progress` (or two `partial`) events: at most 10 a second.
pub const EVENT_INTERVAL: Duration = Duration::from_millis(100);
/// Events the channel holds before the run waits for the client to read.
const CHANNEL_EVENTS: usize = 64;

/// `GET /api/stream?args=...`.
pub async fn api_stream(State(app): State<Arc<App>>, Query(q): Query<ArgsQuery>) -> Response {
    let (request, admission) = match app.read(&q) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let line = request.line.clone();
    let (tx, rx) = mpsc::channel(CHANNEL_EVENTS);
    let body = Sse::new(ReceiverStream::new(rx).map(Ok::<Event, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response();
    if let Some(cached) = app.cached(&admission.key) {
        let _ = tx.try_send(report_event(&line, &cached.report));
        return body;
    }
    let sender = tx.clone();
    let work: Work = Box::new(move |cancelled| stream_run(request, &sender, cancelled));
    match app.run_exclusive(admission, work) {
        Ok(waiter) => {
            tokio::spawn(end_stream(waiter, line, tx));
            body
        }
        Err(refusal) => refusal,
    }
}

/// Wait for the run's outcome and end the stream with `report` or `error`; if the client
/// leaves first, drop `waiter`, which cancels the run (or takes it out of the queue).
async fn end_stream(mut waiter: Waiter, line: String, tx: mpsc::Sender<Event>) {
    let outcome = tokio::select! {
        outcome = waiter.outcome() => outcome,
        () = tx.closed() => return,
    };
    let event = match outcome {
        Ok(computed) => report_event(&line, &computed.report),
        Err((_, message)) => error_event(&message),
    };
    let _ = tx.send(event).await;
}

/// `GET /api/status`: `{"running": n, "waiting": m}`, the computations on a core now and those
/// waiting for one.
pub async fn api_status(State(app): State<Arc<App>>) -> Response {
    let (running, waiting) = app.slots.load();
    axum::Json(serde_json::json!({ "running": running, "waiting": waiting })).into_response()
}

/// `event: report` with `{"command": line, "report": report}`, the body of `/api/run`'s 200.
fn report_event(line: &str, report: &str) -> Event {
    Event::default()
        .event("report")
        .data(super::report_body(line, report))
}

/// `event: error` with `{"error": message}`.
fn error_event(message: &str) -> Event {
    Event::default()
        .event("error")
        .data(super::error_body(message))
}

/// Compute `request` on this (blocking) thread, sending its progress and partial results to
/// `tx` through a [`Throttle`]; cancelled when the client is gone (`tx` closed) or `cancelled()`
/// (the server is stopping, or the run is over its time).
fn stream_run(
    request: Request,
    tx: &mpsc::Sender<Event>,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<String, Failure> {
    let throttle = Mutex::new(Throttle::new(EVENT_INTERVAL));
    // Events are sent with the throttle held, so they leave in the order they were made (the
    // progress never goes back) even when several of the run's threads report at once.
    let report = |f: &dyn Fn(&mut Throttle) -> Vec<(&'static str, String)>| {
        let mut throttle = throttle.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, data) in f(&mut throttle) {
            // A closed channel is the client gone: the next progress report cancels the run.
            let _ = tx.blocking_send(Event::default().event(name).data(data));
        }
    };
    let cancelled = || tx.is_closed() || cancelled();
    let progress = |units: u64, total: u64| {
        report(&|t| t.progress(units, total, Instant::now()));
    };
    let partial = |arm: &str, step: usize, loss: f64| {
        report(&|t| t.partial(arm, step, loss, Instant::now()));
    };
    let result = request::compute_with(request, &cancelled, &progress, Some(&partial));
    if result.is_ok() {
        report(&Throttle::finish);
    }
    result
}

/// One point of a `partial` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub arm: String,
    pub step: usize,
    /// To 6 significant digits; `null` in the JSON when not finite (a diverged run).
    pub loss: f64,
}

/// The data of a `partial` event.
#[derive(Serialize)]
struct Points<'a> {
    points: &'a [Point],
}

/// What the run has reported since the last events, and when those went: `progress` and
/// `partial` events at most every `interval` (the first progress at once; [`Throttle::finish`]
/// sends what is left, so the last progress always goes).
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last_sent: Option<Instant>,
    /// The latest `(done, total)`, and the one last sent.
    progress: Option<(u64, u64)>,
    sent_progress: Option<(u64, u64)>,
    points: Vec<Point>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last_sent: None,
            progress: None,
            sent_progress: None,
            points: Vec::new(),
        }
    }

    /// The run has just done `units` more of its `total` (as [`crate::commands::RunOptions::progress`]
    /// tells): the events due at `now`, as `(name, data)`.
    pub fn progress(
        &mut self,
        units: u64,
        total: u64,
        now: Instant,
    ) -> Vec<(&'static str, String)> {
        let done = self.progress.map_or(0, |(d, _)| d).saturating_add(units);
        self.progress = Some((done, total));
        self.due(now)
    }

    /// A partial result: `arm`'s mini-batch loss at `step`; the events due at `now`.
    pub fn partial(
        &mut self,
        arm: &str,
        step: usize,
        loss: f64,
        now: Instant,
    ) -> Vec<(&'static str, String)> {
        self.points.push(Point {
            arm: arm.to_string(),
            step,
            loss: significant(loss),
        });
        self.due(now)
    }

    /// Everything not sent yet (the last progress, the last points).
    pub fn finish(&mut self) -> Vec<(&'static str, String)> {
        self.take()
    }

    fn due(&mut self, now: Instant) -> Vec<(&'static str, String)> {
        match self.last_sent {
            Some(t) if now.duration_since(t) < self.interval => Vec::new(),
            _ => {
                self.last_sent = Some(now);
                self.take()
            }
        }
    }

    fn take(&mut self) -> Vec<(&'static str, String)> {
        let mut events = Vec::new();
        if let Some((done, total)) = self.progress
            && self.sent_progress != self.progress
        {
            self.sent_progress = self.progress;
            events.push(("progress", format!(r#"{{"done":{done},"total":{total}}}"#)));
        }
        if !self.points.is_empty() {
            let points = Points {
                points: &self.points,
            };
            let data = serde_json::to_string(&points).expect("points serialise");
            self.points.clear();
            events.push(("partial", data));
        }
        events
    }
}

/// `x` to 6 significant digits (a curve on a page needs no more; the JSON is a third as long).
fn significant(x: f64) -> f64 {
    if x.is_finite() {
        format!("{x:.5e}").parse().unwrap_or(x)
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_sends_the_first_progress_at_once_then_at_most_every_interval_and_the_last() {
        let mut t = Throttle::new(Duration::from_millis(100));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut sent = t.progress(0, 1000, ms(0));
        for i in 1..=1000u64 {
            sent.extend(t.progress(1, 1000, ms(i)));
        }
        sent.extend(t.finish());
        // 1 s of reports every millisecond: the first, one per 100 ms, and the last.
        assert!(sent.len() <= 12, "{} events", sent.len());
        assert_eq!(
            sent[0],
            ("progress", r#"{"done":0,"total":1000}"#.to_string())
        );
        assert_eq!(
            sent.last().unwrap().1,
            r#"{"done":1000,"total":1000}"#.to_string()
        );
        assert!(t.finish().is_empty(), "nothing is sent twice");
    }

    #[test]
    fn throttle_batches_points_and_writes_a_non_finite_loss_as_null() {
        let mut t = Throttle::new(Duration::from_millis(100));
        let t0 = Instant::now();
        assert_eq!(t.progress(0, 10, t0).len(), 1);
        assert!(t.partial("BN on", 0, 1.500_000_123, t0).is_empty());
        assert!(t.partial("BN off", 0, f64::NAN, t0).is_empty());
        let sent = t.finish();
        assert_eq!(
            sent,
            vec![(
                "partial",
                r#"{"points":[{"arm":"BN on","step":0,"loss":1.5},{"arm":"BN off","step":0,"loss":null}]}"#
                    .to_string()
            )]
        );
    }
}
