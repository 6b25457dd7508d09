//! Scales and ticks: ranges safe to hand to plotters whatever the data ([`axis_range`]: NaN,
//! ±inf, `f64::MAX` and ranges too narrow for their magnitude all draw), the y range of a
//! panel's values on a linear or log axis, tick labels, and the `Chart` type every panel
//! draws on (`f64` on both axes; a log axis is drawn as `log10` values).

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

pub(crate) fn usable(v: f64, log: bool) -> bool {
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
pub(crate) fn segments(points: &[(f64, f64)], log: bool) -> Vec<Vec<(f64, f64)>> {
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

/// Label of a log-axis tick at `10^t`.
pub(crate) fn log_tick(t: f64) -> String {
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

pub(crate) fn lin_tick(v: &f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A chart with `f64` on both axes, as every panel and histogram uses (a log y axis is drawn
/// as `log10` values on a linear axis).
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The smallest range covering both (either may be missing).
pub fn union(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, None) => a,
        (None, b) => b,
    }
}
