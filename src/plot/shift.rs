//! `noisy_bn.png` and `input_shift.png` (headlines) and `noisy_bn_detail.png`: training curves,
//! each layer's distribution shift, and one unit's input percentiles over training.
//!
//! - `noisy-bn`: test accuracy (or loss) over training per arm; the distribution shift per
//!   layer; the chosen unit's 15-85th percentile band and median per arm. The detail figure
//!   gives each arm's percentiles in a panel of its own and the shift over training.
//! - `input-shift` (Ioffe & Szegedy 2015, Figure 1): test accuracy over training (their a), and
//!   one panel per arm with the unit's 15th, 50th and 85th percentiles (their b and c).

use anyhow::Result;
use plotters::style::RGBColor;

use crate::config::Normaliser;
use crate::experiment::shift::{ShiftArm, ShiftReport, noise_label};
use crate::model::Mode;
use crate::plot::arms::{norm_color, norm_marker};
use crate::plot::chart::{
    Dash, Grid, LegendItem, Marker, Panel, Png, Sample, Series, Slide, okabe_ito,
};
use crate::plot::{Figure, Figures};
use crate::stats::{Num, fmt_num, mean_nan};

fn color(a: &ShiftArm) -> RGBColor {
    if a.noise.is_some() {
        okabe_ito::REDDISH_PURPLE
    } else {
        norm_color(a.run.norm)
    }
}

fn marker(a: &ShiftArm) -> Marker {
    if a.noise.is_some() {
        Marker::TriangleDown
    } else {
        norm_marker(a.run.norm)
    }
}

fn steps_x(report: &ShiftReport) -> Option<(f64, f64)> {
    Some((
        0.0,
        report.config.run.sgd.steps.saturating_sub(1).max(1) as f64,
    ))
}

fn over_steps(a: &ShiftArm, v: &[Num]) -> Vec<(f64, f64)> {
    a.steps
        .iter()
        .zip(v)
        .map(|(&s, n)| (s as f64, n.0))
        .collect()
}

/// `over_steps` from the reference measurement on: an eval-mode probe's BN normalises with
/// running statistics that are still leaving their start before it.
/// An arm that stopped (diverged) before the reference is drawn from its start.
fn from_reference(a: &ShiftArm, v: &[Num]) -> Vec<(f64, f64)> {
    over_steps(a, v).into_iter().skip(first_drawn(a)).collect()
}

/// The first measurement drawn: the reference, or 0 when the arm has none from there on.
fn first_drawn(a: &ShiftArm) -> usize {
    if a.reference < a.steps.len() {
        a.reference
    } else {
        0
    }
}

/// Test accuracy over training (classification) or test loss (log), per arm.
fn curve_panel(report: &ShiftReport) -> Panel {
    let classes = report.arms.iter().all(|a| !a.test_accuracy.is_empty());
    let mut p = if classes {
        Panel::new(
            "Test accuracy",
            "training step",
            "test accuracy (%, eval mode)",
            false,
        )
    } else {
        let mut p = Panel::new(
            "Test loss",
            "training step",
            "test loss (log, eval mode)",
            true,
        );
        p.top_edge_label = Some("top strip: loss inf or NaN".into());
        p
    };
    p.x_range = steps_x(report);
    for a in &report.arms {
        let points = if classes {
            over_steps(a, &a.test_accuracy)
                .into_iter()
                .map(|(x, y)| (x, 100.0 * y))
                .collect()
        } else {
            over_steps(a, &a.test_loss)
        };
        let mut s = Series::new(a.run.label.clone(), color(a), points);
        s.marker = Some(marker(a));
        p.series.push(s);
    }
    p
}

/// The distribution shift of every layer, per arm (log).
fn shift_panel(report: &ShiftReport) -> Panel {
    let depth = report.config.run.depth;
    let mut p = Panel::new(
        "Input shift per layer",
        "layer (1 = input side)",
        "distribution shift per measurement (log)",
        true,
    );
    p.x_range = Some((0.7, depth as f64 + 0.3));
    p.integer_x = true;
    p.bottom_edge_label = Some("bottom strip: shift 0".into());
    for a in &report.arms {
        let points = a
            .mean_shift
            .iter()
            .enumerate()
            .map(|(l, v)| ((l + 1) as f64, v.0))
            .collect();
        let mut s = Series::new(a.run.label.clone(), color(a), points);
        s.marker = Some(marker(a));
        s.legend = false;
        p.series.push(s);
        if let Some(seen) = &a.seen_shift {
            let points = seen
                .iter()
                .enumerate()
                .map(|(l, v)| ((l + 1) as f64, v.0))
                .collect();
            let mut s = Series::new(
                format!(
                    "{}: what its layers see in training (fresh noise)",
                    a.run.label
                ),
                color(a),
                points,
            );
            s.dash = Dash::Dashed;
            s.marker = Some(marker(a));
            p.series.push(s);
        }
    }
    p
}

