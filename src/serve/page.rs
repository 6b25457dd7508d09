//! The live page: static files compiled into the binary (`page/index.html`, `page/app.js`,
//! `page/style.css`, and the plots' DejaVu Sans as `/font.ttf`), plus two small JSON answers
//! the page reads once: the arm styles of the slides (`/api/arms`) and the shipped claims
//! (`/api/claims`).
//!
//! No server-side HTML templating: the page is the same bytes for everyone and draws itself from
//! the API's JSON, so nothing is interpolated into HTML on the server. Its Content-Security-Policy
//! (`default-src 'self'`) lets it load only its own script, style and font: nothing from the
//! network, no inline script.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::App;
use crate::config::Normaliser;
use crate::experiment::train::TrainArm;
use crate::plot::chart::{Marker, okabe_ito};
use crate::plot::{norm_color, norm_marker};
use crate::reproduce::spec::Claim;

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE_CSS: &str = include_str!("page/style.css");

/// What every file of the page is sent with: only this server's own script, style and font.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `("NN-name.toml", <its text>)` of a file of `experiments/`.
macro_rules! claim_file {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/", $name)),
        )
    };
}

/// The shipped claims, embedded (the server reads no file at run time), as `(file, text)`.
/// `every_shipped_claim_is_embedded` checks this list against `experiments/`.
pub const CLAIM_FILES: &[(&str, &str)] = &[
    claim_file!("01-vanishing-sigmoid.toml"),
    claim_file!("02-bn-fixes-sigmoid.toml"),
    claim_file!("03-diary-algebra.toml"),
    claim_file!("04-bn-relu-explodes.toml"),
    claim_file!("05-small-batches-explode-more.toml"),
    claim_file!("06-skips-tame-it.toml"),
    claim_file!("07-theory-predicts-rates.toml"),
    claim_file!("08-shattered-gradients.toml"),
    claim_file!("09-scale-shift-nonlinearity.toml"),
    claim_file!("10-relu-dead-or-linear.toml"),
    claim_file!("11-higher-learning-rates.toml"),
    claim_file!("12-smoother-landscape.toml"),
    claim_file!("13-ics-not-reduced.toml"),
    claim_file!("14-noisy-bn.toml"),
    claim_file!("15-input-shift.toml"),
    claim_file!("16-bn-after-activation.toml"),
    claim_file!("17-weight-scale.toml"),
    claim_file!("18-bn-vs-layernorm-batch.toml"),
    claim_file!("19-digits.toml"),
    claim_file!("20-bn-biases-identity.toml"),
    claim_file!("21-balduzzi-decay.toml"),
    claim_file!("22-skipinit-trains.toml"),
    claim_file!("23-standard-blocks-shatter.toml"),
    claim_file!("24-fixup-trains.toml"),
];

/// The page's routes: `/`, its files, `/api/arms` and `/api/claims`.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .route("/font.ttf", get(font))
        .route("/api/arms", get(arms))
        .route("/api/claims", get(claims))
}

/// `body` as `content_type`, with the page's Content-Security-Policy; `cache` for the files
/// that never change while the server runs (the font is 760 kB: a class fetches it once).
fn file(content_type: &'static str, body: impl IntoResponse, cache: bool) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if cache { "max-age=3600" } else { "no-cache" }),
    );
    r
}

/// `GET /` (with or without `?args=`: the page reads its query itself).
pub async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX_HTML, false)
}

async fn app_js() -> Response {
    file("text/javascript; charset=utf-8", APP_JS, false)
}

async fn style_css() -> Response {
    file("text/css; charset=utf-8", STYLE_CSS, false)
}

async fn font() -> Response {
    file("font/ttf", crate::plot::chart::font::FONT, true)
}

fn json(value: &impl Serialize) -> Response {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    file("application/json; charset=utf-8", body, false)
}

/// One arm's look on the slides: its colour (`#rrggbb`) and marker.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ArmStyle {
    pub label: String,
    pub color: String,
    pub marker: &'static str,
}

