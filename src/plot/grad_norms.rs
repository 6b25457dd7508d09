//! The figures of `grad-norms`:
//! - `grad_norms.png`, the headline slide: per-layer weight-gradient norms, each arm annotated
//!   with its per-layer factor and first/last ratio, beside the forward activation spread;
//! - `grad_norms_detail.png`: weight gradients, the backprop signal with the mean-field
//!   prediction, and the forward spread, each panel with its own legend.
//!
//! Each normalisation arm keeps one colour and marker in every figure ([`norm_color`],
//! [`norm_marker`]); several depths are told apart by dash (the deepest solid) and drawn
//! against `l / L`, so every depth spans the same axis.

use std::path::Path;

use anyhow::Result;

use crate::experiment::grad_norms::{ArmResult, GradNormsReport, LayerValues, title};
use crate::plot::histograms::{self, Curve};
use crate::plot::{
    Dash, Figure, Figures, Layout, LegendItem, Note, Panel, Series, Slide, draw_panel, figure,
    norm_color, norm_marker,
};
use crate::stats::{Num, fmt_num, geometric_mean, max_nan, min_nan};

/// Where layer `l` (1-based) of an arm of depth `depth` sits on the x axis: `l` when the
/// report has one depth, `l / depth` when it has several.
fn layer_x(report: &GradNormsReport, l: usize, depth: usize) -> f64 {
    if report.config.depths.len() > 1 {
        l as f64 / depth as f64
    } else {
        l as f64
    }
}

/// The x axis' label, with the direction backprop runs.
fn x_label(report: &GradNormsReport) -> String {
    if report.config.depths.len() > 1 {
        "layer / depth l/L (1 = output side)".into()
    } else {
        "layer l (1 = input, L = output)".into()
    }
}

/// The arm's colour, marker and dash: colour and marker from its normalisation, dash from its
/// depth's rank (the deepest solid).
fn arm_series(
    report: &GradNormsReport,
    i: usize,
    label: String,
    points: Vec<(f64, f64)>,
) -> Series {
    let arm = &report.arms[i];
    let mut depths = report.config.depths.clone();
    depths.sort_unstable_by(|a, b| b.cmp(a));
    let rank = depths.iter().position(|&d| d == arm.depth).unwrap_or(0);
    let mut s = Series::new(label, norm_color(arm.norm), points);
    s.marker = Some(norm_marker(arm.norm));
    s.marker_phase = i;
    s.dash = Dash::nth(rank);
    s
}

/// Geometric-mean curve over seeds plus a min-max band (empty with one seed); a layer where a
/// seed is NaN breaks the band rather than being left out of it.
fn curve(report: &GradNormsReport, i: usize, pick: &dyn Fn(&LayerValues) -> &Vec<Num>) -> Series {
    let arm = &report.arms[i];
    let depth = arm.depth;
    let mut points = Vec::with_capacity(depth);
    let mut band = Vec::new();
    for l in 0..depth {
        let vals: Vec<f64> = arm.seeds.iter().map(|s| pick(s)[l].0).collect();
        let x = layer_x(report, l + 1, depth);
        points.push((x, geometric_mean(&vals)));
        if vals.len() > 1 {
            band.push((
                x,
                min_nan(vals.iter().copied()),
                max_nan(vals.iter().copied()),
            ));
        }
    }
    let mut s = arm_series(report, i, arm.label.clone(), points);
    s.band = band;
    s
}

/// The arm's mean-field prediction of `||dL/dh_l||`, dotted in its colour and scaled to meet
/// the measured curve (geometric mean over seeds) at the last hidden layer; `None` without a
/// theory or without a finite, positive measured value to meet. Layers where the prediction
/// underflows are left out (the line stops).
fn theory_series(report: &GradNormsReport, i: usize) -> Option<Series> {
    let arm = &report.arms[i];
    let theory = arm.theory.as_ref()?;
    let last = arm.activation_grad.last.0;
    if !(last.is_finite() && last > 0.0) {
        return None;
    }
    let points: Vec<(f64, f64)> = theory
        .profile
        .iter()
        .enumerate()
        .map(|(l, p)| (layer_x(report, l + 1, arm.depth), last * p.0.sqrt()))
        .filter(|&(_, y)| y.is_finite() && y > 0.0)
        .collect();
    let mut s = arm_series(report, i, format!("{}: theory", arm.label), points);
    s.dash = Dash::Dotted;
    s.marker = None;
    s.width = 3;
    Some(s)
}

