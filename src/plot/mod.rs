//! PNG plots drawn from the results structs, with an embedded font (DejaVu Sans, licence in
//! `DejaVuSans-LICENSE.txt` beside this file) so text renders on machines without system fonts.
//!
//! Two shared building blocks:
//! - [`Grid`] (over [`figure`]) lays out a figure: a white PNG with a title and subtitle on top
//!   and equal cells below, one panel each;
//! - [`draw_panel`] draws one chart with a linear or log y axis whose ranges come from finite
//!   (and, on a log axis, positive) values only; 0 is drawn as a ▼ on the bottom edge and
//!   inf/NaN as a ✕ on the top edge instead of as lines.
//!
//! Every range a chart hands plotters (panels, heat maps, the colour bar) goes through
//! [`axis_range`] first: plotters' tick computation hangs or panics on ranges near `f64::MAX`,
//! of infinite width, or too narrow for their magnitude, and any finite data must draw.

pub mod grad_norms;
pub mod heatmap;
pub mod histograms;
pub mod ics;
pub mod landscape;
pub mod layout;
pub mod nonlinearity;
pub mod shattered;
pub mod shift;
pub mod sweep;
pub mod theory;
pub mod train;

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use image::codecs::png::PngEncoder;
use image::{ColorType, ImageEncoder};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters_backend::DrawingErrorKind;

pub use layout::{Layout, PanelLayout, Rect};

const FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
/// The family name every plot asks for.
pub const FAMILY: &str = "sans-serif";

static REGISTER: Once = Once::new();

/// Register the embedded font with plotters (idempotent).
pub fn register_font() {
    REGISTER.call_once(|| {
        for style in [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ] {
            // The bytes are a valid TrueType font shipped with the crate.
            plotters::style::register_font(FAMILY, style, FONT)
                .unwrap_or_else(|_| unreachable!("embedded font is valid"));
        }
    });
}

/// One figure an experiment draws: its file name and the function drawing it from the report,
/// which returns where it put things (see [`layout`]).
pub struct Figure<R> {
    /// File name inside the output directory, e.g. `grad_norms.png`.
    pub file: &'static str,
    pub draw: fn(&R, &std::path::Path) -> Result<Layout>,
}

/// The figures of an experiment, drawn from its report (implemented in its plot module).
pub trait Figures: crate::experiment::Experiment {
    /// In the order the summary lists them; the first is the headline `<command>.png`.
    fn figures() -> Vec<Figure<Self::Report>>;

    /// The figures a run of `cfg` draws: [`Figures::figures`], then those its flags add
    /// (`--histograms`).
    fn figures_for(_cfg: &Self::Config) -> Vec<Figure<Self::Report>> {
        Self::figures()
    }
}

/// The Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), distinguishable with
/// every common colour-vision deficiency. Yellow is left out: it vanishes on white.
pub mod okabe_ito {
    use plotters::style::RGBColor;
    pub const BLACK: RGBColor = RGBColor(0, 0, 0);
    pub const ORANGE: RGBColor = RGBColor(230, 159, 0);
    pub const SKY_BLUE: RGBColor = RGBColor(86, 180, 233);
    pub const BLUISH_GREEN: RGBColor = RGBColor(0, 158, 115);
    pub const BLUE: RGBColor = RGBColor(0, 114, 178);
    pub const VERMILLION: RGBColor = RGBColor(213, 94, 0);
    pub const REDDISH_PURPLE: RGBColor = RGBColor(204, 121, 167);
}

/// Curve colours for arms without BatchNorm (warm) and with it (cool), from the Okabe-Ito
/// palette; figures pair them with a marker shape ([`norm_marker`]) so the arms also read apart
/// in black and white.
pub const WARM: [RGBColor; 3] = [
    okabe_ito::VERMILLION,
    okabe_ito::ORANGE,
    okabe_ito::REDDISH_PURPLE,
];
pub const COOL: [RGBColor; 4] = [
    okabe_ito::BLUE,
    okabe_ito::SKY_BLUE,
    okabe_ito::BLUISH_GREEN,
    okabe_ito::BLACK,
];

/// One colour per normalisation arm, the same in every figure: BN off vermillion, the BN arms
/// in the palette's blues, green and purple, LayerNorm orange (black after the activation).
pub fn norm_color(norm: crate::config::Norm) -> RGBColor {
    use crate::config::{NormKind, Placement};
    match norm.parts() {
        None => okabe_ito::VERMILLION,
        Some((NormKind::Batch, true, Placement::Pre)) => okabe_ito::BLUE,
        Some((NormKind::Batch, false, Placement::Pre)) => okabe_ito::SKY_BLUE,
        Some((NormKind::Batch, true, Placement::Post)) => okabe_ito::BLUISH_GREEN,
        Some((NormKind::Batch, false, Placement::Post)) => okabe_ito::REDDISH_PURPLE,
        Some((NormKind::Layer, _, Placement::Pre)) => okabe_ito::ORANGE,
        Some((NormKind::Layer, _, Placement::Post)) => okabe_ito::BLACK,
    }
}

/// One marker shape per normalisation arm, the second channel beside [`norm_color`]: BN off
/// squares, BN (pre, with scale/shift) circles, the other BN variants triangles and diamonds,
/// LayerNorm crosses (diamonds without scale/shift).
pub fn norm_marker(norm: crate::config::Norm) -> Marker {
    use crate::config::{NormKind, Placement};
    match norm.parts() {
        None => Marker::Square,
        Some((NormKind::Batch, true, Placement::Pre)) => Marker::Circle,
        Some((NormKind::Batch, false, Placement::Pre)) => Marker::Diamond,
        Some((NormKind::Batch, true, Placement::Post)) => Marker::TriangleUp,
        Some((NormKind::Batch, false, Placement::Post)) => Marker::TriangleDown,
        Some((NormKind::Layer, true, _)) => Marker::Cross,
        Some((NormKind::Layer, false, _)) => Marker::Diamond,
    }
}

/// A point marker's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    Diamond,
    TriangleUp,
    TriangleDown,
    Cross,
}

/// A line's dash pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dash {
    #[default]
    Solid,
    /// 14 px on, 8 off.
    Dashed,
    /// 4 on, 7 off.
    Dotted,
    /// 28 on, 9 off.
    LongDash,
}

impl Dash {
    /// The `n`-th pattern for a second channel such as depth: solid first.
    pub fn nth(n: usize) -> Dash {
        [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::LongDash][n % 4]
    }

    /// `(on, off)` in pixels; `None` for a solid line.
    fn pattern(self) -> Option<(u32, u32)> {
        match self {
            Dash::Solid => None,
            Dash::Dashed => Some((14, 8)),
            Dash::Dotted => Some((4, 7)),
            Dash::LongDash => Some((28, 9)),
        }
    }
}

/// One curve of a panel. `y` may hold 0, inf and NaN: they are marked, not drawn as lines.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    /// Optional min-max band `(x, lo, hi)` drawn shaded behind the line.
    pub band: Vec<(f64, f64, f64)>,
    /// Markers on the line: at every point up to [`MARKERS_ALL_UP_TO`] points, else at about
    /// [`SPARSE_MARKERS`] evenly spaced ones (shifted by `marker_phase`, so two series'
    /// markers do not sit on top of each other).
    pub marker: Option<Marker>,
    pub marker_phase: usize,
    pub dash: Dash,
    /// Line width in pixels (default 3).
    pub width: u32,
    /// Listed in the legend (default `true`).
    pub legend: bool,
    /// Drawn as markers only, without a line (scatter plots).
    pub no_line: bool,
}

/// Up to this many points a series' markers sit on every point.
pub const MARKERS_ALL_UP_TO: usize = 30;
/// About this many markers on a longer series.
pub const SPARSE_MARKERS: usize = 12;

impl Series {
    pub fn new(label: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            color,
            points,
            band: Vec::new(),
            marker: None,
            marker_phase: 0,
            dash: Dash::Solid,
            width: 3,
            legend: true,
            no_line: false,
        }
    }

    /// A dashed, unlisted horizontal line at `y` across `x_range`: a level such as a mean or a
    /// limit, in a series' colour.
    pub fn level(label: impl Into<String>, color: RGBColor, x_range: (f64, f64), y: f64) -> Self {
        let mut s = Series::new(label, color, vec![(x_range.0, y), (x_range.1, y)]);
        s.dash = Dash::Dashed;
        s.width = 2;
        s.legend = false;
        s
    }

    /// The indices of the points that carry a marker.
    fn marker_indices(&self) -> Vec<usize> {
        let n = self.points.len();
        if self.marker.is_none() {
            return Vec::new();
        }
        if n <= MARKERS_ALL_UP_TO || self.no_line {
            return (0..n).collect();
        }
        let step = n.div_ceil(SPARSE_MARKERS).max(1);
        let phase = (self.marker_phase * step / 3) % step;
        (0..n).filter(|i| i % step == phase).collect()
    }
}

/// A label written on the plot next to the data point `(x, y)` (data units; on a log axis `y`
/// is the value, not its log), `offset` pixels to the right and up.
#[derive(Clone, Debug)]
pub struct Note {
    pub x: f64,
    pub y: f64,
    pub text: String,
    pub color: RGBColor,
    pub offset: (i32, i32),
}

