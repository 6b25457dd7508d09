//! `grad_norms_histograms.png` and `train_histograms.png` (`--histograms`): one row of small
//! panels per quantity (top: the activations `h_l`, bottom: the backprop signal `dL/dh_l`), one
//! column per histogram layer, and one legend for the figure. Each histogram is drawn as a line
//! through its bins' centres (the share of values per bin). The activations share one x and one
//! y scale; the gradients share a log y scale (empty bins left out), where the tails differ by
//! decades, and each gradient panel has its own x scale (`±5` of its widest curve's standard
//! deviation): their spread changes by decades from layer to layer (what `grad-norms`
//! measures), so a shared one would leave all but the widest a spike. Each gradient panel states
//! every noted curve's standard deviation, so the scales read across the row.

use anyhow::Result;
use plotters::style::RGBColor;

use crate::histogram::{Histogram, Snapshot, TANH_SATURATED};
use crate::plot::chart::{
    Dash, LegendItem, Marker, Note, Panel, Png, Sample, Series, TITLE_HEIGHT, figure, okabe_ito,
    panels_with_legend,
};

/// One line per panel: a snapshot of one network, in its colour, marker and dash.
pub struct Curve<'a> {
    /// The network's legend line (`BN on`): one per colour.
    pub label: String,
    /// What the dash stands for (`step 10`), one legend line per dash; `None`: solid, unlisted.
    pub variant: Option<String>,
    pub color: RGBColor,
    pub marker: Marker,
    pub dash: Dash,
    pub snapshot: &'a Snapshot,
    /// Write this curve's saturation share in each activation panel.
    pub note: bool,
}

const CELL: (u32, u32) = (420, 430);
/// Up to this many curves per panel carry markers.
const MARKED_CURVES: usize = 4;
const LEGEND_W: u32 = 470;

/// The share of values per bin, in percent, at the bins' centres; with `skip_empty`, empty
/// bins are left out (a log axis cannot show 0).
fn points(h: &Histogram, skip_empty: bool) -> Vec<(f64, f64)> {
    let n = h.n.max(1) as f64;
    h.centres()
        .into_iter()
        .zip(&h.counts)
        .filter(|(_, c)| !skip_empty || **c > 0)
        .map(|(x, &c)| (x, 100.0 * c as f64 / n))
        .collect()
}

/// The x range covering every histogram's edges.
fn x_range<'a>(hs: impl Iterator<Item = &'a Histogram>) -> (f64, f64) {
    hs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), h| {
        (lo.min(h.edges[0]), hi.max(h.edges[h.edges.len() - 1]))
    })
}

/// One legend line per network (its colour and marker, solid) and one per dash (black): `n + k`
/// lines for `n` networks at `k` steps instead of `n k`.
fn legend(curves: &[Curve<'_>]) -> Vec<LegendItem> {
    let marked = curves.len() <= MARKED_CURVES;
    let mut items: Vec<LegendItem> = Vec::new();
    for c in curves {
        let item = LegendItem::new(
            c.label.clone(),
            Sample::Line {
                color: c.color,
                dash: Dash::Solid,
                marker: marked.then_some(c.marker),
                width: 2,
            },
        );
        if !items.contains(&item) {
            items.push(item);
        }
    }
    let mut dashes: Vec<LegendItem> = Vec::new();
    for c in curves {
        if let Some(v) = &c.variant {
            let item = LegendItem::new(
                v.clone(),
                Sample::Line {
                    color: okabe_ito::BLACK,
                    dash: c.dash,
                    marker: None,
                    width: 2,
                },
            );
            if !dashes.contains(&item) {
                dashes.push(item);
            }
        }
    }
    items.extend(dashes);
    items
}

/// Widest standard deviations shown on a gradient panel's x axis.
const GRAD_X_STDS: f64 = 5.0;

/// A gradient panel's x range: `±GRAD_X_STDS` times the largest standard deviation of its
/// curves, within the edges of the data (a few outliers of one curve would otherwise squeeze
/// the others into a spike); the edges themselves when no standard deviation is usable.
fn grad_x_range<'a>(hs: impl Iterator<Item = &'a Histogram> + Clone) -> (f64, f64) {
    let (lo, hi) = x_range(hs.clone());
    let widest = hs
        .map(|h| h.std.0)
        .filter(|s| s.is_finite() && *s > 0.0)
        .fold(0.0f64, f64::max);
    let half = GRAD_X_STDS * widest;
    if half > 0.0 && half.is_finite() {
        (lo.max(-half), hi.min(half))
    } else {
        (lo, hi)
    }
}

