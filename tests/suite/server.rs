//! A `bn-lab serve` process for the tests that need one, and a small HTTP/1.1 client that
//! sends exactly the bytes a test asks for (a foreign `Host`, a huge header). The server runs
//! as a child process on 127.0.0.1 and port 0; dropping [`Server`] sends it SIGTERM, waits a
//! bounded time, and kills it if it is still there.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for the server to print its address, or for one answer.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(120);

/// A running `bn-lab serve --port 0`.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Start `bn-lab serve --host 127.0.0.1 --port 0 EXTRA...` and wait for its
    /// `listening on http://127.0.0.1:PORT/` line.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_in(std::path::Path::new("."), extra)
    }

    /// [`Server::start`] with its working directory in `dir` (a test checks that requests write
    /// nothing there).
    pub fn start_in(dir: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bn-lab"))
            .current_dir(dir)
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("bn-lab serve starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let Ok(line) = rx.recv_timeout(ANSWER_LIMIT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bn-lab serve printed no address within {ANSWER_LIMIT:?}");
        };
        let port = line
            .trim()
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|rest| rest.strip_suffix('/'))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("unexpected first line from bn-lab serve: {line:?}")
            });
        Server { child, port }
    }

    /// `GET path` with `Host: 127.0.0.1:PORT`.
    pub fn get(&self, path: &str) -> Answer {
        let host = format!("127.0.0.1:{}", self.port);
        self.request(path, &[("Host", &host)])
    }

    /// `GET path` with exactly `headers` (no `Host` unless given).
    pub fn request(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        request(self.port, path, headers)
    }

    /// Send SIGTERM and wait up to `limit` for the process to exit; its exit status, or `None`
    /// if it had to be killed.
    pub fn stop_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        #[cfg(unix)]
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop_within(Duration::from_secs(5));
        }
    }
}

/// An HTTP answer: status, headers (names lower-cased) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `GET path` on 127.0.0.1:`port` with `headers` and `Connection: close`; reads the whole answer.
pub fn request(port: u16, path: &str, headers: &[(&str, &str)]) -> Answer {
    try_request(port, path, headers).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// [`request`], with a refused or dropped connection (or no answer within [`ANSWER_LIMIT`]) as
/// an error instead of a panic.
pub fn try_request(port: u16, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(ANSWER_LIMIT))?;
    stream.set_write_timeout(Some(ANSWER_LIMIT))?;
    stream.write_all(request_head(path, headers).as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    if !raw.starts_with(b"HTTP/1.1 ") || !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::other(format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&raw)
        )));
    }
    Ok(parse_answer(&raw))
}

/// The bytes of `GET path` with `headers` and `Connection: close`.
pub fn request_head(path: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!("GET {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head
}

/// Split a raw HTTP/1.1 answer (without chunked encoding, or with it: both are read).
pub fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// The body of a chunked answer.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        body.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    body
}

/// `s` with spaces as `%20` (enough for the command lines of the tests).
pub fn encode(s: &str) -> String {
    s.replace(' ', "%20")
}

#[test]
fn serve_answers_a_run_and_stops_on_sigterm() {
    let mut server = Server::start(&[]);
    let a = server.get(&format!("/api/run?args={}", encode("theory --depth 5")));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let v = a.json();
    assert_eq!(v["command"], "theory --depth 5");
    assert!(v["report"]["config"].is_object(), "{}", a.body);
    let status = server
        .stop_within(Duration::from_secs(10))
        .expect("bn-lab serve stops within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}