/// One chart.
#[derive(Clone, Debug)]
pub struct Panel {
    pub caption: String,
    pub x_label: String,
    pub y_label: String,
    pub log_y: bool,
    pub series: Vec<Series>,
    /// Horizontal guide lines `(y, label)`, drawn dashed in grey.
    pub guides: Vec<(f64, String)>,
    /// Fixed x range; computed from the data when `None`.
    pub x_range: Option<(f64, f64)>,
    /// Legend text for the ✕ marks on the top edge [default: inf or NaN (overflow)].
    pub top_edge_label: Option<String>,
    /// Fixed y range `(lo, hi)` in data units (snapped to whole decades on a log axis), so
    /// several panels share one scale; computed from the data when `None`.
    pub y_range: Option<(f64, f64)>,
    /// Label only whole numbers on the x axis (layer indices).
    pub integer_x: bool,
    /// The x values are `log2` of the quantity (batch sizes): whole ticks are labelled `2^x`
    /// (`4`, `16`, `256`), the others not.
    pub log2_x: bool,
    /// A log x axis: values sit at `log10(x)`, ticks are labelled in decades.
    pub log_x: bool,
    /// Labels written on the plot beside their data points.
    pub notes: Vec<Note>,
    /// Legend text for the ▼ marks on the bottom edge [default: exactly 0 (underflow)].
    pub bottom_edge_label: Option<String>,
    /// Names written instead of the number at these x ticks (e.g. `out` for the output layer).
    pub x_tick_names: Vec<(f64, String)>,
}

impl Panel {
    pub fn new(
        caption: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
        log_y: bool,
    ) -> Self {
        Panel {
            caption: caption.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_y,
            series: Vec::new(),
            guides: Vec::new(),
            x_range: None,
            top_edge_label: None,
            y_range: None,
            integer_x: false,
            log2_x: false,
            log_x: false,
            notes: Vec::new(),
            bottom_edge_label: None,
            x_tick_names: Vec::new(),
        }
    }
}

fn usable(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
}

/// The largest magnitude an end of an axis may have (in plot coordinates): data beyond it is
/// drawn at the edge. It keeps an axis' width, and the tick steps plotters derives from it (up
/// to ten times the width), finite.
pub const AXIS_LIMIT: f64 = 1e300;

/// Below this share of its magnitude a range is too narrow for plotters to place ticks in.
const MIN_RELATIVE_WIDTH: f64 = 1e-9;

/// `(lo, hi)` made safe to hand to plotters, whatever the data: plotters' tick computation
/// (`compute_f64_key_points`) asserts on NaN and loops forever on a range whose width is
/// infinite, or too small to tell ticks apart at its magnitude (`(1e300, 1e300 + 1e285)`).
/// NaN ends take the other end's value, ends are clamped to ±[`AXIS_LIMIT`], and a range
/// narrower than 1e-9 of its magnitude (a single repeated value) is widened by a tenth of its
/// magnitude (at least 0.1) either side, as [`y_range`] pads a single value. A reversed range
/// stays reversed. Every chart goes through here before plotters sees its ranges.
pub fn axis_range(lo: f64, hi: f64) -> (f64, f64) {
    let clamp = |v: f64| v.clamp(-AXIS_LIMIT, AXIS_LIMIT);
    let (lo, hi) = match (lo.is_nan(), hi.is_nan()) {
        (true, true) => (0.0, 0.0),
        (true, false) => (hi, hi),
        (false, true) => (lo, lo),
        (false, false) => (lo, hi),
    };
    let reversed = hi < lo;
    let (mut a, mut b) = if reversed {
        (clamp(hi), clamp(lo))
    } else {
        (clamp(lo), clamp(hi))
    };
    let magnitude = a.abs().max(b.abs());
    if b - a <= MIN_RELATIVE_WIDTH * magnitude {
        let mid = a / 2.0 + b / 2.0;
        let pad = 0.1 * magnitude.max(1.0);
        (a, b) = (clamp(mid - pad), clamp(mid + pad));
    }
    if reversed { (b, a) } else { (a, b) }
}

/// `v` (a plot coordinate) moved to at most one width of `range` beyond it: plotters maps a
/// point far off an axis to a pixel offset that overflows `i32`, and draws every point off the
/// plot on its edge anyway. NaN stays NaN (plotters draws it at the axis' start).
pub(crate) fn near(v: f64, range: (f64, f64)) -> f64 {
    let (lo, hi) = (range.0.min(range.1), range.0.max(range.1));
    let w = hi - lo;
    v.clamp(lo - w, hi + w)
}

/// The y range in plot coordinates (log10 of the value on a log axis, snapped to whole decades)
/// covering the usable values.
pub fn y_range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|&v| usable(v, log)) {
        let v = if log { v.log10() } else { v };
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    if log {
        // At least two decades, so the axis always carries three whole-decade labels.
        let (mut a, mut b) = (lo.floor(), hi.ceil());
        if b - a < 2.0 {
            let mid = ((lo + hi) / 2.0).round();
            a = a.min(mid - 1.0);
            b = b.max(mid + 1.0);
        }
        (a, b)
    } else {
        let pad = if hi > lo {
            0.05 * (hi - lo)
        } else {
            lo.abs().max(1.0) * 0.1
        };
        (lo - pad, hi + pad)
    }
}

/// Split points into runs of usable values.
fn segments(points: &[(f64, f64)], log: bool) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for &(x, y) in points {
        if usable(y, log) {
            out.last_mut().expect("never empty").push((x, y));
        } else if !out.last().expect("never empty").is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The ranges of a panel's axes in plot coordinates: on a log axis a value `v` sits at
/// `log10(v)` (see [`Axes::plot_y`], [`Axes::plot_x`]). When some values cannot be drawn
/// (0 on a log axis, inf, NaN), the y range grows by a strip beyond the data range that carries
/// no tick: the marks for those values sit in it, so none reads as a tick's value.
#[derive(Clone, Copy, Debug)]
struct Axes {
    x: (f64, f64),
    /// The whole y range, strips included.
    y: (f64, f64),
    /// The data part of the y range (ticks are labelled only here).
    data_y: (f64, f64),
    log: bool,
    log_x: bool,
    edges: EdgeMarks,
}

/// A strip for edge marks takes this share of the data range.
const EDGE_STRIP: f64 = 0.07;

impl Axes {
    /// The panel's fixed ranges where it has them, otherwise ranges covering its data (the y
    /// range also covers the bands, so no band is cut off).
    fn of(panel: &Panel) -> Self {
        let log = panel.log_y;
        let all_y = panel.series.iter().flat_map(|s| {
            s.points
                .iter()
                .map(|p| p.1)
                .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
        });
        let data_y = match panel.y_range {
            Some((lo, hi)) => y_range([lo, hi].into_iter(), log),
            None => y_range(all_y, log),
        };
        // Within ±AXIS_LIMIT, so with the edge strips the width stays finite.
        let data_y = axis_range(data_y.0, data_y.1);
        let mut edges = EdgeMarks::default();
        for &(_, y) in panel.series.iter().flat_map(|s| &s.points) {
            if !usable(y, log) {
                if y.is_finite() {
                    edges.bottom = true;
                } else {
                    edges.top = true;
                }
            }
        }
        let strip = EDGE_STRIP * (data_y.1 - data_y.0);
        let y = (
            data_y.0 - if edges.bottom { strip } else { 0.0 },
            data_y.1 + if edges.top { strip } else { 0.0 },
        );
        let x = panel.x_range.unwrap_or_else(|| x_extent(panel));
        let x = if panel.log_x {
            let log = |v: f64| v.clamp(f64::MIN_POSITIVE, f64::MAX).log10();
            axis_range(log(x.0), log(x.1))
        } else {
            axis_range(x.0, x.1)
        };
        Axes {
            x,
            y,
            data_y,
            log,
            log_x: panel.log_x,
            edges,
        }
    }

    /// Where the value `v` sits on the y axis (a value far off the axis: just beyond it).
    fn plot_y(&self, v: f64) -> f64 {
        near(if self.log { v.log10() } else { v }, self.y)
    }

    /// Where the value `v` sits on the x axis (`None`: not on a log axis; a value far off the
    /// axis: just beyond it).
    fn plot_x(&self, v: f64) -> Option<f64> {
        if !self.log_x {
            Some(near(v, self.x))
        } else if v > 0.0 && v.is_finite() {
            Some(near(v.log10(), self.x))
        } else {
            None
        }
    }

    /// The middle of the strip for ▼ marks (bottom) or ✕ marks (top).
    fn strip_middle(&self, top: bool) -> f64 {
        if top {
            (self.data_y.1 + self.y.1) / 2.0
        } else {
            (self.data_y.0 + self.y.0) / 2.0
        }
    }

    /// How many y labels to ask plotters for. On a log axis about one per decade (at most 11),
    /// so plotters picks whole-decade steps.
    fn y_label_count(&self) -> usize {
        if self.log {
            ((self.data_y.1 - self.data_y.0).round() as usize).clamp(2, 10) + 1
        } else {
            8
        }
    }

    /// Whether a tick at `t` lies in the data range (not in an edge strip).
    fn in_data(&self, t: f64) -> bool {
        let eps = 1e-9 * (self.data_y.1 - self.data_y.0).abs().max(1e-300);
        t >= self.data_y.0 - eps && t <= self.data_y.1 + eps
    }
}

/// The x range covering every series' points; a single x gets one unit either side, and no
/// data at all gets (0, 1), so the chart can still be built. On a log x axis only positive
/// x count, and a single x gets a factor of 2 either side.
fn x_extent(panel: &Panel) -> (f64, f64) {
    let xs = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|&x| x.is_finite() && (!panel.log_x || x > 0.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if lo.is_finite() && hi > lo {
        if panel.log_x {
            // A little room either side, so end markers are not cut in half.
            (lo / 1.25, hi * 1.25)
        } else {
            (lo, hi)
        }
    } else if lo.is_finite() {
        if panel.log_x {
            (lo / 2.0, lo * 2.0)
        } else {
            (lo - 1.0, lo + 1.0)
        }
    } else if panel.log_x {
        (0.1, 1.0)
    } else {
        (0.0, 1.0)
    }
}
/// Label of a log-axis tick at `10^t`.
fn log_tick(t: f64) -> String {
    let k = t.round();
    if (t - k).abs() < 1e-9 {
        match k as i64 {
            -2 => "0.01".into(),
            -1 => "0.1".into(),
            0 => "1".into(),
            1 => "10".into(),
            2 => "100".into(),
            e => format!("1e{e}"),
        }
    } else {
        let v = 10f64.powf(t);
        if (0.01..1000.0).contains(&v) {
            format!("{v:.2}")
        } else {
            format!("{v:.1e}")
        }
    }
}

fn lin_tick(v: &f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A `map_err` adapter that turns a plotters error into "`what`: error" on one line, so each
/// failure says which part of a figure it hit.
pub(crate) fn failed<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(DrawingAreaErrorKind<E>) -> anyhow::Error {
    move |e| anyhow!("{what}: {}", plot_error_message(&e))
}

/// The error type of the bitmap backend (plotters does not export its name).
type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

/// A plotters error as one line of Display text: the bitmap backend's own Display is its Debug
/// dump (`ImageError(IoError(Os { code: 28, ... }))`), so its I/O and image errors are
/// rendered by their Display instead (`No space left on device (os error 28)`).
pub fn plot_error_message<E: std::error::Error + Send + Sync + 'static>(
    e: &DrawingAreaErrorKind<E>,
) -> String {
    let backend: &(dyn std::error::Error + 'static) = match e {
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::DrawingError(inner)) => inner,
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::FontError(font)) => {
            return format!("font error: {font}");
        }
        other => return other.to_string(),
    };
    if let Some(BitmapError::IOError(io)) = backend.downcast_ref::<BitmapError>() {
        io.to_string()
    } else if let Some(BitmapError::ImageError(image)) = backend.downcast_ref::<BitmapError>() {
        image.to_string()
    } else if let Some(BitmapError::InvalidBuffer) = backend.downcast_ref::<BitmapError>() {
        "the pixel buffer does not fit the figure".to_string()
    } else {
        backend.to_string()
    }
}