/// The saturation share of each noted curve at histogram layer `k`, stacked in the activation
/// panel's upper left (its centre when most units sit in the saturated tails, which the corner
/// would cover); `acts` is the panel's x range, `y_top` its top.
fn saturation_notes(curves: &[Curve<'_>], k: usize, acts: (f64, f64), y_top: f64) -> Vec<Note> {
    let shares: Vec<(f64, RGBColor)> = curves
        .iter()
        .filter(|c| c.note)
        .filter_map(|c| {
            let s = c.snapshot.layers.get(k)?.activation.saturated_share?;
            Some((s.0, c.color))
        })
        .collect();
    let x = if shares.iter().any(|s| s.0 > 0.5) {
        0.5 * (acts.0 + acts.1)
    } else {
        acts.0
    };
    shares
        .into_iter()
        .enumerate()
        .map(|(i, (share, color))| Note {
            x,
            y: y_top * (0.97 - 0.09 * i as f64),
            text: format!("{:.0}%", 100.0 * share),
            color,
            offset: (4, 0),
        })
        .collect()
}

/// The standard deviation of each noted curve's `dL/dh_l` at histogram layer `k`, stacked down
/// from the top of the gradient panel's log axis (`y_range`), at its left edge `x`.
fn std_notes(curves: &[Curve<'_>], k: usize, x: f64, (lo, hi): (f64, f64)) -> Vec<Note> {
    curves
        .iter()
        .filter(|c| c.note)
        .filter_map(|c| Some((c.snapshot.layers.get(k)?.grad.std.0, c.color)))
        .enumerate()
        .map(|(i, (std, color))| Note {
            x,
            y: hi * (lo / hi).powf(0.03 + 0.09 * i as f64),
            text: format!("σ {}", crate::stats::fmt_num(std)),
            color,
            offset: (4, 0),
        })
        .collect()
}

/// Draw the histograms of `curves` (every snapshot with the same layers).
pub fn draw(
    title: &str,
    subtitle: &str,
    curves: &[Curve<'_>],
    saturation_note: Option<&str>,
) -> Result<Png> {
    let layers: Vec<usize> = curves
        .first()
        .map(|c| c.snapshot.layers.iter().map(|l| l.layer).collect())
        .unwrap_or_default();
    let cols = layers.len().max(1);
    let acts = x_range(
        curves
            .iter()
            .flat_map(|c| c.snapshot.layers.iter().map(|l| &l.activation)),
    );
    let series = |c: &Curve<'_>, h: &Histogram, log: bool, i: usize| {
        let mut s = Series::new(c.label.clone(), c.color, points(h, log));
        // Markers help a few curves apart; on many they hide the shapes (colour and dash remain).
        s.marker = (curves.len() <= MARKED_CURVES).then_some(c.marker);
        s.marker_phase = i;
        s.dash = c.dash;
        s.width = 2;
        // The figure's legend lists networks and dashes once each (see `legend`).
        s.legend = false;
        s
    };
    let mut top: Vec<Panel> = Vec::new();
    let mut bottom: Vec<Panel> = Vec::new();
    for (k, &layer) in layers.iter().enumerate() {
        let mut a = Panel::new(
            format!("layer {layer}: h_l"),
            "h_l",
            if k == 0 { "% of values" } else { "" },
            false,
        );
        a.x_range = Some(acts);
        let mut g = Panel::new(
            format!("layer {layer}: dL/dh_l"),
            "dL/dh_l",
            if k == 0 { "% of values" } else { "" },
            true,
        );
        g.x_range = Some(grad_x_range(
            curves
                .iter()
                .filter_map(|c| c.snapshot.layers.get(k).map(|l| &l.grad)),
        ));
        for (i, c) in curves.iter().enumerate() {
            let Some(lh) = c.snapshot.layers.get(k) else {
                continue;
            };
            a.series.push(series(c, &lh.activation, false, i));
            g.series.push(series(c, &lh.grad, true, i));
        }
        top.push(a);
        bottom.push(g);
    }
    // Each row on one y scale.
    let a_max = top
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let g_vals = || {
        bottom
            .iter()
            .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)))
            .filter(|v| *v > 0.0)
    };
    let g_range = (
        g_vals().fold(f64::INFINITY, f64::min).min(1.0),
        g_vals().fold(0.0f64, f64::max).max(10.0),
    );
    let y_top = a_max * 1.05;
    for (k, p) in top.iter_mut().enumerate() {
        p.y_range = Some((0.0, y_top));
        p.notes = saturation_notes(curves, k, acts, y_top);
    }
    for (k, p) in bottom.iter_mut().enumerate() {
        p.y_range = Some(g_range);
        p.notes = std_notes(curves, k, p.x_range.map_or(0.0, |r| r.0), g_range);
    }
    let panels: Vec<&Panel> = top.iter().chain(&bottom).collect();
    let mut items = legend(curves);
    if let Some(note) = saturation_note {
        items.push(LegendItem::text(note));
    }
    items.push(LegendItem::text(
        "σ in the bottom panels: standard deviation of dL/dh_l, in the colour of its curve; each x axis spans ±5 of its largest σ",
    ));
    items.push(LegendItem::text(
        "bins: 41 over the activation's range (tanh, sigmoid) or the data's: [0, max] or ±max|x|",
    ));
    let size = (CELL.0 * cols as u32 + LEGEND_W, TITLE_HEIGHT + 2 * CELL.1);
    figure(size, title, subtitle, |body| {
        panels_with_legend(body, CELL.0 * cols as u32, (2, cols), &panels, &items)
    })
}

/// The legend line explaining the saturation shares written in the activation panels (`whose`:
/// which curves carry one), where `act` has a saturated zone.
pub fn saturation_note(act: crate::config::Activation, whose: &str) -> Option<String> {
    use crate::config::Activation;
    let (lo, hi) = crate::histogram::SIGMOID_SATURATED;
    let rule = match act {
        Activation::Tanh => format!("|tanh| > {TANH_SATURATED}"),
        Activation::Sigmoid => format!("sigmoid < {lo} or > {hi}"),
        _ => return None,
    };
    Some(format!(
        "% in the top panels: units saturated ({rule}), {whose}, in its colour"
    ))
}
