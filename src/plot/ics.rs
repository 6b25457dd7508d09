//! `ics.png`: Santurkar et al.'s internal covariate shift over training (top: mean over layers
//! 2..out with a min-max band over those layers) and per layer (bottom: median over the measured
//! steps), BN off warm and BN on cool.

use std::path::Path;

use anyhow::Result;

use crate::experiment::ics::{IcsArm, IcsRecord, IcsReport, title};
use crate::plot::{COOL, Figure, Figures, Grid, Panel, Series, WARM};
use crate::stats::{Num, max_nan, mean_nan, median_nan, min_nan};

fn color(a: &IcsArm) -> plotters::style::RGBColor {
    if a.run.norm.is_on() { COOL[0] } else { WARM[0] }
}

/// Mean over layers 2.. (layer 1's ICS is 0 by definition) with a min-max band, per step. A
/// step where some layer is inf/NaN is marked on the top edge, not averaged over the others.
fn over_steps(a: &IcsArm, label: String, pick: impl Fn(&IcsRecord) -> Vec<f64>) -> Series {
    let rows: Vec<(f64, Vec<f64>)> = a
        .records
        .iter()
        .map(|r| (r.step as f64, pick(r).into_iter().skip(1).collect()))
        .collect();
    let mut s = Series::new(
        label,
        color(a),
        rows.iter()
            .map(|(x, v)| (*x, mean_nan(v.iter().copied())))
            .collect(),
    );
    s.band = rows
        .iter()
        .map(|(x, v)| (*x, min_nan(v.iter().copied()), max_nan(v.iter().copied())))
        .collect();
    // A run that diverged at once has a single finite point: show it as a dot.
    s.marker = (s.points.iter().filter(|p| p.1.is_finite()).count() < 2)
        .then_some(crate::plot::Marker::Circle);
    s
}

/// x range of the over-training panels: the whole run, one step at least.
fn steps_x(report: &IcsReport) -> Option<(f64, f64)> {
    Some((0.0, report.config.steps.saturating_sub(1).max(1) as f64))
}

/// x range and label of the per-layer panels, with a little room either side of the end
/// layers' markers.
fn layer_x(report: &IcsReport) -> (Option<(f64, f64)>, String) {
    let n_layers = report.layer_names.len();
    (
        Some((0.7, n_layers as f64 + 0.3)),
        format!("layer (1 = input side, {n_layers} = output layer)"),
    )
}

/// `(layer, value)` points, layers numbered from 1.
fn per_layer(v: &[Num]) -> Vec<(f64, f64)> {
    v.iter()
        .enumerate()
        .map(|(l, n)| ((l + 1) as f64, n.0))
        .collect()
}

/// A measure over training: per arm, its mean over layers 2 to out with a min-max band.
fn over_training(
    report: &IcsReport,
    caption: &str,
    y_label: &str,
    log_y: bool,
    pick: impl Fn(&IcsRecord) -> Vec<f64>,
) -> Panel {
    let mut p = Panel::new(caption, "training step", y_label, log_y);
    p.x_range = steps_x(report);
    for a in &report.arms {
        p.series.push(over_steps(
            a,
            format!("{}: mean, band min-max over layers", a.run.label),
            &pick,
        ));
    }
    p
}

/// ‖G − G′‖ per layer with ‖G‖ dashed beside it, so the shift reads against the gradient's
/// own size.
fn l2_per_layer(report: &IcsReport) -> Panel {
    let (x_range, x_label) = layer_x(report);
    let mut p = Panel::new(
        "‖G − G′‖ per layer (median over steps; layer 1: 0)",
        x_label.as_str(),
        "‖G − G′‖ (log)",
        true,
    );
    p.x_range = x_range;
    for a in &report.arms {
        // Layer 1's shift is 0 by definition (nothing before it): not drawn on the log axis.
        let shift = per_layer(&a.summary.layer_l2_diff)
            .into_iter()
            .skip(1)
            .collect();
        let mut s = Series::new(format!("{}: ‖G − G′‖", a.run.label), color(a), shift);
        s.marker = true.then_some(crate::plot::Marker::Circle);
        p.series.push(s);
        let grad_norm: Vec<(f64, f64)> = (0..report.layer_names.len())
            .map(|l| {
                (
                    (l + 1) as f64,
                    median_nan(a.records.iter().map(|r| r.grad_norm[l].0)),
                )
            })
            .collect();
        let mut g = Series::new(
            format!("{}: ‖G‖ (dashed), for scale", a.run.label),
            color(a),
            grad_norm,
        );
        g.dash = crate::plot::Dash::Dashed;
        p.series.push(g);
    }
    p
}

/// cos(G, G′) per layer, with cos = 1 (no shift) as a guide.
fn cos_per_layer(report: &IcsReport) -> Panel {
    let (x_range, x_label) = layer_x(report);
    let mut p = Panel::new(
        "cos(G, G′) per layer (median over steps)",
        x_label.as_str(),
        "cos(G, G′)",
        false,
    );
    p.x_range = x_range;
    for a in &report.arms {
        let mut c = Series::new(
            a.run.label.clone(),
            color(a),
            per_layer(&a.summary.layer_cosine),
        );
        c.marker = true.then_some(crate::plot::Marker::Circle);
        p.series.push(c);
    }
    p.guides.push((1.0, "cos = 1: no shift".into()));
    p
}

/// Draw the report into `path` (1800 x 1300 px): over training on top, per layer below.
pub fn draw(report: &IcsReport, path: &Path) -> Result<crate::plot::Layout> {
    let cfg = &report.config;
    let subtitle = format!(
        "{}; G′ = ∂L/∂W_i after layers 1..i−1 step, every {} steps",
        title(cfg),
        cfg.every
    );
    let l2 = over_training(
        report,
        "‖G − G′‖ over training (layers 2 to out)",
        "‖G − G′‖ (log)",
        true,
        |r| r.l2_diff.iter().map(|v| v.0).collect(),
    );
    let mut cos = over_training(
        report,
        "cos(G, G′) over training (layers 2 to out)",
        "cos(G, G′)",
        false,
        |r| r.cosine.iter().map(|v| v.0).collect(),
    );
    cos.guides.push((1.0, "cos = 1: no shift".into()));
    let panels = [l2, cos, l2_per_layer(report), cos_per_layer(report)];
    Grid::new(2, 2, (900, 595)).draw_panels(
        path,
        "Internal covariate shift (Santurkar et al. 2018): BatchNorm off vs on",
        &subtitle,
        &panels,
    )
}

impl Figures for crate::experiment::ics::Ics {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![Figure {
            file: "ics.png",
            draw,
        }]
    }
}