/// A per-layer panel on a log axis: one curve (with seed band) per arm.
fn layer_panel(
    report: &GradNormsReport,
    caption: &str,
    y_label: &str,
    pick: &dyn Fn(&LayerValues) -> &Vec<Num>,
) -> Panel {
    let mut p = Panel::new(caption, x_label(report), y_label, true);
    let max_depth = report.arms.iter().map(|a| a.depth).max().unwrap_or(1);
    p.x_range = Some(if report.config.depths.len() > 1 {
        (0.0, 1.0)
    } else if max_depth > 1 {
        (1.0, max_depth as f64)
    } else {
        (0.5, 1.5)
    });
    p.integer_x = report.config.depths.len() == 1;
    p.series = (0..report.arms.len())
        .map(|i| curve(report, i, pick))
        .collect();
    p
}

/// The number a class should remember about an arm, written beside its line at the input end:
/// the per-layer factor towards the input, the first/last ratio and the verdict.
fn arm_note(report: &GradNormsReport, i: usize, series: &Series) -> Option<Note> {
    let arm: &ArmResult = &report.arms[i];
    let w = &arm.weight_grad;
    // The first layer from the input with a drawable value.
    let &(x, y) = series
        .points
        .iter()
        .find(|p| p.1.is_finite() && p.1 > 0.0)?;
    let factor = w
        .growth_per_layer
        .map_or("-".to_string(), |g| format!("×{}", fmt_num(g.0)));
    let prefix = if report.arms.len() > 1 {
        format!("{}: ", arm.label)
    } else {
        String::new()
    };
    Some(Note {
        x,
        y,
        text: format!(
            "{prefix}{factor}/layer, first/last {} ({})",
            fmt_num(w.ratio.0),
            w.verdict
        ),
        color: series.color,
        offset: (14, 22),
    })
}

/// The headline's title: what was compared.
fn headline_title(report: &GradNormsReport) -> String {
    compared_title(&report.config.norms)
}

/// `Gradient norms at initialisation: ...` naming the normalisation arms that ran.
pub fn compared_title(norms: &[crate::config::Norm]) -> String {
    let off = norms.iter().any(|n| !n.is_on());
    let on: Vec<_> = norms.iter().filter(|n| n.is_on()).collect();
    let what = match (off, on.len()) {
        (true, 0) => "without BatchNorm".to_string(),
        (false, 1) if on[0].label() == "BN on" => "with BatchNorm".to_string(),
        (false, _) => format!(
            "with {}",
            on.iter()
                .map(|n| n.label())
                .collect::<Vec<_>>()
                .join(" vs ")
        ),
        (true, 1) if on[0].label() == "BN on" => "BatchNorm off vs on".to_string(),
        (true, _) => format!(
            "BN off vs {}",
            on.iter()
                .map(|n| n.label())
                .collect::<Vec<_>>()
                .join(" vs ")
        ),
    };
    format!("Gradient norms at initialisation: {what}")
}

fn subtitle(report: &GradNormsReport) -> String {
    title(&report.config)
}

fn weight_panel(report: &GradNormsReport) -> Panel {
    layer_panel(
        report,
        "Weight gradients ‖∂L/∂W_l‖ (backprop runs ←)",
        "‖∂L/∂W_l‖ (Frobenius, log scale)",
        &|s| &s.weight_grad_norm,
    )
}

fn forward_panel(report: &GradNormsReport) -> Panel {
    layer_panel(
        report,
        "Forward activations std(h_l)",
        "std(h_l) (log scale)",
        &|s| &s.activation_std,
    )
}

/// The seed note of a legend: what lines and bands mean.
fn seed_note(report: &GradNormsReport) -> Option<LegendItem> {
    let n = report.config.seeds;
    (n > 1).then(|| {
        LegendItem::text(format!(
            "lines: geometric mean over {n} seeds; bands: min-max"
        ))
    })
}

