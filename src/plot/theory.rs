//! `theory.png` (headline slide): Yang et al.'s `lambda(B)` against the batch size per
//! activation (BN before the activation), with its large-batch limit dashed and its value at
//! [`ANNOTATED_BATCH`] written beside the line, and the no-BN profile
//! `||dL/dh_l||^2 / ||dL/dh_L||^2` per layer (log scale) with its fitted rate per layer written
//! beside its middle layer. Each activation has one colour and one marker shape in both panels.

use anyhow::Result;
use plotters::style::RGBColor;

use crate::config::Activation;
use crate::experiment::theory::{Theory, TheoryReport};
use crate::plot::chart::{
    Dash, LegendItem, Marker, Note, Panel, Png, Sample, Series, Slide, okabe_ito,
};
use crate::plot::{Figure, Figures};
use crate::stats::fmt_rate;

/// The batch whose `lambda(B)` is written on the plot: `grad-norms`' default `--batch`, so the
/// number is the one its BN arm is compared with (the largest batch run when it is not run).
pub const ANNOTATED_BATCH: usize = 256;

/// One colour and one marker per activation, the same in both panels.
pub fn act_style(act: Activation) -> (RGBColor, Marker) {
    match act {
        Activation::Sigmoid => (okabe_ito::VERMILLION, Marker::Square),
        Activation::Tanh => (okabe_ito::ORANGE, Marker::Diamond),
        Activation::Relu => (okabe_ito::BLUE, Marker::Circle),
        Activation::LeakyRelu => (okabe_ito::BLUISH_GREEN, Marker::TriangleUp),
        Activation::Linear => (okabe_ito::BLACK, Marker::TriangleDown),
    }
}

/// The activation's series: its name, colour and marker (so the shared legend lists it once).
fn act_series(act: Activation, points: Vec<(f64, f64)>, phase: usize) -> Series {
    let (color, marker) = act_style(act);
    let mut s = Series::new(act.name(), color, points);
    s.marker = Some(marker);
    s.marker_phase = phase;
    s
}

/// The batch size annotated: [`ANNOTATED_BATCH`] if it was run, else the largest one.
pub fn annotated_batch(report: &TheoryReport) -> Option<(usize, usize)> {
    let b = &report.config.batches;
    b.iter()
        .position(|&x| x == ANNOTATED_BATCH)
        .or_else(|| (0..b.len()).max_by_key(|&i| b[i]))
        .map(|i| (i, b[i]))
}

fn rate_panel(report: &TheoryReport) -> Panel {
    let annotated = annotated_batch(report);
    let mut p = Panel::new(
        match annotated {
            Some((_, b)) => format!("BN: λ(B) per layer (numbers: B = {b})"),
            None => "BN: λ(B) per layer".to_string(),
        },
        "batch size B (log scale)",
        "factor of ‖∂L/∂h‖² per layer",
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
    let x_range = if hi > lo {
        (lo - 0.15, hi + 0.15)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    p.x_range = Some(x_range);
    for (i, r) in report.bn.iter().enumerate() {
        let (color, _) = act_style(r.act);
        let points = xs.iter().zip(&r.lambda).map(|(&x, l)| (x, l.0)).collect();
        p.series.push(act_series(r.act, points, i));
        let limit = r.large_batch_limit.0;
        p.series.push(Series::level(
            format!("{}: B → ∞", r.act.name()),
            color,
            x_range,
            limit,
        ));
        if let Some((k, _)) = annotated {
            let l = r.lambda[k].0;
            p.notes.push(Note {
                x: xs[k],
                y: l,
                text: fmt_rate(l),
                color,
                offset: (10, 22),
            });
        }
    }
    p
}

fn profile_panel(report: &TheoryReport) -> Panel {
    let cfg = &report.config;
    let one_init = report
        .no_bn
        .first()
        .map(|m| m.init)
        .filter(|&i| report.no_bn.iter().all(|m| m.init == i));
    let mut p = Panel::new(
        match one_init {
            Some(init) => format!("No BN: ‖∂L/∂h_l‖² / ‖∂L/∂h_L‖², {init} init"),
            None => "No BN: ‖∂L/∂h_l‖² / ‖∂L/∂h_L‖²".to_string(),
        },
        format!("layer l (1 = input side, {} = output side)", cfg.depth),
        "ratio to the last layer (log scale)",
        true,
    );
    p.integer_x = cfg.depth <= 60;
    p.x_range = Some(if cfg.depth > 1 {
        (1.0, cfg.depth as f64)
    } else {
        (0.5, 1.5)
    });
    for (i, m) in report.no_bn.iter().enumerate() {
        let points: Vec<(f64, f64)> = m
            .profile
            .iter()
            .enumerate()
            .map(|(l, v)| ((l + 1) as f64, v.0))
            .collect();
        let (color, _) = act_style(m.act);
        let mut text = format!("×{} per layer", fmt_rate(m.rate.0));
        if one_init.is_none() {
            text.push_str(&format!(" ({} init)", m.init));
        }
        // At the middle layer, below right of the point: the rising lines run above it.
        if let Some(&(x, y)) = points.get(points.len() / 2) {
            p.notes.push(Note {
                x,
                y,
                text,
                color,
                offset: (10, -26),
            });
        }
        p.series.push(act_series(m.act, points, i));
    }
    p
}

/// The slide's two panels: `lambda(B)` with BN, the profile without.
pub fn headline_panels(report: &TheoryReport) -> Vec<Panel> {
    vec![rate_panel(report), profile_panel(report)]
}

/// Draw the headline slide (two panels side by side).
pub fn draw(report: &TheoryReport) -> Result<Png> {
    let cfg = &report.config;
    let mut slide = Slide::new(
        "Mean-field theory: how ‖∂L/∂h‖² grows per layer towards the input",
        format!(
            "left: BN before the activation (Yang et al. 2019); right: no BN, depth {}, width {}, \
             zero biases (Poole et al. 2016, Schoenholz et al. 2017)",
            cfg.depth, cfg.width
        ),
        headline_panels(report),
    );
    slide.notes.push(LegendItem::new(
        "dashed, in its colour: λ as B → ∞",
        Sample::Line {
            color: RGBColor(90, 90, 90),
            dash: Dash::Dashed,
            marker: None,
            width: 2,
        },
    ));
    slide.draw()
}

impl Figures for Theory {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![Figure {
            file: "theory.png",
            draw,
        }]
    }
}
