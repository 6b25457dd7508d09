//! `grad_norms.png`: per-layer weight-gradient norms (top), backprop signal and forward
//! activation spread (bottom), one curve per configuration, BN off warm and BN on cool.

use std::path::Path;

use anyhow::Result;

use crate::experiment::grad_norms::{ArmResult, GradNormsReport, LayerValues, title};
use crate::plot::{COOL, Figure, Figures, Panel, Series, WARM, draw_panel, figure};
use crate::stats::{Num, geometric_mean, max_nan, min_nan};

/// Geometric-mean curve over seeds plus a min-max band (empty with one seed); a layer where a
/// seed is NaN breaks the band rather than being left out of it.
fn curve(
    arm: &ArmResult,
    pick: impl Fn(&LayerValues) -> &Vec<Num>,
    color: plotters::style::RGBColor,
) -> Series {
    let depth = arm.depth;
    let mut points = Vec::with_capacity(depth);
    let mut band = Vec::new();
    for l in 0..depth {
        let vals: Vec<f64> = arm.seeds.iter().map(|s| pick(s)[l].0).collect();
        let x = (l + 1) as f64;
        points.push((x, geometric_mean(&vals)));
        if vals.len() > 1 {
            band.push((
                x,
                min_nan(vals.iter().copied()),
                max_nan(vals.iter().copied()),
            ));
        }
    }
    let mut s = Series::new(arm.label.clone(), color, points);
    s.band = band;
    s.marker = (depth <= 60).then_some(crate::plot::Marker::Circle);
    s
}

/// The arm's mean-field prediction of `||dL/dh_l||`, dashed in its colour and scaled to meet the
/// measured curve (geometric mean over seeds) at the last hidden layer; `None` without a theory
/// or without a finite, positive measured value to meet. Layers where the prediction underflows
/// are left out (the line stops).
fn theory_series(arm: &ArmResult, color: plotters::style::RGBColor) -> Option<Series> {
    let theory = arm.theory.as_ref()?;
    let last = arm.activation_grad.last.0;
    if !(last.is_finite() && last > 0.0) {
        return None;
    }
    let points: Vec<(f64, f64)> = theory
        .profile
        .iter()
        .enumerate()
        .map(|(l, p)| ((l + 1) as f64, last * p.0.sqrt()))
        .filter(|&(_, y)| y.is_finite() && y > 0.0)
        .collect();
    let mut s = Series::new(format!("{}: theory", arm.label), color, points);
    s.dash = crate::plot::Dash::Dashed;
    Some(s)
}

/// One colour per arm: BN off arms take the warm colours in order, BN on arms the cool ones.
fn colors(report: &GradNormsReport) -> Vec<plotters::style::RGBColor> {
    let (mut warm, mut cool) = (0, 0);
    report
        .arms
        .iter()
        .map(|a| {
            if a.norm.is_on() {
                cool += 1;
                COOL[(cool - 1) % COOL.len()]
            } else {
                warm += 1;
                WARM[(warm - 1) % WARM.len()]
            }
        })
        .collect()
}

/// A per-layer panel on a log axis: one curve (with seed band) per arm, layer 1 to the
/// deepest arm's depth on x, so arms of different depths share the axis.
fn layer_panel(
    report: &GradNormsReport,
    caption: &str,
    y_label: &str,
    pick: &dyn Fn(&LayerValues) -> &Vec<Num>,
) -> Panel {
    let max_depth = report.arms.iter().map(|a| a.depth).max().unwrap_or(1) as f64;
    let mut p = Panel::new(
        caption,
        "layer l (1 = input side, L = output side)",
        y_label,
        true,
    );
    p.x_range = Some((
        if max_depth > 1.0 { 1.0 } else { 0.5 },
        if max_depth > 1.0 { max_depth } else { 1.5 },
    ));
    p.series = report
        .arms
        .iter()
        .zip(colors(report))
        .map(|(a, c)| curve(a, pick, c))
        .collect();
    p
}

/// Draw the report into `path` (1800 x 1300 px).
pub fn draw(report: &GradNormsReport, path: &Path) -> Result<crate::plot::Layout> {
    let weight = layer_panel(
        report,
        "Weight gradient ‖∂L/∂W_l‖ per layer",
        "‖∂L/∂W_l‖ (Frobenius, log scale)",
        &|s| &s.weight_grad_norm,
    );
    let theory: Vec<Series> = report
        .arms
        .iter()
        .zip(colors(report))
        .filter_map(|(a, c)| theory_series(a, c))
        .collect();
    let mut signal = layer_panel(
        report,
        if !theory.is_empty() {
            "Backprop signal ‖∂L/∂h_l‖ (dashed: mean-field theory)"
        } else {
            "Backprop signal ‖∂L/∂h_l‖ reaching layer l"
        },
        "‖∂L/∂h_l‖ (log scale)",
        &|s| &s.activation_grad_norm,
    );
    signal.series.extend(theory);
    let spread = layer_panel(
        report,
        "Forward activations: std(h_l)",
        "std(h_l) (log scale)",
        &|s| &s.activation_std,
    );

    let mut subtitle = title(&report.config);
    if report.config.seeds > 1 {
        subtitle.push_str(" (lines: geometric mean; bands: min-max over seeds)");
    }
    // Not an even grid: the weight gradients, the quantity the figure is about, get the full
    // width on top.
    figure(
        path,
        (1800, 1300),
        "Gradient norms at initialisation: BatchNorm off vs on",
        &subtitle,
        |body| {
            let (top, bottom) = body.split_vertically(620);
            let mut layout = draw_panel(&top, &weight)?;
            let (left, right) = bottom.split_horizontally(900);
            layout.extend(draw_panel(&left, &signal)?);
            layout.extend(draw_panel(&right, &spread)?);
            Ok(layout)
        },
    )
}

impl Figures for crate::experiment::grad_norms::GradNorms {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![Figure {
            file: "grad_norms.png",
            draw,
        }]
    }
}