/// A chart with `f64` on both axes, as every panel and histogram uses (a log y axis is drawn
/// as `log10` values on a linear axis).
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Font sizes of a figure's text, in pixels.
#[derive(Clone, Copy, Debug)]
pub struct Fonts {
    pub caption: u32,
    pub axis: u32,
    pub tick: u32,
    pub legend: u32,
}

impl Fonts {
    /// Detail figures, read at home.
    pub const DETAIL: Fonts = Fonts {
        caption: 30,
        axis: 26,
        tick: 22,
        legend: 22,
    };
    /// Headline figures ([`SLIDE_SIZE`]): still about 14 px high when a projector shows the
    /// slide at 1024x768.
    pub const SLIDE: Fonts = Fonts {
        caption: 36,
        axis: 30,
        tick: 27,
        legend: 27,
    };
}

/// What a legend line shows before its text.
#[derive(Clone, Debug, PartialEq)]
pub enum Sample {
    Line {
        color: RGBColor,
        dash: Dash,
        marker: Option<Marker>,
        width: u32,
    },
    /// A marker alone (a scatter series).
    Point { color: RGBColor, marker: Marker },
    /// A shaded band.
    Band(RGBColor),
    /// A grey dashed guide line.
    Guide,
    /// The ▼ of a value drawn in the bottom strip.
    BottomMark,
    /// The ✕ of a value drawn in the top strip.
    TopMark,
    /// Text only: a note on how to read the figure.
    Text,
}

/// One line of a legend.
#[derive(Clone, Debug, PartialEq)]
pub struct LegendItem {
    pub label: String,
    pub sample: Sample,
}

impl LegendItem {
    pub fn new(label: impl Into<String>, sample: Sample) -> Self {
        LegendItem {
            label: label.into(),
            sample,
        }
    }

    /// A line of text without a sample.
    pub fn text(label: impl Into<String>) -> Self {
        LegendItem::new(label, Sample::Text)
    }
}

/// Below this share of the y range a band is too thin to see: the legend states the spread.
const THIN_BAND: f64 = 0.012;

/// The legend a panel's contents call for: its listed series (a series without any usable
/// value saying so, a band too thin to see stating its spread), its guides, and what the edge
/// marks mean where there are any.
pub fn panel_legend(panel: &Panel) -> Vec<LegendItem> {
    legend_entries(panel)
        .into_iter()
        .map(|(mut item, thin)| {
            if let Some(spread) = thin {
                item.label.push_str(&format!(" (seeds within {spread})"));
            }
            item
        })
        .collect()
}

/// A panel's legend lines, each with the spread of its series' band when that band is too thin
/// to see (`None` otherwise).
fn legend_entries(panel: &Panel) -> Vec<(LegendItem, Option<String>)> {
    let axes = Axes::of(panel);
    let mut items = Vec::new();
    for s in panel.series.iter().filter(|s| s.legend) {
        let mut label = s.label.clone();
        let mut thin = None;
        if !s.points.iter().any(|p| usable(p.1, axes.log)) {
            label.push_str(" (no finite value)");
        } else {
            thin = thin_band_spread(s, &axes);
        }
        let sample = if s.no_line {
            Sample::Point {
                color: s.color,
                marker: s.marker.unwrap_or(Marker::Circle),
            }
        } else {
            Sample::Line {
                color: s.color,
                dash: s.dash,
                marker: s.marker,
                width: s.width,
            }
        };
        items.push((LegendItem::new(label, sample), thin));
    }
    for (y, label) in &panel.guides {
        let at = axes.plot_y(*y);
        if usable(*y, axes.log) && at >= axes.y.0 && at <= axes.y.1 {
            items.push((LegendItem::new(label.clone(), Sample::Guide), None));
        }
    }
    if axes.edges.bottom {
        let label = panel.bottom_edge_label.clone().unwrap_or_else(|| {
            if panel.log_y {
                "bottom strip: exactly 0 (underflow)".to_string()
            } else {
                "bottom strip: 0".to_string()
            }
        });
        items.push((LegendItem::new(label, Sample::BottomMark), None));
    }
    if axes.edges.top {
        let label = panel
            .top_edge_label
            .clone()
            .unwrap_or_else(|| "top strip: inf or NaN (overflow)".to_string());
        items.push((LegendItem::new(label, Sample::TopMark), None));
    }
    items
}

/// The widest spread of a series' band, as text (`x1.03` on a log axis, `±0.002` on a linear
/// one), when the band is too thin to see on this axis.
fn thin_band_spread(s: &Series, axes: &Axes) -> Option<String> {
    let widths = s
        .band
        .iter()
        .filter(|b| usable(b.1, axes.log) && usable(b.2, axes.log))
        .map(|b| axes.plot_y(b.2) - axes.plot_y(b.1));
    let widest = widths.fold(f64::NAN, f64::max);
    if !(widest.is_finite() && widest < THIN_BAND * (axes.y.1 - axes.y.0)) {
        return None;
    }
    Some(if axes.log {
        format!("×{:.3}", 10f64.powf(widest))
    } else {
        format!("±{}", lin_tick(&(widest / 2.0)))
    })
}

/// Every panel's legend in one list, each distinct line once: the legend of panels that share
/// their series.
pub fn shared_legend<'p>(panels: impl IntoIterator<Item = &'p Panel>) -> Vec<LegendItem> {
    // A series whose band is too thin to see states its spread only if it is too thin in every
    // panel it appears in (the widest spread is stated: the band is visible somewhere else).
    let mut items: Vec<(LegendItem, Option<String>, bool)> = Vec::new();
    for (item, thin) in panels.into_iter().flat_map(legend_entries) {
        match items.iter_mut().find(|(i, _, _)| *i == item) {
            Some((_, kept, visible)) => {
                *visible |= thin.is_none();
                if let (Some(a), Some(b)) = (kept.as_ref(), thin.as_ref()) {
                    if spread_value(b) > spread_value(a) {
                        *kept = thin;
                    }
                }
            }
            None => {
                let visible = thin.is_none();
                items.push((item, thin, visible));
            }
        }
    }
    items
        .into_iter()
        .map(|(mut item, thin, visible)| {
            if let (Some(spread), false) = (thin, visible) {
                item.label.push_str(&format!(" (seeds within {spread})"));
            }
            item
        })
        .collect()
}