/// `unit 0 of layer 8`.
fn unit_name(report: &ShiftReport) -> String {
    format!(
        "unit {} of layer {}",
        report.config.unit, report.config.layer
    )
}

/// The chosen unit's percentiles of `arms`: a shaded 15-85 band with the median, or (one arm)
/// the three percentiles as lines, as Ioffe & Szegedy drew them.
fn percentile_panel(report: &ShiftReport, arms: &[&ShiftArm], caption: String) -> Panel {
    let mut p = Panel::new(
        caption,
        "training step",
        format!("input of the activation, {}", unit_name(report)),
        false,
    );
    p.x_range = steps_x(report);
    for a in arms {
        let pc = &a.unit_percentiles;
        if arms.len() == 1 {
            for (k, (name, dash)) in [
                ("15th percentile", Dash::Dashed),
                ("50th (median)", Dash::Solid),
                ("85th percentile", Dash::Dashed),
            ]
            .into_iter()
            .enumerate()
            {
                let mut s = Series::new(
                    format!("{}: {name}", a.run.label),
                    color(a),
                    from_reference(a, &pc[k]),
                );
                s.dash = dash;
                if k == 1 {
                    s.marker = Some(marker(a));
                }
                s.legend = false;
                p.series.push(s);
            }
        } else {
            let mut s = Series::new(
                format!("{}: median, band 15th-85th percentile", a.run.label),
                color(a),
                from_reference(a, &pc[1]),
            );
            s.band = a
                .steps
                .iter()
                .zip(pc[0].iter().zip(&pc[2]))
                .skip(first_drawn(a))
                .map(|(&st, (lo, hi))| (st as f64, lo.0, hi.0))
                .collect();
            s.marker = Some(marker(a));
            s.legend = false;
            p.series.push(s);
        }
    }
    p
}

/// How to read a percentile panel: its line styles (one arm) or its band (several).
fn percentile_key(banded: bool) -> Vec<LegendItem> {
    let line = |dash| Sample::Line {
        color: okabe_ito::BLACK,
        dash,
        marker: None,
        width: 3,
    };
    if banded {
        vec![
            LegendItem::new("unit's input: median", line(Dash::Solid)),
            LegendItem::new(
                "shaded: 15th to 85th percentile",
                Sample::Band(okabe_ito::BLACK),
            ),
        ]
    } else {
        vec![
            LegendItem::new("unit's input: median", line(Dash::Solid)),
            LegendItem::new("15th and 85th percentiles", line(Dash::Dashed)),
        ]
    }
}

/// `mean input shift (eval-mode probe, from step 44): BN off 0.268, BN on 0.06, noisy BN 0.1`.
fn shift_note(report: &ShiftReport) -> LegendItem {
    let parts: Vec<String> = report
        .arms
        .iter()
        .map(|a| format!("{} {}", a.run.label, fmt_num(a.net_shift.0)))
        .collect();
    LegendItem::text(format!(
        "mean input shift ({}): {}",
        probe_note(report),
        parts.join(", ")
    ))
}

/// `eval-mode probe, from step 44`.
fn probe_note(report: &ShiftReport) -> String {
    let cfg = &report.config;
    let mode = match cfg.probe_mode {
        Mode::Eval => "eval-mode probe",
        Mode::Train => "train-mode probe",
    };
    let first = report
        .arms
        .first()
        .and_then(|a| a.steps.get(a.reference))
        .copied();
    match (cfg.reference_step(), first) {
        (0, _) | (_, None) => mode.to_string(),
        (_, Some(step)) => format!("{mode}, from step {step}"),
    }
}

/// The shift over training: per arm, its mean over the layers at each measurement.
fn shift_over_training(report: &ShiftReport) -> Panel {
    let mut p = Panel::new(
        "Distribution shift over training (mean over layers)",
        "training step",
        "distribution shift (log)",
        true,
    );
    p.x_range = steps_x(report);
    p.bottom_edge_label = Some("bottom strip: shift 0".into());
    for a in &report.arms {
        let n = a.shift.first().map_or(0, Vec::len);
        let points = (0..n)
            .map(|i| {
                (
                    a.steps[a.reference + i + 1] as f64,
                    mean_nan(a.shift.iter().map(|l| l[i].0)),
                )
            })
            .collect();
        let mut s = Series::new(a.run.label.clone(), color(a), points);
        s.marker = Some(marker(a));
        p.series.push(s);
    }
    p
}

