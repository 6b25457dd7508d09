//! `theory.png`: Yang et al.'s `lambda(B)` against the batch size per activation (BN before the
//! activation), with its large-batch limit dashed, and the no-BN profile
//! `||dL/dh_l||^2 / ||dL/dh_L||^2` per layer (log scale).

use std::path::Path;

use anyhow::Result;
use plotters::style::RGBColor;

use crate::config::Activation;
use crate::experiment::theory::{Theory, TheoryReport};
use crate::plot::{COOL, Figure, Figures, Grid, Panel, Series, WARM};

/// One colour per activation, the same in both panels.
fn color(act: Activation) -> RGBColor {
    match act {
        Activation::Sigmoid => WARM[0],
        Activation::Tanh => WARM[1],
        Activation::Relu => COOL[0],
        Activation::LeakyRelu => COOL[2],
        Activation::Linear => RGBColor(90, 90, 90),
    }
}

fn rate_panel(report: &TheoryReport) -> Panel {
    let mut p = Panel::new(
        "BN before the activation: λ(B) per layer",
        "batch size B (log scale)",
        "factor of ‖∂L/∂h‖² per layer towards the input",
        false,
    );
    p.log2_x = true;
    let xs: Vec<f64> = report
        .config
        .batches
        .iter()
        .map(|&b| (b as f64).log2())
        .collect();
    let (lo, hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    p.x_range = Some(if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    });
    for r in &report.bn {
        let points = xs.iter().zip(&r.lambda).map(|(&x, l)| (x, l.0)).collect();
        let mut s = Series::new(r.act.name(), color(r.act), points);
        s.marker = true.then_some(crate::plot::Marker::Circle);
        p.series.push(s);
        let limit = r.large_batch_limit.0;
        let mut s = Series::new(
            format!("{}: B → ∞", r.act.name()),
            color(r.act),
            vec![(p.x_range.unwrap().0, limit), (p.x_range.unwrap().1, limit)],
        );
        s.dash = crate::plot::Dash::Dashed;
        s.legend = false;
        p.series.push(s);
    }
    p.guides.push((1.0, "1 = neither grows nor shrinks".into()));
    p
}

fn profile_panel(report: &TheoryReport) -> Panel {
    let cfg = &report.config;
    let mut p = Panel::new(
        format!(
            "No BN: predicted ‖∂L/∂h_l‖² / ‖∂L/∂h_L‖², width {}",
            cfg.width
        ),
        "layer l (1 = input side, L = output side)",
        "ratio to the last layer (log scale)",
        true,
    );
    p.integer_x = cfg.depth <= 60;
    p.x_range = Some(if cfg.depth > 1 {
        (1.0, cfg.depth as f64)
    } else {
        (0.5, 1.5)
    });
    for m in &report.no_bn {
        let points = m
            .profile
            .iter()
            .enumerate()
            .map(|(l, v)| ((l + 1) as f64, v.0))
            .filter(|&(_, v)| v > 0.0 && v.is_finite())
            .collect();
        let label = format!(
            "{}, {} init: rate {}",
            m.act,
            m.init,
            crate::stats::fmt_rate(m.rate.0)
        );
        p.series.push(Series::new(label, color(m.act), points));
    }
    p
}

/// Draw the report into `path` (two panels side by side).
pub fn draw(report: &TheoryReport, path: &Path) -> Result<crate::plot::Layout> {
    let panels = [rate_panel(report), profile_panel(report)];
    Grid::new(1, 2, (1000, 760)).draw_panels(
        path,
        "Mean-field theory: how the backprop signal grows per layer",
        "left: Yang et al. 2019 (dashed: B → ∞); right: Poole et al. 2016, Schoenholz et al. 2017 (zero biases)",
        &panels,
    )
}

impl Figures for Theory {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![Figure {
            file: "theory.png",
            draw,
        }]
    }
}
