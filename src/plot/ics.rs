//! `ics.png`: Santurkar et al.'s internal covariate shift over training (top: mean over layers
//! 2..out with a min-max band over those layers) and per layer (bottom: median over the measured
//! steps), BN off warm and BN on cool.

use std::path::Path;

use anyhow::Result;

use crate::experiment::ics::{IcsArm, IcsRecord, IcsReport, title};
use crate::plot::{COOL, Figure, Figures, Panel, Series, WARM, draw_panel, png, titled};
use crate::stats::{finite_mean, finite_median, max_nan, min_nan};

fn color(a: &IcsArm) -> plotters::style::RGBColor {
    if a.run.norm.is_on() { COOL[0] } else { WARM[0] }
}

/// Mean over layers 2.. (layer 1's ICS is 0 by definition) with a min-max band, per step.
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
            .map(|(x, v)| (*x, finite_mean(v.iter().copied())))
            .collect(),
    );
    s.band = rows
        .iter()
        .map(|(x, v)| (*x, min_nan(v.iter().copied()), max_nan(v.iter().copied())))
        .collect();
    s
}

/// Draw the report into `path` (1800 x 1300 px).
pub fn draw(report: &IcsReport, path: &Path) -> Result<()> {
    let cfg = &report.config;
    let steps_x = Some((0.0, cfg.steps.saturating_sub(1).max(1) as f64));
    let n_layers = report.layer_names.len();
    let layer_x = Some((0.7, n_layers as f64 + 0.3));
    let layer_label = format!("layer (1 = input side, {n_layers} = output layer)");
    let mut l2 = Panel::new(
        "‖G − G′‖ over training (layers 2 to out)",
        "training step",
        "‖G − G′‖ (log)",
        true,
    );
    let mut cos = Panel::new(
        "cos(G, G′) over training (layers 2 to out)",
        "training step",
        "cos(G, G′)",
        false,
    );
    let mut l2_layer = Panel::new(
        "‖G − G′‖ per layer (median over steps; layer 1: 0)",
        layer_label.as_str(),
        "‖G − G′‖ (log)",
        true,
    );
    let mut cos_layer = Panel::new(
        "cos(G, G′) per layer (median over steps)",
        layer_label.as_str(),
        "cos(G, G′)",
        false,
    );
    l2.x_range = steps_x;
    cos.x_range = steps_x;
    l2_layer.x_range = layer_x;
    cos_layer.x_range = layer_x;
    for a in &report.arms {
        l2.series.push(over_steps(
            a,
            format!("{}: mean, band min-max over layers", a.run.label),
            |r| r.l2_diff.iter().map(|v| v.0).collect(),
        ));
        cos.series.push(over_steps(
            a,
            format!("{}: mean, band min-max over layers", a.run.label),
            |r| r.cosine.iter().map(|v| v.0).collect(),
        ));
        let per_layer = |v: &[crate::stats::Num]| -> Vec<(f64, f64)> {
            v.iter()
                .enumerate()
                .map(|(l, n)| ((l + 1) as f64, n.0))
                .collect()
        };
        // Layer 1's shift is 0 by definition (nothing before it): not drawn on the log axis.
        let mut s = Series::new(
            format!("{}: ‖G − G′‖", a.run.label),
            color(a),
            per_layer(&a.summary.layer_l2_diff)
                .into_iter()
                .skip(1)
                .collect(),
        );
        s.markers = true;
        l2_layer.series.push(s);
        let grad_norm: Vec<(f64, f64)> = (0..n_layers)
            .map(|l| {
                (
                    (l + 1) as f64,
                    finite_median(a.records.iter().map(|r| r.grad_norm[l].0)),
                )
            })
            .collect();
        let mut g = Series::new(
            format!("{}: ‖G‖ (dashed), for scale", a.run.label),
            color(a),
            grad_norm,
        );
        g.dashed = true;
        l2_layer.series.push(g);
        let mut c = Series::new(
            a.run.label.clone(),
            color(a),
            per_layer(&a.summary.layer_cosine),
        );
        c.markers = true;
        cos_layer.series.push(c);
    }
    cos.guides.push((1.0, "cos = 1: no shift".into()));
    cos_layer.guides.push((1.0, "cos = 1: no shift".into()));
    png(path, (1800, 1300), |root| {
        let subtitle = format!(
            "{}; G′ = ∂L/∂W_i after layers 1..i−1 step, every {} steps",
            title(cfg),
            cfg.every
        );
        let body = titled(
            root,
            "Internal covariate shift (Santurkar et al. 2018): BatchNorm off vs on",
            &subtitle,
        )?;
        let (top, bottom) = body.split_vertically(595);
        let (tl, tr) = top.split_horizontally(900);
        let (bl, br) = bottom.split_horizontally(900);
        draw_panel(&tl, &l2)?;
        draw_panel(&tr, &cos)?;
        draw_panel(&bl, &l2_layer)?;
        draw_panel(&br, &cos_layer)?;
        Ok(())
    })
}

impl Figures for crate::experiment::ics::Ics {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![Figure {
            file: "ics.png",
            draw,
        }]
    }
}
