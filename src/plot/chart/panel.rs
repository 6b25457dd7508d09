//! What one chart shows ([`Panel`]: its [`Series`], guides, notes and axes' options), and the
//! ranges of its axes in plot coordinates (`Axes`): a log axis puts `v` at `log10(v)`, and
//! values a line cannot show (0 on a log axis, inf, NaN) get a strip beyond the data range
//! where they are marked (▼ at the bottom for 0, ✕ at the top for inf/NaN). Also what several
//! panels share: one positive y extent for a common log scale ([`positive_y_extent`]).

use plotters::style::RGBColor;

use super::marks::{Dash, Marker};
use super::scale::{axis_range, near, union, usable, y_range};

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
    pub(crate) fn marker_indices(&self) -> Vec<usize> {
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

    /// Every series with markers drawn as markers alone, its band as min-max whiskers, and
    /// the series nudged apart (by 2.5% of the x range each) so that their whiskers do not
    /// overlap: for a few x values, where lines across the gaps would suggest values between.
    pub fn markers_with_whiskers(&mut self) {
        let (lo, hi) = self.x_range.unwrap_or((0.0, 1.0));
        let step = 0.025 * (hi - lo);
        let marked = self.series.iter().filter(|s| s.marker.is_some()).count() as f64;
        let mut whiskers = Vec::new();
        for (i, s) in self
            .series
            .iter_mut()
            .filter(|s| s.marker.is_some())
            .enumerate()
        {
            let nudge = (i as f64 - (marked - 1.0) / 2.0) * step;
            s.no_line = true;
            for pt in &mut s.points {
                pt.0 += nudge;
            }
            for &(x, lo, hi) in &s.band {
                let mut w = Series::new(
                    format!("{} min-max", s.label),
                    s.color,
                    vec![(x + nudge, lo), (x + nudge, hi)],
                );
                w.width = 3;
                w.legend = false;
                whiskers.push(w);
            }
            s.band.clear();
        }
        self.series.extend(whiskers);
    }
}

/// The ranges of a panel's axes in plot coordinates: on a log axis a value `v` sits at
/// `log10(v)` (see [`Axes::plot_y`], [`Axes::plot_x`]). When some values cannot be drawn
/// (0 on a log axis, inf, NaN), the y range grows by a strip beyond the data range that carries
/// no tick: the marks for those values sit in it, so none reads as a tick's value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Axes {
    pub(crate) x: (f64, f64),
    /// The whole y range, strips included.
    pub(crate) y: (f64, f64),
    /// The data part of the y range (ticks are labelled only here).
    pub(crate) data_y: (f64, f64),
    pub(crate) log: bool,
    pub(crate) log_x: bool,
    pub(crate) edges: EdgeMarks,
}

/// A strip for edge marks takes this share of the data range.
const EDGE_STRIP: f64 = 0.07;

impl Axes {
    /// The panel's fixed ranges where it has them, otherwise ranges covering its data (the y
    /// range also covers the bands, so no band is cut off).
    pub(crate) fn of(panel: &Panel) -> Self {
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
    pub(crate) fn plot_y(&self, v: f64) -> f64 {
        near(if self.log { v.log10() } else { v }, self.y)
    }

    /// Where the value `v` sits on the x axis (`None`: not on a log axis; a value far off the
    /// axis: just beyond it).
    pub(crate) fn plot_x(&self, v: f64) -> Option<f64> {
        if !self.log_x {
            Some(near(v, self.x))
        } else if v > 0.0 && v.is_finite() {
            Some(near(v.log10(), self.x))
        } else {
            None
        }
    }

    /// The middle of the strip for ▼ marks (bottom) or ✕ marks (top).
    pub(crate) fn strip_middle(&self, top: bool) -> f64 {
        if top {
            (self.data_y.1 + self.y.1) / 2.0
        } else {
            (self.data_y.0 + self.y.0) / 2.0
        }
    }

    /// How many y labels to ask plotters for. On a log axis about one per decade (at most 11),
    /// so plotters picks whole-decade steps.
    pub(crate) fn y_label_count(&self) -> usize {
        if self.log {
            ((self.data_y.1 - self.data_y.0).round() as usize).clamp(2, 10) + 1
        } else {
            8
        }
    }

    /// Whether a tick at `t` lies in the data range (not in an edge strip).
    pub(crate) fn in_data(&self, t: f64) -> bool {
        let eps = 1e-9 * (self.data_y.1 - self.data_y.0).abs().max(1e-300);
        t >= self.data_y.0 - eps && t <= self.data_y.1 + eps
    }
}

/// Which edges of a panel carry marks for values a line cannot show.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct EdgeMarks {
    /// A ▼ in the bottom strip: 0 (or, on a log axis, a negative value).
    pub(crate) bottom: bool,
    /// A ✕ in the top strip: inf or NaN.
    pub(crate) top: bool,
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

/// The smallest and largest positive finite y over every series of `panels` (a shared log
/// scale for them).
pub fn positive_y_extent<'a>(panels: impl Iterator<Item = &'a Panel>) -> Option<(f64, f64)> {
    panels
        .flat_map(|p| &p.series)
        .map(|s| positive_extent(s.points.iter()))
        .fold(None, union)
}

/// Smallest and largest positive finite y of `points`.
fn positive_extent<'a>(values: impl Iterator<Item = &'a (f64, f64)>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .map(|p| p.1)
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    lo.is_finite().then_some((lo, hi))
}
