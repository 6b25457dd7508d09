//! The figures of `bn-lab nonlinearity`:
//! - `nonlinearity.png`, the headline: per activation, the final training loss of every seed
//!   and arm on one shared linear axis, with the best linear model as a guide line;
//! - `nonlinearity_detail.png`: per activation a column of per-layer fractions before and after
//!   training, the learned γ (one x range for every activation) and the loss curves;
//! - `nonlinearity_hist.png`: histograms of the activation inputs of the first, middle and last
//!   layer before and after training, per configuration, on one shared y scale with one legend;
//! - `nonlinearity_curve.png`: the diary's picture, the sigmoid curve with the trained networks'
//!   activation inputs under it, with and without scale/shift, and the share inside (−1, 1);
//! - `nonlinearity_units.png`: the dead and always-active (linear) ReLU units per layer.

use anyhow::Result;
use plotters::style::RGBColor;

use crate::config::{Activation, Normaliser};
use crate::experiment::nonlinearity::{
    ActSummary, ActivationStats, AffineVerdict, HIST_RANGE, Histogram, NlRun, NonlinearityReport,
    SIGMOID_SATURATION, TANH_SATURATION, title,
};
use crate::ops;
use crate::plot::arms::{norm_color, norm_marker};
use crate::plot::chart::{
    Dash, Fonts, Grid, Layout, LegendItem, Note, Panel, Png, Sample, Series, Slide, draw_legend,
    draw_panel_bare, figure, layout_legend, okabe_ito,
};
use crate::plot::{Figure, Figures};
use crate::stats::{Num, fmt_num, geometric_mean, max_nan, min_nan};

fn runs_of(report: &NonlinearityReport, act: Activation, arm: Normaliser) -> Vec<&NlRun> {
    report
        .runs
        .iter()
        .filter(|r| r.act == act && r.norm == arm)
        .collect()
}

/// The largest finite value of `values` (NaN when none is finite).
fn finite_max(values: impl Iterator<Item = f64>) -> f64 {
    values.filter(|v| v.is_finite()).fold(f64::NAN, f64::max)
}

// ---------------------------------------------------------------------------------------------
// The headline.

/// The headline shows at most this many activations (the detail figure shows all).
pub const HEADLINE_ACTS: usize = 3;

/// A panel caption stating the comparison the verdict is about: how many times lower the
/// recalibrated training loss is with scale/shift than without.
fn headline_caption(act: Activation, s: Option<&ActSummary>) -> String {
    match s.map(|s| (s.verdict, s.no_affine_over_affine_train)) {
        Some((Some(AffineVerdict::Undetermined), _)) => {
            format!("{act}: no verdict, a run diverged")
        }
        Some((Some(AffineVerdict::NoClearDifference), Some(Num(r)))) if r.is_finite() => {
            format!("{act}: {r:.2}x, no clear difference")
        }
        Some((_, Some(Num(r)))) if r.is_finite() && r >= 1.0 => {
            format!("{act}: {r:.2}x lower with γ, β")
        }
        Some((_, Some(Num(r)))) if r.is_finite() && r > 0.0 => {
            format!("{act}: {:.2}x lower without γ, β", 1.0 / r)
        }
        _ => format!("{act}"),
    }
}

/// How far right of its seed the `i`-th of `n` arms' markers sit, so equal losses (BN off
/// and BN without scale/shift both at the linear model's loss) do not hide each other.
pub fn dodge(i: usize, n: usize) -> f64 {
    0.15 * (i as f64 - (n as f64 - 1.0) / 2.0)
}

/// One loss axis for every headline panel, covering each seed, mean and the guide `linear`:
/// linear from 0, or, for cross-entropy spanning more than a decade (ln 10 = 2.3 for a net that
/// learned nothing, 0.03 for one that fits), logarithmic, so the fitted arms do not sit on the
/// floor.
fn share_loss_axis(panels: &mut [Panel], linear: Option<f64>, loss: crate::config::Loss) {
    let values = || {
        panels
            .iter()
            .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|q| q.1)))
    };
    let hi = finite_max(values().chain(linear));
    let hi = if hi.is_finite() && hi > 0.0 { hi } else { 1.0 };
    let lo = values()
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let log = loss == crate::config::Loss::Ce && lo.is_finite() && hi / lo > 10.0;
    for p in panels.iter_mut() {
        if log {
            p.log_y = true;
            p.y_label = format!("{} (log scale)", p.y_label);
            p.y_range = Some((lo / 2.0, hi * 2.0));
        } else {
            p.y_range = Some((0.0, hi));
        }
    }
}

/// The headline slide: one panel per activation (the first [`HEADLINE_ACTS`]), the final
/// training loss (BN statistics recomputed over the training set, the loss the verdict is judged
/// on) of every seed as a marker per arm, the mean over seeds as a dashed line labelled with its
/// value, and the best linear model as a guide; every panel on the same linear loss axis.
pub fn headline(report: &NonlinearityReport) -> Slide {
    let cfg = &report.config;
    let x_range = seed_axis(&cfg.seed_list());
    let linear = report.reference.linear_fit_train_loss.map(|v| v.0);
    let mut panels = Vec::new();
    let mut notes = Vec::new();
    for &act in cfg.acts.iter().take(HEADLINE_ACTS) {
        let summary = report.summary.iter().find(|s| s.act == act);
        panels.push(headline_panel(report, act, summary, x_range, linear));
        if let Some(s) = summary {
            notes.extend(act_notes(report, s));
        }
    }
    share_loss_axis(&mut panels, linear, cfg.data.loss);
    notes.extend(headline_key(&cfg.acts));
    let mut slide = Slide::new(
        "Does BatchNorm's scale/shift (γ, β) restore the non-linearity?",
        title(cfg),
        panels,
    );
    slide.notes = notes;
    slide
}

