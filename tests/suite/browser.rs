//! `bn-lab reproduce`'s page in a real browser: Debian's headless Chromium, driven through
//! ChromeDriver (the W3C WebDriver protocol, plain HTTP on loopback), opens `index.html` from
//! disk and reports every image (loaded when its natural width is above 0), every verdict cell,
//! and every request the page made (Chromium's performance log: `Network.requestWillBeSent`).
//! A control page with a missing image and an image on a (local) web server shows that the
//! check catches both.
//!
//! Chromium and ChromeDriver come from Debian's `chromium` and `chromium-driver` packages;
//! `.ci/run` installs them, and so does this test (as root, with apt-get) when they are missing.
//! Where they cannot be found or installed the test fails and says so.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::common::{json, reproduce_only, scratch, scratch_dir};
use serde_json::{Value, json};

/// The browser and its driver: `BN_LAB_CHROMIUM` / `BN_LAB_CHROMEDRIVER`, else on the `PATH`.
struct Browser {
    chromium: PathBuf,
    driver: PathBuf,
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn find() -> Option<Browser> {
    let pick = |var: &str, name: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| which(name))
    };
    Some(Browser {
        chromium: pick("BN_LAB_CHROMIUM", "chromium")?,
        driver: pick("BN_LAB_CHROMEDRIVER", "chromedriver")?,
    })
}

/// Find Chromium and ChromeDriver, installing Debian's packages once when they are missing and
/// this is root with apt-get; otherwise fail saying what is missing.
fn browser() -> &'static Browser {
    static BROWSER: OnceLock<Result<Browser, String>> = OnceLock::new();
    let found = BROWSER.get_or_init(|| {
        if let Some(b) = find() {
            return Ok(b);
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if root && which("apt-get").is_some() {
            eprintln!("installing Debian's chromium and chromium-driver for the browser test");
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            let _ = Command::new("apt-get")
                .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status();
        }
        find().ok_or_else(|| {
            "the browser test needs Chromium and ChromeDriver and could not find or install \
             them: install Debian's `chromium` and `chromium-driver` (apt-get install -y \
             chromium chromium-driver; .ci/run does this), or set BN_LAB_CHROMIUM and \
             BN_LAB_CHROMEDRIVER to their paths"
                .to_string()
        })
    });
    match found {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("loopback is available")
        .port()
}

/// One HTTP/1.1 request to ChromeDriver; the reply's JSON `value`, or the WebDriver error.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // ChromeDriver keeps the connection open: read the head, then Content-Length bytes.
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "the reply ended in its head: {}",
                String::from_utf8_lossy(&reply)
            ));
        }
        reply.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&reply).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| format!("no Content-Length: {head}"))?;
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).map_err(|e| e.to_string())?;
    let body = String::from_utf8_lossy(&body);
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if head.starts_with("HTTP/1.1 200") {
        Ok(v["value"].clone())
    } else {
        Err(format!("{method} {path}: {}", v["value"]))
    }
}

/// A ChromeDriver with one headless Chromium session; both end when it is dropped.
pub(crate) struct Session {
    driver: Child,
    port: u16,
    id: String,
    profile: PathBuf,
}

