//! Heat maps of a scalar field on a square grid, with a log-scaled colour map (viridis),
//! iso-lines at whole and half decades, and a colour bar.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::error::failed;
use super::font::FAMILY;
use super::layout::{PanelLayout, Rect};
use super::scale::{Chart, axis_range, near};

/// Viridis (matplotlib's perceptually uniform, colour-blind-friendly map) at nine stops.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (72, 40, 120),
    (62, 73, 137),
    (49, 104, 142),
    (38, 130, 142),
    (31, 158, 137),
    (53, 183, 121),
    (109, 205, 89),
    (253, 231, 37),
];

/// Colour of cells whose value is inf or NaN.
pub const BAD: RGBColor = RGBColor(150, 150, 150);

/// `t` in [0, 1] to a viridis colour (clamped).
pub fn viridis(t: f64) -> RGBColor {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (VIRIDIS.len() - 1) as f64;
    let i = (x.floor() as usize).min(VIRIDIS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |p: u8, q: u8| (p as f64 + f * (q as f64 - p as f64)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A log colour scale from `lo` to `hi` (both positive).
#[derive(Clone, Copy, Debug)]
pub struct LogScale {
    /// log10 of the bounds.
    pub lo: f64,
    pub hi: f64,
    /// Whether values above `hi` exist (drawn in the top colour; the bar says so).
    pub clipped: bool,
}

impl LogScale {
    /// Cover the finite positive values, at most `max_decades` above the smallest.
    pub fn of(values: impl Iterator<Item = f64>, max_decades: f64) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && *v > 0.0) {
            lo = lo.min(v.log10());
            hi = hi.max(v.log10());
        }
        if !lo.is_finite() {
            return LogScale {
                lo: -1.0,
                hi: 1.0,
                clipped: false,
            };
        }
        let clipped = hi - lo > max_decades;
        let hi = if clipped { lo + max_decades } else { hi };
        let hi = if hi - lo < 1e-9 { lo + 1.0 } else { hi };
        LogScale { lo, hi, clipped }
    }

    /// Colour of `v`: viridis of its log position; [`BAD`] for inf/NaN; the bottom colour for
    /// values <= 0 (not expected for a loss).
    pub fn color(&self, v: f64) -> RGBColor {
        if !v.is_finite() {
            BAD
        } else if v <= 0.0 {
            viridis(0.0)
        } else {
            viridis((v.log10() - self.lo) / (self.hi - self.lo))
        }
    }
}

/// One heat map: `values[j][i]` at `(coords[i], coords[j])`.
pub struct HeatMap<'a> {
    pub caption: String,
    pub x_label: String,
    pub y_label: String,
    pub coords: &'a [f64],
    pub values: Vec<Vec<f64>>,
    /// Point marked with a white cross and its label, e.g. the trained weights at (0, 0).
    pub marker: Option<((f64, f64), String)>,
}

/// Iso-line levels in log10: every half decade inside the scale (at most about 12 lines).
pub fn levels(scale: &LogScale) -> Vec<f64> {
    let span = scale.hi - scale.lo;
    let step = if span > 6.0 {
        1.0
    } else if span > 1.5 {
        0.5
    } else {
        0.1
    };
    // Counted rather than stepped until `hi`, so that a scale of absurd bounds (a step below
    // their spacing, or millions of decades) ends; the scales drawn hold at most a dozen.
    let first = (scale.lo / step).ceil();
    (0..100)
        .map(|k| (first + k as f64) * step)
        .take_while(|&l| l < scale.hi)
        .filter(|&l| l > scale.lo)
        .collect()
}

/// Marching squares on `log10(values)`: line segments where the field crosses `level`.
/// Cells with a non-finite corner are skipped. Saddle cells are resolved by pairing the
/// crossings in edge order, which is enough for a picture.
pub fn iso_segments(coords: &[f64], values: &[Vec<f64>], level: f64) -> Vec<[(f64, f64); 2]> {
    let lg = |v: f64| if v > 0.0 { v.log10() } else { f64::NAN };
    let n = coords.len();
    let mut out = Vec::new();
    for j in 0..n.saturating_sub(1) {
        for i in 0..n - 1 {
            // Corners counter-clockwise: (i,j), (i+1,j), (i+1,j+1), (i,j+1).
            let c = [
                (coords[i], coords[j], lg(values[j][i])),
                (coords[i + 1], coords[j], lg(values[j][i + 1])),
                (coords[i + 1], coords[j + 1], lg(values[j + 1][i + 1])),
                (coords[i], coords[j + 1], lg(values[j + 1][i])),
            ];
            if c.iter().any(|p| !p.2.is_finite()) {
                continue;
            }
            let mut pts = Vec::with_capacity(4);
            for e in 0..4 {
                let (a, b) = (c[e], c[(e + 1) % 4]);
                if (a.2 < level) != (b.2 < level) {
                    let t = (level - a.2) / (b.2 - a.2);
                    pts.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
                }
            }
            for pair in pts.chunks_exact(2) {
                out.push([pair[0], pair[1]]);
            }
        }
    }
    out
}