/// The number in a spread text (`×1.78`, `±0.002`).
fn spread_value(s: &str) -> f64 {
    s.trim_start_matches(['×', '±']).parse().unwrap_or(0.0)
}

/// A legend laid out: its lines (the sample on each item's first line) and its size.
pub struct LegendBox {
    lines: Vec<(Option<Sample>, String)>,
    /// Width and height in pixels.
    pub size: (u32, u32),
    font: u32,
}

const LEGEND_PAD: u32 = 12;
const SAMPLE_W: u32 = 48;
const SAMPLE_GAP: u32 = 10;

fn text_style(font: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, font).into_font())
}

/// Lay out `items` in at most `max_w` pixels of width, wrapping long labels at spaces.
pub fn layout_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[LegendItem],
    font: u32,
    max_w: u32,
) -> Result<LegendBox>
where
    DB::ErrorType: 'static,
{
    let style = text_style(font);
    let measure = |t: &str| -> Result<u32> {
        Ok(area
            .estimate_text_size(t, &style)
            .map_err(failed("measuring legend"))?
            .0)
    };
    let text_max = max_w
        .saturating_sub(2 * LEGEND_PAD + SAMPLE_W + SAMPLE_GAP)
        .max(80);
    let mut lines = Vec::new();
    let mut widest = 0;
    for item in items {
        let mut sample = (item.sample != Sample::Text).then(|| item.sample.clone());
        let mut line = String::new();
        for word in item.label.split(' ') {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && measure(&candidate)? > text_max {
                widest = widest.max(measure(&line)?);
                lines.push((sample.take(), std::mem::take(&mut line)));
                line = format!("   {word}");
            } else {
                line = candidate;
            }
        }
        widest = widest.max(measure(&line)?);
        lines.push((sample.take(), line));
    }
    let row = row_height(font);
    let w = 2 * LEGEND_PAD + SAMPLE_W + SAMPLE_GAP + widest;
    let h = 2 * LEGEND_PAD + row * lines.len() as u32;
    Ok(LegendBox {
        lines,
        size: (w, h),
        font,
    })
}

fn row_height(font: u32) -> u32 {
    (font as f64 * 1.4).ceil() as u32
}

/// Draw a laid-out legend with its upper left corner at `at` (in `area`'s pixels); returns its
/// box in PNG pixels.
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    legend: &LegendBox,
    at: (i32, i32),
) -> Result<Rect>
where
    DB::ErrorType: 'static,
{
    let (w, h) = (legend.size.0 as i32, legend.size.1 as i32);
    area.draw(&Rectangle::new([at, (at.0 + w, at.1 + h)], WHITE.filled()))
        .map_err(failed("drawing legend"))?;
    area.draw(&Rectangle::new(
        [at, (at.0 + w, at.1 + h)],
        ShapeStyle::from(&BLACK.mix(0.4)).stroke_width(1),
    ))
    .map_err(failed("drawing legend"))?;
    let row = row_height(legend.font) as i32;
    let style = text_style(legend.font).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Left,
        plotters::style::text_anchor::VPos::Center,
    ));
    for (i, (sample, text)) in legend.lines.iter().enumerate() {
        let y = at.1 + LEGEND_PAD as i32 + row * i as i32 + row / 2;
        let x = at.0 + LEGEND_PAD as i32;
        if let Some(sample) = sample {
            draw_sample(area, sample, (x, y))?;
        }
        let tx = if sample.is_none() && !text.starts_with("   ") && !has_samples(legend) {
            x
        } else {
            x + (SAMPLE_W + SAMPLE_GAP) as i32
        };
        area.draw_text(text, &style, (tx, y))
            .map_err(failed("drawing legend"))?;
    }
    let base = area.get_base_pixel();
    Ok(Rect::new(
        base.0 + at.0,
        base.1 + at.1,
        base.0 + at.0 + w,
        base.1 + at.1 + h,
    ))
}

/// Draw `items` as one legend in `area`, its upper left corner at `at` (in `area`'s pixels),
/// wrapped to the area's width; returns its box in PNG pixels. For figures that lay out their
/// own panels (with [`draw_panel_bare`]) and share one legend column among them.
pub fn draw_legend_items<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    items: &[LegendItem],
    font: u32,
    at: (i32, i32),
) -> Result<Rect>
where
    DB::ErrorType: 'static,
{
    let max_w = (area.dim_in_pixel().0 as i32 - at.0).max(0) as u32;
    let legend = layout_legend(area, items, font, max_w)?;
    draw_legend(area, &legend, at)
}

fn has_samples(legend: &LegendBox) -> bool {
    legend.lines.iter().any(|l| l.0.is_some())
}

/// A legend sample, [`SAMPLE_W`] wide, starting at `(x, y)` (its vertical middle).
fn draw_sample<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    sample: &Sample,
    (x, y): (i32, i32),
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let grey = RGBColor(60, 60, 60);
    let w = SAMPLE_W as i32;
    match *sample {
        Sample::Line {
            color,
            dash,
            marker,
            width,
        } => {
            let st = ShapeStyle::from(&color).stroke_width(width.max(3));
            for (a, b) in dash_pieces(dash, w) {
                area.draw(&PathElement::new(vec![(x + a, y), (x + b, y)], st))
                    .map_err(failed("drawing legend"))?;
            }
            if let Some(m) = marker {
                draw_marker_px(area, (x + w / 2, y), m, color)?;
            }
        }
        Sample::Point { color, marker } => draw_marker_px(area, (x + w / 2, y), marker, color)?,
        Sample::Band(color) => area
            .draw(&Rectangle::new(
                [(x, y - 8), (x + w, y + 8)],
                color.mix(0.3).filled(),
            ))
            .map_err(failed("drawing legend"))?,
        Sample::Guide => {
            let st = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(2);
            for (a, b) in dash_pieces(Dash::Dashed, w) {
                area.draw(&PathElement::new(vec![(x + a, y), (x + b, y)], st))
                    .map_err(failed("drawing legend"))?;
            }
        }
        Sample::BottomMark => area
            .draw(&Polygon::new(
                vec![
                    (x + w / 2 - 8, y - 7),
                    (x + w / 2 + 8, y - 7),
                    (x + w / 2, y + 7),
                ],
                grey.filled(),
            ))
            .map_err(failed("drawing legend"))?,
        Sample::TopMark => draw_marker_px(area, (x + w / 2, y), Marker::Cross, grey)?,
        Sample::Text => {}
    }
    Ok(())
}

/// The `(from, to)` pieces of a `len`-pixel line in the dash pattern.
fn dash_pieces(dash: Dash, len: i32) -> Vec<(i32, i32)> {
    match dash.pattern() {
        None => vec![(0, len)],
        Some((on, off)) => {
            let (on, off) = (on as i32, off as i32);
            let mut out = Vec::new();
            let mut a = 0;
            while a < len {
                out.push((a, (a + on).min(len)));
                a += on + off;
            }
            out
        }
    }
}

/// Radius in pixels of a data marker.
const MARKER_R: i32 = 7;

/// A marker centred at `c` (in `area`'s pixels), white-edged so it reads over lines.
fn draw_marker_px<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    c: (i32, i32),
    m: Marker,
    color: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let r = MARKER_R;
    let (x, y) = c;
    let fill = color.filled();
    let edge = ShapeStyle::from(&WHITE).stroke_width(1);
    let poly = |pts: Vec<(i32, i32)>| -> Result<()> {
        area.draw(&Polygon::new(pts.clone(), fill))
            .map_err(failed("drawing marker"))?;
        let mut closed = pts;
        closed.push(closed[0]);
        area.draw(&PathElement::new(closed, edge))
            .map_err(failed("drawing marker"))
    };
    match m {
        Marker::Circle => {
            area.draw(&Circle::new(c, r, fill))
                .map_err(failed("drawing marker"))?;
            area.draw(&Circle::new(c, r, edge))
                .map_err(failed("drawing marker"))?;
        }
        Marker::Square => poly(vec![
            (x - r + 1, y - r + 1),
            (x + r - 1, y - r + 1),
            (x + r - 1, y + r - 1),
            (x - r + 1, y + r - 1),
        ])?,
        Marker::Diamond => poly(vec![
            (x, y - r - 2),
            (x + r + 1, y),
            (x, y + r + 2),
            (x - r - 1, y),
        ])?,
        Marker::TriangleUp => poly(vec![(x, y - r - 1), (x + r + 1, y + r), (x - r - 1, y + r)])?,
        Marker::TriangleDown => poly(vec![(x, y + r + 1), (x + r + 1, y - r), (x - r - 1, y - r)])?,
        Marker::Cross => {
            let st = ShapeStyle::from(&color).stroke_width(4);
            area.draw(&PathElement::new(vec![(x - r, y - r), (x + r, y + r)], st))
                .map_err(failed("drawing marker"))?;
            area.draw(&PathElement::new(vec![(x - r, y + r), (x + r, y - r)], st))
                .map_err(failed("drawing marker"))?;
        }
    }
    Ok(())
}

