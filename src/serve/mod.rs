//! `bn-lab serve`: the live page and its API, on axum (tokio, hyper), with its own limits (see [`limits`]).
//!
//! - `GET /`: the page ([`page`]); its state is a bn-lab command line in `?args=`.
//! - `GET /api/run?args=...`: `{"command": "...", "report": {...}}`, the report being the JSON
//!   the CLI writes for that command; a refusal is 400 `{"error": "..."}`.
//!
//! Every computation runs on a blocking thread (never on the async threads) inside the CLI's own
//! validation ([`request`]), after the work limit's estimate ([`limits`]); at most one per core
//! runs at a time, `--queue` more wait, and the rest are answered 503 with `Retry-After`.
//! Identical requests share one computation, and recent reports are cached ([`cache`]). A run
//! whose clients all went away is cancelled.
//!
//! For a handler (`/api/run`, `/api/stream`): [`request::parse`] the command line (400), then
//! [`App::admit`] it (400 over the work limit), then either [`App::report_for`] (cached, shared
//! or computed; 503 when busy) or, for a run that reports progress to its own client,
//! [`App::run_exclusive`].

pub mod cache;
pub mod limits;
pub mod page;
pub mod request;
pub mod stream;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use self::cache::{Shared, Source};
use self::limits::Slots;
use crate::cli::ServeArgs;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Query, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The longest request target (path and query) the server reads, in bytes.
pub const MAX_URI_BYTES: usize = 4096;
/// The most header bytes a request may carry.
pub const MAX_HEADER_BYTES: usize = 8192;
/// How long the server waits for running requests after SIGINT/SIGTERM before it exits.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What every handler shares.
pub struct App {
    /// The address the server listens on (for the `Host` check).
    pub addr: SocketAddr,
    /// `--max-seconds`.
    pub max_seconds: f64,
    /// Cores to compute on and the queue for them.
    slots: Slots,
    /// Computations running (with their waiters) and recent reports.
    shared: Mutex<Shared>,
    /// Set when the server stops: every run is cancelled.
    stopping: Arc<AtomicBool>,
}

impl App {
    /// The state of a server on `addr` with `args`' limits, stopping when `stopping` is set.
    pub fn new(addr: SocketAddr, stopping: Arc<AtomicBool>, args: &ServeArgs) -> App {
        let cores = crate::parallel::available_threads();
        App {
            addr,
            max_seconds: args.max_seconds,
            slots: Slots::new(cores, args.queue.unwrap_or(3 * cores)),
            shared: cache::shared_state(args.cache),
            stopping,
        }
    }
}

/// The routes and layers of the server, for `addr`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(page::routes())
        .route("/api/run", get(api_run))
        .route("/api/stream", get(stream::api_stream))
        .route("/api/status", get(stream::api_status))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Run the server until SIGINT or SIGTERM.
pub fn run(args: &ServeArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    let result = runtime.block_on(serve(args));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

async fn serve(args: &ServeArgs) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((args.host, args.port))
        .await
        .map_err(|e| {
            crate::flags::usage(format!(
                "--host {} --port {}: cannot listen there: {e}",
                args.host, args.port
            ))
        })?;
    let addr = listener.local_addr()?;
    let host = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    crate::commands::print(&format!("listening on http://{host}:{}/\n", addr.port()))?;
    let stopping = Arc::new(AtomicBool::new(false));
    let app = Arc::new(App::new(addr, stopping.clone(), args));
    let server = axum::serve(listener, router(app)).with_graceful_shutdown({
        let stopping = stopping.clone();
        async move {
            stop_signal().await;
            stopping.store(true, Ordering::Relaxed);
        }
    });
    let server = tokio::spawn(server.into_future());
    // Graceful shutdown waits for open connections (a page's stream, say); after the signal
    // they get SHUTDOWN_GRACE to end, then the server exits anyway.
    while !stopping.load(Ordering::Relaxed) && !server.is_finished() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, server).await;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = interrupt => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Checks made on every request before its handler: the size of its target and headers, and
/// (on a loopback address) its `Host`, which must name this server, so that a web page from
/// elsewhere cannot reach it through DNS rebinding.
async fn guard(State(app): State<Arc<App>>, req: HttpRequest, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return error(
            StatusCode::URI_TOO_LONG,
            &format!("the request target is {uri_len} bytes; at most {MAX_URI_BYTES}"),
        );
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!("the headers are {header_bytes} bytes; at most {MAX_HEADER_BYTES}"),
        );
    }
    if app.addr.ip().is_loopback() && !host_allowed(req.headers(), app.addr.port()) {
        return error(
            StatusCode::FORBIDDEN,
            "the Host header does not name this server (it listens on a loopback address: use 127.0.0.1 or localhost)",
        );
    }
    next.run(req).await
}

/// Whether `Host` is `127.0.0.1`, `localhost` or `[::1]`, with this server's port or none.
pub fn host_allowed(headers: &HeaderMap, port: u16) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let (name, given_port) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => (n, Some(p)),
        _ => (host, None),
    };
    let name_ok = matches!(
        name.to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "[::1]"
    );
    name_ok && given_port.is_none_or(|p| p.parse::<u16>() == Ok(port))
}

/// A JSON error answer: `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    let body = error_body(message);
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such page: the API is /api/run?args=...",
    )
}

/// The query of the API: `?args=<command line>`.
#[derive(Debug, serde::Deserialize)]
pub struct ArgsQuery {
    pub args: Option<String>,
}

/// `GET /api/run?args=...`: parse, admit, then the report (cached, shared or computed). The
/// answer says where it came from in `X-Bn-Lab-Cache: hit|shared|miss`, and what the run cost in
/// `Server-Timing` (`compute`: the milliseconds it computed, not given for a cache hit;
/// `estimate`: the work limit's estimate).
async fn api_run(State(app): State<Arc<App>>, Query(q): Query<ArgsQuery>) -> Response {
    let (request, admission) = match app.read(&q) {
        Ok(r) => r,
        Err(refusal) => return refusal,
    };
    let (line, estimate) = (request.line.clone(), admission.estimate);
    match app.report_for(request, admission).await {
        Ok((computed, source)) => {
            let mut r = answer(&line, &computed.report);
            let estimate = estimate.map_or(String::new(), |e| {
                format!(", estimate;dur={:.1}", e.seconds * 1e3)
            });
            let timing = match source {
                Source::Hit => format!("cache{estimate}"),
                _ => format!("compute;dur={:.1}{estimate}", computed.seconds * 1e3),
            };
            headers(&mut r, source, &timing);
            r
        }
        Err(refusal) => refusal,
    }
}

/// Set `X-Bn-Lab-Cache` and `Server-Timing` on `r`.
fn headers(r: &mut Response, source: Source, timing: &str) {
    let h = r.headers_mut();
    h.insert("x-bn-lab-cache", HeaderValue::from_static(source.as_str()));
    if let Ok(v) = HeaderValue::from_str(timing) {
        h.insert("server-timing", v);
    }
}

/// `{"command": line, "report": report}` with `report` as the CLI's JSON text: the body of
/// `/api/run`'s 200 and of `/api/stream`'s `report` event.
pub fn report_body(line: &str, report: &str) -> String {
    format!(
        "{{\"command\":{},\"report\":{report}}}",
        serde_json::Value::String(line.to_string())
    )
}

/// `{"error": message}`: the body of every refusal and of `/api/stream`'s `error` event.
pub fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// `/api/run`'s 200: [`report_body`].
fn answer(line: &str, report: &str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        report_body(line, report),
    )
        .into_response()
}
