//! The figure of `sweep`: `sweep.png`, a slide of two panels against the swept value (log x),
//! one line per arm in its [`norm_color`]/[`norm_marker`], the seeds' min-max as a band:
//! - weight scale: the first/last gradient ratio, and the final train (dashed) and test losses;
//! - batch: the measured growth of `||dL/dh||^2` per layer with the mean-field rate dotted
//!   (Yang et al.'s `lambda(B)` for BN, `E[phi'^2] / E[phi^2]` for LN), and the final losses;
//! - depth: the first/last ratio and the growth per layer.

use anyhow::Result;

use crate::config::Normaliser;
use crate::experiment::sweep::{HEALTHY, Mean, Point, Sweep, SweepReport, Vary};
use crate::plot::arms::{norm_color, norm_marker};
use crate::plot::chart::{Dash, LegendItem, Note, Panel, Png, Series, Slide};
use crate::plot::{Figure, Figures};
use crate::stats::{Num, fmt_num, max_nan, median_nan, min_nan};

/// Up to this many swept values a panel draws markers with min-max whiskers, not lines: a
/// straight line from depth 50 to depth 200 would claim values nobody measured.
pub const FEW_VALUES: usize = 3;

fn few(r: &SweepReport) -> bool {
    r.config.values.len() <= FEW_VALUES
}

/// The x axis' label (a few depths or weight scales sit on a linear axis).
fn x_label(r: &SweepReport) -> &'static str {
    match (r.config.vary, few(r)) {
        (Vary::WeightScale, false) => "weight std s (log scale)",
        (Vary::WeightScale, true) => "weight std s",
        (Vary::Batch, _) => "batch size B (log scale)",
        (Vary::Depth, false) => "hidden layers L (log scale)",
        (Vary::Depth, true) => "hidden layers L",
    }
}

/// With [`FEW_VALUES`] or fewer values: markers with min-max whiskers instead of lines across
/// the gaps ([`Panel::markers_with_whiskers`]).
fn markers_only(p: &mut Panel, r: &SweepReport) {
    if few(r) {
        p.markers_with_whiskers();
    }
}

/// Where a swept value sits on the x axis: `log2(B)` for batch sizes (so every power of two is
/// a labelled tick: 2, 4, 8, ...), the value itself on the other axes' log scale.
fn x_of(vary: Vary, v: f64) -> f64 {
    match vary {
        Vary::Batch => v.log2(),
        _ => v,
    }
}

/// A panel's x axis for the sweep `r`: powers of two for batch sizes (with half a doubling of
/// room either side, so the end values keep their labels and marks), decades otherwise.
fn set_x_axis(p: &mut Panel, r: &SweepReport) {
    if r.config.vary == Vary::Batch {
        p.log2_x = true;
        let xs = r.config.values.iter().map(|&v| v.log2());
        let lo = xs.clone().fold(f64::INFINITY, f64::min);
        let hi = xs.fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi.is_finite() {
            p.x_range = Some((lo - 0.5, hi + 0.5));
        }
    } else if few(r) {
        // A linear axis with room either side: its ticks fall between and on the values.
        let lo = r
            .config
            .values
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let hi = r
            .config
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let pad = (0.1 * (hi - lo)).max(0.1 * hi.abs()).max(f64::MIN_POSITIVE);
        p.x_range = Some(((lo - pad).max(0.0), hi + pad));
        p.integer_x = r.config.vary == Vary::Depth;
    } else {
        p.log_x = true;
    }
}

/// One arm's line of `pick` over the values (the mean over seeds) with its seeds' band.
fn arm_series(
    r: &SweepReport,
    i: usize,
    norm: Normaliser,
    label: String,
    mean: &dyn Fn(&Mean) -> Option<Num>,
    point: &dyn Fn(&Point) -> Option<Num>,
) -> Series {
    let mut pts = Vec::new();
    let mut band = Vec::new();
    for m in r.means.iter().filter(|m| m.arm == norm) {
        let Some(y) = mean(m) else { continue };
        pts.push((x_of(r.config.vary, m.value), y.0));
        let seeds: Vec<f64> = r
            .points
            .iter()
            .filter(|p| p.arm == norm && p.value == m.value)
            .filter_map(point)
            .map(|n| n.0)
            .collect();
        if seeds.len() > 1 {
            band.push((
                x_of(r.config.vary, m.value),
                min_nan(seeds.iter().copied()),
                max_nan(seeds.iter().copied()),
            ));
        }
    }
    let mut s = Series::new(label, norm_color(norm), pts);
    s.band = band;
    s.marker = Some(norm_marker(norm));
    s.marker_phase = i;
    s
}

