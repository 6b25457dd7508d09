//! PNG plots drawn from the results structs, with an embedded font (DejaVu Sans, licence in
//! `DejaVuSans-LICENSE.txt` beside this file) so text renders on machines without system fonts.
//!
//! Two shared building blocks:
//! - [`Grid`] (over [`figure`]) lays out a figure: a white PNG with a title and subtitle on top
//!   and equal cells below, one panel each;
//! - [`draw_panel`] draws one chart with a linear or log y axis whose ranges come from finite
//!   (and, on a log axis, positive) values only; 0 is drawn as a ▼ on the bottom edge and
//!   inf/NaN as a ✕ on the top edge instead of as lines.

pub mod grad_norms;
pub mod heatmap;
pub mod ics;
pub mod landscape;
pub mod nonlinearity;
pub mod shattered;
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

/// Colours for curves without BatchNorm (warm) and with it (cool), so the two arms read apart
/// at a glance, also for colour-blind viewers (red/orange vs blue/teal).
/// One colour per normalisation arm, the same in every figure: BN off warm, the BN arms cool.
/// One figure an experiment draws: its file name and the function drawing it from the report.
pub struct Figure<R> {
    /// File name inside the output directory, e.g. `grad_norms.png`.
    pub file: &'static str,
    pub draw: fn(&R, &std::path::Path) -> Result<()>,
}

/// The figures of an experiment, drawn from its report (implemented in its plot module).
pub trait Figures: crate::experiment::Experiment {
    /// In the order the summary lists them.
    fn figures() -> Vec<Figure<Self::Report>>;
}

pub fn norm_color(norm: crate::config::Norm) -> RGBColor {
    use crate::config::{Norm, Placement};
    match norm {
        Norm::Off => WARM[0],
        Norm::Batch {
            affine: true,
            placement: Placement::Pre,
        } => COOL[0],
        Norm::Batch {
            affine: false,
            placement: Placement::Pre,
        } => COOL[1],
        Norm::Batch {
            affine: true,
            placement: Placement::Post,
        } => COOL[2],
        Norm::Batch {
            affine: false,
            placement: Placement::Post,
        } => COOL[3],
    }
}

pub const WARM: [RGBColor; 4] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];
pub const COOL: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(23, 190, 207),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// One curve of a panel. `y` may hold 0, inf and NaN: they are marked, not drawn as lines.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    /// Optional min-max band `(x, lo, hi)` drawn shaded behind the line.
    pub band: Vec<(f64, f64, f64)>,
    pub markers: bool,
    pub dashed: bool,
    /// Listed in the legend (default `true`).
    pub legend: bool,
}

impl Series {
    pub fn new(label: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            color,
            points,
            band: Vec::new(),
            markers: false,
            dashed: false,
            legend: true,
        }
    }
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
        }
    }
}

fn usable(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
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

/// The ranges of a panel's axes in plot coordinates: on a log y axis a value `v` sits at
/// `log10(v)` (see [`Axes::plot_y`]).
#[derive(Clone, Copy, Debug)]
struct Axes {
    x: (f64, f64),
    y: (f64, f64),
    log: bool,
}

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
        let y = match panel.y_range {
            Some((lo, hi)) => y_range([lo, hi].into_iter(), log),
            None => y_range(all_y, log),
        };
        let x = panel.x_range.unwrap_or_else(|| x_extent(panel));
        Axes { x, y, log }
    }

    /// Where the value `v` sits on the y axis.
    fn plot_y(&self, v: f64) -> f64 {
        if self.log { v.log10() } else { v }
    }

    /// How many y labels to ask plotters for. On a log axis about one per decade (at most 11),
    /// so plotters picks whole-decade steps.
    fn y_label_count(&self) -> usize {
        if self.log {
            ((self.y.1 - self.y.0).round() as usize).clamp(2, 10) + 1
        } else {
            8
        }
    }
}

/// The x range covering every series' points; a single x gets one unit either side, and no
/// data at all gets (0, 1), so the chart can still be built.
fn x_extent(panel: &Panel) -> (f64, f64) {
    let xs = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if lo.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 1.0, lo + 1.0)
    } else {
        (0.0, 1.0)
    }
}

