//! `ics.png` (headline): the final test loss of every run (arm x learning rate) against its
//! internal covariate shift, and BN's ratio of each per learning rate; `ics_detail.png`:
//! Santurkar et al.'s measure over training (top: mean over layers 2..out with a min-max band
//! over those layers) and per layer (bottom: median over the measured steps) at `--lr`.

use anyhow::Result;

use crate::experiment::ics::{IcsArm, IcsRecord, IcsReport, IcsRun, title};
use crate::plot::arms::{norm_color, norm_marker};
use crate::plot::chart::{
    Dash, Grid, LegendItem, Marker, Note, Panel, Png, Series, Slide, okabe_ito,
};
use crate::plot::{Figure, Figures};
use crate::stats::{Num, Short, fmt_num, max_nan, mean_nan, median_nan, min_nan};

fn color(a: &IcsArm) -> plotters::style::RGBColor {
    norm_color(a.run.norm)
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
    s.marker = Some(norm_marker(a.run.norm));
    s
}

/// x range of the over-training panels: the whole run, one step at least.
fn steps_x(report: &IcsReport) -> Option<(f64, f64)> {
    Some((
        0.0,
        report.config.run.sgd.steps.saturating_sub(1).max(1) as f64,
    ))
}

/// A per-layer panel: x over the layers with a little room either side of the end layers'
/// markers, the output layer's tick named `out` as in the table.
fn per_layer_panel(report: &IcsReport, caption: &str, y_label: &str, log_y: bool) -> Panel {
    let n_layers = report.layer_names.len();
    let mut p = Panel::new(
        caption,
        "layer (1 = input side, out = output layer)",
        y_label,
        log_y,
    );
    p.x_range = Some((0.7, n_layers as f64 + 0.3));
    p.integer_x = true;
    p.x_tick_names = vec![(n_layers as f64, "out".to_string())];
    p
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
    let mut p = per_layer_panel(
        report,
        "‖G − G′‖ per layer (median over steps)",
        "‖G − G′‖ (log)",
        true,
    );
    for a in &report.arms {
        // Layer 1's shift is 0 by definition (nothing before it): not drawn on the log axis.
        let shift = per_layer(&a.summary.layer_l2_diff)
            .into_iter()
            .skip(1)
            .collect();
        let mut s = Series::new(format!("{}: ‖G − G′‖", a.run.label), color(a), shift);
        s.marker = Some(norm_marker(a.run.norm));
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
        g.dash = Dash::Dashed;
        p.series.push(g);
    }
    p
}

/// cos(G, G′) per layer, with cos = 1 (no shift) as a guide.
fn cos_per_layer(report: &IcsReport) -> Panel {
    let mut p = per_layer_panel(
        report,
        "cos(G, G′) per layer (median over steps)",
        "cos(G, G′)",
        false,
    );
    for a in &report.arms {
        let mut c = Series::new(
            a.run.label.clone(),
            color(a),
            per_layer(&a.summary.layer_cosine),
        );
        c.marker = Some(norm_marker(a.run.norm));
        p.series.push(c);
    }
    p.guides.push((1.0, "cos = 1: no shift".into()));
    p
}

/// Draw the detail figure (1800 x 1300 px): over training on top, per layer below.
pub fn draw_detail(report: &IcsReport) -> Result<Png> {
    let cfg = &report.config.run;
    let subtitle = format!(
        "{}; G′ = ∂L/∂W_i after layers 1..i−1 step, every {} steps",
        title(&report.config),
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
        &format!(
            "Internal covariate shift (Santurkar et al. 2018): {}",
            arms_title(report)
        ),
        &subtitle,
        &panels,
    )
}

/// `BatchNorm off vs on`, or the one arm that ran.
fn arms_title(report: &IcsReport) -> String {
    match report.arms.as_slice() {
        [a] => a.run.label.clone(),
        _ => "BatchNorm off vs on".to_string(),
    }
}

/// The scatter's points of one arm: `(summary ||G - G'||, final test loss)` per learning rate,
/// in the order of `report.runs`.
pub fn scatter_points(report: &IcsReport, arm: &str) -> Vec<(f64, f64)> {
    report
        .runs
        .iter()
        .filter(|r| r.label == arm)
        .map(|r| (r.l2_diff.0, r.final_test_loss.0))
        .collect()
}

/// `lr 0.01` (and `, diverged` for a run that did).
fn run_note(r: &IcsRun) -> String {
    match r.diverged_at {
        Some(s) => format!("lr {}, diverged at step {s}", Short(r.lr)),
        None => format!("lr {}", Short(r.lr)),
    }
}