/// The headline's x range over `seeds`: room on the left for the mean labels (short of the
/// tick at `first - 1`), half a seed on the right.
fn seed_axis(seeds: &[u64]) -> (f64, f64) {
    let first = seeds.first().copied().unwrap_or(0) as f64;
    let last = seeds.last().copied().unwrap_or(0) as f64;
    (first - 0.9, last + 0.5)
}

/// One activation's headline panel: every arm's seeds as markers, dodged apart, and its mean
/// over seeds as a dashed level labelled on the left; the best linear model as a guide.
fn headline_panel(
    report: &NonlinearityReport,
    act: Activation,
    summary: Option<&ActSummary>,
    x_range: (f64, f64),
    linear: Option<f64>,
) -> Panel {
    let cfg = &report.config;
    let mut p = Panel::new(
        headline_caption(act, summary),
        "seed",
        format!("final training loss ({})", cfg.data.loss.title()),
        false,
    );
    p.integer_x = true;
    p.x_range = Some(x_range);
    p.top_edge_label = Some("top strip: inf or NaN (diverged)".into());
    if let Some(linear) = linear {
        p.guides
            .push((linear, "best linear model (training set)".into()));
    }
    for (i, &arm) in cfg.norms.iter().enumerate() {
        let runs = runs_of(report, act, arm);
        if runs.is_empty() {
            continue;
        }
        let color = norm_color(arm);
        let pts = runs
            .iter()
            .map(|r| {
                (
                    r.seed as f64 + dodge(i, cfg.norms.len()),
                    r.recalibrated_train_loss.0,
                )
            })
            .collect();
        let mut s = Series::new(arm.label(), color, pts);
        s.no_line = true;
        s.marker = Some(norm_marker(arm));
        p.series.push(s);
        let mean = summary
            .and_then(|s| s.arms.iter().find(|a| a.norm == arm))
            .map_or(f64::NAN, |a| a.train_loss.0);
        if mean.is_finite() {
            p.series.push(Series::level(
                format!("{} mean", arm.label()),
                color,
                x_range,
                mean,
            ));
            p.notes.push(Note {
                x: x_range.0,
                y: mean,
                text: fmt_num(mean),
                color,
                offset: (6, 0),
            });
        }
    }
    p
}

/// An activation's legend lines: in how many seeds scale/shift gave the lower loss (when there
/// is a verdict), and, with classes, each arm's mean test accuracy (what the fits mean).
fn act_notes(report: &NonlinearityReport, s: &ActSummary) -> Vec<LegendItem> {
    let act = s.act;
    let mut notes = Vec::new();
    if let (Some(better), Some(v)) = (s.seeds_affine_better, s.verdict) {
        if v != AffineVerdict::Undetermined {
            notes.push(LegendItem::text(format!(
                "{act}: with γ, β lower in {better} of {} seeds",
                report.config.seeds
            )));
        }
    }
    notes.extend(crate::plot::arms::accuracy_note(
        &format!("{act} test accuracy"),
        s.arms.iter().map(|a| (a.norm.label(), a.test_accuracy)),
    ));
    notes
}

/// The headline legend's closing lines: how to read the means and markers, and where the
/// activations beyond the first [`HEADLINE_ACTS`] are shown.
fn headline_key(acts: &[Activation]) -> Vec<LegendItem> {
    let mut notes = vec![
        LegendItem::new(
            "mean over seeds (value on the left)",
            Sample::Line {
                color: RGBColor(90, 90, 90),
                dash: Dash::Dashed,
                marker: None,
                width: 2,
            },
        ),
        LegendItem::text(
            "markers: one seed each; loss of the final network with BN statistics recomputed over the training set",
        ),
    ];
    if acts.len() > HEADLINE_ACTS {
        let rest: Vec<String> = acts[HEADLINE_ACTS..]
            .iter()
            .map(|a| a.to_string())
            .collect();
        notes.push(LegendItem::text(format!(
            "{}: see nonlinearity_detail.png",
            rest.join(", ")
        )));
    }
    notes
}

/// Draw the headline.
pub fn draw_headline(report: &NonlinearityReport) -> Result<Png> {
    headline(report).draw()
}

// ---------------------------------------------------------------------------------------------
// The detail figure.

/// A curve's points and its min-max band.
type Curve = (Vec<(f64, f64)>, Vec<(f64, f64, f64)>);

/// Mean over seeds per layer, with a min-max band when there are several seeds. A layer where a
/// seed is NaN has a NaN mean (marked on the top edge) and a gap in the band: no seed is dropped.
fn per_layer(runs: &[&NlRun], pick: &dyn Fn(&NlRun) -> Option<&Vec<Num>>) -> Option<Curve> {
    let per_seed: Vec<&Vec<Num>> = runs.iter().filter_map(|r| pick(r)).collect();
    let depth = per_seed.first()?.len();
    let mut pts = Vec::with_capacity(depth);
    let mut band = Vec::new();
    for l in 0..depth {
        let vals: Vec<f64> = per_seed.iter().map(|v| v[l].0).collect();
        let x = (l + 1) as f64;
        pts.push((x, vals.iter().sum::<f64>() / vals.len() as f64));
        if vals.len() > 1 {
            band.push((
                x,
                min_nan(vals.iter().copied()),
                max_nan(vals.iter().copied()),
            ));
        }
    }
    Some((pts, band))
}