fn subtitle(report: &ShiftReport) -> String {
    let mut s = report.config.run.title();
    if let Some(n) = &report.config.noise {
        s.push_str(&format!("; noisy BN: {}", noise_label(n)));
    }
    s
}

fn verdict_notes(report: &ShiftReport) -> Vec<LegendItem> {
    let mut notes = Vec::new();
    if let Some(v) = &report.noisy_verdict {
        notes.push(LegendItem::text(format!(
            "final test loss: noisy BN {}, BN {}, plain {}",
            fmt_num(v.loss_noisy.0),
            fmt_num(v.loss_bn.0),
            fmt_num(v.loss_plain.0)
        )));
        notes.push(LegendItem::text(format!(
            "Santurkar et al.'s finding (noisy BN shifts more than BN yet trains like it): {}",
            v.verdict
        )));
    }
    if let Some(v) = &report.drift_verdict {
        notes.push(LegendItem::text(format!(
            "drift of the unit's percentiles ({}): {} without normalisation, {} with {}",
            probe_note(report),
            fmt_num(v.drift_plain.0),
            fmt_num(v.drift_norm.0),
            v.norm_label
        )));
        notes.push(LegendItem::text(format!(
            "Ioffe & Szegedy ({} keeps the input distribution put): {}",
            v.norm_label, v.verdict
        )));
    }
    notes.extend(crate::plot::arms::trained_accuracy_note(
        report.arms.iter().map(|a| &a.run),
    ));
    notes
}

/// `noisy_bn.png`.
pub fn draw_noisy(report: &ShiftReport) -> Result<Png> {
    let arms: Vec<&ShiftArm> = report.arms.iter().collect();
    let panels = vec![
        curve_panel(report),
        shift_panel(report),
        percentile_panel(report, &arms, format!("Input of {}", unit_name(report))),
    ];
    let mut slide = Slide::new(
        "Noisy BN: BatchNorm with its output shifted anew every step (Santurkar et al. 2018)",
        subtitle(report),
        panels,
    );
    slide.notes = percentile_key(true);
    slide.notes.push(shift_note(report));
    slide.notes.extend(verdict_notes(report));
    slide.draw()
}

/// `noisy_bn_detail.png`: each arm's percentiles in a panel of its own, and the shift over
/// training.
pub fn draw_noisy_detail(report: &ShiftReport) -> Result<Png> {
    let mut panels: Vec<Panel> = report
        .arms
        .iter()
        .map(|a| {
            let mut p = percentile_panel(
                report,
                &[a],
                format!("{}: {}", a.run.label, unit_name(report)),
            );
            // A grid panel has a legend of its own.
            for s in &mut p.series {
                s.legend = true;
            }
            p
        })
        .collect();
    panels.push(shift_over_training(report));
    let cols = 2;
    let rows = panels.len().div_ceil(cols);
    Grid::new(rows, cols, (900, 560)).draw_panels(
        "Noisy BN in detail: one unit's input per arm, and the shift over training",
        &subtitle(report),
        &panels,
    )
}

/// `input_shift.png`.
pub fn draw_input_shift(report: &ShiftReport) -> Result<Png> {
    let mut panels = vec![curve_panel(report)];
    for a in &report.arms {
        let what = if a.run.norm == Normaliser::Off {
            "Without BN".to_string()
        } else {
            format!("With {}", a.run.label)
        };
        panels.push(percentile_panel(report, &[a], what));
    }
    panels.truncate(4);
    let mut slide = Slide::new(
        "A sigmoid's input over training, with and without BN (Ioffe & Szegedy 2015, Fig. 1)",
        format!("{}; {}", subtitle(report), unit_name(report)),
        panels,
    );
    slide.notes = percentile_key(false);
    slide.notes.extend(verdict_notes(report));
    slide.draw()
}

impl Figures for crate::experiment::shift::NoisyBn {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![
            Figure {
                file: "noisy_bn.png",
                draw: draw_noisy,
            },
            Figure {
                file: "noisy_bn_detail.png",
                draw: draw_noisy_detail,
            },
        ]
    }
}

impl Figures for crate::experiment::shift::InputShift {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![Figure {
            file: "input_shift.png",
            draw: draw_input_shift,
        }]
    }
}