impl Session {
    pub(crate) fn start(name: &str) -> Session {
        let b = browser();
        let port = free_port();
        let driver = Command::new(&b.driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", b.driver.display()));
        let profile = scratch(&format!("chromium-profile-{name}"));
        let mut session = Session {
            driver,
            port,
            id: String::new(),
            profile,
        };
        let start = Instant::now();
        while http(port, "GET", "/status", None).map_or(true, |v| v["ready"] != json!(true)) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "ChromeDriver did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": b.chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    format!("--user-data-dir={}", session.profile.display()),
                    "--window-size=1280,900",
                ],
            },
            "goog:loggingPrefs": { "performance": "ALL" },
        }}});
        let v = http(port, "POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("Chromium did not start under ChromeDriver: {e}"));
        session.id = v["sessionId"]
            .as_str()
            .expect("a new session has an id")
            .to_string();
        session
    }

    pub(crate) fn call(&self, method: &str, what: &str, body: Option<&Value>) -> Value {
        http(
            self.port,
            method,
            &format!("/session/{}{what}", self.id),
            body,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Open `page` from disk (the call returns once the page and its images have loaded) and
    /// report what the browser saw.
    fn inspect(&self, page: &Path) -> Report {
        let url = format!(
            "file://{}",
            page.canonicalize().expect("the page exists").display()
        );
        // Start from a blank page, and drop the log so far.
        self.call("POST", "/url", Some(&json!({ "url": "about:blank" })));
        self.call("POST", "/se/log", Some(&json!({ "type": "performance" })));
        self.call("POST", "/url", Some(&json!({ "url": url })));
        let seen = self.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": r#"
                return {
                    ready: document.readyState,
                    images: Array.from(document.images).map(i => ({
                        src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth })),
                    verdicts: Array.from(document.querySelectorAll('td.verdict')).map(td => ({
                        claim: td.dataset.claim, text: td.textContent.trim() })),
                    sections: Array.from(document.querySelectorAll('section.claim')).map(s => s.id),
                    scrollWidth: document.documentElement.scrollWidth,
                };"#, "args": [] })),
        );
        let log = self.call("POST", "/se/log", Some(&json!({ "type": "performance" })));
        let requests = log
            .as_array()
            .expect("the performance log is a list")
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == json!("Network.requestWillBeSent"))
            // This page's requests (the browser's own start page makes some of its own).
            .filter(|m| m["message"]["params"]["documentURL"] == json!(url))
            .filter_map(|m| {
                m["message"]["params"]["request"]["url"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Report {
            url,
            ready: text(&seen["ready"]),
            images: seen["images"]
                .as_array()
                .expect("a list of images")
                .iter()
                .map(|i| (text(&i["src"]), i["width"].as_u64().unwrap_or(0)))
                .collect(),
            verdicts: seen["verdicts"]
                .as_array()
                .expect("a list of cells")
                .iter()
                .map(|v| (text(&v["claim"]), text(&v["text"])))
                .collect(),
            sections: seen["sections"]
                .as_array()
                .expect("a list of sections")
                .iter()
                .map(text)
                .collect(),
            scroll_width: seen["scrollWidth"].as_u64().unwrap_or(0),
            requests,
        }
    }

    /// Run `script` in the page and give what it returns.
    pub(crate) fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Save what the window shows as a PNG.
    pub(crate) fn screenshot(&self, file: &Path) {
        use base64_decode as b64;
        let v = self.call("GET", "/screenshot", None);
        let bytes = b64(v.as_str().expect("a screenshot is base64 text"));
        std::fs::write(file, bytes).expect("the scratch dir is writable");
    }

    /// Size the window so that the page itself (the viewport) is `width` x `height`.
    pub(crate) fn set_viewport(&self, width: u32, height: u32) {
        self.set_window(width, height);
        let v = self.run("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];");
        let extra = |i: usize| v[i].as_u64().unwrap_or(0) as u32;
        self.set_window(width + extra(0), height + extra(1));
    }

    fn set_window(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(&json!({ "width": width, "height": height })),
        );
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.id.is_empty() {
            let _ = http(self.port, "DELETE", &format!("/session/{}", self.id), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// What the browser saw of a page.
#[derive(Debug)]
struct Report {
    url: String,
    ready: String,
    /// Each image's `src` and natural width (0: not loaded).
    images: Vec<(String, u64)>,
    /// Each verdict cell's claim and text.
    verdicts: Vec<(String, String)>,
    sections: Vec<String>,
    scroll_width: u64,
    /// Every URL the page asked for, itself included.
    requests: Vec<String>,
}

impl Report {
    fn broken_images(&self) -> Vec<&str> {
        self.images
            .iter()
            .filter(|(_, w)| *w == 0)
            .map(|(s, _)| s.as_str())
            .collect()
    }

    /// Requests for anything but files on disk.
    fn network(&self) -> Vec<&str> {
        self.requests
            .iter()
            .filter(|u| !u.starts_with("file://"))
            .map(String::as_str)
            .collect()
    }
}

/// One browser at a time: two Chromiums on two cores make each test slower than both in turn.
pub(crate) static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn the_page_loads_every_image_and_fetches_nothing_in_chromium() {
    let out = scratch("browser-page");
    reproduce_only("vanishing-sigmoid,small-batches-explode-more", &out);
    let summary = json(&out.join("summary.json"));
    let claims: Vec<(String, String)> = summary["claims"]
        .as_array()
        .expect("summary.json lists claims")
        .iter()
        .map(|c| {
            let t = |k: &str| c[k].as_str().expect("text").to_string();
            (t("name"), t("verdict"))
        })
        .collect();
    assert_eq!(claims.len(), 2);

    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = Session::start("page");
    let report = session.inspect(&out.join("index.html"));
    assert_eq!(report.ready, "complete", "{report:?}");
    assert_eq!(
        report.images.len(),
        claims.len(),
        "one picture per claim: {report:?}"
    );
    assert!(
        report.broken_images().is_empty(),
        "images that did not load: {:?}",
        report.broken_images()
    );
    assert_eq!(
        report.verdicts, claims,
        "a verdict cell per claim, as in summary.json"
    );
    let names: Vec<String> = claims.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(report.sections, names, "a section per claim");
    assert!(
        report.requests.contains(&report.url),
        "the performance log saw the page itself: {:?}",
        report.requests
    );
    assert!(
        report.requests.len() > report.images.len(),
        "the page and its images were requested: {:?}",
        report.requests
    );
    assert!(
        report.network().is_empty(),
        "fetched from the network: {:?}",
        report.network()
    );

    // On a phone's width, nothing but the scrolling tables is wider than the screen.
    session.set_window(400, 800);
    let narrow = session.inspect(&out.join("index.html"));
    assert!(
        narrow.scroll_width <= 400,
        "the page is {} px wide on a 400 px window",
        narrow.scroll_width
    );
    drop(session);
    std::fs::remove_dir_all(out).expect("scratch dirs are removable");
}

/// The check above can fail: a page with a missing image and one on a web server (a local
/// one, which records that it was asked) shows one broken image and one network request.
#[test]
fn the_browser_check_catches_a_missing_image_and_a_network_fetch() {
    let server = TcpListener::bind("127.0.0.1:0").expect("loopback is available");
    let port = server.local_addr().expect("bound").port();
    let dir = scratch_dir("browser-control");
    let remote = format!("http://127.0.0.1:{port}/remote.png");
    std::fs::write(
        dir.join("index.html"),
        format!(
            "<!doctype html><html><body>\
             <img src=\"missing.png\" alt=\"\"><img src=\"{remote}\" alt=\"\">\
             <table><tr><td class=\"verdict\" data-claim=\"x\">mixed</td></tr></table>\
             </body></html>"
        ),
    )
    .expect("the scratch dir is writable");
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = Session::start("control");
    // The first line the browser sent, or None if it never connected within a minute of the
    // browser's start (the test must not hang if a future Chromium blocks the request). The
    // minute starts once this test has the browser: waiting for the lock and starting
    // Chromium can take that long on a loaded machine, and the bound listener queues a
    // connection until it is accepted.
    let asked = std::thread::spawn(move || {
        server
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let start = Instant::now();
        let mut s = loop {
            match server.accept() {
                Ok((s, _)) => break s,
                Err(_) if start.elapsed() < Duration::from_secs(60) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => return None,
            }
        };
        s.set_nonblocking(false).expect("a blocking stream");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap_or(0);
        let _ = s
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .map(str::to_string)
    });
    let report = session.inspect(&dir.join("index.html"));
    drop(session);
    assert_eq!(report.broken_images(), ["missing.png", remote.as_str()]);
    assert_eq!(report.network(), [remote.as_str()]);
    assert_eq!(report.verdicts, [("x".to_string(), "mixed".to_string())]);
    let first_line = asked.join().expect("the server thread ends");
    assert_eq!(first_line.as_deref(), Some("GET /remote.png HTTP/1.1"));
}

/// A page of every shipped claim, from hand-made results at the widest numbers a run prints
/// (`-1.234e-32 [-5.678e-32, 9.876e-32]`, 5 seeds, controls), with one real figure (a
/// 1920x1080 headline) for every claim: what the projector test lays out. The layout is what
/// is tested here; the verdicts come from the real runs of `tests/suite/reproduce.rs`.
fn widest_page(out: &Path) {
    use bn_lab::reproduce::check::{Value, Verdict};
    use bn_lab::reproduce::{
        CheckOverSeeds, Claim, ClaimResult, ControlResult, Measured, Plan, Tested,
    };
    let figure_dir = out.join("figure");
    let o = common::bn_lab(&[
        "grad-norms",
        "--depth",
        "5",
        "--out",
        figure_dir.to_str().expect("UTF-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir("experiments")
        .expect("the tests run in the repository")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let wide = Value::Num(-1.234e-32);
    let tested = |claim: &Claim, verdict: Verdict| Tested {
        command: claim.command_text(),
        seeds: vec![0, 1, 2, 3, 4],
        verdict,
        checks: claim
            .checks
            .iter()
            .map(|c| CheckOverSeeds {
                check: c.text.clone(),
                holds: vec![true, false, true, true, true],
                left: vec![wide.clone(); 5],
                right: vec![Value::Num(-5.678e-32); 5],
            })
            .collect(),
        quantities: claim
            .quantities
            .iter()
            .map(|q| Measured {
                name: q.name.clone(),
                label: q.label.clone(),
                path: q.path.to_string(),
                values: vec![wide.clone(); 5],
                median: wide.clone(),
                min: Value::Num(-5.678e-32),
                max: Value::Num(9.876e-32),
            })
            .collect(),
        figure: "figure/grad_norms.png".into(),
        figures: vec!["figure/grad_norms.png".into()],
        json: "figure/grad_norms.json".into(),
        jsons: vec!["figure/grad_norms.json".into()],
        seconds: 1.0,
    };
    let results: Vec<ClaimResult> = files
        .iter()
        .map(|f| {
            let claim = Claim::load(f).unwrap_or_else(|e| panic!("{e}"));
            ClaimResult {
                name: claim.name.clone(),
                file: f.display().to_string(),
                title: claim.title.clone(),
                kind: claim.kind,
                claim: claim.claim.clone(),
                quote: claim.quote,
                corrected: claim.corrected.clone(),
                argument: claim.argument.clone(),
                source: claim.source.clone(),
                rerun: claim.rerun_text(),
                tested: tested(&claim, Verdict::NotSupported),
                key: claim.quantities[claim.key].name.clone(),
                explanation: claim.title.clone(),
                note: claim.note.clone(),
                caption: claim.caption.clone(),
                control: Some(ControlResult {
                    why: "why".into(),
                    tested: tested(&claim, Verdict::Mixed),
                }),
            }
        })
        .collect();
    let plan = Plan::new(0, Some(5), true).expect("a valid plan");
    let summary = bn_lab::reproduce::page::Summary::new(&results, 99.0, &plan);
    std::fs::write(
        out.join("index.html"),
        bn_lab::reproduce::page::html(&summary),
    )
    .expect("writable");
    std::fs::write(
        out.join("slides.html"),
        bn_lab::reproduce::page::slides(&summary),
    )
    .expect("writable");
}

/// For a projector at 1024x768: the first screen of `index.html` holds every claim's row of
/// the summary, each on one line, and each slide of `slides.html` fits one screen with its
/// figure large and its verdict hidden until a click (and still on the screen after it).
/// Screenshots go to `target/tmp/browser-projector/` for a person to look at.
#[test]
fn the_summary_fits_the_first_screen_and_each_slide_fits_one_screen() {
    let out = scratch_dir("browser-projector");
    widest_page(&out);
    let claims = std::fs::read_dir("experiments")
        .expect("readable")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml"))
        })
        .count();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let session = Session::start("projector");
    session.inspect(&out.join("index.html"));
    session.set_viewport(1024, 768);
    let seen = session.run(
        r#"
        const rows = Array.from(document.querySelectorAll('#summary tr.row'));
        return {
            height: window.innerHeight, width: window.innerWidth,
            rows: rows.length,
            bottom: Math.max(...rows.map(r => r.getBoundingClientRect().bottom)),
            tallest: Math.max(...rows.map(r => r.getBoundingClientRect().height)),
            scrollWidth: document.documentElement.scrollWidth,
        };"#,
    );
    session.screenshot(&out.join("index-1024x768.png"));
    let n = |k: &str| seen[k].as_f64().unwrap_or(f64::NAN);
    assert!(n("height") >= 700.0, "the window is {seen}");
    assert_eq!(n("rows") as usize, claims, "a row per claim: {seen}");
    assert!(
        n("bottom") <= n("height"),
        "rows below the first screen: {seen}"
    );
    assert!(n("tallest") <= 32.0, "a row wraps: {seen}");
    assert!(
        n("scrollWidth") <= n("width"),
        "wider than the screen: {seen}"
    );

    session.inspect(&out.join("slides.html"));
    let check = r#"
        const h = window.innerHeight, w = window.innerWidth;
        return Array.from(document.querySelectorAll('section.slide')).slice(1).map(s => {
            s.scrollIntoView();
            const top = s.getBoundingClientRect().top;
            const img = s.querySelector('figure img').getBoundingClientRect();
            const sum = s.querySelector('summary').getBoundingClientRect();
            const d = s.querySelector('details');
            const hidden = !d.open && !d.querySelector('.reveal').checkVisibility();
            d.open = true;
            const rev = d.querySelector('.reveal').getBoundingClientRect();
            const img2 = s.querySelector('figure img').getBoundingClientRect();
            const r = { id: s.id, height: s.getBoundingClientRect().height, overflow: s.scrollHeight - s.clientHeight,
                        img: img.height, imgWidth: img.width, img2: img2.height, summary: sum.bottom - top,
                        reveal: rev.bottom - top, hidden: hidden, h: h, w: w };
            d.open = false;
            return r;
        });"#;
    let slides = session.run(check);
    let slides = slides.as_array().expect("a list of slides");
    assert_eq!(slides.len(), claims, "a slide per claim");
    for s in slides {
        let v = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
        assert!(
            v("height") <= v("h") + 0.5,
            "a slide taller than the screen: {s}"
        );
        assert!(v("overflow") <= 1.0, "a slide's content is cut off: {s}");
        assert!(v("img") >= 0.6 * v("h"), "the figure is small: {s}");
        assert!(
            v("summary") <= v("h") && v("reveal") <= v("h"),
            "the reveal is off the screen: {s}"
        );
        assert!(
            v("img2") >= 0.45 * v("h"),
            "revealed, the figure shrinks too far: {s}"
        );
        assert_eq!(
            s["hidden"],
            json!(true),
            "the verdict shows before the click: {s}"
        );
    }
    // One slide revealed, for a person to look at.
    session.run(
        r#"const s = document.querySelectorAll('section.slide')[3]; s.scrollIntoView();
           s.querySelector('details').open = true; return 0;"#,
    );
    session.screenshot(&out.join("slide-3-revealed-1024x768.png"));
}

/// Standard base64 (what WebDriver's screenshot is) to bytes.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    sextets
        .chunks(4)
        .flat_map(|c| {
            let n = c.len();
            let mut v = 0u32;
            for (i, &s) in c.iter().enumerate() {
                v |= u32::from(s) << (18 - 6 * i);
            }
            let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
            bytes.into_iter().take(n.saturating_sub(1))
        })
        .collect()
}