/// A per-layer share panel (0 to 1): after training solid (with seed band), before dashed.
fn fraction_panel(
    report: &NonlinearityReport,
    act: Activation,
    caption: &str,
    y_label: &str,
    pick: &dyn Fn(&ActivationStats) -> Option<&Vec<Num>>,
) -> Panel {
    let mut p = layer_panel(report, act, caption, y_label, pick);
    p.y_range = Some((0.0, 1.0));
    p
}

/// A per-layer panel: after training solid (with seed band and the arm's marker), before
/// training dashed.
fn layer_panel(
    report: &NonlinearityReport,
    act: Activation,
    caption: &str,
    y_label: &str,
    pick: &dyn Fn(&ActivationStats) -> Option<&Vec<Num>>,
) -> Panel {
    let mut p = Panel::new(caption, "layer l (1 = input side)", y_label, false);
    p.integer_x = true;
    let depth = report.config.depth as f64;
    p.x_range = Some(if depth > 1.0 {
        (1.0, depth)
    } else {
        (0.5, 1.5)
    });
    for &arm in &report.config.norms {
        let runs = runs_of(report, act, arm);
        let color = norm_color(arm);
        if let Some((pts, band)) = per_layer(&runs, &|r| pick(&r.after)) {
            let mut s = Series::new(arm.label(), color, pts);
            s.band = band;
            s.marker = Some(norm_marker(arm));
            p.series.push(s);
        }
        if let Some((pts, _)) = per_layer(&runs, &|r| pick(&r.before)) {
            let mut s = Series::new(format!("{} before", arm.label()), color, pts);
            s.dash = Dash::Dashed;
            s.legend = false;
            p.series.push(s);
        }
    }
    p
}

/// The input beyond which `act` counts as saturated (`|u|` above it), for sigmoid and tanh.
pub fn saturation_threshold(act: Activation) -> Option<f64> {
    match act {
        Activation::Sigmoid => Some(((1.0 - SIGMOID_SATURATION) / SIGMOID_SATURATION).ln()),
        Activation::Tanh => Some(TANH_SATURATION.atanh()),
        _ => None,
    }
}

/// The saturated share per layer, in percent, on an axis from 0 to at least 1 %, with the
/// largest value (over arms, seeds, layers, before and after) written on the plot: in the
/// default run it stays below 0.5 %, which a 0-to-1 axis draws as a flat line at 0.
fn saturation_panel(report: &NonlinearityReport, act: Activation) -> Panel {
    let t = saturation_threshold(act).unwrap_or(f64::NAN);
    let mut p = layer_panel(
        report,
        act,
        &format!("{act}: saturated (|u| > {t:.2})"),
        "saturated inputs (%)",
        &|s| s.saturated.as_ref(),
    );
    for s in &mut p.series {
        for q in &mut s.points {
            q.1 *= 100.0;
        }
        for b in &mut s.band {
            b.1 *= 100.0;
            b.2 *= 100.0;
        }
    }
    let largest = report
        .runs
        .iter()
        .filter(|r| r.act == act)
        .flat_map(|r| [&r.before, &r.after])
        .filter_map(|s| s.saturated.as_ref())
        .flat_map(|v| v.iter().map(|x| 100.0 * x.0))
        .fold(f64::NAN, |m, v| if v.is_finite() { m.max(v) } else { m });
    if largest.is_finite() {
        p.y_range = Some((0.0, (largest * 1.15).max(1.0)));
        // Beside the after-training point that holds it, or the first one.
        let at = p
            .series
            .iter()
            .filter(|s| s.legend)
            .flat_map(|s| s.points.iter().copied())
            .filter(|q| q.1.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((1.0, largest));
        let text = if largest < 1.0 {
            format!("at most {largest:.2}% in any layer: next to none")
        } else {
            format!("largest: {largest:.1}%")
        };
        p.notes.push(Note {
            x: at.0,
            y: at.1,
            text,
            color: RGBColor(40, 40, 40),
            offset: (10, 30),
        });
    }
    p
}

/// Step outline of a histogram as density (fraction per unit of x).
fn step_points(h: &Histogram) -> Vec<(f64, f64)> {
    step_points_within(h, h.lo, h.hi)
}

/// The bins of `h` that lie inside `[lo, hi]`, with their left and right edges (plotters does
/// not clip, so a panel narrower than the histogram gets only the bins it shows).
fn bins_within(h: &Histogram, lo: f64, hi: f64) -> Vec<(f64, f64, f64)> {
    let w = h.bin_width();
    let eps = 1e-9 * w;
    densities(h)
        .into_iter()
        .enumerate()
        .map(|(i, d)| (h.lo + i as f64 * w, h.lo + (i + 1) as f64 * w, d))
        .filter(|&(x0, x1, _)| x0 >= lo - eps && x1 <= hi + eps)
        .collect()
}

/// [`step_points`] of the bins inside `[lo, hi]`.
fn step_points_within(h: &Histogram, lo: f64, hi: f64) -> Vec<(f64, f64)> {
    let bins = bins_within(h, lo, hi);
    let mut pts = Vec::with_capacity(2 * bins.len() + 2);
    if let (Some(first), Some(last)) = (bins.first(), bins.last()) {
        pts.push((first.0, 0.0));
        for &(x0, x1, d) in &bins {
            pts.push((x0, d));
            pts.push((x1, d));
        }
        pts.push((last.1, 0.0));
    }
    pts
}

/// Density (fraction of all values per unit of x) of each bin.
fn densities(h: &Histogram) -> Vec<f64> {
    let total = h.total().max(1) as f64;
    h.counts
        .iter()
        .map(|&c| c as f64 / total / h.bin_width())
        .collect()
}

/// The learned γ of every BN + affine run (all seeds, layers and units) of `act`.
fn gammas(report: &NonlinearityReport, act: Activation) -> Vec<f64> {
    let Some(affine) = report.config.norms.iter().copied().find(|n| n.affine()) else {
        return Vec::new();
    };
    runs_of(report, act, affine)
        .iter()
        .filter_map(|r| r.gamma.as_ref())
        .flat_map(|g| g.iter().flatten().map(|v| v.0))
        .collect()
}

/// Bins of the γ histograms.
pub const GAMMA_BINS: usize = 60;

/// The γ range every activation's histogram shares: all finite γ of every activation, and 1
/// (where they start), with a little room either side.
pub fn gamma_range(report: &NonlinearityReport) -> (f64, f64) {
    let all: Vec<f64> = report
        .config
        .acts
        .iter()
        .flat_map(|&a| gammas(report, a))
        .filter(|v| v.is_finite())
        .collect();
    let lo = all.iter().copied().fold(1.0f64, f64::min);
    let hi = all.iter().copied().fold(1.0f64, f64::max);
    let pad = ((hi - lo) * 0.04).max(0.05);
    (lo - pad, hi + pad)
}

/// Histogram of every learned γ of the BN + affine runs of `act`, over `range`.
fn gamma_panel(report: &NonlinearityReport, act: Activation, range: (f64, f64)) -> Option<Panel> {
    let affine = report.config.norms.iter().copied().find(|n| n.affine())?;
    let values = gammas(report, act);
    if values.is_empty() {
        return None;
    }
    let runs = runs_of(report, act, affine);
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let h = Histogram::new(range.0, range.1, GAMMA_BINS, values.iter().copied());
    let mean_abs = finite.iter().map(|v| v.abs()).sum::<f64>() / finite.len().max(1) as f64;
    let all_betas: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.beta.as_ref())
        .flat_map(|b| b.iter().flatten().map(|v| v.0.abs()))
        .collect();
    let betas: Vec<f64> = all_betas
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let mean_beta = betas.iter().sum::<f64>() / betas.len().max(1) as f64;
    // The means are over finite values: say how many were left out.
    let left_out = (values.len() - finite.len()) + (all_betas.len() - betas.len());
    let note = if left_out > 0 {
        format!(" ({left_out} inf/NaN γ, β left out)")
    } else {
        String::new()
    };
    let mut p = Panel::new(
        format!("{act}: learned γ (all start at 1)"),
        "γ (BN scale), all layers and units",
        "density",
        false,
    );
    p.x_range = Some(range);
    p.series.push(Series::new(
        format!(
            "{}: mean |γ| {mean_abs:.2}, mean |β| {mean_beta:.2}{note}",
            affine.label()
        ),
        norm_color(affine),
        step_points(&h),
    ));
    Some(p)
}