/// A panel with one line per arm of `pick`.
fn panel(
    r: &SweepReport,
    caption: &str,
    y_label: &str,
    mean: &dyn Fn(&Mean) -> Option<Num>,
    point: &dyn Fn(&Point) -> Option<Num>,
) -> Panel {
    let mut p = Panel::new(caption, x_label(r), y_label, true);
    set_x_axis(&mut p, r);
    p.series = r
        .config
        .norms
        .iter()
        .enumerate()
        .map(|(i, &n)| arm_series(r, i, n, n.label().to_string(), mean, point))
        .collect();
    p
}

/// Losses above this multiple of the zero predictor's are drawn in the loss panel's top strip:
/// such a net is far worse than one that learned nothing, and its exact loss would set the scale
/// (on a log axis it hid the difference between "learned a little" and "learned nothing").
const LOSS_CAP: f64 = 2.0;

/// One arm's final test (or train) loss per value: the median over its seeds, a diverged seed
/// counted as inf, so a ✕ in the top strip where most seeds diverged or the median is above
/// `cap`; the band spans the seeds that did not diverge.
fn loss_series(
    r: &SweepReport,
    i: usize,
    norm: Normaliser,
    label: String,
    cap: f64,
    pick: &dyn Fn(&Point) -> Option<Num>,
) -> Series {
    let mut pts = Vec::new();
    let mut band = Vec::new();
    for &value in &r.config.values {
        let seeds: Vec<&Point> = r
            .points
            .iter()
            .filter(|p| p.arm == norm && p.value == value)
            .collect();
        let loss = |p: &&Point| pick(p).map_or(f64::NAN, |n| n.0);
        let counted = seeds.iter().map(|p| {
            let l = loss(p);
            if p.diverged_at.is_some() || !l.is_finite() {
                f64::INFINITY
            } else {
                l
            }
        });
        let median = median_nan(counted);
        let x = x_of(r.config.vary, value);
        pts.push((x, if median > cap { f64::INFINITY } else { median }));
        let ok: Vec<f64> = seeds
            .iter()
            .filter(|p| p.diverged_at.is_none())
            .map(loss)
            .filter(|l| l.is_finite())
            .collect();
        if ok.len() > 1 {
            band.push((
                x,
                min_nan(ok.iter().copied()),
                max_nan(ok.iter().copied()).min(cap),
            ));
        }
    }
    let mut s = Series::new(label, norm_color(norm), pts);
    s.band = band;
    s.marker = Some(norm_marker(norm));
    s.marker_phase = i;
    s
}

/// "k/n diverged" beside each value where some of an arm's seeds diverged, in the arm's
/// colour, at its line's height (at the top of the axis when the line is in the top strip).
fn divergence_notes(r: &SweepReport, series: &[Series], cap: f64) -> Vec<Note> {
    let mut notes = Vec::new();
    for (i, (&norm, s)) in r.config.norms.iter().zip(series).enumerate() {
        for m in r.means.iter().filter(|m| m.arm == norm && m.diverged > 0) {
            let x = x_of(r.config.vary, m.value);
            let y = s
                .points
                .iter()
                .find(|p| p.0 == x)
                .map_or(cap, |p| p.1.min(cap));
            notes.push(Note {
                x,
                y,
                text: format!("{}/{} diverged", m.diverged, m.seeds),
                color: norm_color(norm),
                offset: (8, 12 + 26 * i as i32),
            });
        }
    }
    notes
}

/// Final test (solid) and train (dashed) losses on a linear axis from 0 to twice the zero
/// predictor's loss, which is drawn as a guide; above it, the top strip.
fn loss_panel(r: &SweepReport) -> Panel {
    let zero = r.zero_predictor_test_loss.map_or(f64::NAN, |z| z.0);
    let cap = if zero.is_finite() && zero > 0.0 {
        LOSS_CAP * zero
    } else {
        f64::INFINITY
    };
    let mut p = Panel::new(
        format!("Final loss, {} SGD steps", r.config.sgd.steps),
        x_label(r),
        format!("{} loss, eval mode", r.config.data.loss.title()),
        false,
    );
    set_x_axis(&mut p, r);
    if cap.is_finite() {
        p.y_range = Some((0.0, cap));
        p.guides.push((
            zero,
            format!("predicting 0: {} (learned nothing)", fmt_num(zero)),
        ));
    }
    p.top_edge_label = Some(format!(
        "top strip: most seeds diverged, or the median loss is above {}",
        if cap.is_finite() {
            fmt_num(cap)
        } else {
            "the axis".into()
        }
    ));
    for (i, &n) in r.config.norms.iter().enumerate() {
        p.series
            .push(loss_series(r, i, n, n.label().to_string(), cap, &|p| {
                p.final_test_loss
            }));
    }
    p.notes = divergence_notes(r, &p.series, cap);
    // The train losses are dashed lines between the values; with a few values there would be
    // nothing but lines across gaps, so the panel shows test losses only.
    let train_lines = if few(r) { 0 } else { r.config.norms.len() };
    for (i, &n) in r.config.norms.iter().enumerate().take(train_lines) {
        let mut s = loss_series(r, i, n, format!("{}: train", n.label()), cap, &|p| {
            p.final_train_loss
        });
        s.dash = Dash::Dashed;
        s.band.clear();
        s.legend = false;
        s.width = 2;
        s.marker = None;
        p.series.push(s);
    }
    p
}

