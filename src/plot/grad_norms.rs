//! The figures of `grad-norms`:
//! - `grad_norms.png`, the headline slide: per-layer weight-gradient norms, each arm annotated
//!   with its per-layer factor and first/last ratio, beside the forward activation spread;
//! - `grad_norms_detail.png`: weight gradients, the backprop signal with the mean-field
//!   prediction, and the forward spread, each panel with its own legend.
//!
//! Each normalisation arm keeps one colour and marker in every figure ([`norm_color`],
//! [`norm_marker`]); several depths are told apart by dash (the deepest solid) and drawn
//! against `l / L`, so every depth spans the same axis.

use anyhow::Result;

use crate::experiment::grad_norms::{ArmResult, GradNormsReport, LayerValues, title};
use crate::plot::arms::{norm_color, norm_marker};
use crate::plot::chart::{
    Dash, LegendItem, Marker, Note, Panel, Png, Series, Slide, draw_panel, figure, okabe_ito,
};
use crate::plot::histograms::{self, Curve};
use crate::plot::{Figure, Figures};
use crate::stats::{Num, fmt_num, fmt_rate, geometric_mean, max_nan, min_nan};

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

/// The arm's colour and marker: its normalisation's, except that with both skip arms the arm
/// with skip connections takes a colour and marker of its own (green triangles beside BN,
/// purple beside BN off), so the two read apart on a projector and in black and white.
fn arm_style(report: &GradNormsReport, i: usize) -> (plotters::style::RGBColor, Marker) {
    let arm = &report.arms[i];
    let shape = crate::experiment::grad_norms::Shape {
        residual: arm.residual,
        block: arm.block,
        skip_init: arm.skip_init,
    };
    shape_style(shape, arm.norm, report.config.skips.len() > 1)
}

/// [`arm_style`] of an arm of architecture `shape` and normaliser `norm`, in a figure that
/// compares several architectures (`skips_compared`) or not.
fn shape_style(
    shape: crate::experiment::grad_norms::Shape,
    norm: crate::config::Normaliser,
    skips_compared: bool,
) -> (plotters::style::RGBColor, Marker) {
    if let Some(block) = shape.block {
        // Standard blocks: the marker names the block, SkipInit takes train's SkipInit colour.
        return crate::plot::arms::block_arm_style(block, shape.skip_init, norm);
    }
    if shape.residual && skips_compared {
        let color = if norm.is_on() {
            okabe_ito::BLUISH_GREEN
        } else {
            okabe_ito::REDDISH_PURPLE
        };
        (color, Marker::TriangleUp)
    } else {
        (norm_color(norm), norm_marker(norm))
    }
}

/// The arm's colour, marker and dash: colour and marker from [`arm_style`], dash from its
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
    let (color, marker) = arm_style(report, i);
    let mut s = Series::new(label, color, points);
    s.marker = Some(marker);
    s.marker_phase = i;
    s.dash = Dash::nth(rank);
    s
}

/// Geometric-mean curve over seeds plus a min-max band (empty with one seed); a layer where a
/// seed is NaN breaks the band rather than being left out of it.
fn curve(report: &GradNormsReport, i: usize, pick: &dyn Fn(&LayerValues) -> &Vec<Num>) -> Series {
    curve_of(report, i, &|s, l| pick(s)[l].0)
}

/// [`curve`] of any per-layer value `value(seed, l)` (`l` 0-based).
fn curve_of(
    report: &GradNormsReport,
    i: usize,
    value: &dyn Fn(&LayerValues, usize) -> f64,
) -> Series {
    let depth = report.arms[i].depth;
    seed_series(
        report,
        i,
        0..depth,
        &|l| layer_x(report, l + 1, depth),
        value,
    )
}

