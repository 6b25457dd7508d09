//! `GET /api/stream?args=...` of `bn-lab serve`: the events of a run in order (progress, partial
//! training losses, then the report, equal to `/api/run`'s), a refusal answered 400 before any
//! stream, and a client that disconnects freeing its slot (seen on `GET /api/status`). Through
//! the library: every training command hands out partial losses ([`RunOptions::partial`]),
//! about 200 steps per arm, without changing its report.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::Mutex;

use bn_lab::commands::RunOptions;

use crate::common;
use crate::server::{ANSWER_LIMIT, Server, encode, parse_answer};

/// `train`'s small run (its QUICK flags): 2 learning rates x 4 configurations, 30 steps.
const SHORT_TRAIN: &str = "train --depth 3 --width 8 --batch 8 --d-out 2 --n-train 64 --n-test 32 --steps 30 --eval-every 10 --diag-every 5 --lr 0.02,50";

/// A training run of minutes even in a release build (two arms of 100 000 steps), over the
/// server's default work limit: the tests that run it raise the limit ([`LONG_LIMIT`]).
pub(crate) const LONG_TRAIN: &str =
    "train --steps 100000 --lr 0.01 --configs off,on --eval-every 1000 --diag-every 1000";
/// `bn-lab serve`'s flags that let [`LONG_TRAIN`] in (an hour's limit).
const LONG_LIMIT: &[&str] = &["--max-seconds", "3600"];

/// One server-sent event: its name and data.
#[derive(Debug, Clone)]
struct SseEvent {
    name: String,
    data: String,
}

impl SseEvent {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event {} is not JSON ({e}): {}", self.name, self.data))
    }
}

/// The events of an event-stream body, in order (comments, such as keep-alives, skipped).
fn events(body: &str) -> Vec<SseEvent> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim_start().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                }
            }
            name.map(|name| SseEvent {
                name,
                data: data.join("\n"),
            })
        })
        .collect()
}

/// Open `/api/stream?args=ARGS` on `server` and send the request; the connection, unread.
pub(crate) fn open_stream(server: &Server, args: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("the server accepts");
    stream.set_read_timeout(Some(ANSWER_LIMIT)).unwrap();
    let head = format!(
        "GET /api/stream?args={} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
        encode(args),
        server.port
    );
    stream
        .write_all(head.as_bytes())
        .expect("the request is sent");
    stream
}

/// Read from `stream` until `raw` holds an event (or the answer ends); what was read.
pub(crate) fn read_first_event(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("the stream answers in time");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if n == 0 || text.contains("\nevent: ") || text.starts_with("event: ") {
            return text.into_owned();
        }
    }
}

/// The JSON without its timing fields (`seconds`, wherever they are).
fn without_timing(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("seconds");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

#[test]
fn stream_of_a_short_training_run_sends_progress_and_partial_losses_then_the_report() {
    let server = Server::start(&[]);
    let events = stream_events(&server, SHORT_TRAIN);
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let report_at = names.iter().position(|n| *n == "report");
    assert_eq!(
        report_at,
        Some(names.len() - 1),
        "the report ends it: {names:?}"
    );
    assert_eq!(names[0], "progress", "{names:?}");
    let done: Vec<u64> = events
        .iter()
        .filter(|e| e.name == "progress")
        .map(|e| e.json()["done"].as_u64().unwrap())
        .collect();
    assert!(
        done.windows(2).all(|w| w[0] < w[1]),
        "progress only grows: {done:?}"
    );
    let last_progress = events
        .iter()
        .rfind(|e| e.name == "progress")
        .unwrap()
        .json();
    assert_eq!(
        last_progress["done"], last_progress["total"],
        "the last progress is 100%"
    );
    let points: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.name == "partial")
        .flat_map(|e| e.json()["points"].as_array().unwrap().clone())
        .collect();
    assert!(
        !points.is_empty(),
        "partial losses before the report: {names:?}"
    );
    for p in &points {
        assert!(p["arm"].is_string() && p["step"].is_u64(), "{p}");
        assert!(p["loss"].is_f64() || p["loss"].is_null(), "{p}");
    }
    // 2 learning rates x 4 configurations, each its own curve.
    let arms: std::collections::BTreeSet<&str> =
        points.iter().map(|p| p["arm"].as_str().unwrap()).collect();
    assert_eq!(arms.len(), 8, "{arms:?}");
    assert!(arms.contains("BN on lr=0.02"), "{arms:?}");
    // The same run computed afresh by /api/run (a server that keeps no reports).
    let fresh = Server::start(&["--cache", "0"]);
    let run = fresh.get(&format!("/api/run?args={}", encode(SHORT_TRAIN)));
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.header("x-bn-lab-cache"), Some("miss"));
    let streamed = events[report_at.unwrap()].json();
    assert_eq!(streamed["command"], run.json()["command"]);
    assert_eq!(
        without_timing(streamed["report"].clone()),
        without_timing(run.json()["report"].clone())
    );
    // The stream's report is cached: /api/run and a second stream answer it at once.
    let hit = server.get(&format!("/api/run?args={}", encode(SHORT_TRAIN)));
    assert_eq!(hit.header("x-bn-lab-cache"), Some("hit"), "{}", hit.body);
    assert_eq!(hit.json(), streamed);
    let again = stream_events(&server, SHORT_TRAIN);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].name, "report");
    assert_eq!(again[0].json(), streamed);
}