fn ratio_panel(r: &SweepReport) -> Panel {
    let mut p = panel(
        r,
        "first / last ‖∂L/∂W_l‖ at init",
        "first / last layer (log scale)",
        &|m| Some(m.grad_ratio),
        &|p| Some(p.grad_ratio),
    );
    p.guides = vec![
        (HEALTHY.0, format!("vanishing below {}", HEALTHY.0)),
        (HEALTHY.1, format!("exploding above {}", HEALTHY.1)),
    ];
    p
}

/// The measured per-layer growth of `||dL/dh||^2` with the theory dotted.
fn rate_panel(r: &SweepReport) -> Panel {
    let mut p = panel(
        r,
        "‖∂L/∂h_l‖² per layer (dotted: theory)",
        "factor per layer towards the input (log scale)",
        &|m| m.growth_rate,
        &|p| p.growth_rate,
    );
    for (i, &n) in r.config.norms.iter().enumerate() {
        let mut s = arm_series(
            r,
            i,
            n,
            format!("{}: theory", n.label()),
            &|m| m.theory_rate,
            &|p| p.theory_rate,
        );
        if s.points.is_empty() {
            continue;
        }
        s.dash = Dash::Dotted;
        s.marker = None;
        s.band.clear();
        s.legend = false;
        p.series.push(s);
    }
    p.guides = vec![(1.0, "x1 per layer".into())];
    p
}

fn growth_panel(r: &SweepReport) -> Panel {
    let mut p = panel(
        r,
        "‖∂L/∂h_l‖ factor per layer",
        "growth per layer (log scale)",
        &|m| m.growth_per_layer,
        &|p| p.growth_per_layer,
    );
    p.guides = vec![(1.0, "x1 per layer".into())];
    p
}

/// The slide's title.
fn headline(r: &SweepReport) -> String {
    let arms: Vec<&str> = r.config.norms.iter().map(|n| n.label()).collect();
    let what = match r.config.vary {
        Vary::WeightScale => "Weight-scale sweep",
        Vary::Batch => "Batch-size sweep",
        Vary::Depth => "Depth sweep",
    };
    format!("{what}: {}", arms.join(" vs "))
}

/// The headline slide.
pub fn draw(r: &SweepReport) -> Result<Png> {
    let panels = match r.config.vary {
        // The backprop signal first: the plain net's collapse shows there, while the weight
        // gradients' first/last ratio stays near 1 (dW_l = h_{l-1}^T dz_l: the shrinking
        // forward and backward factors cancel).
        Vary::WeightScale if r.config.trains() => {
            vec![growth_panel(r), ratio_panel(r), loss_panel(r)]
        }
        Vary::WeightScale => vec![ratio_panel(r), growth_panel(r)],
        Vary::Batch if r.config.trains() => vec![rate_panel(r), loss_panel(r)],
        Vary::Batch => vec![rate_panel(r), ratio_panel(r)],
        Vary::Depth if r.config.trains() => {
            vec![ratio_panel(r), growth_panel(r), loss_panel(r)]
        }
        Vary::Depth => vec![ratio_panel(r), growth_panel(r)],
    };
    let mut panels = panels;
    for p in &mut panels {
        markers_only(p, r);
    }
    let mut slide = Slide::new(headline(r), r.config.title(), panels);
    if r.config.seeds > 1 {
        let (marks, spread) = if few(r) {
            ("markers", "whiskers")
        } else {
            ("lines", "bands")
        };
        slide.notes.push(LegendItem::text(format!(
            "{marks}: over {} seeds, geometric mean of ratios and median of losses (a diverged seed counted as inf); {spread}: min-max (losses: of the seeds that did not diverge)",
            r.config.seeds
        )));
    }
    if r.config.trains() && few(r) {
        slide.notes.push(LegendItem::text("losses: test"));
    } else if r.config.trains() {
        slide
            .notes
            .push(LegendItem::text("losses: solid test, dashed train"));
    }
    slide.draw()
}

impl Figures for Sweep {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![Figure {
            file: "sweep.png",
            draw,
        }]
    }
}

impl Figures for crate::experiment::sweep::SweepPoint {
    /// A point's file only: `--collect` draws the sweep.
    fn figures() -> Vec<Figure<Self::Report>> {
        Vec::new()
    }
}
