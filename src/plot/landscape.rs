//! `landscape.png` (headline): Santurkar et al.'s loss variation, gradient predictiveness (with
//! ‖g‖ for scale), effective β-smoothness and the gradient change relative to the gradient over
//! training, BN arms in their colours and markers, one shared legend; `landscape_slice.png`: the 2-D slices around the trained weights as side-by-side
//! heat maps on one colour scale. On every axis over training the y range comes from the
//! probes after step 0: an untrained net's step-0 probe can sit decades above the rest, so it
//! is drawn clipped at the top of the range with its value written beside it. A diverged arm
//! gets a ✕ at its divergence step in the top strip.

use anyhow::Result;
use plotters::prelude::*;

use crate::experiment::landscape::{LandscapeArm, LandscapeReport, Probe, title};
use crate::plot::arms::{norm_color, norm_marker};
use crate::plot::chart::heatmap::{HeatMap, LogScale, draw_colorbar, draw_heatmap};
use crate::plot::chart::{
    Area, Dash, LegendItem, Marker, Note, Panel, PanelLayout, Png, Series, Slide,
    draw_message_panel, figure,
};
use crate::plot::{Figure, Figures};
use crate::stats::fmt_num;

fn color(a: &LandscapeArm) -> RGBColor {
    norm_color(a.run.norm)
}

/// Line `(step, line(p))` with band `(step, lo(p), hi(p))` over an arm's probes, in the arm's
/// colour and marker.
fn banded(
    a: &LandscapeArm,
    label: String,
    line: impl Fn(&Probe) -> f64,
    lo: impl Fn(&Probe) -> f64,
    hi: impl Fn(&Probe) -> f64,
) -> Series {
    let mut s = Series::new(
        label,
        color(a),
        a.probes.iter().map(|p| (p.step as f64, line(p))).collect(),
    );
    // A single probe (a run that diverged at once) has no band to draw.
    if a.probes.len() > 1 {
        s.band = a
            .probes
            .iter()
            .map(|p| (p.step as f64, lo(p), hi(p)))
            .collect();
    }
    s.marker = Some(norm_marker(a.run.norm));
    s
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.to_vec();
    if v.iter().any(|x| x.is_nan()) || v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The legend text of the ✕ marks: which arm diverged at which step.
fn diverged_label(report: &LandscapeReport) -> Option<String> {
    let parts: Vec<String> = report
        .arms
        .iter()
        .filter_map(|a| {
            a.run
                .diverged_at
                .map(|s| format!("{} diverged at step {s}", a.run.label))
        })
        .collect();
    (!parts.is_empty()).then(|| format!("✕ top strip: {}", parts.join(", ")))
}

/// The ✕ of each diverged arm at its divergence step (drawn in the top strip, explained by
/// the panel's top-edge label, not listed as a series).
fn divergence_marks(report: &LandscapeReport) -> Vec<Series> {
    report
        .arms
        .iter()
        .filter_map(|a| {
            let step = a.run.diverged_at?;
            let mut s = Series::new(
                format!("{}: diverged at step {step}", a.run.label),
                color(a),
                vec![(step as f64, f64::INFINITY)],
            );
            s.no_line = true;
            s.marker = Some(Marker::Cross);
            s.legend = false;
            Some(s)
        })
        .collect()
}

/// Make a log panel's y range robust to the step-0 probe: the range covers every usable value
/// from step 1 on (bands included) and the lower values of step 0; a step-0 value above it is
/// drawn at the top of the range, with a note giving its value. Returns the clipped values as
/// `(series label, value)`.
pub fn clip_step0(p: &mut Panel) -> Vec<(String, f64)> {
    let ok = |v: f64| v.is_finite() && v > 0.0;
    let later = p.series.iter().flat_map(|s| {
        s.points.iter().filter(|q| q.0 >= 1.0).map(|q| q.1).chain(
            s.band
                .iter()
                .filter(|b| b.0 >= 1.0)
                .flat_map(|b| [b.1, b.2]),
        )
    });
    let hi = later.filter(|&v| ok(v)).fold(f64::NEG_INFINITY, f64::max);
    if !hi.is_finite() {
        return Vec::new();
    }
    let top = 10f64.powf(hi.log10().ceil());
    let lo = p
        .series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .map(|q| q.1)
                .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
        })
        .filter(|&v| ok(v))
        .fold(f64::INFINITY, f64::min)
        .min(top);
    let mut clipped = Vec::new();
    for s in &mut p.series {
        for q in &mut s.points {
            if ok(q.1) && q.1 > top {
                clipped.push((s.label.clone(), q.1));
                p.notes.push(Note {
                    x: q.0,
                    y: top,
                    text: format!("step {}: {} ↑", q.0, sig3(q.1)),
                    color: s.color,
                    offset: (14, -18),
                });
                q.1 = top;
            }
        }
        for b in &mut s.band {
            b.1 = if ok(b.1) { b.1.min(top) } else { b.1 };
            b.2 = if ok(b.2) { b.2.min(top) } else { b.2 };
        }
    }
    p.y_range = Some((lo, top));
    clipped
}