/// The events of `/api/stream?args=ARGS` on `server`, read to the end (status 200 and
/// `text/event-stream` checked).
fn stream_events(server: &Server, args: &str) -> Vec<SseEvent> {
    let mut stream = open_stream(server, args);
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("the stream ends in time");
    let answer = parse_answer(&raw);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("text/event-stream"));
    events(&answer.body)
}

#[test]
fn stream_refuses_a_file_flag_and_a_run_over_the_limit_with_400_before_any_stream() {
    let server = Server::start(&[]);
    let a = server.get(&format!(
        "/api/stream?args={}",
        encode("train --steps 5 --out /tmp/x")
    ));
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let message = a.json()["error"].as_str().unwrap().to_string();
    assert!(message.contains("--out"), "{message}");
    // Over the work limit: refused before any work, naming the flags to reduce.
    let a = server.get(&format!("/api/stream?args={}", encode(LONG_TRAIN)));
    assert_eq!(a.status, 400, "{}", a.body);
    let message = a.json()["error"].as_str().unwrap().to_string();
    assert!(message.contains("--steps"), "{message}");
}

/// `GET /api/status` as `(running, waiting)`.
fn status(server: &Server) -> (u64, u64) {
    let v = server.get("/api/status").json();
    (
        v["running"].as_u64().unwrap(),
        v["waiting"].as_u64().unwrap(),
    )
}