/// Final test loss against ICS, one point per run, each arm in its colour and marker, each
/// point labelled with its learning rate.
fn scatter_panel(report: &IcsReport) -> Panel {
    let mut p = Panel::new(
        "Final test loss against ICS, one point per run",
        "‖G − G′‖: ICS, mean over layers 2 to out",
        "final test loss (BN in eval mode)",
        false,
    );
    // Linear unless the runs' ICS spans more than a decade; room on the right for the notes.
    let xs: Vec<f64> = report
        .runs
        .iter()
        .map(|r| r.l2_diff.0)
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    let (lo, hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    if lo.is_finite() && hi > lo {
        if hi / lo > 10.0 {
            p.log_x = true;
            p.x_label = "‖G − G′‖: ICS, mean over layers 2 to out (log)".into();
            p.x_range = Some((lo / 1.3, hi * 2.5));
        } else {
            let span = hi - lo;
            p.x_range = Some(((lo - 0.08 * span).max(0.0), hi + 0.3 * span));
        }
    }
    p.top_edge_label = Some("top strip: test loss inf or NaN (diverged)".into());
    for a in &report.arms {
        let mut s = Series::new(
            a.run.label.clone(),
            color(a),
            scatter_points(report, &a.run.label),
        );
        s.no_line = true;
        s.marker = Some(norm_marker(a.run.norm));
        p.series.push(s);
        for r in report.runs.iter().filter(|r| r.label == a.run.label) {
            p.notes.push(Note {
                x: r.l2_diff.0,
                y: r.final_test_loss.0,
                text: run_note(r),
                color: color(a),
                offset: (14, 0),
            });
        }
    }
    p
}

/// Per learning rate, BN's ICS and final test loss as multiples of BN off's (first BN arm):
/// above 1, BN has more.
fn ratio_panel(report: &IcsReport) -> Option<Panel> {
    let off = report.arms.iter().find(|a| !a.run.norm.is_on())?;
    let on = report.arms.iter().find(|a| a.run.norm.is_batch())?;
    let pairs: Vec<(f64, &IcsRun, &IcsRun)> = report
        .runs
        .iter()
        .filter(|r| r.label == off.run.label)
        .filter_map(|o| {
            report
                .runs
                .iter()
                .find(|n| n.label == on.run.label && n.lr == o.lr)
                .map(|n| (o.lr, o, n))
        })
        .collect();
    let mut p = Panel::new(
        format!("{} as a multiple of {}", on.run.label, off.run.label),
        "learning rate (log)",
        "ratio with BN / without (log)",
        true,
    );
    p.log_x = true;
    let mut ics = Series::new(
        "‖G − G′‖ (ICS) with BN / without",
        okabe_ito::BLACK,
        pairs
            .iter()
            .map(|(lr, o, n)| (*lr, n.l2_diff.0 / o.l2_diff.0))
            .collect(),
    );
    ics.marker = Some(Marker::Diamond);
    let mut relative = Series::new(
        "relative ICS ‖G − G′‖/‖G‖ with BN / without",
        okabe_ito::SKY_BLUE,
        pairs
            .iter()
            .map(|(lr, o, n)| (*lr, n.relative.0 / o.relative.0))
            .collect(),
    );
    relative.marker = Some(Marker::Square);
    let mut cosine = Series::new(
        "1 − cos(G, G′) with BN / without",
        okabe_ito::BLUISH_GREEN,
        pairs
            .iter()
            .map(|(lr, o, n)| (*lr, (1.0 - n.cosine.0) / (1.0 - o.cosine.0)))
            .collect(),
    );
    cosine.marker = Some(Marker::Circle);
    let mut loss = Series::new(
        "final test loss with BN / without",
        okabe_ito::REDDISH_PURPLE,
        pairs
            .iter()
            .map(|(lr, o, n)| (*lr, n.final_test_loss.0 / o.final_test_loss.0))
            .collect(),
    );
    loss.marker = Some(Marker::TriangleUp);
    loss.dash = Dash::Dashed;
    p.series = vec![ics, relative, cosine, loss];
    p.guides
        .push((1.0, "ratio 1: the same with and without BN".into()));
    Some(p)
}

/// The headline slide: the scatter, and BN's ratios per learning rate, with how well ICS
/// predicts the loss as the legend's last lines.
pub fn draw(report: &IcsReport) -> Result<Png> {
    let mut panels = vec![scatter_panel(report)];
    panels.extend(ratio_panel(report));
    let mut slide = Slide::new(
        format!(
            "Does internal covariate shift predict the test loss? {}",
            arms_title(report)
        ),
        format!(
            "{}; ICS measured every {} steps (Santurkar et al. 2018)",
            title(&report.config),
            report.config.run.every
        ),
        panels,
    );
    if slide.panels.len() == 2 {
        slide.widths = vec![3, 2];
    }
    let v = &report.ics_vs_loss;
    let signed = |x: f64| {
        if x.is_finite() {
            format!("{x:+.2}")
        } else {
            fmt_num(x)
        }
    };
    slide.notes.push(LegendItem::text(format!(
        "rank correlation with test loss over {} runs: ‖G − G′‖ {}, relative {}, 1 − cos {}",
        v.runs,
        signed(v.spearman.0),
        signed(v.spearman_relative.0),
        signed(v.spearman_cosine.0)
    )));
    if v.lrs > 0 {
        slide.notes.push(LegendItem::text(format!(
            "BN: lower test loss at {} of {} learning rates; less ICS at {} (‖G − G′‖), {} (relative), {} (cosine)",
            v.bn_lower_loss, v.lrs, v.bn_lower_ics, v.bn_lower_relative, v.bn_higher_cosine
        )));
    }
    slide.notes.extend(crate::plot::arms::trained_accuracy_note(
        report.arms.iter().map(|a| &a.run),
    ));
    let hidden: Vec<String> = report
        .runs
        .iter()
        .filter(|r| !r.l2_diff.0.is_finite())
        .map(|r| format!("{} at lr {}", r.label, Short(r.lr)))
        .collect();
    if !hidden.is_empty() {
        slide.notes.push(LegendItem::text(format!(
            "not drawn (ICS inf or NaN): {}",
            hidden.join(", ")
        )));
    }
    slide.draw()
}

impl Figures for crate::experiment::ics::Ics {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![
            Figure {
                file: "ics.png",
                draw,
            },
            Figure {
                file: "ics_detail.png",
                draw: draw_detail,
            },
        ]
    }
}