/// `27.3`, `8.17e3`: three significant digits.
fn sig3(v: f64) -> String {
    if (0.01..1000.0).contains(&v.abs()) {
        let d = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{v:.d$}")
    } else {
        format!("{v:.2e}")
    }
}

/// A log-axis panel over the whole run (one step at least) with `series` for each arm, the
/// step-0 probe clipped (see [`clip_step0`]) and the divergence marks.
fn over_steps(
    report: &LandscapeReport,
    caption: &str,
    y_label: &str,
    series: impl Fn(&LandscapeArm) -> Vec<Series>,
) -> Panel {
    let mut p = Panel::new(caption, "training step", y_label, true);
    p.x_range = Some((
        0.0,
        report.config.run.sgd.steps.saturating_sub(1).max(1) as f64,
    ));
    p.series = report.arms.iter().flat_map(series).collect();
    clip_step0(&mut p);
    p.series.extend(divergence_marks(report));
    p.top_edge_label = diverged_label(report);
    p
}

/// The median gradient change over a probe's step sizes.
fn median_grad_dist(p: &Probe) -> f64 {
    median(&p.grad_dist.iter().map(|v| v.0).collect::<Vec<_>>())
}

/// Loss variation: the loss at θ_t and its range along the gradient direction. `label` names
/// each arm's series (the headline uses the arm's label alone, so its legend is shared).
fn loss_panel(report: &LandscapeReport, label: impl Fn(&LandscapeArm) -> String) -> Panel {
    over_steps(
        report,
        "Loss variation along the gradient",
        "loss on the step's batch (log)",
        |a| {
            vec![banded(
                a,
                label(a),
                |p| p.loss.0,
                |p| p.loss_min.0,
                |p| p.loss_max.0,
            )]
        },
    )
}

/// Gradient predictiveness, with ‖g‖ dashed for scale.
fn predictiveness_panel(report: &LandscapeReport) -> Panel {
    over_steps(
        report,
        "Gradient predictiveness",
        "‖∇L(θ − ηg) − g‖ (log)",
        |a| {
            let mut gn = Series::new(
                format!("{}: ‖g‖ (dashed), for scale", a.run.label),
                color(a),
                a.probes
                    .iter()
                    .map(|p| (p.step as f64, p.grad_norm.0))
                    .collect(),
            );
            gn.dash = Dash::Dashed;
            let dist = banded(
                a,
                a.run.label.clone(),
                median_grad_dist,
                |p| p.grad_dist_min.0,
                |p| p.grad_dist_max.0,
            );
            vec![dist, gn]
        },
    )
}

/// Effective β-smoothness: the largest gradient change per unit step along the path.
fn beta_panel(report: &LandscapeReport, label: impl Fn(&LandscapeArm) -> String) -> Panel {
    over_steps(
        report,
        "Effective β-smoothness",
        "‖∇L(θ − ηg) − g‖ / ‖ηg‖ (log)",
        |a| {
            vec![banded(
                a,
                label(a),
                |p| p.beta.0,
                |p| p.beta_min.0,
                |p| p.beta.0,
            )]
        },
    )
}

/// The gradient change relative to the gradient itself, with ‖Δg‖ = ‖g‖ as a guide: above it
/// the gradient says little about the gradient one step on.
fn relative_change_panel(
    report: &LandscapeReport,
    label: impl Fn(&LandscapeArm) -> String,
) -> Panel {
    let mut p = over_steps(
        report,
        "Gradient change relative to the gradient",
        "‖∇L(θ − ηg) − g‖ / ‖g‖ (log)",
        |a| {
            vec![banded(
                a,
                label(a),
                |p| median_grad_dist(p) / p.grad_norm.0,
                |p| p.grad_dist_min.0 / p.grad_norm.0,
                |p| p.grad_dist_max.0 / p.grad_norm.0,
            )]
        },
    );
    p.guides.push((1.0, "‖Δg‖ = ‖g‖".into()));
    p
}