/// The headline slide: weight gradients (annotated) and the forward spread.
pub fn draw(report: &GradNormsReport, path: &Path) -> Result<Layout> {
    let mut weight = weight_panel(report);
    weight.notes = (0..report.arms.len())
        .filter_map(|i| arm_note(report, i, &weight.series[i]))
        .collect();
    let forward = forward_panel(report);
    let mut slide = Slide::new(
        headline_title(report),
        subtitle(report),
        vec![weight, forward],
    );
    slide.widths = vec![3, 2];
    slide.notes.extend(seed_note(report));
    if report.config.depths.len() > 1 {
        slide.notes.push(LegendItem::text(
            "dash: depth (solid = deepest); colour and marker: BatchNorm arm",
        ));
    }
    slide.draw(path)
}

/// The detail figure (1800 x 1300 px): weight gradients across the top, the backprop signal
/// with the mean-field prediction and the forward spread below.
pub fn draw_detail(report: &GradNormsReport, path: &Path) -> Result<Layout> {
    let weight = weight_panel(report);
    let theory: Vec<Series> = (0..report.arms.len())
        .filter_map(|i| theory_series(report, i))
        .collect();
    let mut signal = layer_panel(
        report,
        if !theory.is_empty() {
            "Backprop signal ‖∂L/∂h_l‖ (dotted: theory)"
        } else {
            "Backprop signal ‖∂L/∂h_l‖"
        },
        "‖∂L/∂h_l‖ (log scale)",
        &|s| &s.activation_grad_norm,
    );
    signal.series.extend(theory);
    let forward = forward_panel(report);
    let mut sub = subtitle(report);
    if report.config.seeds > 1 {
        sub.push_str(" (lines: geometric mean; bands: min-max over seeds)");
    }
    // Not an even grid: the weight gradients get the full width on top.
    figure(
        path,
        (1800, 1300),
        &format!("{} (detail)", headline_title(report)),
        &sub,
        |body| {
            let (top, bottom) = body.split_vertically(620);
            let mut layout = draw_panel(&top, &weight)?;
            let (left, right) = bottom.split_horizontally(900);
            layout.extend(draw_panel(&left, &signal)?);
            layout.extend(draw_panel(&right, &forward)?);
            Ok(layout)
        },
    )
}

impl Figures for crate::experiment::grad_norms::GradNorms {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![
            Figure {
                file: "grad_norms.png",
                draw,
            },
            Figure {
                file: "grad_norms_detail.png",
                draw: draw_detail,
            },
        ]
    }

    fn figures_for(cfg: &Self::Config) -> Vec<Figure<Self::Report>> {
        let mut v = Self::figures();
        if cfg.histograms {
            v.push(Figure {
                file: "grad_norms_histograms.png",
                draw: draw_histograms,
            });
        }
        v
    }
}

/// `grad_norms_histograms.png`: the first seed's histograms of every arm of the deepest depth.
pub fn draw_histograms(report: &GradNormsReport, path: &Path) -> Result<Layout> {
    let cfg = &report.config;
    let deepest = cfg.depths.iter().copied().max().unwrap_or(0);
    let curves: Vec<Curve<'_>> = report
        .arms
        .iter()
        .filter(|a| a.depth == deepest)
        .filter_map(|a| {
            Some(Curve {
                label: a.norm.label().to_string(),
                variant: None,
                color: norm_color(a.norm),
                marker: norm_marker(a.norm),
                dash: Dash::Solid,
                snapshot: a.histograms.as_ref()?,
                note: true,
            })
        })
        .collect();
    let mut subtitle = format!("at initialisation, seed {} · {}", cfg.net.seed, title(cfg));
    if cfg.depths.len() > 1 {
        subtitle.push_str(&format!(" · depth {deepest} shown"));
    }
    histograms::draw(
        path,
        "Per-layer histograms: activations h_l (top) and backprop signal dL/dh_l (bottom)",
        &subtitle,
        &curves,
        histograms::saturation_note(cfg.act, "one per configuration").as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Norm, Placement};

    #[test]
    fn titles_follow_the_arms_that_ran() {
        let no_affine = Norm::Batch {
            affine: false,
            placement: Placement::Pre,
        };
        assert!(compared_title(&[Norm::Off, Norm::BN]).ends_with("BatchNorm off vs on"));
        assert!(compared_title(&[Norm::BN]).ends_with(": with BatchNorm"));
        assert!(compared_title(&[Norm::Off]).ends_with(": without BatchNorm"));
        let t = compared_title(&[Norm::Off, Norm::BN, no_affine]);
        assert!(t.contains("BN off vs BN on vs"), "{t}");
        assert!(!compared_title(&[no_affine]).contains("off"));
    }
}
