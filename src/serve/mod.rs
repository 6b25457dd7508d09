//! `bn-lab serve`: the live page and its API, on axum (tokio, hyper) with tower-http's limits.
//!
//! - `GET /`: the page ([`page`]); its state is a bn-lab command line in `?args=`.
//! - `GET /api/run?args=...`: `{"command": "...", "report": {...}}`, the report being the JSON
//!   the CLI writes for that command; a refusal is 400 `{"error": "..."}`.
//!
//! Every computation runs on a blocking thread (never on the async threads) inside the CLI's own
//! validation ([`request`]); at most one per core runs at a time, a few more wait, and the rest
//! are answered 503 with `Retry-After`. A run whose client goes away is cancelled.

pub mod page;
pub mod request;
pub mod stream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Query, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use tokio::sync::Semaphore;

use self::request::{Failure, Request};

/// `bn-lab serve`'s flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. The default, 127.0.0.1, lets only this machine in; 0.0.0.0 lets
    /// every machine on the network in (a classroom: students open `http://<this machine>:PORT/`).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

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
    /// One permit per run at once (as many as cores).
    running: Semaphore,
    /// One permit per request admitted (running or waiting); beyond, 503.
    admitted: Semaphore,
    /// Set when the server stops: every run is cancelled.
    stopping: Arc<AtomicBool>,
}

impl App {
    pub fn new(addr: SocketAddr, stopping: Arc<AtomicBool>) -> App {
        let cores = crate::parallel::available_threads();
        App {
            addr,
            running: Semaphore::new(cores),
            admitted: Semaphore::new(cores * 4),
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
    let app = Arc::new(App::new(addr, stopping.clone()));
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
    let body = serde_json::json!({ "error": message }).to_string();
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

/// Sets its flag when dropped: the handler's future is dropped when its client goes away, and
/// the run it started stops at its next progress report.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// `GET /api/run?args=...`.
async fn api_run(State(app): State<Arc<App>>, Query(q): Query<ArgsQuery>) -> Response {
    let request = match request::parse(q.args.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let Ok(_admitted) = app.admitted.try_acquire() else {
        return busy();
    };
    let Ok(_running) = app.running.acquire().await else {
        return busy();
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let line = request.line.clone();
    let stopping = app.stopping.clone();
    let result =
        tokio::task::spawn_blocking(move || run_request(request, &cancel, &stopping)).await;
    match result {
        Ok(Ok(report)) => answer(&line, &report),
        Ok(Err(Failure::Refused(message))) => error(StatusCode::BAD_REQUEST, &message),
        Ok(Err(Failure::Cancelled)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the run was cancelled: the server is stopping",
        ),
        Ok(Err(Failure::Failed(message))) => error(StatusCode::INTERNAL_SERVER_ERROR, &message),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the run failed: {e}"),
        ),
    }
}

/// Compute `request` on this (blocking) thread; cancelled by `cancel` or `stopping`.
fn run_request(
    request: Request,
    cancel: &AtomicBool,
    stopping: &AtomicBool,
) -> Result<String, Failure> {
    let cancelled = || cancel.load(Ordering::Relaxed) || stopping.load(Ordering::Relaxed);
    request::compute(request, &cancelled, &|_, _| {})
}

/// `{"command": line, "report": report}` with `report` as the CLI's JSON text.
fn answer(line: &str, report: &str) -> Response {
    let body = format!(
        "{{\"command\":{},\"report\":{report}}}",
        serde_json::Value::String(line.to_string())
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// 503 with `Retry-After: 1`: too many requests are running or waiting.
fn busy() -> Response {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is busy: every core is computing and the queue is full; retry in a second",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}