/// The mean over `runs` (geometric) of the training mini-batch loss (or, with `test`, the test
/// loss) at each evaluation step, with a min-max band where every seed is finite. A diverged
/// seed counts as inf from its last recorded value on, so the mean turns inf there too.
/// `runs` must not be empty (its first run gives the evaluation steps).
fn mean_loss(runs: &[&NlRun], test: bool) -> Curve {
    let mut pts = Vec::new();
    let mut band = Vec::new();
    for (i, &step) in runs[0].history.eval_steps.iter().enumerate() {
        let v: Vec<f64> = runs
            .iter()
            .map(|r| {
                let h = &r.history;
                let series = if test { &h.test_loss } else { &h.batch_loss };
                if r.diverged && i + 1 >= series.len() {
                    f64::INFINITY
                } else {
                    series.get(i).map_or(f64::NAN, |x| x.0)
                }
            })
            .collect();
        pts.push((step as f64, geometric_mean(&v)));
        if v.len() > 1 && v.iter().all(|x| x.is_finite()) {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            band.push((step as f64, lo, hi));
        }
    }
    (pts, band)
}

/// Loss curves (train mini-batch solid with the arm's marker, test dashed; geometric mean over
/// seeds with a min-max band).
fn loss_panel(report: &NonlinearityReport, act: Activation) -> Panel {
    let mut p = Panel::new(
        format!("{act}: loss (dashed: test)"),
        "step (SGD updates)",
        "train mini-batch loss (log)",
        true,
    );
    p.x_range = Some((0.0, report.config.steps.max(1) as f64));
    p.top_edge_label = Some("top strip: diverged".into());
    if let Some(linear) = report.reference.linear_fit_train_loss {
        p.guides
            .push((linear.0, "best linear model (train)".into()));
    }
    for &arm in &report.config.norms {
        let runs = runs_of(report, act, arm);
        if runs.is_empty() {
            continue;
        }
        for test in [false, true] {
            let (pts, band) = mean_loss(&runs, test);
            let mut s = Series::new(arm.label(), norm_color(arm), pts);
            s.band = band;
            if test {
                s.dash = Dash::Dashed;
                s.legend = false;
            } else {
                s.marker = Some(norm_marker(arm));
            }
            p.series.push(s);
        }
    }
    p
}