/// Draw one panel into `area` with its legend in a strip on the right of the plot, never over
/// it. On a log axis values are drawn at `log10(y)` on a linear axis with decade ticks
/// (plotters' own log axis mislabels ranges of many decades).
pub fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
) -> Result<Layout>
where
    DB::ErrorType: 'static,
{
    draw_panel_with(area, panel, Fonts::DETAIL)
}

/// [`draw_panel`] with the given fonts.
pub fn draw_panel_with<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    fonts: Fonts,
) -> Result<Layout>
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let mut layout = Layout::new((0, 0));
    let items = panel_legend(panel);
    if items.is_empty() {
        layout.panels.push(draw_panel_bare(area, panel, fonts)?);
        return Ok(layout);
    }
    let legend = layout_legend(area, &items, fonts.legend, (w as f64 * 0.36) as u32)?;
    let (plot_area, legend_area) = area.split_horizontally(w.saturating_sub(legend.size.0 + 16));
    let drawn = draw_panel_bare(&plot_area, panel, fonts)?;
    // Level with the top of the plot, or as high as it fits.
    let top = (drawn.plot.y0 - area.get_base_pixel().1)
        .min(h as i32 - legend.size.1 as i32)
        .max(0);
    layout
        .legends
        .push(draw_legend(&legend_area, &legend, (4, top))?);
    layout.panels.push(drawn);
    Ok(layout)
}

/// Where a panel's caption (centred over `area`, at its top) and x-axis label (centred under
/// `plot`, at the bottom of `area`) are written, measured in the font they are drawn in: the
/// layout test checks that neighbouring panels' texts do not run into each other.
fn text_boxes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    fonts: Fonts,
    plot: Rect,
) -> Result<Vec<Rect>>
where
    DB::ErrorType: 'static,
{
    let (ax, ay) = area.get_pixel_range();
    let mut out = Vec::new();
    let mut measure = |text: &str, size: u32, cx: i32, y0: i32| -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let (w, h) = area
            .estimate_text_size(text, &text_style(size))
            .map_err(failed("measuring a caption"))?;
        let (w, h) = (w as i32, h as i32);
        out.push(Rect::new(cx - w / 2, y0, cx - w / 2 + w, y0 + h));
        Ok(())
    };
    measure(
        &panel.caption,
        fonts.caption,
        (ax.start + ax.end) / 2,
        ay.start,
    )?;
    let x_label_top = ay.end - fonts.axis as i32 - 4;
    measure(
        &panel.x_label,
        fonts.axis,
        (plot.x0 + plot.x1) / 2,
        x_label_top.max(plot.y1),
    )?;
    Ok(out)
}

/// Draw one panel's chart into `area` without a legend (a figure with a shared legend draws
/// it elsewhere); returns where its plot and data went.
pub fn draw_panel_bare<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    fonts: Fonts,
) -> Result<PanelLayout>
where
    DB::ErrorType: 'static,
{
    let axes = Axes::of(panel);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, (FAMILY, fonts.caption))
        .margin(16)
        .x_label_area_size(fonts.axis * 2 + fonts.tick + 12)
        .y_label_area_size(fonts.axis + fonts.tick * 4 + 10)
        .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)
        .map_err(failed("building chart"))?;
    draw_panel_axes(&mut chart, panel, &axes, fonts)?;
    draw_edge_strips(&mut chart, &axes)?;
    draw_guides(&mut chart, panel, &axes)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let plot = Rect::new(xr.start, yr.start, xr.end, yr.end);
    let mut drawn = PanelLayout {
        caption: panel.caption.clone(),
        plot,
        points: Vec::new(),
        labels: Vec::new(),
        texts: text_boxes(area, panel, fonts, plot)?,
    };
    for s in &panel.series {
        draw_band(&mut chart, s, &axes, &mut drawn.points)?;
    }
    for s in &panel.series {
        draw_line(&mut chart, s, &axes, drawn.plot, &mut drawn.points)?;
    }
    for s in &panel.series {
        draw_point_marks(area, &chart, s, &axes, drawn.plot, &mut drawn.points)?;
    }
    drawn.labels = draw_notes(area, &chart, panel, &axes, fonts, drawn.plot, &drawn.points)?;
    Ok(drawn)
}

/// Axis labels, tick labels and the light grid. Integer x axes (layer indices) leave the
/// fractional ticks unlabelled; log axes are labelled in decades; ticks in an edge strip are
/// not labelled.
fn draw_panel_axes<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    panel: &Panel,
    axes: &Axes,
    fonts: Fonts,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let x_fmt = |v: &f64| {
        if let Some((_, name)) = panel
            .x_tick_names
            .iter()
            .find(|(x, _)| (x - v).abs() < 1e-9)
        {
            name.clone()
        } else if (panel.integer_x || panel.log2_x || panel.log_x) && (v - v.round()).abs() > 1e-9 {
            String::new()
        } else if panel.log2_x {
            format!("{}", 2f64.powi(v.round() as i32))
        } else if panel.log_x {
            log_tick(*v)
        } else {
            lin_tick(v)
        }
    };
    let y_fmt = |t: &f64| {
        if !axes.in_data(*t) {
            String::new()
        } else if axes.log {
            log_tick(*t)
        } else {
            lin_tick(t)
        }
    };
    // About one x label per 110 pixels, so narrow panels do not run their labels together.
    let plot_w = chart.plotting_area().dim_in_pixel().0;
    let x_labels = (plot_w as usize / 110).clamp(3, 12);
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(x_labels);
    mesh.x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .axis_desc_style((FAMILY, fonts.axis))
        .label_style((FAMILY, fonts.tick))
        .y_labels(axes.y_label_count())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .light_line_style(BLACK.mix(0.05))
        .bold_line_style(BLACK.mix(0.15));
    if panel.log_x {
        mesh.x_labels(((axes.x.1 - axes.x.0).ceil() as usize + 1).clamp(2, 12));
    }
    mesh.draw().map_err(failed("drawing axes"))
}

/// The strips beyond the data range that hold the edge marks: shaded light grey, with a line
/// where the data range ends.
fn draw_edge_strips<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, axes: &Axes) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = axes.x;
    for (on, from, to) in [
        (axes.edges.top, axes.data_y.1, axes.y.1),
        (axes.edges.bottom, axes.y.0, axes.data_y.0),
    ] {
        if !on {
            continue;
        }
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x0, from), (x1, to)],
                BLACK.mix(0.06).filled(),
            )))
            .map_err(failed("drawing edge strip"))?;
        let edge = if from == axes.data_y.1 { from } else { to };
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x0, edge), (x1, edge)],
                ShapeStyle::from(&BLACK.mix(0.35)).stroke_width(1),
            )))
            .map_err(failed("drawing edge strip"))?;
    }
    Ok(())
}

/// The panel's horizontal guide lines (reference levels such as the best linear fit), dashed
/// grey across the whole width; guides off the y range are left out rather than clamped.
fn draw_guides<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    panel: &Panel,
    axes: &Axes,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let ((x0, x1), (y0, y1)) = (axes.x, axes.y);
    for (y, _) in &panel.guides {
        let at = axes.plot_y(*y);
        if !usable(*y, axes.log) || at < y0 || at > y1 {
            continue;
        }
        let style = ShapeStyle::from(&RGBColor(90, 90, 90)).stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, at), (x1, at)],
                12,
                8,
                style,
            ))
            .map_err(failed("drawing guide"))?;
    }
    Ok(())
}

/// The series' min-max band, shaded in its colour with thin edges: one polygon per run of x
/// where both bounds are usable, so a gap (e.g. a seed that overflowed) breaks the band
/// instead of bridging it.
fn draw_band<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    s: &Series,
    axes: &Axes,
    points: &mut Vec<(i32, i32)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut run: Vec<(f64, f64, f64)> = Vec::new();
    for &b in &s.band {
        match axes.plot_x(b.0) {
            Some(x) if usable(b.1, axes.log) && usable(b.2, axes.log) => {
                run.push((x, axes.plot_y(b.1), axes.plot_y(b.2)))
            }
            _ => {
                draw_band_run(chart, &run, s.color, points)?;
                run.clear();
            }
        }
    }
    draw_band_run(chart, &run, s.color, points)
}

/// One polygon of a band (in plot coordinates): upper bounds left to right, then lower bounds
/// back (a single point has no area and is skipped).
fn draw_band_run<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    run: &[(f64, f64, f64)],
    color: RGBColor,
    points: &mut Vec<(i32, i32)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if run.len() < 2 {
        return Ok(());
    }
    let upper: Vec<(f64, f64)> = run.iter().map(|b| (b.0, b.2)).collect();
    let lower: Vec<(f64, f64)> = run.iter().map(|b| (b.0, b.1)).collect();
    let mut poly = upper.clone();
    poly.extend(lower.iter().rev());
    let plot = {
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        Rect::new(xr.start, yr.start, xr.end, yr.end)
    };
    points.extend(
        poly.iter()
            .map(|p| chart.backend_coord(p))
            .filter(|p| plot.contains(*p)),
    );
    chart
        .draw_series(std::iter::once(Polygon::new(
            poly,
            color.mix(0.22).filled(),
        )))
        .map_err(failed("drawing band"))?;
    let edge = ShapeStyle::from(&color.mix(0.6)).stroke_width(1);
    for side in [upper, lower] {
        chart
            .draw_series(LineSeries::new(side, edge))
            .map_err(failed("drawing band"))?;
    }
    Ok(())
}

