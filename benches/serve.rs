//! A recompute of `grad-norms --depth 50` (the live page's first plot) through HTTP: a
//! `bn-lab serve --port 0` child of the bench build, and `GET /api/run` over loopback with the
//! cache defeated (each request a new `--seed`, so every answer is computed). Criterion times
//! the requests; then 60 more are timed one by one for the median and 95th percentile, printed
//! at the end (the figure in the README's "Live page").
//!
//! `cargo bench --bench serve`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

/// The server, stopped when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bn-lab"))
            .args(["serve", "--port", "0", "--queue", "64"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("bn-lab serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the address line");
        let port = line
            .trim()
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|p| p.strip_suffix('/'))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Server { child, port }
    }

    /// `GET /api/run?args=grad-norms --depth 50 --seed SEED`; panics unless 200 and computed.
    fn recompute(&self, seed: u64) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connects");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = format!(
            "GET /api/run?args=grad-norms%20--depth%2050%20--seed%20{seed} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        s.write_all(head.as_bytes()).expect("sent");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("an answer");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.contains("x-bn-lab-cache: miss"),
            "not computed: {text}"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn benches(c: &mut Criterion) {
    let server = Server::start();
    let seed = AtomicU64::new(1);
    let next = || seed.fetch_add(1, Ordering::Relaxed);
    server.recompute(next());
    c.bench_function(
        "serve: GET /api/run grad-norms --depth 50 (computed)",
        |b| b.iter(|| server.recompute(next())),
    );
    let mut times: Vec<Duration> = (0..60)
        .map(|_| {
            let start = Instant::now();
            server.recompute(next());
            start.elapsed()
        })
        .collect();
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "serve: grad-norms --depth 50 through HTTP, {} requests one at a time: median {:.1} ms, p95 {:.1} ms",
        times.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3
    );
}

criterion_group! {
    name = serve_group;
    // No HTML plots: criterion's plotters backend needs system fonts this tool does not assume.
    config = Criterion::default().without_plots().sample_size(20);
    targets = benches
}
criterion_main!(serve_group);