/// A coordinate tick label with at most two decimals and no trailing zeros.
fn coord_tick(v: &f64) -> String {
    format!("{v:.2}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

/// Draw `map` into `area` with colours from `scale`: one square per grid point, iso-lines on
/// top, then the marker with its label beside it (no legend over the map). Returns the plot
/// area, every cell's centre as a data point and the marker's label box, in PNG pixels.
pub fn draw_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    map: &HeatMap,
    scale: &LogScale,
) -> Result<PanelLayout>
where
    DB::ErrorType: 'static,
{
    let n = map.coords.len();
    anyhow::ensure!(n > 0, "{}: a heat map needs grid points", map.caption);
    // Half a cell: each grid point sits in the middle of its square.
    let raw = map.coords;
    let h = if n > 1 { (raw[1] - raw[0]) / 2.0 } else { 0.5 };
    let (x0, x1) = axis_range(raw[0] - h, raw[n - 1] + h);
    // Coordinates too large for plotters are drawn where the axis can show them.
    let c: Vec<f64> = raw.iter().map(|&v| near(v, (x0, x1))).collect();
    let h = near(h, (0.0, x1 - x0));
    let mut chart = ChartBuilder::on(area)
        .caption(&map.caption, (FAMILY, 30))
        .margin(16)
        .x_label_area_size(70)
        .y_label_area_size(90)
        .build_cartesian_2d(x0..x1, x0..x1)
        .map_err(failed("building heat map"))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(&map.x_label)
        .y_desc(&map.y_label)
        .axis_desc_style((FAMILY, 26))
        .label_style((FAMILY, 22))
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&coord_tick)
        .y_label_formatter(&coord_tick)
        .draw()
        .map_err(failed("drawing heat map axes"))?;
    chart
        .draw_series(
            (0..n)
                .flat_map(|j| (0..n).map(move |i| (i, j)))
                .map(|(i, j)| {
                    Rectangle::new(
                        [(c[i] - h, c[j] - h), (c[i] + h, c[j] + h)],
                        scale.color(map.values[j][i]).filled(),
                    )
                }),
        )
        .map_err(failed("drawing heat map"))?;
    draw_iso_lines(&mut chart, &c, map, scale)?;
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let mut drawn = PanelLayout {
        caption: map.caption.clone(),
        plot: Rect::new(xr.start, yr.start, xr.end, yr.end),
        points: (0..n)
            .flat_map(|j| (0..n).map(move |i| (i, j)))
            .map(|(i, j)| chart.backend_coord(&(c[i], c[j])))
            .collect(),
        labels: Vec::new(),
        texts: Vec::new(),
    };
    if let Some((p, label)) = &map.marker {
        let p = (near(p.0, (x0, x1)), near(p.1, (x0, x1)));
        drawn.labels.push(draw_marker(area, &mut chart, p, label)?);
    }
    Ok(drawn)
}

/// White iso-lines at the [`levels`] of `scale`, so equal losses read across the colours.
fn draw_iso_lines<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    coords: &[f64],
    map: &HeatMap,
    scale: &LogScale,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let line = ShapeStyle::from(&WHITE.mix(0.75)).stroke_width(2);
    for level in levels(scale) {
        chart
            .draw_series(
                iso_segments(coords, &map.values, level)
                    .into_iter()
                    .map(|s| PathElement::new(s.to_vec(), line)),
            )
            .map_err(failed("drawing iso-lines"))?;
    }
    Ok(())
}