/// `probes every 10 steps at η = 0.5–4 × lr`.
fn probe_text(report: &LandscapeReport) -> String {
    let cfg = &report.config;
    let m = &cfg.probe_multipliers;
    let (lo, hi) = (
        m.iter().copied().fold(f64::INFINITY, f64::min),
        m.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    format!("probes every {} steps at η = {lo}–{hi} × lr", cfg.run.every)
}

/// `BatchNorm off vs on`, or the one arm that ran.
fn arms_title(report: &LandscapeReport) -> String {
    match report.arms.as_slice() {
        [a] => a.run.label.clone(),
        _ => "BatchNorm off vs on".to_string(),
    }
}

/// The headline slide: the four measures over training, one legend for them.
pub fn draw(report: &LandscapeReport) -> Result<Png> {
    let arm = |a: &LandscapeArm| a.run.label.clone();
    let panels = vec![
        loss_panel(report, arm),
        predictiveness_panel(report),
        beta_panel(report, arm),
        relative_change_panel(report, arm),
    ];
    let mut slide = Slide::new(
        format!("Loss landscape during training: {}", arms_title(report)),
        format!("{}; {}", title(&report.config), probe_text(report)),
        panels,
    );
    slide.notes = vec![
        LegendItem::text("lines: L(θ_t), median ‖Δg‖, β (max over the path), median ‖Δg‖/‖g‖"),
        LegendItem::text("bands: min-max along the gradient path θ_t − ηg"),
        LegendItem::text(
            "y ranges from the probes after step 0; a step-0 value above one is drawn at its top, value written",
        ),
    ];
    slide.notes.extend(crate::plot::arms::trained_accuracy_note(
        report.arms.iter().map(|a| &a.run),
    ));
    slide.draw()
}

/// Each arm with its slice's loss values as plain `f64` (`None` for an arm that diverged and
/// has no slice).
fn slice_values(report: &LandscapeReport) -> Vec<(&LandscapeArm, Option<Vec<Vec<f64>>>)> {
    report
        .arms
        .iter()
        .map(|a| {
            (
                a,
                a.slice.as_ref().map(|s| {
                    s.loss
                        .iter()
                        .map(|r| r.iter().map(|v| v.0).collect())
                        .collect()
                }),
            )
        })
        .collect()
}

/// The heat map of one arm's slice, captioned with the loss at the trained weights and the
/// largest loss around them.
fn slice_map<'c>(arm: &LandscapeArm, values: &[Vec<f64>], coords: &'c [f64]) -> HeatMap<'c> {
    let s = arm.slice.as_ref().expect("values come from the slice");
    HeatMap {
        caption: format!(
            "{}: loss {} at θ*, {}",
            arm.run.label,
            fmt_num(s.center_loss.0),
            if s.max.0.is_finite() {
                format!("up to {}", fmt_num(s.max.0))
            } else {
                "inf/NaN in places".to_string()
            }
        ),
        x_label: "a (direction d₁, filter-normalised)".into(),
        y_label: "b (direction d₂, filter-normalised)".into(),
        coords,
        values: values.to_vec(),
        marker: Some(((0.0, 0.0), "θ* (trained weights)".into())),
    }
}

/// In place of the map of an arm that has no slice: its caption and a framed message saying
/// why (it diverged at step N), in the arm's colour.
fn draw_no_slice(area: &Area<'_>, arm: &LandscapeArm) -> Result<PanelLayout> {
    let why = match arm.run.diverged_at {
        Some(step) => format!("diverged at step {step}: no slice"),
        None => "no slice".to_string(),
    };
    let caption = format!("{}: no slice", arm.run.label);
    let mut drawn = draw_message_panel(area, &caption, &why, norm_color(arm.run.norm))?;
    drawn.caption = format!("{}: {why}", arm.run.label);
    Ok(drawn)
}

/// Draw the 2-D slices side by side (860 px per map plus 280 px for the colour
/// bar, 1000 px high), on one shared log colour scale so the maps compare directly. The
/// layout records each map's plot area and cell centres, and the colour bar as the legend.
pub fn draw_slice(report: &LandscapeReport) -> Result<Png> {
    let cfg = &report.config;
    let slices = slice_values(report);
    let all = slices
        .iter()
        .filter_map(|(_, v)| v.as_ref())
        .flat_map(|v| v.iter().flatten().copied());
    let scale = LogScale::of(all.clone(), 8.0);
    let any_bad = all.clone().any(|v| !v.is_finite());
    let coords = report
        .arms
        .iter()
        .find_map(|a| a.slice.as_ref().map(|s| s.coords.clone()))
        .unwrap_or_else(|| cfg.slice_coords());
    let n_maps = slices.len().max(1) as u32;
    let subtitle = format!(
        "{}; loss on {} training samples, BN in train mode",
        title(cfg),
        cfg.slice_samples
    );
    // Not an even grid: the colour bar takes a narrow column right of the maps.
    figure(
        (860 * n_maps + 280, 1000),
        "Loss around the trained weights: L(θ* + a d₁ + b d₂), 2-D slice (Li et al. 2018)",
        &subtitle,
        |body| {
            let (maps, bar) = body.split_horizontally(860 * n_maps);
            let areas = maps.split_evenly((1, n_maps as usize));
            let mut layout = crate::plot::chart::Layout::default();
            for ((arm, values), area) in slices.iter().zip(areas.iter()) {
                layout.panels.push(match values {
                    Some(values) => draw_heatmap(area, &slice_map(arm, values, &coords), &scale)?,
                    None => draw_no_slice(area, arm)?,
                });
            }
            if slices.iter().any(|(_, v)| v.is_some()) {
                layout.legends.push(draw_colorbar(
                    &bar,
                    &scale,
                    "L(θ* + a d₁ + b d₂) (log); — iso-loss lines on the maps",
                    any_bad,
                )?);
            }
            Ok(layout)
        },
    )
}

impl Figures for crate::experiment::landscape::Landscape {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![
            Figure {
                file: "landscape.png",
                draw,
            },
            Figure {
                file: "landscape_slice.png",
                draw: draw_slice,
            },
        ]
    }
}