/// The panels of one activation's column, top to bottom: inputs inside (−1, 1); saturation
/// and input spread (sigmoid, tanh) or dead and linear units (ReLU kinds); learned γ over
/// `gamma_range` (when a BN + affine arm ran); the loss.
fn activation_column(
    report: &NonlinearityReport,
    act: Activation,
    gamma_range: (f64, f64),
) -> Vec<Panel> {
    let mut col = vec![fraction_panel(
        report,
        act,
        &format!("{act}: inputs inside (−1, 1)"),
        "share of inputs u",
        &|s| Some(&s.inside_unit),
    )];
    match act {
        Activation::Sigmoid | Activation::Tanh => {
            col.push(saturation_panel(report, act));
            col.push(layer_panel(
                report,
                act,
                &format!("{act}: spread of the inputs"),
                "std of u",
                &|s| Some(&s.input_std),
            ));
        }
        Activation::Relu | Activation::LeakyRelu => {
            col.push(fraction_panel(
                report,
                act,
                &format!("{act}: dead units (all u ≤ 0)"),
                "share of units",
                &|s| s.dead.as_ref(),
            ));
            col.push(fraction_panel(
                report,
                act,
                &format!("{act}: linear units (all u > 0)"),
                "share of units",
                &|s| s.always_active.as_ref(),
            ));
        }
        Activation::Linear => {}
    }
    col.extend(gamma_panel(report, act, gamma_range));
    col.push(loss_panel(report, act));
    col
}

/// The detail figure's panels, one column per activation.
pub fn detail_columns(report: &NonlinearityReport) -> Vec<Vec<Panel>> {
    let range = gamma_range(report);
    report
        .config
        .acts
        .iter()
        .map(|&act| activation_column(report, act, range))
        .collect()
}