/// Choose the chart corner with the fewest data points for the legend, so it hides as little
/// of the curves as possible.
fn legend_corner(panel: &Panel, axes: &Axes) -> SeriesLabelPosition {
    let (x, y) = (axes.x, axes.y);
    let mut counts = [0usize; 4]; // UR, UL, LR, LL
    for s in &panel.series {
        for &(px, py) in s.points.iter().filter(|p| usable(p.1, panel.log_y)) {
            let a = (px - x.0) / (x.1 - x.0);
            let b = (axes.plot_y(py) - y.0) / (y.1 - y.0);
            let (left, right, up, low) = (a < 0.45, a > 0.55, b > 0.6, b < 0.4);
            counts[0] += (up && right) as usize;
            counts[1] += (up && left) as usize;
            counts[2] += (low && right) as usize;
            counts[3] += (low && left) as usize;
        }
    }
    let corners = [
        SeriesLabelPosition::UpperRight,
        SeriesLabelPosition::UpperLeft,
        SeriesLabelPosition::LowerRight,
        SeriesLabelPosition::LowerLeft,
    ];
    let best = (0..4).min_by_key(|&i| counts[i]).expect("four corners");
    corners.into_iter().nth(best).expect("index below four")
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

/// List `label` in the legend with `sample` as its symbol, without drawing anything in the
/// chart: for notes such as the meaning of the edge marks.
pub(crate) fn legend_entry<'a, DB, E, F>(
    chart: &mut Chart<'a, DB>,
    label: impl Into<String>,
    sample: F,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    E: IntoDynElement<'a, DB, (i32, i32)>,
    F: Fn((i32, i32)) -> E + 'a,
{
    chart
        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
        .map_err(failed("drawing legend"))?
        .label(label)
        .legend(sample);
    Ok(())
}

/// Draw one panel into `area`. On a log axis values are drawn at `log10(y)` on a linear axis
/// with decade ticks (plotters' own log axis mislabels ranges of many decades).
pub fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let axes = Axes::of(panel);
    let corner = legend_corner(panel, &axes);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.caption, (FAMILY, 30))
        .margin(16)
        .x_label_area_size(70)
        .y_label_area_size(110)
        .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)
        .map_err(failed("building chart"))?;
    draw_panel_axes(&mut chart, panel, &axes)?;
    draw_guides(&mut chart, panel, &axes)?;
    let mut edges = EdgeMarks::default();
    for s in &panel.series {
        draw_band(&mut chart, s, &axes)?;
        draw_line(&mut chart, s, &axes)?;
        edges = edges.or(draw_edge_marks(&mut chart, s, &axes)?);
    }
    explain_edge_marks(&mut chart, panel, edges)?;
    // A panel that lists nothing (every series unlisted, no guide, no edge mark) gets no
    // empty legend box.
    if panel.guides.is_empty()
        && !(edges.top || edges.bottom)
        && panel.series.iter().all(|s| !s.legend)
    {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(corner)
        .label_font((FAMILY, 22))
        .background_style(WHITE.mix(0.88))
        .border_style(BLACK.mix(0.4))
        .margin(12)
        .draw()
        .map_err(failed("drawing legend"))?;
    Ok(())
}

/// Axis labels, tick labels and the light grid. Integer x axes (layer indices) leave the
/// fractional ticks unlabelled; log y axes are labelled in decades.
fn draw_panel_axes<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    panel: &Panel,
    axes: &Axes,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let x_fmt = |v: &f64| {
        if (panel.integer_x || panel.log2_x) && (v - v.round()).abs() > 1e-9 {
            String::new()
        } else if panel.log2_x {
            format!("{}", 2f64.powi(v.round() as i32))
        } else {
            lin_tick(v)
        }
    };
    let log_fmt = |t: &f64| log_tick(*t);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .axis_desc_style((FAMILY, 26))
        .label_style((FAMILY, 22))
        .y_labels(axes.y_label_count())
        .x_label_formatter(&x_fmt)
        .light_line_style(BLACK.mix(0.05))
        .bold_line_style(BLACK.mix(0.15));
    if axes.log {
        mesh.y_label_formatter(&log_fmt);
    } else {
        mesh.y_label_formatter(&lin_tick);
    }
    mesh.draw().map_err(failed("drawing axes"))
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
    for (y, label) in &panel.guides {
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
            .map_err(failed("drawing guide"))?
            .label(label.clone())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (12, 0)], style)
                    + PathElement::new(vec![(18, 0), (30, 0)], style)
            });
    }
    Ok(())
}