#[test]
fn closing_a_stream_cancels_its_run_and_frees_its_slot() {
    let server = Server::start(LONG_LIMIT);
    // Two long runs: both computing on a 2-core machine, or one waiting on a single core.
    let mut streams: Vec<TcpStream> = (0..2).map(|_| open_stream(&server, LONG_TRAIN)).collect();
    for s in &mut streams {
        let first = read_first_event(s);
        assert!(first.contains("event: progress"), "{first}");
    }
    let (running, waiting) = status(&server);
    assert!(
        running >= 1 && running + waiting == 2,
        "{running} running, {waiting} waiting"
    );
    let closed = Instant::now();
    for s in streams {
        let _ = s.shutdown(Shutdown::Both);
    }
    // Without cancellation the runs would go on for minutes.
    let limit = Duration::from_secs(20);
    loop {
        let (running, waiting) = status(&server);
        if running == 0 && waiting == 0 {
            break;
        }
        assert!(
            closed.elapsed() < limit,
            "still {running} running and {waiting} waiting {limit:?} after the clients left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("slots freed {:?} after the disconnect", closed.elapsed());
    let a = server.get(&format!("/api/run?args={}", encode("theory --depth 5")));
    assert_eq!(a.status, 200, "{}", a.body);
}

/// Run `args` in memory with a partial sink; its JSON and the points by arm, in arrival order.
fn run_with_partials(args: &[&str]) -> (String, BTreeMap<String, Vec<(usize, f64)>>) {
    let points = Mutex::new(BTreeMap::<String, Vec<(usize, f64)>>::new());
    let sink = |arm: &str, step: usize, loss: f64| {
        let mut p = points.lock().unwrap();
        p.entry(arm.to_string()).or_default().push((step, loss));
    };
    let options = RunOptions {
        in_memory: true,
        quiet: true,
        partial: Some(&sink),
        ..RunOptions::default()
    };
    let record = common::parse(args).run_in(&options).unwrap().unwrap();
    (record.json_text.unwrap(), points.into_inner().unwrap())
}

/// The JSON of `args` computed in memory without partial results.
fn run_plain(args: &[&str]) -> String {
    let options = RunOptions {
        in_memory: true,
        quiet: true,
        ..RunOptions::default()
    };
    let record = common::parse(args).run_in(&options).unwrap().unwrap();
    record.json_text.unwrap()
}

/// Without the timing fields.
fn plain_json(text: &str) -> serde_json::Value {
    without_timing(serde_json::from_str(text).unwrap())
}

#[test]
fn every_training_command_hands_out_partial_losses_per_arm_without_changing_its_report() {
    let training = [
        "train",
        "nonlinearity",
        "sweep",
        "landscape",
        "ics",
        "noisy-bn",
        "input-shift",
    ];
    for name in training {
        let args = common::quick(name, &[]);
        let (json, points) = run_with_partials(&args);
        assert!(!points.is_empty(), "{name}: no partial results");
        for (arm, p) in &points {
            assert!(!arm.is_empty(), "{name}: an arm without a key");
            assert_eq!(p[0].0, 0, "{name} {arm}: the curve starts at step 0: {p:?}");
        }
        assert_eq!(
            plain_json(&json),
            plain_json(&run_plain(&args)),
            "{name}: partial results changed the report"
        );
    }
}

#[test]
fn partial_losses_keep_at_most_about_200_evenly_spaced_steps_per_arm_and_the_last() {
    let steps = 1000;
    let args = [
        "train",
        "--depth",
        "2",
        "--width",
        "8",
        "--batch",
        "8",
        "--d-out",
        "2",
        "--n-train",
        "64",
        "--n-test",
        "32",
        "--steps",
        "1000",
        "--eval-every",
        "100",
        "--diag-every",
        "100",
        "--lr",
        "0.02",
        "--configs",
        "off,on",
    ];
    let (_, points) = run_with_partials(&args);
    let arms: Vec<&String> = points.keys().collect();
    assert_eq!(arms, ["BN off lr=0.02", "BN on lr=0.02"]);
    for (arm, p) in &points {
        let steps_seen: Vec<usize> = p.iter().map(|(s, _)| *s).collect();
        assert!(
            steps_seen.len() <= 201,
            "{arm}: {} points",
            steps_seen.len()
        );
        assert!(
            steps_seen.len() >= 150,
            "{arm}: {} points",
            steps_seen.len()
        );
        assert!(
            steps_seen.windows(2).all(|w| w[0] < w[1]),
            "{arm}: {steps_seen:?}"
        );
        assert_eq!(steps_seen.first(), Some(&0));
        assert_eq!(
            steps_seen.last(),
            Some(&(steps - 1)),
            "{arm}: the last step"
        );
        let gaps: Vec<usize> = steps_seen.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g == 5 || g == 4), "{arm}: {gaps:?}");
        assert!(p.iter().all(|(_, l)| l.is_finite()), "{arm}");
    }
}

#[test]
fn a_stream_open_at_sigterm_ends_with_an_error_and_the_server_stops_within_seconds() {
    let mut server = Server::start(LONG_LIMIT);
    let mut stream = open_stream(&server, LONG_TRAIN);
    let first = read_first_event(&mut stream);
    assert!(first.contains("event: progress"), "{first}");
    let status = server
        .stop_within(Duration::from_secs(10))
        .expect("bn-lab serve stops within 10 s of SIGTERM with a stream open");
    assert!(status.success(), "exit status {status:?}");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("event: error") && rest.contains("the server is stopping"),
        "{rest}"
    );
}
