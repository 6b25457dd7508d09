//! The contract of `bn-lab serve`'s `/api/run`: status codes, reports equal to the CLI's JSON,
//! refusals that name the flag and write nothing, the Host check and size limits, the work
//! limit, the queue, identical requests computed once, a client that leaves freeing its place,
//! and a load test (30 clients x 5 requests). Every server is a child process on 127.0.0.1:0.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::scratch_dir;
use crate::server::{Answer, Server, encode, request_head, try_request};

/// `GET /api/run?args=line`.
fn run(server: &Server, line: &str) -> Answer {
    server.get(&format!("/api/run?args={}", encode(line)))
}

/// The files in `dir`, recursively (for "nothing was written").
fn files_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the scratch dir exists") {
        let path = entry.expect("a readable entry").path();
        out.push(path.display().to_string());
        if path.is_dir() {
            out.extend(files_in(&path));
        }
    }
    out
}

/// `v` without its timing fields (`seconds`, at any depth).
fn without_timing(mut v: serde_json::Value) -> serde_json::Value {
    match &mut v {
        serde_json::Value::Object(map) => {
            map.remove("seconds");
            for value in map.values_mut() {
                *value = without_timing(value.take());
            }
        }
        serde_json::Value::Array(items) => {
            for value in items.iter_mut() {
                *value = without_timing(value.take());
            }
        }
        _ => {}
    }
    v
}

/// The JSON the CLI writes for `line` into `out/<stem>.json`.
fn cli_json(line: &str, out: &Path, stem: &str) -> serde_json::Value {
    let status = Command::new(env!("CARGO_BIN_EXE_bn-lab"))
        .args(line.split_whitespace())
        .arg("--out")
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("bn-lab runs");
    assert!(status.success(), "{line}: {status:?}");
    let text = std::fs::read_to_string(out.join(format!("{stem}.json"))).expect("the JSON");
    serde_json::from_str(&text).expect("the CLI writes JSON")
}

#[test]
fn the_report_is_the_clis_json_and_nothing_is_written() {
    let dir = scratch_dir("serve-api-report-cwd");
    let out = scratch_dir("serve-api-report-cli");
    let server = Server::start_in(&dir, &[]);
    let commands = [
        (
            "grad-norms --depth 4,12 --width 16 --batch 32 --seeds 2",
            "grad_norms",
        ),
        (
            "theory --acts tanh,relu --batch 4,9 --depth 7 --width 32",
            "theory",
        ),
        (
            "train --depth 3 --width 8 --batch 8 --d-out 2 --n-train 64 --n-test 32 --steps 30 --eval-every 10 --lr 0.02",
            "train",
        ),
        (
            "shattered --depth 1,3 --width 8 --points 32 --seeds 2 --max-lag 8",
            "shattered",
        ),
    ];
    for (i, (line, stem)) in commands.iter().enumerate() {
        let a = run(&server, line);
        assert_eq!(a.status, 200, "{line}: {}", a.body);
        let v = a.json();
        assert_eq!(v["command"], *line);
        let cli = cli_json(line, &out.join(i.to_string()), stem);
        assert_eq!(
            without_timing(v["report"].clone()),
            without_timing(cli),
            "{line}: the server's report differs from the CLI's JSON"
        );
    }
    assert_eq!(
        files_in(&dir),
        Vec::<String>::new(),
        "the server wrote files"
    );
}

#[test]
fn refusals_name_the_flag_and_write_nothing() {
    let dir = scratch_dir("serve-api-refusals");
    let server = Server::start_in(&dir, &["--max-seconds", "1"]);
    let cases = [
        ("grad-norms --out x", "--out"),
        ("grad-norms --json", "--json"),
        ("grad-norms --save-net", "--save-net"),
        ("train --task mnist:data", "--task mnist:data"),
        ("run experiments/x.toml", "`run`"),
        ("reproduce", "`reproduce`"),
        ("grad-norms --depth 0", "--depth"),
        ("grad-norms --widht 3", "--widht"),
        ("grad-norms --depth 300 --seeds 20", "--max-seconds"),
        ("train --steps 100000", "--steps"),
    ];
    for (line, flag) in cases {
        let a = run(&server, line);
        assert_eq!(a.status, 400, "{line}: {}", a.body);
        let message = a.json()["error"].as_str().expect("an error").to_string();
        assert!(
            message.contains(flag),
            "{line}: {message:?} does not name {flag}"
        );
        assert!(!message.contains('\n'), "{line}: not one line: {message:?}");
    }
    let limit = run(&server, "grad-norms --depth 300 --seeds 20").json();
    let limit = limit["error"].as_str().expect("an error");
    assert!(limit.starts_with("this run is about "), "{limit}");
    assert!(limit.contains("reduce --depth"), "{limit}");
    assert_eq!(run(&server, "theory --depth 5").status, 200);
    assert_eq!(
        files_in(&dir),
        Vec::<String>::new(),
        "the server wrote files"
    );
}

#[test]
fn status_codes_of_paths_hosts_and_sizes() {
    let server = Server::start(&[]);
    let port = server.port;
    assert_eq!(server.get("/nowhere").status, 404);
    assert_eq!(server.get("/api/run").status, 400, "no args");
    assert_eq!(run(&server, "frobnicate").status, 400);
    let local = format!("localhost:{port}");
    let ok = server.request("/api/run?args=theory%20--depth%203", &[("Host", &local)]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let foreign = format!("evil.example:{port}");
    let a = server.request("/api/run?args=theory", &[("Host", &foreign)]);
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.header("access-control-allow-origin").is_none());
    assert_eq!(server.request("/", &[]).status, 403, "no Host");
    let long = format!("/api/run?args=theory{}", "%20".repeat(2000));
    assert_eq!(server.get(&long).status, 414);
    let host = format!("127.0.0.1:{port}");
    let big = "x".repeat(9000);
    let a = server.request("/", &[("Host", &host), ("X-Big", &big)]);
    assert_eq!(a.status, 431, "{}", a.body);
}