/// The series' min-max band, shaded in its colour: one polygon per run of x where both bounds
/// are usable, so a gap (e.g. a seed that overflowed) breaks the band instead of bridging it.
fn draw_band<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, s: &Series, axes: &Axes) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut run: Vec<(f64, f64, f64)> = Vec::new();
    for &b in &s.band {
        if usable(b.1, axes.log) && usable(b.2, axes.log) {
            run.push(b);
        } else {
            draw_band_run(chart, &run, s.color, axes)?;
            run.clear();
        }
    }
    draw_band_run(chart, &run, s.color, axes)
}

/// One polygon of a band: upper bounds left to right, then lower bounds back (a single point
/// has no area and is skipped).
fn draw_band_run<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    run: &[(f64, f64, f64)],
    color: RGBColor,
    axes: &Axes,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if run.len() < 2 {
        return Ok(());
    }
    let mut poly: Vec<(f64, f64)> = run.iter().map(|b| (b.0, axes.plot_y(b.2))).collect();
    poly.extend(run.iter().rev().map(|b| (b.0, axes.plot_y(b.1))));
    chart
        .draw_series(std::iter::once(Polygon::new(
            poly,
            color.mix(0.18).filled(),
        )))
        .map_err(failed("drawing band"))?;
    Ok(())
}

/// The series' line, one piece per run of usable values (solid or dashed, with dots if asked),
/// listed once in the legend; a series without any usable value is still listed, saying so.
fn draw_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    s: &Series,
    axes: &Axes,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let color = s.color;
    let style = ShapeStyle::from(&color).stroke_width(3);
    // The legend sample: three touching strokes for a solid line, the same with gaps for a
    // dashed one, so the legend tells the two apart.
    let [a, b, c] = if s.dashed {
        [(0, 7), (11, 19), (23, 30)]
    } else {
        [(0, 10), (10, 20), (20, 30)]
    };
    let sample = move |(x, y): (i32, i32)| {
        let st = ShapeStyle::from(&color).stroke_width(4);
        EmptyElement::at((x, y))
            + PathElement::new(vec![(a.0, 0), (a.1, 0)], st)
            + PathElement::new(vec![(b.0, 0), (b.1, 0)], st)
            + PathElement::new(vec![(c.0, 0), (c.1, 0)], st)
    };
    let mut labelled = false;
    for seg in segments(&s.points, axes.log) {
        let seg: Vec<(f64, f64)> = seg.into_iter().map(|(x, y)| (x, axes.plot_y(y))).collect();
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(seg.clone(), 14, 8, style))
        } else {
            chart.draw_series(LineSeries::new(seg.clone(), style))
        }
        .map_err(failed("drawing line"))?;
        if !labelled && s.legend {
            drawn.label(s.label.clone()).legend(sample);
            labelled = true;
        }
        if s.markers {
            chart
                .draw_series(seg.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(failed("drawing markers"))?;
        }
    }
    if !labelled && s.legend {
        legend_entry(chart, format!("{} (no finite value)", s.label), sample)?;
    }
    Ok(())
}

/// Which edges of a panel carry marks for values a line cannot show.
#[derive(Clone, Copy, Debug, Default)]
struct EdgeMarks {
    /// A ▼ on the bottom edge: 0 (or, on a log axis, a negative value).
    bottom: bool,
    /// A ✕ on the top edge: inf or NaN.
    top: bool,
}

impl EdgeMarks {
    fn or(self, other: EdgeMarks) -> EdgeMarks {
        EdgeMarks {
            bottom: self.bottom || other.bottom,
            top: self.top || other.top,
        }
    }
}