/// A white cross at `p` with `label` written beside it in white on a dark box; returns the
/// label's box in PNG pixels.
fn draw_marker<'a, DB: DrawingBackend + 'a>(
    area: &DrawingArea<DB, Shift>,
    chart: &mut Chart<'a, DB>,
    p: (f64, f64),
    label: &str,
) -> Result<Rect>
where
    DB::ErrorType: 'static,
{
    let st = ShapeStyle::from(&WHITE).stroke_width(4);
    chart
        .draw_series(std::iter::once(Cross::new(p, 12, st)))
        .map_err(failed("drawing marker"))?;
    let style = TextStyle::from((FAMILY, 22).into_font()).color(&WHITE);
    let (w, h) = area
        .estimate_text_size(label, &style)
        .map_err(failed("measuring marker label"))?;
    let base = area.get_base_pixel();
    let at = chart.backend_coord(&p);
    let (x0, y0) = (at.0 + 18 - base.0, at.1 + 14 - base.1);
    let (x1, y1) = (x0 + w as i32 + 10, y0 + h as i32 + 8);
    area.draw(&Rectangle::new(
        [(x0, y0), (x1, y1)],
        BLACK.mix(0.55).filled(),
    ))
    .map_err(failed("drawing marker label"))?;
    area.draw_text(label, &style, (x0 + 5, y0 + 4))
        .map_err(failed("drawing marker label"))?;
    Ok(Rect::new(
        x0 + base.0,
        y0 + base.1,
        x1 + base.0,
        y1 + base.1,
    ))
}

fn decade_label(t: f64) -> String {
    let v = 10f64.powf(t);
    if (t - t.round()).abs() < 1e-9 && !(0.01..1000.0).contains(&v) {
        format!("1e{}", t.round() as i64)
    } else if (0.01..1000.0).contains(&v) {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// A vertical colour bar for `scale` with `label` along it; `bad` adds the inf/NaN swatch.
/// Each iso-line level ([`levels`]) is drawn across the bar as a white line with its value
/// to the right, so the maps' contour lines read as values. Returns the bar's box (with its
/// labels) in PNG pixels.
pub fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: &LogScale,
    label: &str,
    bad: bool,
) -> Result<Rect>
where
    DB::ErrorType: 'static,
{
    let (lo, hi) = axis_range(scale.lo, scale.hi);
    let mut chart = ChartBuilder::on(area)
        .margin_top(62)
        .margin_bottom(86)
        .margin_left(10)
        .margin_right(110)
        .y_label_area_size(120)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(failed("building colour bar"))?;
    let clipped = scale.clipped;
    let fmt = move |t: &f64| {
        let s = decade_label(*t);
        if clipped && (*t - hi).abs() < 1e-9 * hi.abs().max(1.0) {
            format!("≥{s}")
        } else {
            s
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(label)
        .axis_desc_style((FAMILY, 26))
        .label_style((FAMILY, 22))
        .y_labels(8)
        .y_label_formatter(&fmt)
        .draw()
        .map_err(failed("drawing colour bar axis"))?;
    let steps = 200;
    chart
        .draw_series((0..steps).map(|k| {
            let a = lo + (hi - lo) * k as f64 / steps as f64;
            let b = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
            Rectangle::new([(0.0, a), (1.0, b)], viridis((a - lo) / (hi - lo)).filled())
        }))
        .map_err(failed("drawing colour bar"))?;
    let line = ShapeStyle::from(&WHITE).stroke_width(2);
    let style =
        TextStyle::from((FAMILY, 20).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Left,
            plotters::style::text_anchor::VPos::Center,
        ));
    let base = area.get_base_pixel();
    for level in levels(scale) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, level), (1.0, level)],
                line,
            )))
            .map_err(failed("drawing colour bar"))?;
        let at = chart.backend_coord(&(1.0, level));
        area.draw_text(
            &format!("— {}", decade_label(level)),
            &style,
            (at.0 - base.0 + 4, at.1 - base.1),
        )
        .map_err(failed("drawing colour bar"))?;
    }
    draw_colorbar_notes(area, scale, bad)?;
    let (w, h) = area.dim_in_pixel();
    Ok(Rect::new(
        base.0,
        base.1,
        base.0 + w as i32 - 1,
        base.1 + h as i32 - 1,
    ))
}

/// Notes beside the colour bar: above it, that the top colour also stands for larger values
/// (when the scale is clipped); below it, the inf/NaN swatch (when `bad`).
fn draw_colorbar_notes<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    scale: &LogScale,
    bad: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if scale.clipped {
        area.draw_text(
            &format!("top colour: ≥ {}", decade_label(scale.hi)),
            &TextStyle::from((FAMILY, 20).into_font()),
            (10, 30),
        )
        .map_err(failed("drawing colour bar"))?;
    }
    if bad {
        let (_, h) = area.dim_in_pixel();
        let style = TextStyle::from((FAMILY, 20).into_font());
        area.draw(&Rectangle::new(
            [(140, h as i32 - 70), (170, h as i32 - 45)],
            BAD.filled(),
        ))
        .map_err(failed("drawing colour bar"))?;
        area.draw_text("inf/NaN", &style, (176, h as i32 - 68))
            .map_err(failed("drawing colour bar"))?;
    }
    Ok(())
}