/// Arm `i`'s series over the indices `ls`: at `x(l)` the geometric mean over seeds of
/// `value(seed, l)`, with the seeds' min-max band when there are several.
fn seed_series(
    report: &GradNormsReport,
    i: usize,
    ls: impl Iterator<Item = usize>,
    x: &dyn Fn(usize) -> f64,
    value: &dyn Fn(&LayerValues, usize) -> f64,
) -> Series {
    let arm = &report.arms[i];
    let mut points = Vec::new();
    let mut band = Vec::new();
    for l in ls {
        let vals: Vec<f64> = arm.seeds.iter().map(|s| value(s, l)).collect();
        let x = x(l);
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

/// The least-squares line of `ln y` against the layer `l` through `(l, y)` pairs, with slope
/// `-ln growth` (the fit's per-layer factor towards the input), from `l_from` to `l_to`: its
/// two ends. It passes through the mean of the usable points (finite, positive), as every
/// least-squares line does; `None` with no usable point or a growth that is not finite and
/// positive.
pub fn fit_line(
    points: &[(f64, f64)],
    growth: f64,
    (l_from, l_to): (f64, f64),
) -> Option<[(f64, f64); 2]> {
    let usable: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| p.1.is_finite() && p.1 > 0.0)
        .map(|&(l, y)| (l, y.ln()))
        .collect();
    if usable.is_empty() || !(growth.is_finite() && growth > 0.0) {
        return None;
    }
    let n = usable.len() as f64;
    let ml = usable.iter().map(|p| p.0).sum::<f64>() / n;
    let my = usable.iter().map(|p| p.1).sum::<f64>() / n;
    let at = |l: f64| (l, (my - growth.ln() * (l - ml)).exp());
    Some([at(l_from), at(l_to)])
}

/// The weight panel's fitted line of arm `i`: the constant factor per layer that
/// `weight_grad.growth_per_layer` reports, dashed black across its layers.
fn fit_series(report: &GradNormsReport, i: usize) -> Option<Series> {
    let arm = &report.arms[i];
    // A standard block's fit is over its 1 + 2 depth matrices, not the per-block axis drawn.
    if arm.block.is_some() {
        return None;
    }
    let growth = arm.weight_grad.growth_per_layer?.0;
    let per_layer: Vec<(f64, f64)> = (0..arm.depth)
        .map(|l| {
            let vals: Vec<f64> = arm.seeds.iter().map(|s| s.weight_grad_norm[l].0).collect();
            ((l + 1) as f64, geometric_mean(&vals))
        })
        .collect();
    let ends = fit_line(&per_layer, growth, (1.0, arm.depth as f64))?;
    let points = ends
        .iter()
        .map(|&(l, y)| (layer_x(report, l as usize, arm.depth), y))
        .filter(|p| p.1.is_finite() && p.1 > 0.0)
        .collect();
    let prefix = if report.arms.len() > 1 {
        format!("{}: ", arm.label)
    } else {
        String::new()
    };
    let label = format!("{prefix}fit, ×{} per layer", fmt_num(growth));
    // Black, so it shows on top of the curve it fits.
    let mut s = Series::new(label, okabe_ito::BLACK, points);
    s.dash = Dash::Dashed;
    s.width = 2;
    Some(s)
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
    // A standard block's summary is over its 1 + 2 depth matrices (the stem, then W1 and W2 of
    // each block: `weight_grad_norm`), not the per-block curve drawn; as the live page says it.
    let per = if arm.block.is_some() {
        "/matrix, first/last matrix"
    } else {
        "/layer, first/last"
    };
    Some(Note {
        x,
        y,
        text: format!(
            "{prefix}{factor}{per} {} ({})",
            fmt_num(w.ratio.0),
            w.verdict
        ),
        color: series.color,
        offset: (14, 22),
    })
}

/// The headline's title: what was compared.
fn headline_title(report: &GradNormsReport) -> String {
    let mut t = compared_title(&report.config.norms);
    if report.config.skips.len() > 1 {
        t.push_str(", skip connections off vs on");
    }
    t
}

/// `Gradient norms at initialisation: ...` naming the normalisation arms that ran.
pub fn compared_title(norms: &[crate::config::Normaliser]) -> String {
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
    if report.arms.iter().any(|a| a.block.is_some()) {
        // Standard blocks: one value per block (the per-matrix norms stay in the JSON).
        return layer_panel(
            report,
            "‖∂L/∂W‖ per block (one-layer arms: per layer)",
            "per block ‖∂L/∂W‖ (Frobenius, log scale)",
            &|s| {
                s.block_weight_grad_norm
                    .as_ref()
                    .unwrap_or(&s.weight_grad_norm)
            },
        );
    }
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

/// The headline slide: weight gradients (annotated, each arm with its fitted factor per layer
/// dashed) and the forward spread.
pub fn draw(report: &GradNormsReport) -> Result<Png> {
    let mut weight = weight_panel(report);
    weight.notes = (0..report.arms.len())
        .filter_map(|i| arm_note(report, i, &weight.series[i]))
        .collect();
    let fits: Vec<Series> = (0..report.arms.len())
        .filter_map(|i| fit_series(report, i))
        .collect();
    weight.series.extend(fits);
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
    slide.draw()
}

/// The detail figure (1800 x 1300 px): weight gradients across the top, the backprop signal
/// with the mean-field prediction and the forward spread below.
pub fn draw_detail(report: &GradNormsReport) -> Result<Png> {
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

/// The per-layer factor of `||dL/dh||^2` crossing layer `l` towards the input, `l = 2..=L`:
/// `(g_{l-1} / g_l)^2` of the per-layer values `g` (input side first), as `(l, factor)`.
pub fn measured_factors(g: &[f64]) -> Vec<(usize, f64)> {
    (1..g.len())
        .map(|i| (i + 1, (g[i - 1] / g[i]).powi(2)))
        .collect()
}

/// The mean-field factor of `||dL/dh||^2` crossing layer `l`, `l = 2..=L`: `chi^l` of the
/// variance map without a normaliser, the constant rate (`lambda(B)`, LayerNorm's) with one.
pub fn predicted_factors(p: &crate::theory::Prediction, depth: usize) -> Vec<(usize, f64)> {
    (2..=depth)
        .map(|l| {
            let f = p
                .chi
                .as_ref()
                .and_then(|chi| chi.get(l - 1))
                .map_or(p.rate.0, |c| c.0);
            (l, f)
        })
        .collect()
}

/// `||dL/dh_l||^2` per layer (geometric mean over seeds), each arm with its mean-field profile
/// dotted, scaled to meet the measurement at the last layer.
fn signal_squared_panel(report: &GradNormsReport) -> Panel {
    let mut p = layer_panel(
        report,
        "Backprop signal ‖∂L/∂h_l‖²",
        "‖∂L/∂h_l‖² (log scale)",
        &|s| &s.activation_grad_norm,
    );
    p.series = (0..report.arms.len())
        .map(|i| curve_of(report, i, &|s, l| s.activation_grad_norm[l].0.powi(2)))
        .collect();
    for i in 0..report.arms.len() {
        if let Some(mut t) = theory_series(report, i) {
            t.points = t.points.iter().map(|&(x, y)| (x, y * y)).collect();
            t.legend = false;
            p.series.push(t);
        }
    }
    p
}

/// The factor per layer: measured (markers, from the geometric mean over seeds) beside the
/// mean-field prediction (a line), each arm in its colour, and ×1 dashed.
fn factor_panel(report: &GradNormsReport) -> Panel {
    let mut p = Panel::new(
        "Its factor per layer: measured vs theory",
        x_label(report),
        "‖∂L/∂h_(l-1)‖² / ‖∂L/∂h_l‖² (log scale)",
        true,
    );
    let max_depth = report.arms.iter().map(|a| a.depth).max().unwrap_or(1);
    p.x_range = Some(if report.config.depths.len() > 1 {
        (0.0, 1.0)
    } else {
        (1.0, max_depth.max(2) as f64)
    });
    p.integer_x = report.config.depths.len() == 1;
    p.guides.push((1.0, "×1: the signal keeps its size".into()));
    for (i, arm) in report.arms.iter().enumerate() {
        let g: Vec<f64> = (0..arm.depth)
            .map(|l| {
                let v: Vec<f64> = arm
                    .seeds
                    .iter()
                    .map(|s| s.activation_grad_norm[l].0)
                    .collect();
                geometric_mean(&v)
            })
            .collect();
        let at = |(l, f): (usize, f64)| (layer_x(report, l, arm.depth), f);
        let measured = measured_factors(&g).into_iter().map(at).collect();
        let mut m = arm_series(report, i, format!("{}: measured", arm.label), measured);
        m.no_line = true;
        m.legend = false;
        p.series.push(m);
        if let Some(pred) = &arm.theory {
            let line = predicted_factors(pred, arm.depth)
                .into_iter()
                .map(at)
                .collect();
            let mut t = arm_series(report, i, format!("{}: theory", arm.label), line);
            t.marker = None;
            t.dash = Dash::Solid;
            t.legend = false;
            p.series.push(t);
        }
    }
    p
}

/// One legend line per arm: the fitted rate per layer measured beside the predicted one.
fn rate_note(arm: &ArmResult) -> LegendItem {
    let measured = arm.measured_rate.map_or("-".into(), |m| fmt_rate(m.0));
    LegendItem::text(match (&arm.theory, arm.measured_rate) {
        (Some(p), Some(m)) => format!(
            "{}: ×{measured} (theory ×{}, {:+.1}%)",
            arm.label,
            fmt_rate(p.rate.0),
            100.0 * (m.0 / p.rate.0 - 1.0)
        ),
        (Some(p), None) => format!("{}: theory ×{}", arm.label, fmt_rate(p.rate.0)),
        (None, _) => format!("{}: ×{measured} (no theory)", arm.label),
    })
}

/// `grad_norms_theory.png`, a slide: the backprop signal against its mean-field profile, and
/// the factor per layer measured against the one predicted (the corrected product of the
/// diary's algebra: `chi = sigma_w^2 E[phi'(z)^2]` without BN, Yang et al.'s `lambda(B)` with).
pub fn draw_theory(report: &GradNormsReport) -> Result<Png> {
    let mut slide = Slide::new(
        "The backprop signal's factor per layer: measured vs mean-field theory",
        subtitle(report),
        vec![signal_squared_panel(report), factor_panel(report)],
    );
    slide.notes.push(LegendItem::text(
        "measured: markers; theory: dotted (left, met at layer L), solid (right)",
    ));
    slide.notes.push(LegendItem::text(
        "factor per layer, fitted over all layers:",
    ));
    slide.notes.extend(report.arms.iter().map(rate_note));
    slide.notes.extend(seed_note(report));
    slide.draw()
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
            Figure {
                file: "grad_norms_theory.png",
                draw: draw_theory,
            },
        ]
    }

    fn figures_for(cfg: &Self::Config) -> Vec<Figure<Self::Report>> {
        let mut v = Self::figures();
        if cfg.shapes().iter().any(|s| s.block.is_some()) {
            v.push(Figure {
                file: "grad_norms_stream.png",
                draw: draw_stream,
            });
        }
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
pub fn draw_histograms(report: &GradNormsReport) -> Result<Png> {
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
        "Per-layer histograms: activations h_l (top) and backprop signal dL/dh_l (bottom)",
        &subtitle,
        &curves,
        histograms::saturation_note(cfg.act, "one per configuration").as_deref(),
    )
}

/// The x of block `l` (0 = the stem's output) of an arm of `depth` blocks.
fn block_x(report: &GradNormsReport, l: usize, depth: usize) -> f64 {
    if report.config.depths.len() > 1 {
        l as f64 / depth as f64
    } else {
        l as f64
    }
}

/// A per-block panel (log y) of the standard-block arms: `value(seed, l)` for `l` in `from..=to`
/// of each arm's depth, geometric mean over seeds with a min-max band.
fn block_panel(
    report: &GradNormsReport,
    caption: &str,
    y_label: &str,
    first: usize,
    value: &dyn Fn(&LayerValues, usize) -> f64,
) -> Panel {
    let x_label = if report.config.depths.len() > 1 {
        "block / depth l/L"
    } else {
        "block l (0 = the stem)"
    };
    let mut p = Panel::new(caption, x_label, y_label, true);
    p.integer_x = report.config.depths.len() == 1;
    for (i, arm) in report.arms.iter().enumerate() {
        if arm.block.is_none() {
            continue;
        }
        let depth = arm.depth;
        p.series.push(seed_series(
            report,
            i,
            first..=depth,
            &|l| block_x(report, l, depth),
            value,
        ));
    }
    p
}

/// The stream's variance per block, measured, each arm's prediction dotted (anchored at the
/// measured `h_0`).
fn stream_panel(report: &GradNormsReport) -> Panel {
    let at = |s: &LayerValues, l: usize| s.stream_std.as_ref().map_or(f64::NAN, |v| v[l].0.powi(2));
    let mut p = block_panel(
        report,
        "Var(h_l) · dotted: predicted",
        "Var(h_l) (log scale)",
        0,
        &at,
    );
    for (i, arm) in report.arms.iter().enumerate() {
        let Some(pred) = arm.stream.as_ref().and_then(|s| s.predicted_std.as_ref()) else {
            continue;
        };
        let points = pred
            .iter()
            .enumerate()
            .map(|(l, v)| (block_x(report, l, arm.depth), v.0 * v.0))
            .filter(|&(_, y)| y.is_finite() && y > 0.0)
            .collect();
        let mut t = arm_series(report, i, format!("{}: predicted", arm.label), points);
        t.dash = Dash::Dotted;
        t.marker = None;
        t.width = 3;
        t.legend = false;
        p.series.push(t);
    }
    p
}

/// `grad_norms_stream.png` (standard blocks): the residual stream's variance per block beside
/// its prediction, and the gradients per block that follow: the backprop signal `||dL/dh_l||`
/// and the per-block weight gradient `sqrt(||dL/dW1||^2 + ||dL/dW2||^2)` (SkipInit: exactly 0,
/// so not drawn on the log axis).
pub fn draw_stream(report: &GradNormsReport) -> Result<Png> {
    let signal = block_panel(
        report,
        "‖∂L/∂h_l‖ per block",
        "‖∂L/∂h_l‖ (log scale)",
        1,
        &|s, l| s.activation_grad_norm[l - 1].0,
    );
    let weight = block_panel(
        report,
        "‖∂L/∂W‖ per block",
        "√(‖∂L/∂W1‖²+‖∂L/∂W2‖²) (log scale)",
        1,
        &|s, l| {
            s.block_weight_grad_norm
                .as_ref()
                .map_or(f64::NAN, |v| v[l - 1].0)
        },
    );
    // SkipInit's branch gradients are exactly 0 by construction, not an underflow: left out.
    let mut weight = weight;
    let skip_init: Vec<String> = report
        .arms
        .iter()
        .filter(|a| a.skip_init)
        .map(|a| a.label.clone())
        .collect();
    weight.series.retain(|s| !skip_init.contains(&s.label));
    let mut slide = Slide::new(
        "The residual stream at initialisation: doubling, linear with a normaliser, constant with SkipInit",
        subtitle(report),
        vec![stream_panel(report), signal, weight],
    );
    slide.notes.push(LegendItem::text(
        "prediction: Var(h_(l+1)) = Var(h_l) + s² Var(branch), from the measured Var(h_0) (De & Smith 2020, arXiv 2002.10444)",
    ));
    // One short line per arm (many arms must fit under the panels), the words said once.
    slide
        .notes
        .push(LegendItem::text("Var(h_L)/Var(h_0), measured (predicted):"));
    for arm in &report.arms {
        if let Some(st) = &arm.stream {
            let pred = st
                .predicted_var_ratio
                .map_or("no prediction".to_string(), |p| fmt_num(p.0));
            slide.notes.push(LegendItem::text(format!(
                "{}: {} ({pred})",
                arm.label,
                fmt_num(st.var_ratio.0)
            )));
        }
    }
    if report.arms.iter().any(|a| a.skip_init) {
        slide.notes.push(LegendItem::text(
            "SkipInit: branch weights get exactly 0 (alpha = 0), so no ‖∂L/∂W‖ line",
        ));
    }
    slide.notes.extend(seed_note(report));
    slide.draw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Normaliser, Placement};

    #[test]
    fn the_fit_line_is_the_least_squares_line_of_a_geometric_curve() {
        // 0.25 per layer towards the input, 1 at layer 5: 0.25^4 at layer 1.
        let pts: Vec<(f64, f64)> = (1..=5).map(|l| (l as f64, 0.25f64.powi(5 - l))).collect();
        let [(l0, y0), (l1, y1)] = fit_line(&pts, 0.25, (1.0, 5.0)).unwrap();
        assert_eq!((l0, l1), (1.0, 5.0));
        assert!((y0 / 0.25f64.powi(4) - 1.0).abs() < 1e-12, "{y0}");
        assert!((y1 - 1.0).abs() < 1e-12, "{y1}");
        // Zeros and infinities are left out of the mean it passes through.
        let mut holes = pts.clone();
        holes[0].1 = 0.0;
        holes[2].1 = f64::INFINITY;
        let [_, (_, y1)] = fit_line(&holes, 0.25, (1.0, 5.0)).unwrap();
        assert!((y1 - 1.0).abs() < 1e-12, "{y1}");
        assert!(fit_line(&pts, f64::NAN, (1.0, 5.0)).is_none());
        assert!(fit_line(&[(1.0, 0.0)], 0.5, (1.0, 5.0)).is_none());
    }

    #[test]
    fn factors_per_layer_follow_the_signal_towards_the_input() {
        // |dL/dh_l| = 1, 2, 4 at layers 1..3: the squared signal grows 4-fold per layer crossed.
        assert_eq!(
            measured_factors(&[1.0, 2.0, 4.0]),
            vec![(2, 0.25), (3, 0.25)]
        );
        assert!(measured_factors(&[1.0]).is_empty());
        let mut p = crate::theory::Prediction {
            source: crate::theory::SOURCE_NO_BN,
            rate: Num(0.5),
            profile: Vec::new(),
            q: None,
            chi: Some(crate::stats::nums(&[9.0, 0.7, 0.6])),
            lambda: None,
            batch: None,
        };
        // Crossing layer l multiplies by chi^l: the first layer's chi is never crossed here.
        assert_eq!(predicted_factors(&p, 3), vec![(2, 0.7), (3, 0.6)]);
        p.chi = None;
        assert_eq!(predicted_factors(&p, 3), vec![(2, 0.5), (3, 0.5)]);
    }

    #[test]
    fn a_skipinit_arm_looks_like_no_other_arm_of_its_figure() {
        use crate::config::{NormKind, Placement};
        use crate::experiment::grad_norms::Skips;
        use clap::ValueEnum;
        // Every figure --skips (all architectures) x --norm none,batch,layer can draw, with
        // and without --affine (standard blocks refuse --placement post).
        for affine in [true, false] {
            let norms = [
                Normaliser::Off,
                Normaliser::of(NormKind::Batch, affine, Placement::Pre),
                Normaliser::of(NormKind::Layer, affine, Placement::Pre),
            ];
            let arms: Vec<_> = Skips::value_variants()
                .iter()
                .flat_map(|s| norms.map(|n| (s.shape(), n)))
                .collect();
            for &(shape, norm) in arms.iter().filter(|a| a.0.skip_init) {
                let style = shape_style(shape, norm, true);
                for &(other, other_norm) in &arms {
                    if (other, other_norm) != (shape, norm) {
                        assert_ne!(
                            style,
                            shape_style(other, other_norm, true),
                            "{shape:?} {norm:?} vs {other:?} {other_norm:?}"
                        );
                    }
                }
            }
        }
        // As train.png draws SkipInit without a normaliser: bluish green.
        let skip_init = Skips::PreactSkipinit.shape();
        assert_eq!(
            shape_style(skip_init, Normaliser::Off, true).0,
            okabe_ito::BLUISH_GREEN
        );
    }

    #[test]
    fn titles_follow_the_arms_that_ran() {
        let no_affine = Normaliser::Batch {
            affine: false,
            placement: Placement::Pre,
        };
        assert!(
            compared_title(&[Normaliser::Off, Normaliser::BN]).ends_with("BatchNorm off vs on")
        );
        assert!(compared_title(&[Normaliser::BN]).ends_with(": with BatchNorm"));
        assert!(compared_title(&[Normaliser::Off]).ends_with(": without BatchNorm"));
        let t = compared_title(&[Normaliser::Off, Normaliser::BN, no_affine]);
        assert!(t.contains("BN off vs BN on vs"), "{t}");
        assert!(!compared_title(&[no_affine]).contains("off"));
    }
}