/// A client thread per line, each asking for its run.
fn in_threads(port: u16, lines: Vec<String>) -> Vec<std::thread::JoinHandle<Answer>> {
    lines
        .into_iter()
        .map(|line| {
            std::thread::spawn(move || {
                let path = format!("/api/run?args={}", encode(&line));
                let host = format!("127.0.0.1:{port}");
                try_request(port, &path, &[("Host", &host)]).expect("an answer")
            })
        })
        .collect()
}

/// A grad-norms run of about a second in the test build (with `--seeds 6`; under the default
/// work limit up to `--seeds 40`).
const SLOW: &str = "grad-norms --depth 60 --norm batch";

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let server = Server::start(&["--queue", "0", "--cache", "0"]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slow: Vec<String> = (0..cores)
        .map(|i| format!("{SLOW} --seeds 6 --seed {i}"))
        .collect();
    let running = in_threads(server.port, slow);
    std::thread::sleep(Duration::from_millis(300));
    let a = run(&server, "theory --depth 4");
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("1"));
    assert!(a.json()["error"].as_str().unwrap().contains("--queue"));
    for t in running {
        assert_eq!(t.join().expect("the client thread").status, 200);
    }
    assert_eq!(run(&server, "theory --depth 4").status, 200, "places freed");
}

#[test]
fn identical_requests_are_computed_once() {
    let server = Server::start(&[]);
    let line = format!("{SLOW} --seeds 6 --seed 7");
    let answers: Vec<Answer> = in_threads(server.port, vec![line.clone(); 3])
        .into_iter()
        .map(|t| t.join().expect("the client thread"))
        .collect();
    let mut sources: Vec<&str> = answers
        .iter()
        .map(|a| a.header("x-bn-lab-cache").expect("the cache header"))
        .collect();
    sources.sort();
    assert_eq!(
        sources.iter().filter(|s| **s == "miss").count(),
        1,
        "{sources:?}"
    );
    assert!(
        sources
            .iter()
            .all(|s| ["miss", "shared", "hit"].contains(s))
    );
    let report = |a: &Answer| a.json()["report"].clone();
    assert!(answers.iter().all(|a| report(a) == report(&answers[0])));
    // The same config spelt otherwise (seed 0 given or left out) is the same report.
    let first = run(&server, "grad-norms --depth 6 --width 16 --batch 16");
    assert_eq!(first.header("x-bn-lab-cache"), Some("miss"));
    let again = run(
        &server,
        "grad-norms   --depth=6 --batch 16 --width 16 --seed 0",
    );
    assert_eq!(
        again.header("x-bn-lab-cache"),
        Some("hit"),
        "{}",
        again.body
    );
    assert_eq!(report(&first), report(&again));
    assert_ne!(first.json()["command"], again.json()["command"]);
}

#[test]
fn a_client_that_leaves_frees_its_place() {
    let server = Server::start(&["--queue", "0", "--cache", "0"]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let host = format!("127.0.0.1:{}", server.port);
    let mut gone = Vec::new();
    for i in 0..cores {
        let path = format!(
            "/api/run?args={}",
            encode(&format!("{SLOW} --seeds 30 --seed {i}"))
        );
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connects");
        s.write_all(request_head(&path, &[("Host", &host)]).as_bytes())
            .expect("sent");
        gone.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        run(&server, "theory --depth 5").status,
        503,
        "every place taken"
    );
    drop(gone);
    let start = Instant::now();
    loop {
        let a = run(&server, "theory --depth 5");
        if a.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the places of clients that left are still taken: {}",
            a.body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The peak resident memory of process `pid` in kB (`VmHWM` of /proc/PID/status).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc is there");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in kB")
}

#[test]
fn thirty_clients_moving_a_slider_are_all_answered() {
    const CLIENTS: usize = 30;
    const REQUESTS: usize = 5;
    let server = Server::start(&[]);
    let before = peak_rss_kb(server.child.id());
    let port = server.port;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            std::thread::spawn(move || {
                let host = format!("127.0.0.1:{port}");
                (0..REQUESTS)
                    .map(|r| {
                        let depth = 10 + (c * 7 + r * 13) % 51;
                        let path = format!("/api/run?args=grad-norms%20--depth%20{depth}");
                        let start = Instant::now();
                        let a = try_request(port, &path, &[("Host", &host)]);
                        (a.map(|a| a.status), start.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = clients
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect();
    let after = peak_rss_kb(server.child.id());
    let mut latencies: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    let count = |s: u16| {
        results
            .iter()
            .filter(|(a, _)| a.as_ref().ok() == Some(&s))
            .count()
    };
    println!(
        "load: {} requests, {} x 200, {} x 503; latency median {:?}, p95 {:?}; peak RSS {} MB before, {} MB after",
        results.len(),
        count(200),
        count(503) + count(429),
        at(0.5),
        at(0.95),
        before / 1024,
        after / 1024
    );
    for (a, _) in &results {
        match a {
            Ok(200 | 429 | 503) => {}
            other => panic!("an answer other than 200, 429 or 503: {other:?}"),
        }
    }
    assert!(count(200) > 0, "nothing was computed");
    assert!(after < 1024 * 1024, "peak RSS {after} kB is over 1 GB");
}