/// The series' line, one piece per run of usable values, in its dash pattern.
fn draw_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    s: &Series,
    axes: &Axes,
    plot: Rect,
    points: &mut Vec<(i32, i32)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let style = ShapeStyle::from(&s.color).stroke_width(s.width);
    let on_axes: Vec<(f64, f64)> = s
        .points
        .iter()
        .filter_map(|&(x, y)| axes.plot_x(x).map(|x| (x, y)))
        .collect();
    for seg in segments(&on_axes, axes.log) {
        let seg: Vec<(f64, f64)> = seg.into_iter().map(|(x, y)| (x, axes.plot_y(y))).collect();
        points.extend(
            seg.iter()
                .map(|p| chart.backend_coord(p))
                .filter(|p| plot.contains(*p)),
        );
        if s.no_line {
            continue;
        }
        match s.dash.pattern() {
            None => chart.draw_series(LineSeries::new(seg, style)),
            Some((on, off)) => chart.draw_series(DashedLineSeries::new(seg, on, off, style)),
        }
        .map_err(failed("drawing line"))?;
    }
    Ok(())
}

/// Which edges of a panel carry marks for values a line cannot show.
#[derive(Clone, Copy, Debug, Default)]
struct EdgeMarks {
    /// A ▼ in the bottom strip: 0 (or, on a log axis, a negative value).
    bottom: bool,
    /// A ✕ in the top strip: inf or NaN.
    top: bool,
}

/// The series' markers (on its usable points) and its edge marks (unusable values at their x:
/// finite ones, 0 or negatives on a log axis, as a ▼ in the bottom strip, inf/NaN as a ✕ in
/// the top strip), so underflow and overflow stay visible where a line would just stop.
fn draw_point_marks<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    s: &Series,
    axes: &Axes,
    plot: Rect,
    points: &mut Vec<(i32, i32)>,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    // Points off the x range (a fixed range narrower than the data) are not drawn.
    let (lo, hi) = (axes.x.0.min(axes.x.1), axes.x.0.max(axes.x.1));
    let base = area.get_base_pixel();
    let local = |p: (i32, i32)| (p.0 - base.0, p.1 - base.1);
    let marked = s.marker_indices();
    for (i, &(x, y)) in s.points.iter().enumerate() {
        let Some(px) = axes.plot_x(x).filter(|px| (lo..=hi).contains(px)) else {
            continue;
        };
        if usable(y, axes.log) {
            if let (Some(m), true) = (s.marker, marked.contains(&i)) {
                let at = chart.backend_coord(&(px, axes.plot_y(y)));
                if plot.contains(at) {
                    points.push(at);
                    draw_marker_px(area, local(at), m, s.color)?;
                }
            }
            continue;
        }
        let top = !y.is_finite();
        let at = chart.backend_coord(&(px, axes.strip_middle(top)));
        points.push(at);
        if top {
            draw_marker_px(area, local(at), Marker::Cross, s.color)?;
        } else {
            let (cx, cy) = local(at);
            area.draw(&Polygon::new(
                vec![(cx - 8, cy - 7), (cx + 8, cy - 7), (cx, cy + 7)],
                s.color.filled(),
            ))
            .map_err(failed("drawing marker"))?;
        }
    }
    Ok(())
}

/// The panel's notes, each beside its point (above or below it, whichever covers fewer of the
/// `data` points drawn), pushed down (or up) where two would overlap and kept inside the plot;
/// returns their boxes in PNG pixels.
fn draw_notes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart<'_, DB>,
    panel: &Panel,
    axes: &Axes,
    fonts: Fonts,
    plot: Rect,
    data: &[(i32, i32)],
) -> Result<Vec<Rect>>
where
    DB::ErrorType: 'static,
{
    let style = text_style(fonts.legend);
    let mut boxes: Vec<(Rect, &Note)> = Vec::new();
    for note in &panel.notes {
        let (Some(x), true) = (axes.plot_x(note.x), usable(note.y, axes.log)) else {
            continue;
        };
        let at = chart.backend_coord(&(x, axes.plot_y(note.y)));
        if !plot.contains(at) {
            continue;
        }
        let (w, h) = area
            .estimate_text_size(&note.text, &style)
            .map_err(failed("measuring note"))?;
        let (w, h) = (w as i32 + 8, h as i32 + 6);
        let x0 = (at.0 + note.offset.0).clamp(plot.x0 + 2, (plot.x1 - w - 2).max(plot.x0 + 2));
        // Above the point or below it, whichever covers fewer drawn data points.
        let place = |y: i32| {
            let y0 = y.clamp(plot.y0 + 2, (plot.y1 - h - 2).max(plot.y0));
            Rect::new(x0, y0, x0 + w, y0 + h)
        };
        let above = place(at.1 - note.offset.1 - h / 2);
        let below = place(at.1 + note.offset.1 - h / 2);
        let covered = |r: &Rect| data.iter().filter(|p| r.contains(**p)).count();
        let best = if covered(&below) < covered(&above) {
            below
        } else {
            above
        };
        boxes.push((best, note));
    }
    // Top to bottom, each below any earlier box it would overlap; a run off the bottom moves
    // back up above the neighbours below it (boxes beside it, not above or below, are no
    // neighbours).
    boxes.sort_by_key(|b| b.0.y0);
    for i in 1..boxes.len() {
        for j in 0..i {
            let prev = boxes[j].0;
            let cur = &mut boxes[i].0;
            if cur.overlaps(&prev) {
                let h = cur.height();
                cur.y0 = prev.y1 + 2;
                cur.y1 = cur.y0 + h;
            }
        }
    }
    let n = boxes.len();
    for i in (0..n).rev() {
        let cur = boxes[i].0;
        let limit = boxes[i + 1..]
            .iter()
            .filter(|b| b.0.x0 < cur.x1 && cur.x0 < b.0.x1)
            .map(|b| b.0.y0 - 2)
            .fold(plot.y1 - 2, i32::min);
        let cur = &mut boxes[i].0;
        if cur.y1 > limit && n > 1 {
            let h = cur.height();
            cur.y1 = limit;
            cur.y0 = limit - h;
        }
    }
    let base = area.get_base_pixel();
    let anchor = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Left,
        plotters::style::text_anchor::VPos::Top,
    );
    for (r, note) in &boxes {
        let local = |x: i32, y: i32| (x - base.0, y - base.1);
        area.draw(&Rectangle::new(
            [local(r.x0, r.y0), local(r.x1, r.y1)],
            WHITE.mix(0.85).filled(),
        ))
        .map_err(failed("drawing note"))?;
        let dark = RGBColor(
            (note.color.0 as f64 * 0.75) as u8,
            (note.color.1 as f64 * 0.75) as u8,
            (note.color.2 as f64 * 0.75) as u8,
        );
        area.draw_text(
            &note.text,
            &style.color(&dark).pos(anchor),
            local(r.x0 + 4, r.y0 + 3),
        )
        .map_err(failed("drawing note"))?;
    }
    Ok(boxes.into_iter().map(|b| b.0).collect())
}

/// Height in pixels of the band at the top of every figure that holds its title and subtitle.
pub const TITLE_HEIGHT: u32 = 110;

/// A headline figure's size: a 16:9 slide.
pub const SLIDE_SIZE: (u32, u32) = (1920, 1080);

/// A figure's drawing area, or a part of it.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The body of a grid figure: `panels` in `rows x cols` cells (detail fonts) across the left
/// `plots_w` pixels of `body`, and (when `items` is not empty) one legend of `items` in the rest,
/// its top level with the first plot area.
pub fn panels_with_legend(
    body: &Area<'_>,
    plots_w: u32,
    (rows, cols): (usize, usize),
    panels: &[&Panel],
    items: &[LegendItem],
) -> Result<Layout> {
    let (plots, side) = body.split_horizontally(plots_w);
    let cells = plots.split_evenly((rows, cols));
    let mut layout = Layout::default();
    for (cell, panel) in cells.iter().zip(panels) {
        layout
            .panels
            .push(draw_panel_bare(cell, panel, Fonts::DETAIL)?);
    }
    if !items.is_empty() {
        let top = layout
            .panels
            .first()
            .map_or(0, |p| p.plot.y0 - side.get_base_pixel().1)
            .max(0);
        layout.legends.push(draw_legend_items(
            &side,
            items,
            Fonts::DETAIL.legend,
            (10, top),
        )?);
    }
    Ok(layout)
}