/// What `/api/arms` answers: the style of every normaliser by its JSON name (`off`, `on`,
/// `layer`, ...), of the skip arms when a report compares skips off and on, of `train`'s
/// configurations, and of `grad-norms`' standard-block arms.
#[derive(Debug, Serialize)]
pub struct ArmStyles {
    pub norms: BTreeMap<&'static str, ArmStyle>,
    /// `{"on": ..., "off": ...}`: the arm with skip connections beside a normalised arm and
    /// beside BN off (as `src/plot/grad_norms.rs` draws them).
    pub skips: BTreeMap<&'static str, ArmStyle>,
    /// `train`'s configurations by their text form (`arm` of a run: `on`, `skip-init`,
    /// `on+skip-init`, ...), as `src/plot/train.rs` draws them ([`crate::plot::arms::arm_color`]).
    pub configs: BTreeMap<String, ArmStyle>,
    /// `grad-norms`' standard-block arms: by the `--skips` name of the architecture (`basic`,
    /// `preact`, `basic-skipinit`, `preact-skipinit`), then by normaliser
    /// ([`crate::plot::arms::block_arm_style`]).
    pub blocks: BTreeMap<String, BTreeMap<&'static str, ArmStyle>>,
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}

fn marker_name(m: Marker) -> &'static str {
    match m {
        Marker::Circle => "circle",
        Marker::Square => "square",
        Marker::Diamond => "diamond",
        Marker::TriangleUp => "triangle-up",
        Marker::TriangleDown => "triangle-down",
        Marker::Cross => "cross",
    }
}

fn style(label: String, color: plotters::style::RGBColor, marker: Marker) -> ArmStyle {
    ArmStyle {
        label,
        color: hex(color),
        marker: marker_name(marker),
    }
}

/// The arm styles of the figures ([`crate::plot::arms`]), the one source the page draws from.
pub fn arm_styles() -> ArmStyles {
    use crate::experiment::grad_norms::Skips;
    use crate::plot::arms::{arm_color, arm_marker, block_arm_style};
    let norms = Normaliser::ALL
        .into_iter()
        .map(|n| {
            let look = style(n.label().into(), norm_color(n), norm_marker(n));
            (n.name(), look)
        })
        .collect();
    let skips = [
        ("on", "normalised, skips", okabe_ito::BLUISH_GREEN),
        ("off", "BN off, skips", okabe_ito::REDDISH_PURPLE),
    ]
    .into_iter()
    .map(|(k, label, color)| (k, style(label.into(), color, Marker::TriangleUp)))
    .collect();
    let configs = TrainArm::ALL
        .into_iter()
        .map(|a| (a.name(), style(a.label(), arm_color(a), arm_marker(a))))
        .collect();
    let blocks = [
        Skips::Basic,
        Skips::Preact,
        Skips::BasicSkipinit,
        Skips::PreactSkipinit,
    ]
    .into_iter()
    .filter_map(|s| {
        let shape = s.shape();
        let block = shape.block?;
        let per_norm = Normaliser::ALL
            .into_iter()
            .map(|n| {
                let (color, marker) = block_arm_style(block, shape.skip_init, n);
                let label = format!("{}, {}", n.label(), shape.label());
                (n.name(), style(label, color, marker))
            })
            .collect();
        Some((s.to_string(), per_norm))
    })
    .collect();
    ArmStyles {
        norms,
        skips,
        configs,
        blocks,
    }
}

async fn arms() -> Response {
    json(&arm_styles())
}

/// One shipped claim as the page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimEntry {
    /// The file's name without `NN-` and `.toml`.
    pub name: String,
    pub file: String,
    pub title: String,
    pub claim: String,
    /// The claim's command after `bn-lab`.
    pub command: String,
    /// Its control's command, if it has one.
    pub control: Option<String>,
    /// Why the server will not run the command (its one-line refusal); `None` when it will.
    pub refused: Option<String>,
}