/// Mark the series' unusable values on the panel's edges, at their x: finite ones (0, or
/// negatives on a log axis) as a ▼ on the bottom edge, inf/NaN as a ✕ on the top edge, so
/// underflow and overflow stay visible where a line would just stop.
fn draw_edge_marks<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    s: &Series,
    axes: &Axes,
) -> Result<EdgeMarks>
where
    DB::ErrorType: 'static,
{
    let mut marks = EdgeMarks::default();
    for &(x, y) in &s.points {
        if usable(y, axes.log) {
            continue;
        }
        if y.is_finite() {
            marks.bottom = true;
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((x, axes.y.0))
                        + Polygon::new(vec![(-7, -16), (7, -16), (0, -3)], s.color.filled()),
                ))
                .map_err(failed("drawing marker"))?;
        } else {
            marks.top = true;
            let st = ShapeStyle::from(&s.color).stroke_width(3);
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((x, axes.y.1)) + Cross::new((0, 9), 7, st),
                ))
                .map_err(failed("drawing marker"))?;
        }
    }
    Ok(marks)
}

/// Legend entries (in grey) saying what the edge marks mean, only for the marks drawn.
fn explain_edge_marks<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    panel: &Panel,
    edges: EdgeMarks,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let grey = RGBColor(60, 60, 60);
    if edges.bottom {
        let label = if panel.log_y {
            "bottom edge: exactly 0 (underflow)"
        } else {
            "bottom edge: 0"
        };
        legend_entry(chart, label, move |(x, y)| {
            EmptyElement::at((x + 15, y))
                + Polygon::new(vec![(-7, -7), (7, -7), (0, 6)], grey.filled())
        })?;
    }
    if edges.top {
        let label = panel
            .top_edge_label
            .clone()
            .unwrap_or_else(|| "top edge: inf or NaN (overflow)".to_string());
        legend_entry(chart, label, move |(x, y)| {
            Cross::new((x + 15, y), 7, ShapeStyle::from(&grey).stroke_width(3))
        })?;
    }
    Ok(())
}

/// Height in pixels of the band at the top of every figure that holds its title and subtitle.
pub const TITLE_HEIGHT: u32 = 110;

/// A figure's drawing area, or a part of it.
pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Render a figure into the PNG `path` of `size` pixels: white, with `title` and `subtitle`
/// centred in the top [`TITLE_HEIGHT`] pixels; `draw_body` fills the area below. Figures
/// whose panels sit in equal cells use [`Grid`] instead.
pub fn figure(
    path: &Path,
    size: (u32, u32),
    title: &str,
    subtitle: &str,
    draw_body: impl FnOnce(&Area<'_>) -> Result<()>,
) -> Result<()> {
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
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        let body = draw_title(&root, title, subtitle)?;
        draw_body(&body)?;
        root.present().map_err(failed("drawing figure"))?;
    }
    // Encoded as plotters' own `BitMapBackend::new(path)` would (`image`'s PNG encoder with
    // its defaults, so the bytes are the same), but written by `output::write_file`, which
    // creates the file under the lock the signal handler takes before it cleans up.
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, w, h, ColorType::Rgb8)
        .map_err(|e| anyhow!("encoding PNG: {e}"))?;
    crate::output::write_file(path, &png)?;
    Ok(())
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

/// The layout of most figures: `rows` x `cols` equal cells of `cell` pixels below the title
/// band, one panel each. The PNG is sized from the cells, so a panel keeps its size (and its
/// text stays readable) however many panels a figure has.
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
        draw_cells: impl FnOnce(&[Area<'_>]) -> Result<()>,
    ) -> Result<()> {
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
    ) -> Result<()> {
        self.draw(path, title, subtitle, |cells| {
            for (cell, panel) in cells.iter().zip(panels) {
                draw_panel(cell, panel)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bitmap backend's error as plotters hands it over.
    fn backend_error(e: BitmapError) -> DrawingAreaErrorKind<BitmapError> {
        DrawingAreaErrorKind::BackendError(DrawingErrorKind::DrawingError(e))
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
        let err = figure(Path::new("/dev/full"), (40, 160), "t", "s", |_| Ok(())).unwrap_err();
        let msg = format!("{err:#}");
        assert_eq!(msg, "No space left on device (os error 28)");
        let err = figure(
            Path::new("/nonexistent-bn-lab-dir/f.png"),
            (40, 160),
            "t",
            "s",
            |_| Ok(()),
        )
        .unwrap_err();
        assert_eq!(format!("{err:#}"), "No such file or directory (os error 2)");
    }
}