/// Render a figure into the PNG `path` of `size` pixels: white, with `title` and `subtitle`
/// centred in the top [`TITLE_HEIGHT`] pixels; `draw_body` fills the area below and says where
/// it put things. Figures whose panels sit in equal cells use [`Grid`], headline figures
/// [`Slide`].
pub fn figure(
    path: &Path,
    size: (u32, u32),
    title: &str,
    subtitle: &str,
    draw_body: impl FnOnce(&Area<'_>) -> Result<Layout>,
) -> Result<Layout> {
    // The footprint budgets one bitmap of at most this many pixels; the list caps keep every
    // figure below it, so this only fires on a layout bug.
    let pixels = size.0 as f64 * size.1 as f64;
    anyhow::ensure!(
        pixels <= crate::limits::MAX_FIGURE_PIXELS,
        "a {}x{} figure exceeds the {} pixels a figure may have",
        size.0,
        size.1,
        crate::limits::MAX_FIGURE_PIXELS
    );
    register_font();
    let (w, h) = size;
    let len = (w as usize)
        .checked_mul(h as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(|| anyhow!("a {w}x{h}-pixel figure is too large"))?;
    let mut pixels = vec![0u8; len];
    let mut layout;
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        let body = draw_title(&root, title, subtitle)?;
        layout = draw_body(&body)?;
        root.present().map_err(failed("drawing figure"))?;
    }
    layout.size = size;
    // Encoded as plotters' own `BitMapBackend::new(path)` would (`image`'s PNG encoder with
    // its defaults, so the bytes are the same), but written by `output::write_file`, which
    // creates the file under the lock the signal handler takes before it cleans up.
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, w, h, ColorType::Rgb8)
        .map_err(|e| anyhow!("encoding PNG: {e}"))?;
    crate::output::write_file(path, &png)?;
    Ok(layout)
}

/// Fill `root` white and draw the title and subtitle, returning the area below them.
fn draw_title<'a>(root: &Area<'a>, title: &str, subtitle: &str) -> Result<Area<'a>> {
    root.fill(&WHITE).map_err(failed("filling background"))?;
    let (w, _) = root.dim_in_pixel();
    let (top, rest) = root.split_vertically(TITLE_HEIGHT);
    let center = |size: u32| {
        TextStyle::from((FAMILY, size).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ))
    };
    top.draw_text(title, &center(42), (w as i32 / 2, 14))
        .map_err(failed("drawing title"))?;
    top.draw_text(
        subtitle,
        &center(26).color(&RGBColor(70, 70, 70)),
        (w as i32 / 2, 66),
    )
    .map_err(failed("drawing title"))?;
    Ok(rest)
}

/// The layout of detail figures: `rows` x `cols` equal cells of `cell` pixels below the title
/// band, one panel each with its legend beside it. The PNG is sized from the cells, so a panel
/// keeps its size (and its text stays readable) however many panels a figure has.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    pub rows: usize,
    pub cols: usize,
    /// Width and height of one cell in pixels.
    pub cell: (u32, u32),
}

impl Grid {
    pub fn new(rows: usize, cols: usize, cell: (u32, u32)) -> Self {
        Grid { rows, cols, cell }
    }

    /// The size of the PNG: the cells plus the title band.
    pub fn size(&self) -> (u32, u32) {
        (
            self.cell.0 * self.cols as u32,
            TITLE_HEIGHT + self.cell.1 * self.rows as u32,
        )
    }

    /// Render the figure into `path`; `draw_cells` gets the cells in row-major order
    /// (row `r`, column `c` at `r * cols + c`).
    pub fn draw(
        &self,
        path: &Path,
        title: &str,
        subtitle: &str,
        draw_cells: impl FnOnce(&[Area<'_>]) -> Result<Layout>,
    ) -> Result<Layout> {
        figure(path, self.size(), title, subtitle, |body| {
            draw_cells(&body.split_evenly((self.rows, self.cols)))
        })
    }

    /// Render the figure into `path` with `panels` filling the cells in row-major order; cells
    /// beyond the last panel stay blank.
    pub fn draw_panels<'p>(
        &self,
        path: &Path,
        title: &str,
        subtitle: &str,
        panels: impl IntoIterator<Item = &'p Panel>,
    ) -> Result<Layout> {
        self.draw(path, title, subtitle, |cells| {
            let mut layout = Layout::default();
            for (cell, panel) in cells.iter().zip(panels) {
                layout.extend(draw_panel(cell, panel)?);
            }
            Ok(layout)
        })
    }
}

/// A headline figure: a [`SLIDE_SIZE`] slide with 1 to 4 panels in `cols` columns (relative
/// widths `widths` when in one row), in [`Fonts::SLIDE`], and one legend for all of them in a
/// column on the right, outside every plot, ending with the `notes` lines.
#[derive(Clone, Debug)]
pub struct Slide {
    pub title: String,
    pub subtitle: String,
    pub panels: Vec<Panel>,
    pub cols: usize,
    /// Relative column widths of a one-row slide (equal when empty).
    pub widths: Vec<u32>,
    /// Lines added at the end of the shared legend (text only or with samples).
    pub notes: Vec<LegendItem>,
}

/// The widest a slide's legend column may be.
const SLIDE_LEGEND_MAX_W: u32 = 520;

impl Slide {
    pub fn new(title: impl Into<String>, subtitle: impl Into<String>, panels: Vec<Panel>) -> Self {
        let cols = if panels.len() == 4 {
            2
        } else {
            panels.len().max(1)
        };
        Slide {
            title: title.into(),
            subtitle: subtitle.into(),
            panels,
            cols,
            widths: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Render the slide into `path`.
    pub fn draw(&self, path: &Path) -> Result<Layout> {
        anyhow::ensure!(
            (1..=4).contains(&self.panels.len()),
            "a headline figure has 1 to 4 panels, not {}",
            self.panels.len()
        );
        let mut items = shared_legend(&self.panels);
        items.extend(self.notes.iter().cloned());
        figure(path, SLIDE_SIZE, &self.title, &self.subtitle, |body| {
            let (w, h) = body.dim_in_pixel();
            let legend = layout_legend(body, &items, Fonts::SLIDE.legend, SLIDE_LEGEND_MAX_W)?;
            let (plots, side) = body.split_horizontally(w - legend.size.0 - 20);
            let rows = self.panels.len().div_ceil(self.cols);
            let cells: Vec<Area<'_>> = if rows == 1 && self.widths.len() == self.panels.len() {
                let total: u32 = self.widths.iter().sum();
                let pw = plots.dim_in_pixel().0;
                let mut rest = plots.clone();
                let mut cells = Vec::new();
                for (i, &wi) in self.widths.iter().enumerate() {
                    if i + 1 == self.widths.len() {
                        cells.push(rest.clone());
                    } else {
                        let (a, b) = rest.split_horizontally(pw * wi / total.max(1));
                        cells.push(a);
                        rest = b;
                    }
                }
                cells
            } else {
                plots.split_evenly((rows, self.cols))
            };
            let mut layout = Layout::default();
            for (cell, panel) in cells.iter().zip(&self.panels) {
                layout
                    .panels
                    .push(draw_panel_bare(cell, panel, Fonts::SLIDE)?);
            }
            if !items.is_empty() {
                let top = layout
                    .panels
                    .first()
                    .map(|p| p.plot.y0 - side.get_base_pixel().1)
                    .unwrap_or(0)
                    .min(h as i32 - legend.size.1 as i32)
                    .max(0);
                layout.legends.push(draw_legend(&side, &legend, (6, top))?);
            }
            Ok(layout)
        })
    }
}

/// `{what}: BN off 95.6%, BN on 91.4%`, a legend line of the arms' test accuracies on a
/// classification task; `None` when no arm has one (a regression task).
pub fn accuracy_note<'a>(
    what: &str,
    arms: impl IntoIterator<Item = (&'a str, Option<crate::stats::Num>)>,
) -> Option<LegendItem> {
    let parts: Vec<String> = arms
        .into_iter()
        .filter_map(|(label, acc)| acc.map(|v| format!("{label} {}", crate::train::percent(v.0))))
        .collect();
    (!parts.is_empty()).then(|| LegendItem::text(format!("{what}: {}", parts.join(", "))))
}

/// [`accuracy_note`] of measured runs (the legends of `landscape` and `ics`).
pub fn trained_accuracy_note<'a>(
    arms: impl IntoIterator<Item = &'a crate::experiment::TrainedArm>,
) -> Option<LegendItem> {
    accuracy_note(
        "test accuracy after training",
        arms.into_iter()
            .map(|a| (a.label.as_str(), a.final_test_accuracy)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bitmap backend's error as plotters hands it over.
    fn backend_error(e: BitmapError) -> DrawingAreaErrorKind<BitmapError> {
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::DrawingError(e))
    }

    /// Run `f` on a thread and wait at most a minute for it: a hang fails the test instead of
    /// stalling it, and a panic fails it with its message.
    fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        use std::sync::mpsc::RecvTimeoutError;
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("{what}: still running after 60 s"),
            Err(RecvTimeoutError::Disconnected) => match worker.join() {
                Err(p) => std::panic::resume_unwind(p),
                Ok(()) => unreachable!("the worker sends before it ends"),
            },
        }
    }

    /// Ends of ranges a report can hand the plot layer: huge, tiny, subnormal, non-finite.
    const ENDS: [f64; 19] = [
        f64::MIN,
        -1e308,
        -1e300,
        -1.0,
        -f64::MIN_POSITIVE,
        -5e-324,
        0.0,
        5e-324,
        1e-300,
        1.0,
        1.0 + f64::EPSILON,
        1e15,
        1e300,
        1.000000000000001e300,
        1e308,
        f64::MAX,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];