/// The shipped claims read from [`CLAIM_FILES`] with the experiment-file parser, each with the
/// server's verdict on its command. Parsed once.
pub fn claim_entries() -> &'static [ClaimEntry] {
    static ENTRIES: OnceLock<Vec<ClaimEntry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        CLAIM_FILES
            .iter()
            .filter_map(|(file, src)| {
                let path = Path::new("experiments").join(file);
                let claim = Claim::parse(&path, src).ok()?;
                let command = claim.args.join(" ");
                let refused = super::request::parse(&command).err();
                Some(ClaimEntry {
                    name: claim.name.clone(),
                    file: (*file).to_string(),
                    title: claim.title.clone(),
                    claim: claim.claim.clone(),
                    command,
                    control: claim.control.as_ref().map(|c| c.args.join(" ")),
                    refused,
                })
            })
            .collect()
    })
}

/// `GET /api/claims`: the shipped claims, each refused where the server would refuse its
/// command, including a run over this server's `--max-seconds`.
async fn claims(State(app): State<Arc<App>>) -> Response {
    let entries: Vec<ClaimEntry> = claim_entries()
        .iter()
        .cloned()
        .map(|mut c| {
            if c.refused.is_none() {
                c.refused = app.over_limit(&c.command);
            }
            c
        })
        .collect();
    json(&entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_claim_is_embedded_and_parses() {
        let mut on_disk: Vec<String> = std::fs::read_dir("experiments")
            .expect("experiments/ is readable")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = CLAIM_FILES.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            embedded, on_disk,
            "CLAIM_FILES must list experiments/*.toml"
        );
        assert_eq!(
            claim_entries().len(),
            CLAIM_FILES.len(),
            "a claim did not parse"
        );
        let first = &claim_entries()[0];
        assert_eq!(first.command, "grad-norms --depth 50 --bn off");
        assert_eq!(first.refused, None);
    }

    #[test]
    fn arm_styles_are_the_figures() {
        let s = arm_styles();
        assert_eq!(s.norms.len(), Normaliser::ALL.len());
        assert_eq!(s.norms["off"].color, "#d55e00");
        assert_eq!(s.norms["off"].marker, "square");
        assert_eq!(s.norms["on"].color, "#0072b2");
        assert_eq!(s.norms["on"].marker, "circle");
        assert_eq!(s.norms["layer"].label, "LN");
        // train's SkipInit arm is not BN off's (src/plot/arms.rs arm_color, arm_marker).
        assert_eq!(s.configs["off"], s.norms["off"]);
        assert_eq!(s.configs["skip-init"].label, "SkipInit");
        assert_eq!(s.configs["skip-init"].color, "#009e73");
        assert_eq!(s.configs["skip-init"].marker, "triangle-up");
        assert_eq!(s.configs["on+skip-init"].label, "BN on + SkipInit");
        assert_eq!(s.configs["on+skip-init"].color, "#cc79a7");
        // grad-norms' block arms (src/plot/grad_norms.rs arm_style).
        assert_eq!(s.blocks.len(), 4);
        assert_eq!(s.blocks["preact"]["on"].color, "#0072b2");
        assert_eq!(s.blocks["preact"]["on"].marker, "diamond");
        assert_eq!(s.blocks["basic"]["off"].marker, "triangle-down");
        // SkipInit in train's SkipInit colours, the marker naming the block.
        assert_eq!(s.blocks["preact-skipinit"]["off"].color, "#009e73");
        assert_eq!(s.blocks["preact-skipinit"]["on"].color, "#cc79a7");
        assert_eq!(s.blocks["preact-skipinit"]["on"].marker, "diamond");
        assert_eq!(s.blocks["basic-skipinit"]["layer"].color, "#000000");
        assert_eq!(s.blocks["basic-skipinit"]["layer"].marker, "triangle-down");
        assert_eq!(
            s.blocks["preact-skipinit"]["off"].label,
            "BN off, preact+SkipInit"
        );
    }
}
