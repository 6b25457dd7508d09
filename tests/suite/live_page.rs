//! `bn-lab serve`'s live page: its files over plain HTTP (status, content type, the
//! Content-Security-Policy), and the page itself in headless Chromium through the WebDriver
//! harness of [`crate::browser`]: opened on `?args=grad-norms --depth 20`, it draws the plot and
//! the factor text; a control moved changes the plot and the URL; back restores both; a refused
//! command shows the server's one-line error; every request stays on 127.0.0.1; and a busy
//! server (503, `Retry-After`) makes the page wait and ask again rather than fail.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::browser::{ONE_AT_A_TIME, Session};
use crate::common::scratch_dir;
use crate::serve_stream::{LONG_TRAIN, open_stream, read_first_event};
use crate::server::{Server, encode};

/// How long the page may take to show a run (a debug build on a shared 2-core machine).
const PAGE_LIMIT: Duration = Duration::from_secs(60);

fn shipped_claims() -> usize {
    std::fs::read_dir("experiments")
        .expect("experiments/ is readable")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml"))
        })
        .count()
}

#[test]
fn the_page_files_and_its_json_answer_with_their_types() {
    let server = Server::start(&[]);
    let cases = [
        ("/", "text/html; charset=utf-8"),
        (
            &format!("/?args={}", encode("grad-norms --depth 20")) as &str,
            "text/html; charset=utf-8",
        ),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/font.ttf", "font/ttf"),
        ("/api/claims", "application/json; charset=utf-8"),
        ("/api/arms", "application/json; charset=utf-8"),
    ];
    for (path, content_type) in cases {
        let a = server.get(path);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        assert_eq!(a.header("content-type"), Some(content_type), "{path}");
        let csp = a.header("content-security-policy").unwrap_or_default();
        assert!(csp.starts_with("default-src 'self'"), "{path}: CSP {csp:?}");
        assert!(!a.body.is_empty(), "{path} is empty");
    }
    let page = server.get("/").body;
    assert!(page.contains("src=\"/app.js\""), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page names no other site: {page}"
    );
    let claims = server.get("/api/claims").json();
    let claims = claims.as_array().expect("a list of claims");
    assert_eq!(
        claims.len(),
        shipped_claims(),
        "one entry per experiments/*.toml"
    );
    assert_eq!(claims[0]["command"], "grad-norms --depth 50 --bn off");
    assert!(claims.iter().all(|c| c["title"].is_string()), "{claims:?}");
    // A claim over the server's work limit is listed as refused, with the limit's message.
    let by_name = |n: &str| claims.iter().find(|c| c["name"] == n).expect(n).clone();
    assert_eq!(by_name("vanishing-sigmoid")["refused"], Value::Null);
    let ics = by_name("ics-not-reduced")["refused"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(ics.contains("--max-seconds"), "{ics:?}");
    let arms = server.get("/api/arms").json();
    assert_eq!(arms["norms"]["off"]["marker"], "square", "{arms}");
    assert_eq!(arms["norms"]["on"]["color"], "#0072b2", "{arms}");
}

/// Run `script` (which returns `null` until it is satisfied) until it returns something else,
/// for at most [`PAGE_LIMIT`]; panic with `what` and the last page state otherwise.
pub(crate) fn wait_for(session: &Session, what: &str, script: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = session.run(script);
        if !v.is_null() {
            return v;
        }
        if start.elapsed() > PAGE_LIMIT {
            let state = session.run(
                "return { url: location.href, shown: document.body.dataset.shown || null, \
                 error: document.getElementById('error').textContent, \
                 status: document.getElementById('status').textContent };",
            );
            panic!("{what}: not within {PAGE_LIMIT:?}; the page: {state}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the page shows once `line` is drawn: the URL's query, the depth control, the notes
/// beside the lines, the first line's path, its hover points, the table's rows, the claims.
pub(crate) fn shown(session: &Session, line: &str) -> Value {
    let script = r#"
        const line = arguments[0];
        if (document.body.dataset.shown !== line) return null;
        const svgs = document.querySelectorAll('#charts svg');
        const rows = document.querySelectorAll('#factors tbody tr');
        if (svgs.length < 3 || rows.length === 0) return null;
        const first = svgs[0].querySelector('g.line');
        return {
            search: location.search,
            depth: document.getElementById('depth').value,
            cmdline: document.getElementById('cmdline').value,
            notes: Array.from(svgs[0].querySelectorAll('text.note')).map(t => t.textContent),
            path: first.querySelector('path').getAttribute('d'),
            hovers: Array.from(first.querySelectorAll('circle.hit title')).map(t => t.textContent),
            rows: Array.from(rows).map(r => Array.from(r.cells).map(c => c.textContent.trim())),
            claims: document.querySelectorAll('#claims option[value$=".toml"]').length,
        };"#;
    let start = Instant::now();
    loop {
        let v = session.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [line] })),
        );
        if !v.is_null() {
            return v;
        }
        assert!(
            start.elapsed() < PAGE_LIMIT,
            "the page did not draw `{line}` within {PAGE_LIMIT:?}: {}",
            session.run("return [location.href, document.body.dataset.shown || null, document.getElementById('error').textContent];")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every URL the browser asked for since the log was last read.
fn requests(session: &Session) -> Vec<String> {
    let log = session.call("POST", "/se/log", Some(&json!({ "type": "performance" })));
    log.as_array()
        .expect("the performance log is a list")
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
        .filter(|m| m["message"]["method"] == json!("Network.requestWillBeSent"))
        .filter_map(|m| {
            m["message"]["params"]["request"]["url"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn the_live_page_draws_recomputes_on_a_control_and_goes_back_in_chromium() {
    let server = Server::start(&[]);
    let origin = format!("http://127.0.0.1:{}", server.port);
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = Session::start("live-page");
    session.set_viewport(1280, 800);
    session.call("POST", "/url", Some(&json!({ "url": "about:blank" })));
    requests(&session);
    let url = format!("{origin}/?args={}", encode("grad-norms --depth 20"));
    session.call("POST", "/url", Some(&json!({ "url": url })));

    let at20 = shown(&session, "grad-norms --depth 20");
    assert_eq!(at20["search"], "?args=grad-norms%20--depth%2020", "{at20}");
    assert_eq!(at20["depth"], "20", "{at20}");
    let notes = at20["notes"].as_array().expect("notes").clone();
    assert_eq!(notes.len(), 2, "a note per arm: {at20}");
    assert!(
        notes[0]
            .as_str()
            .is_some_and(|n| n.contains("/layer, first/last") && n.contains('×')),
        "{at20}"
    );
    assert_eq!(at20["hovers"].as_array().map(Vec::len), Some(20), "{at20}");
    assert!(
        at20["hovers"][0]
            .as_str()
            .is_some_and(|t| t.contains("layer 1:")),
        "{at20}"
    );
    let rows = at20["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{at20}");
    assert_eq!(rows[0][0], "■ BN off", "{at20}");
    assert_eq!(rows[0][3], "vanishing", "{at20}");
    assert_eq!(at20["claims"], json!(shipped_claims()), "{at20}");
    let dir = scratch_dir("live-page");
    session.screenshot(&dir.join("live_page_1280x800.png"));

    // A control moved: the plot and the URL change (after the debounce).
    session.run(
        "const d = document.getElementById('depth'); d.value = '30'; \
         d.dispatchEvent(new Event('input', { bubbles: true })); return 0;",
    );
    let at30 = shown(&session, "grad-norms --depth 30");
    assert_eq!(at30["search"], "?args=grad-norms%20--depth%2030", "{at30}");
    assert_eq!(at30["hovers"].as_array().map(Vec::len), Some(30), "{at30}");
    assert_ne!(at30["path"], at20["path"], "the plot did not change");

    // Back: the earlier URL, control value and plot.
    session.run("history.back(); return 0;");
    let back = shown(&session, "grad-norms --depth 20");
    assert_eq!(back["search"], at20["search"], "{back}");
    assert_eq!(back["depth"], "20", "{back}");
    assert_eq!(back["path"], at20["path"], "{back}");

    // A refused command: the server's one-line error beside the controls.
    session.run(
        "const c = document.getElementById('cmdline'); c.value = 'grad-norms --depth 0'; \
         c.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' })); return 0;",
    );
    let error = wait_for(
        &session,
        "the error of --depth 0",
        "const t = document.getElementById('error').textContent; return t ? t : null;",
    );
    assert!(
        error.as_str().is_some_and(|e| e.contains("--depth")),
        "{error}"
    );

    let asked = requests(&session);
    assert!(
        asked
            .iter()
            .any(|u| u.starts_with(&format!("{origin}/api/run?"))),
        "{asked:?}"
    );
    let foreign: Vec<&String> = asked
        .iter()
        .filter(|u| !u.starts_with(&format!("{origin}/")) && !u.starts_with("about:"))
        .collect();
    assert!(foreign.is_empty(), "requests off this server: {foreign:?}");
}

/// The page beyond grad-norms: a theory chart, a shattered chart, a claim chosen from the list loads its command
/// into the URL, and a training run streams its progress (`/api/stream`) until the stop button
/// closes the stream, after which the server frees the run's slot.
#[test]
fn the_live_page_loads_a_claim_streams_a_run_and_stops_it_in_chromium() {
    let server = Server::start(&[]);
    let origin = format!("http://127.0.0.1:{}", server.port);
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = Session::start("live-page-stream");
    session.call("POST", "/url", Some(&json!({ "url": "about:blank" })));
    requests(&session);
    let url = format!("{origin}/?args=theory");
    session.call("POST", "/url", Some(&json!({ "url": url })));
    let lines = wait_for(
        &session,
        "the theory chart",
        "return document.body.dataset.shown === 'theory' \
         ? document.querySelectorAll('#charts svg g.line').length : null;",
    );
    assert_eq!(lines, json!(5), "a line per activation");

    // shattered (QUICK's sizes): a line per architecture, the noise band, a note per line.
    let line = "shattered --depth 1,3 --width 8 --points 32 --seeds 2 --max-lag 8";
    let url = format!("{origin}/?args={}", encode(line));
    session.call("POST", "/url", Some(&json!({ "url": url })));
    let drawn = wait_for(
        &session,
        "the shattered chart",
        &format!(
            "return document.body.dataset.shown === {line:?} ? [\
             Array.from(document.querySelectorAll('#charts svg g.line')).map(g => g.dataset.label), \
             document.querySelectorAll('#charts svg text.note').length] : null;"
        ),
    );
    let labels = ["feedforward", "feedforward+bn", "resnet+bn"];
    let got: Vec<&str> = drawn[0]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(got.len() == 4 && got[..3] == labels, "{drawn}");
    assert_eq!(drawn[1], json!(3), "a note per architecture: {drawn}");

    session.run(
        "const s = document.getElementById('claims'); s.value = '03-diary-algebra.toml'; \
         s.dispatchEvent(new Event('change')); return 0;",
    );
    let at = shown(&session, "grad-norms --depth 50");
    assert_eq!(at["search"], "?args=grad-norms%20--depth%2050", "{at}");

    // A training run long enough to stop: progress arrives, then the stop button.
    session.run(
        "const c = document.getElementById('cmdline'); \
         c.value = 'train --configs off,on --lr 0.1 --steps 1000'; \
         c.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' })); return 0;",
    );
    wait_for(
        &session,
        "progress of the training run",
        "const p = document.getElementById('progress'); \
         return document.getElementById('busy').classList.contains('running') && p.value > 0 \
         ? p.value : null;",
    );
    let stopped = session.run(
        "document.getElementById('stop').click(); \
         return [document.getElementById('status').textContent, document.body.dataset.shown];",
    );
    assert_eq!(stopped[0], "stopped", "{stopped}");
    assert_eq!(
        stopped[1], "grad-norms --depth 50",
        "no report was drawn: {stopped}"
    );
    let start = Instant::now();
    loop {
        let status = server.get("/api/status").json();
        if status["running"] == json!(0) && status["waiting"] == json!(0) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the stopped run still holds its slot: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let asked = requests(&session);
    assert!(
        asked
            .iter()
            .any(|u| u.starts_with(&format!("{origin}/api/stream?args=train"))),
        "{asked:?}"
    );
}

#[test]
fn a_busy_server_makes_the_page_wait_and_retry_not_fail_in_chromium() {
    // No queue: every place is a core, and long training streams take them all.
    let server = Server::start(&["--queue", "0", "--max-seconds", "3600"]);
    let mut streams = Vec::new();
    for probe in 0..16 {
        let busy = server.get(&format!(
            "/api/run?args={}",
            encode(&format!("theory --depth {}", 3 + probe))
        ));
        if busy.status == 503 {
            assert_eq!(busy.header("retry-after"), Some("1"), "{}", busy.body);
            break;
        }
        assert_eq!(busy.status, 200, "{}", busy.body);
        let mut s = open_stream(&server, LONG_TRAIN);
        let first = read_first_event(&mut s);
        assert!(first.contains("event: progress"), "{first}");
        streams.push(s);
    }
    assert!(
        !streams.is_empty(),
        "the server was busy before any long run"
    );
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = Session::start("live-page-busy");
    let url = format!(
        "http://127.0.0.1:{}/?args={}",
        server.port,
        encode("grad-norms --depth 5")
    );
    session.call("POST", "/url", Some(&json!({ "url": url })));
    wait_for(
        &session,
        "the page saying the server is busy",
        "const s = document.getElementById('status').textContent; \
         return s.includes('busy') && document.getElementById('error').textContent === '' ? s : null;",
    );
    for s in streams {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    let at = shown(&session, "grad-norms --depth 5");
    assert_eq!(at["depth"], "5", "{at}");
}