    #[test]
    fn every_axis_range_is_finite_and_plotters_finds_its_ticks() {
        use plotters::coord::ranged1d::Ranged;
        let mut ranges: Vec<(f64, f64)> = Vec::new();
        for &a in &ENDS {
            for &b in &ENDS {
                ranges.push((a, b));
            }
        }
        // Ranges narrower than plotters can place ticks in, at every magnitude.
        for m in [
            5e-324,
            1e-310,
            1e-300,
            1e-10,
            1.0,
            1e10,
            1e300,
            1e306,
            f64::MAX,
        ] {
            for rel in [0.0, 1e-16, 1e-15, 1e-12, 1e-9, 1e-6, 1.0] {
                ranges.push((m, m + m * rel));
                ranges.push((-m - m * rel, -m));
                ranges.push((m, m.next_up()));
            }
        }
        within_a_minute("tick computation", move || {
            for (lo, hi) in ranges {
                let (a, b) = axis_range(lo, hi);
                assert!(
                    a.is_finite() && b.is_finite() && a != b,
                    "({lo:e}, {hi:e}) -> ({a:e}, {b:e})"
                );
                assert!(a.abs() <= AXIS_LIMIT && b.abs() <= AXIS_LIMIT);
                assert_eq!(lo > hi, a > b, "({lo:e}, {hi:e}) changed direction");
                for n in [1, 2, 3, 5, 8, 11, 12, 30, 120] {
                    let ticks = RangedCoordf64::from(a..b).key_points(n);
                    assert!(
                        ticks.iter().all(|t| t.is_finite()),
                        "({a:e}, {b:e}): {ticks:?}"
                    );
                }
            }
        });
        // Ordinary ranges are left alone.
        assert_eq!(axis_range(-0.5, 3.0), (-0.5, 3.0));
        assert_eq!(axis_range(1e-12, 2e-12), (1e-12, 2e-12));
        assert_eq!(axis_range(5.0, 5.0), (4.5, 5.5));
    }

    /// A panel of one series through `points`, with a band around it, a note on its first
    /// point, a guide at its last value and markers.
    fn extreme_panel(caption: &str, log_y: bool, points: Vec<(f64, f64)>) -> Panel {
        let mut p = Panel::new(caption, "x", "y", log_y);
        let mut s = Series::new("data", okabe_ito::BLUE, points.clone());
        s.band = points.iter().map(|&(x, y)| (x, y / 2.0, y * 2.0)).collect();
        s.marker = Some(Marker::Circle);
        p.series.push(s);
        if let (Some(&(x, y)), Some(&(_, last))) = (points.first(), points.last()) {
            p.notes.push(Note {
                x,
                y,
                text: "first".into(),
                color: okabe_ito::BLUE,
                offset: (4, 4),
            });
            p.guides.push((last, "last".into()));
        }
        p
    }

    #[test]
    fn figures_of_extreme_values_are_drawn() {
        const MAX: f64 = f64::MAX;
        let at = |ys: &[f64]| -> Vec<(f64, f64)> {
            ys.iter().enumerate().map(|(i, &y)| (i as f64, y)).collect()
        };
        let mut panels = vec![
            extreme_panel("±MAX", false, at(&[MAX, -MAX, 1e308, -1e308, 0.0])),
            extreme_panel("±MAX log", true, at(&[MAX, 5e-324, f64::MIN_POSITIVE, 1.0])),
            extreme_panel("near MAX", false, at(&[MAX, MAX.next_down(), MAX])),
            extreme_panel("subnormal", false, at(&[5e-324, 1e-323, 1.5e-323])),
            extreme_panel("subnormal log", true, at(&[5e-324, 1e-323])),
            extreme_panel(
                "narrow at 1e300",
                false,
                at(&[1e300, 1.000000000000001e300]),
            ),
            extreme_panel("repeated MAX", false, at(&[MAX; 4])),
            extreme_panel("repeated -MAX", false, at(&[-MAX; 4])),
            extreme_panel("repeated subnormal", false, at(&[5e-324; 4])),
            extreme_panel("repeated 0", false, at(&[0.0; 4])),
            extreme_panel("repeated 1 log", true, at(&[1.0; 4])),
            extreme_panel("one point", false, at(&[1e308])),
            extreme_panel("x ±MAX", false, vec![(-MAX, 1.0), (MAX, 2.0)]),
            extreme_panel("x subnormal", false, vec![(5e-324, 1.0), (1e-323, 2.0)]),
            extreme_panel("x repeated", false, vec![(1e308, 1.0), (1e308, 2.0)]),
            extreme_panel("no finite value", false, at(&[f64::NAN, f64::INFINITY])),
        ];
        let mut log_x = extreme_panel("log x", false, vec![(5e-324, 1.0), (MAX, 2.0)]);
        log_x.log_x = true;
        panels.push(log_x);
        let mut fixed = extreme_panel("fixed ranges", false, at(&[1e308, -1e308, 0.5]));
        fixed.x_range = Some((0.0, 1.0));
        fixed.y_range = Some((0.0, 1.0));
        panels.push(fixed);
        let mut reversed = extreme_panel("reversed fixed ranges", false, at(&[1.0, 2.0]));
        reversed.x_range = Some((MAX, -MAX));
        reversed.y_range = Some((MAX, -MAX));
        panels.push(reversed);
        let mut nan_range = extreme_panel("NaN ranges", false, at(&[1.0, 2.0]));
        nan_range.x_range = Some((f64::NAN, f64::NAN));
        nan_range.y_range = Some((f64::NAN, 1.0));
        panels.push(nan_range);
        let dir = std::env::temp_dir().join(format!("bn-lab-extreme-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.clone();
        within_a_minute("drawing", move || {
            for (i, p) in panels.iter().enumerate() {
                let path = out.join(format!("p{i}.png"));
                Grid::new(1, 1, (500, 320))
                    .draw_panels(&path, "extreme", &p.caption, [p])
                    .unwrap_or_else(|e| panic!("{}: {e:#}", p.caption));
                let slide = Slide::new("extreme", &p.caption, vec![p.clone()]);
                slide
                    .draw(&path)
                    .unwrap_or_else(|e| panic!("{} (slide): {e:#}", p.caption));
            }
            let scales = [
                heatmap::LogScale::of([1e-300, MAX].into_iter(), 8.0),
                heatmap::LogScale::of([5e-324].into_iter(), 8.0),
                heatmap::LogScale {
                    lo: -1e300,
                    hi: 1e300,
                    clipped: true,
                },
                heatmap::LogScale {
                    lo: 1e300,
                    hi: 1e300,
                    clipped: false,
                },
            ];
            let grids: [&[f64]; 5] = [
                &[-MAX, 0.0, MAX],
                &[-1e308, 0.0, 1e308],
                &[5e-324, 1e-323, 1.5e-323],
                &[1.0],
                &[1e300, 1e300, 1e300],
            ];
            for (k, coords) in grids.iter().enumerate() {
                for (j, scale) in scales.iter().enumerate() {
                    let n = coords.len();
                    let map = heatmap::HeatMap {
                        caption: format!("grid {k}, scale {j}"),
                        x_label: "a".into(),
                        y_label: "b".into(),
                        coords,
                        values: vec![vec![MAX, 5e-324, f64::NAN][..n.min(3)].to_vec(); n],
                        marker: Some(((coords[0], coords[n - 1]), "θ*".into())),
                    };
                    figure(&out.join("map.png"), (900, 700), "t", "s", |body| {
                        let (left, right) = body.split_horizontally(600);
                        let mut layout = Layout::default();
                        layout
                            .panels
                            .push(heatmap::draw_heatmap(&left, &map, scale)?);
                        heatmap::draw_colorbar(&right, scale, "loss", true)?;
                        Ok(layout)
                    })
                    .unwrap_or_else(|e| panic!("{}: {e:#}", map.caption));
                }
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn plotters_errors_are_one_line_of_display_text() {
        let disk_full = || std::io::Error::from_raw_os_error(28);
        let io = backend_error(BitmapError::IOError(disk_full()));
        let image = backend_error(BitmapError::ImageError(image::ImageError::IoError(
            disk_full(),
        )));
        for e in [io, image] {
            let msg = failed("writing PNG")(e).to_string();
            assert_eq!(msg, "writing PNG: No space left on device (os error 28)");
        }
        let layout: DrawingAreaErrorKind<BitmapError> = DrawingAreaErrorKind::LayoutError;
        assert_eq!(plot_error_message(&layout), "Bad layout");
    }

    #[test]
    fn a_figure_that_cannot_be_written_says_why_in_one_line() {
        if !Path::new("/dev/full").exists() {
            return;
        }
        let err = figure(Path::new("/dev/full"), (40, 160), "t", "s", |_| {
            Ok(Layout::default())
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert_eq!(msg, "No space left on device (os error 28)");
        let err = figure(
            Path::new("/nonexistent-bn-lab-dir/f.png"),
            (40, 160),
            "t",
            "s",
            |_| Ok(Layout::default()),
        )
        .unwrap_err();
        assert_eq!(format!("{err:#}"), "No such file or directory (os error 2)");
    }
}