/// Draw the detail figure: one column per activation (shorter columns leave their
/// bottom cells blank), each panel with its legend beside it. A single activation's panels fill
/// two columns instead, so the figure is wide enough for its title.
pub fn draw_detail(report: &NonlinearityReport) -> Result<Png> {
    let mut columns = detail_columns(report);
    if columns.len() == 1 {
        let panels = columns.remove(0);
        let half = panels.len().div_ceil(2);
        let mut it = panels.into_iter();
        let left: Vec<Panel> = it.by_ref().take(half).collect();
        columns = vec![left, it.collect()];
    }
    let rows = columns.iter().map(|c| c.len()).max().unwrap_or(1);
    let cols = columns.len().max(1);
    Grid::new(rows, cols, (900, 560)).draw(
        "Activation inputs per layer, after (solid) and before (dashed) training",
        &title(&report.config),
        |cells| {
            let mut layout = Layout::default();
            for (c, col) in columns.iter().enumerate() {
                for (r, p) in col.iter().enumerate() {
                    layout.extend(crate::plot::chart::draw_panel(&cells[r * cols + c], p)?);
                }
            }
            Ok(layout)
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The histograms.

/// Grey of the before-training histogram.
const BEFORE: RGBColor = RGBColor(70, 70, 70);
/// Yellow of the interval (−1, 1).
const UNIT_INTERVAL: RGBColor = RGBColor(240, 190, 0);
/// Grey of the saturation thresholds.
const THRESHOLD: RGBColor = RGBColor(100, 100, 100);

/// The histogram figure: its panels in row-major order (one row per (activation,
/// configuration) of the first seed, one column per probed layer), and its one legend.
pub struct HistFigure {
    pub panels: Vec<Panel>,
    pub rows: usize,
    pub cols: usize,
    pub legend: Vec<LegendItem>,
    /// The density every panel's y axis ends at.
    pub top: f64,
}

/// The bin with the most values after training: its centre and density (`None` when every
/// value fell outside the histogram).
pub fn mode(h: &Histogram) -> Option<(f64, f64)> {
    let d = densities(h);
    let (i, &m) = d.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    (m > 0.0).then(|| (h.lo + (i as f64 + 0.5) * h.bin_width(), m))
}

/// The half-width of the x range every histogram panel shares: past the outermost filled bin
/// of any histogram and past the saturation thresholds drawn, at most the histograms' range.
fn hist_half_width(hists: &[(&Histogram, &Histogram)], thresholds: &[f64]) -> f64 {
    let mut r = thresholds.iter().fold(1.5f64, |m, &t| m.max(t + 0.5));
    for h in hists.iter().flat_map(|(b, a)| [*b, *a]) {
        let w = h.bin_width();
        for (i, &c) in h.counts.iter().enumerate() {
            if c > 0 {
                let x0 = h.lo + i as f64 * w;
                r = r.max(x0.abs()).max((x0 + w).abs());
            }
        }
    }
    ((r * 2.0).ceil() / 2.0).min(HIST_RANGE)
}

/// One histogram panel: the interval (−1, 1) shaded yellow, the saturation thresholds of
/// sigmoid/tanh dotted, the before-training histogram as grey bars, the after-training one as
/// the arm's coloured outline with its marker on the mode.
fn hist_panel(
    caption: String,
    act: Activation,
    arm: Normaliser,
    (before, after): (&Histogram, &Histogram),
    half_width: f64,
    top: f64,
) -> Panel {
    let mut p = Panel::new(caption, "activation input u", "density", false);
    p.x_range = Some((-half_width, half_width));
    p.y_range = Some((0.0, top));
    let mut unit = Series::new("(−1, 1)", UNIT_INTERVAL, Vec::new());
    unit.band = vec![(-1.0, 0.0, top), (1.0, 0.0, top)];
    unit.legend = false;
    p.series.push(unit);
    if let Some(t) = saturation_threshold(act) {
        for x in [-t, t] {
            let mut s = Series::new("saturation", THRESHOLD, vec![(x, 0.0), (x, top)]);
            s.dash = Dash::Dotted;
            s.width = 2;
            s.legend = false;
            p.series.push(s);
        }
    }
    let mut bars = Series::new("before training", BEFORE, Vec::new());
    bars.band = bins_within(before, -half_width, half_width)
        .into_iter()
        .flat_map(|(x0, x1, d)| [(x0, 0.0, d), (x1, 0.0, d)])
        .collect();
    bars.legend = false;
    p.series.push(bars);
    let color = norm_color(arm);
    let mut outline = Series::new(
        arm.label(),
        color,
        step_points_within(after, -half_width, half_width),
    );
    outline.legend = false;
    p.series.push(outline);
    if let Some(m) = mode(after) {
        let mut s = Series::new(arm.label(), color, vec![m]);
        s.no_line = true;
        s.marker = Some(norm_marker(arm));
        s.legend = false;
        p.series.push(s);
    }
    // The bars alone would hide values beyond the histogram's range or not finite.
    let outside =
        |h: &Histogram| (h.below + h.above + h.non_finite) as f64 / h.total().max(1) as f64;
    let (ob, oa) = (outside(before), outside(after));
    if ob >= 5e-4 || oa >= 5e-4 {
        let what = if before.non_finite + after.non_finite > 0 {
            format!("beyond ±{} or not finite", after.hi)
        } else {
            format!("beyond ±{}", after.hi)
        };
        p.notes.push(Note {
            x: -half_width,
            y: top,
            text: format!("{what}: {:.1}% → {:.1}%", 100.0 * ob, 100.0 * oa),
            color: RGBColor(60, 60, 60),
            offset: (0, 0),
        });
    }
    p
}

/// The histogram figure of the first seed's runs.
pub fn hist_figure(report: &NonlinearityReport) -> HistFigure {
    let cfg = &report.config;
    let layers = cfg.hist_layers();
    let runs: Vec<&NlRun> = report
        .runs
        .iter()
        .filter(|r| r.seed == cfg.net.seed)
        .collect();
    let find = |s: &ActivationStats, layer: usize| {
        s.histograms
            .iter()
            .find(|h| h.layer == layer)
            .map(|h| h.hist.clone())
    };
    // (run, layer, before, after) in row-major order.
    let cells: Vec<(&NlRun, usize, Histogram, Histogram)> = runs
        .iter()
        .flat_map(|&r| {
            layers
                .iter()
                .filter_map(move |&l| Some((r, l, find(&r.before, l)?, find(&r.after, l)?)))
        })
        .collect();
    let thresholds: Vec<f64> = cfg
        .acts
        .iter()
        .filter_map(|&a| saturation_threshold(a))
        .collect();
    let pairs: Vec<(&Histogram, &Histogram)> = cells.iter().map(|c| (&c.2, &c.3)).collect();
    let half_width = hist_half_width(&pairs, &thresholds);
    let top = finite_max(
        cells
            .iter()
            .flat_map(|c| densities(&c.2).into_iter().chain(densities(&c.3))),
    );
    let top = if top.is_finite() && top > 0.0 {
        top * 1.05
    } else {
        1.0
    };
    let panels = cells
        .iter()
        .map(|(r, l, b, a)| {
            hist_panel(
                format!("{}: layer {l}", r.label),
                r.act,
                r.norm,
                (b, a),
                half_width,
                top,
            )
        })
        .collect();
    let mut legend = vec![LegendItem::new("before training", Sample::Band(BEFORE))];
    for &arm in &cfg.norms {
        legend.push(LegendItem::new(
            format!("after training, {}", arm.label()),
            Sample::Line {
                color: norm_color(arm),
                dash: Dash::Solid,
                marker: Some(norm_marker(arm)),
                width: 3,
            },
        ));
    }
    legend.push(LegendItem::text(
        "marker: the most common bin after training",
    ));
    legend.push(LegendItem::new(
        "(−1, 1), where sigmoid(u) ≈ 1/2 + u/4",
        Sample::Band(UNIT_INTERVAL),
    ));
    let mut sat = Vec::new();
    for &act in &cfg.acts {
        if let Some(t) = saturation_threshold(act) {
            sat.push(format!("{act} |u| > {t:.2}"));
        }
    }
    if !sat.is_empty() {
        legend.push(LegendItem::new(
            format!("saturated beyond: {}", sat.join(", ")),
            Sample::Line {
                color: THRESHOLD,
                dash: Dash::Dotted,
                marker: None,
                width: 2,
            },
        ));
    }
    legend.push(LegendItem::text(
        "every panel on the same axes, so their heights compare",
    ));
    HistFigure {
        rows: runs.len().max(1),
        cols: layers.len().max(1),
        panels,
        legend,
        top,
    }
}

/// Width and height of one histogram cell, and the widest the legend column may be.
const HIST_CELL: (u32, u32) = (620, 440);
const HIST_LEGEND_MAX_W: u32 = 470;

/// Draw the histograms of the first seed: one row per (activation, configuration),
/// one column per probed layer, one legend in a column on the right.
pub fn draw_histograms(report: &NonlinearityReport) -> Result<Png> {
    let cfg = &report.config;
    let fig = hist_figure(report);
    let subtitle = format!(
        "{} · histograms of seed {}; probe: the first {} test samples, before training in train mode, after it in eval mode",
        title(cfg),
        cfg.net.seed,
        cfg.net.batch
    );
    let grid_w = HIST_CELL.0 * fig.cols as u32;
    let size = (
        grid_w + HIST_LEGEND_MAX_W + 20,
        crate::plot::chart::TITLE_HEIGHT + HIST_CELL.1 * fig.rows as u32,
    );
    figure(
        size,
        "Activation inputs before and after training (first, middle, last layer)",
        &subtitle,
        |body| {
            let (grid, side) = body.split_horizontally(grid_w);
            let mut layout = Layout::default();
            for (cell, p) in grid
                .split_evenly((fig.rows, fig.cols))
                .iter()
                .zip(&fig.panels)
            {
                layout.panels.push(draw_panel_bare(cell, p, Fonts::DETAIL)?);
            }
            let legend =
                layout_legend(&side, &fig.legend, Fonts::DETAIL.legend, HIST_LEGEND_MAX_W)?;
            let top = layout
                .panels
                .first()
                .map_or(0, |p| p.plot.y0 - side.get_base_pixel().1)
                .max(0);
            layout.legends.push(draw_legend(&side, &legend, (8, top))?);
            Ok(layout)
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The slides of the diary's two pictures.

/// A slide subtitle short enough for one line: the task, the net, the seeds and the probe.
fn short_subtitle(report: &NonlinearityReport, act: Activation) -> String {
    let cfg = &report.config;
    format!(
        "{} · depth {}, width {} · lr {} · {} steps · {} seeds from {} · probe: {} test samples, eval mode after training",
        crate::experiment::train::task_part(&cfg.data),
        cfg.depth,
        cfg.net.width,
        crate::stats::Short(cfg.lr(act)),
        cfg.steps,
        cfg.seeds,
        cfg.net.seed,
        cfg.net.batch
    )
}

/// The activation the curve slide draws: the first sigmoid or tanh of the run (the diary's
/// argument is about a saturating curve), else the first activation.
pub fn curve_act(report: &NonlinearityReport) -> Activation {
    let acts = &report.config.acts;
    acts.iter()
        .copied()
        .find(|a| matches!(a, Activation::Sigmoid | Activation::Tanh))
        .unwrap_or(acts[0])
}

/// The after-training histograms of `act`'s runs in `arm`, every seed and probed layer summed
/// into one (`None` without any).
pub fn pooled_after(
    report: &NonlinearityReport,
    act: Activation,
    arm: Normaliser,
) -> Option<Histogram> {
    let mut hists = runs_of(report, act, arm)
        .into_iter()
        .flat_map(|r| r.after.histograms.iter().map(|h| &h.hist));
    let mut sum = hists.next()?.clone();
    for h in hists {
        for (c, &d) in sum.counts.iter_mut().zip(&h.counts) {
            *c += d;
        }
        sum.below += h.below;
        sum.above += h.above;
        sum.non_finite += h.non_finite;
    }
    Some(sum)
}

/// The curve panel: `act(u)` over the histograms' range, its tangent at 0 (`1/2 + u/4` for
/// sigmoid), the diary's `sigmoid(u) ≈ u` where it lies on the axis, the interval (−1, 1)
/// shaded, and under the curve the density of the trained networks' activation inputs (every
/// seed and probed layer) for each BN arm: both a density per unit of u and `act(u)` live in
/// [0, 1] for sigmoid, so one axis holds them without rescaling.
pub fn curve_panel(report: &NonlinearityReport) -> Panel {
    let act = curve_act(report);
    let cfg = &report.config;
    let arms: Vec<(Normaliser, Histogram)> = cfg
        .norms
        .iter()
        .filter_map(|&n| Some((n, pooled_after(report, act, n)?)))
        .collect();
    let thresholds: Vec<f64> = saturation_threshold(act).into_iter().collect();
    let pairs: Vec<(&Histogram, &Histogram)> = arms.iter().map(|(_, h)| (h, h)).collect();
    let half = hist_half_width(&pairs, &thresholds).max(4.0);
    let curve = |f: &dyn Fn(f64) -> f64, lo: f64, hi: f64| -> Vec<(f64, f64)> {
        (0..=200)
            .map(|i| lo + (hi - lo) * i as f64 / 200.0)
            .map(|u| (u, f(u)))
            .collect()
    };
    let top_density = finite_max(arms.iter().flat_map(|(_, h)| densities(h)));
    let (y_lo, y_hi) = match act {
        Activation::Sigmoid => (0.0, 1.05f64.max(top_density * 1.05)),
        _ => (-1.05, 1.05f64.max(top_density * 1.05)),
    };
    let mut p = Panel::new(
        format!("{act}(u) and the trained nets' inputs u"),
        "activation input u",
        format!("{act}(u);  density of u"),
        false,
    );
    p.x_range = Some((-half, half));
    p.y_range = Some((y_lo, y_hi));
    let mut unit = Series::new("(−1, 1)", UNIT_INTERVAL, Vec::new());
    unit.band = vec![(-1.0, y_lo, y_hi), (1.0, y_lo, y_hi)];
    unit.legend = false;
    p.series.push(unit);
    for (arm, h) in &arms {
        let mut s = Series::new(
            format!("density of u, {}", arm.label()),
            norm_color(*arm),
            step_points_within(h, -half, half),
        );
        s.width = 3;
        p.series.push(s);
        if let Some(m) = mode(h) {
            let mut s = Series::new(arm.label(), norm_color(*arm), vec![m]);
            s.no_line = true;
            s.marker = Some(norm_marker(*arm));
            s.legend = false;
            p.series.push(s);
        }
    }
    let mut f = Series::new(
        format!("{act}(u)"),
        RGBColor(0, 0, 0),
        curve(&|u| ops::act_scalar(act, u), -half, half),
    );
    f.width = 5;
    p.series.push(f);
    // The tangent at 0: act(0) + act'(0) u, drawn where it stays on the axis.
    let (a0, slope) = (
        ops::act_scalar(act, 0.0),
        ops::act_grad_from_output(act, ops::act_scalar(act, 0.0)),
    );
    if slope > 0.0 {
        let (lo, hi) = (
            ((y_lo - a0) / slope).max(-half),
            ((y_hi.min(1.0) - a0) / slope).min(half),
        );
        let mut t = Series::new(
            format!("tangent at 0: {} + {}·u", fmt_num(a0), fmt_num(slope)),
            RGBColor(90, 90, 90),
            curve(&|u| a0 + slope * u, lo, hi),
        );
        t.dash = Dash::Dashed;
        t.width = 3;
        p.series.push(t);
    }
    if act == Activation::Sigmoid {
        // The diary's "sigma(x) ~ x on (-1, 1)", on the axis for 0 <= u <= 1.
        let mut d = Series::new(
            "the diary's σ(u) ≈ u (0 ≤ u ≤ 1)",
            okabe_ito::REDDISH_PURPLE,
            curve(&|u| u, 0.0, 1.0),
        );
        d.dash = Dash::Dotted;
        d.width = 4;
        p.series.push(d);
    }
    p
}

/// The curve slide (the diary's own picture for claim 9): [`curve_panel`] beside the share of
/// activation inputs inside (−1, 1) per layer.
pub fn curve_slide(report: &NonlinearityReport) -> Slide {
    let act = curve_act(report);
    let cfg = &report.config;
    let inside = fraction_panel(
        report,
        act,
        &format!("{act}: share of u in (−1, 1)"),
        "share of inputs u",
        &|s| Some(&s.inside_unit),
    );
    let mut slide = Slide::new(
        format!("Does BN without scale/shift trap {act}'s inputs where it is nearly linear?"),
        short_subtitle(report, act),
        vec![curve_panel(report), inside],
    );
    slide.widths = vec![3, 2];
    slide.notes = vec![
        LegendItem::new("(−1, 1)", Sample::Band(UNIT_INTERVAL)),
        LegendItem::text(format!(
            "left: densities of u over {} seeds and layers {}, marker on the most common bin",
            cfg.seeds,
            cfg.hist_layers()
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        LegendItem::text("right: solid after training (band: min-max over seeds), dashed before"),
    ];
    slide
}

/// Draw the curve slide.
pub fn draw_curve(report: &NonlinearityReport) -> Result<Png> {
    curve_slide(report).draw()
}

/// The activation the units slide draws: the first (leaky) ReLU of the run, else the first.
pub fn units_act(report: &NonlinearityReport) -> Activation {
    let acts = &report.config.acts;
    acts.iter()
        .copied()
        .find(|a| matches!(a, Activation::Relu | Activation::LeakyRelu))
        .unwrap_or(acts[0])
}

/// The units slide (claim 10's picture): per layer, the share of ReLU units that never fire on
/// the probe batch (dead) and that always fire (linear), per arm, after training (eval mode)
/// solid with the seeds' min-max band, before training dashed.
pub fn units_slide(report: &NonlinearityReport) -> Slide {
    let act = units_act(report);
    let cfg = &report.config;
    let mut dead = layer_panel(
        report,
        act,
        &format!("{act}: dead units (u ≤ 0 for every sample)"),
        "share of units",
        &|s| s.dead.as_ref(),
    );
    let mut linear = layer_panel(
        report,
        act,
        &format!("{act}: linear units (u > 0 for every sample)"),
        "share of units",
        &|s| s.always_active.as_ref(),
    );
    // One axis for both, from 0 past the largest share.
    let top = finite_max(
        [&dead, &linear]
            .iter()
            .flat_map(|p| p.series.iter())
            .flat_map(|s| {
                s.points
                    .iter()
                    .map(|q| q.1)
                    .chain(s.band.iter().map(|b| b.2))
            }),
    );
    let top = if top.is_finite() {
        (top * 1.2).max(0.05)
    } else {
        1.0
    };
    for p in [&mut dead, &mut linear] {
        p.y_range = Some((0.0, top.min(1.0)));
    }
    let mut slide = Slide::new(
        format!("{act} units that never switch: dead or linear"),
        short_subtitle(report, act),
        vec![dead, linear],
    );
    let largest: Vec<String> = cfg
        .norms
        .iter()
        .map(|&arm| {
            let runs = runs_of(report, act, arm);
            let worst = |pick: &dyn Fn(&ActivationStats) -> Option<&Vec<Num>>| {
                finite_max(
                    runs.iter()
                        .filter_map(|r| pick(&r.after))
                        .flat_map(|v| v.iter().map(|x| x.0)),
                )
            };
            let pct = |v: f64| {
                if v.is_finite() {
                    format!("{:.0}%", 100.0 * v)
                } else {
                    "n/a".into()
                }
            };
            format!(
                "{}: {} dead, {} linear",
                arm.label(),
                pct(worst(&|s| s.dead.as_ref())),
                pct(worst(&|s| s.always_active.as_ref()))
            )
        })
        .collect();
    slide.notes = vec![
        LegendItem::text(format!(
            "solid: after training, mean of {} seeds (band: min-max)",
            cfg.seeds
        )),
        LegendItem::new(
            "dashed: before training (train mode)",
            Sample::Line {
                color: RGBColor(90, 90, 90),
                dash: Dash::Dashed,
                marker: None,
                width: 2,
            },
        ),
        LegendItem::text("largest share in any layer and seed after training:"),
    ];
    slide.notes.extend(
        largest
            .into_iter()
            .map(|l| LegendItem::text(format!("  {l}"))),
    );
    slide
}

/// Draw the units slide.
pub fn draw_units(report: &NonlinearityReport) -> Result<Png> {
    units_slide(report).draw()
}

impl Figures for crate::experiment::nonlinearity::Nonlinearity {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![
            Figure {
                file: "nonlinearity.png",
                draw: draw_headline,
            },
            Figure {
                file: "nonlinearity_detail.png",
                draw: draw_detail,
            },
            Figure {
                file: "nonlinearity_hist.png",
                draw: draw_histograms,
            },
            Figure {
                file: "nonlinearity_curve.png",
                draw: draw_curve,
            },
            Figure {
                file: "nonlinearity_units.png",
                draw: draw_units,
            },
        ]
    }
}
