//! `landscape.png`: Santurkar et al.'s three measures over training, BN off warm and BN on
//! cool, plus the gradient change relative to the gradient; `landscape_slice.png`: the 2-D
//! slices around the trained weights as side-by-side heat maps on one colour scale.

use std::path::Path;

use anyhow::Result;

use crate::experiment::landscape::{LandscapeArm, LandscapeReport, Probe, title};
use crate::plot::heatmap::{HeatMap, LogScale, draw_colorbar, draw_heatmap};
use crate::plot::{COOL, Figure, Figures, Grid, Panel, Series, WARM, draw_panel, figure};
use crate::stats::fmt_num;

fn color(a: &LandscapeArm) -> plotters::style::RGBColor {
    if a.run.norm.is_on() { COOL[0] } else { WARM[0] }
}

/// Line `(step, line(p))` with band `(step, lo(p), hi(p))` over an arm's probes.
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
    s.band = a
        .probes
        .iter()
        .map(|p| (p.step as f64, lo(p), hi(p)))
        .collect();
    // A run that diverged at once has a single finite point: show it as a dot.
    s.marker = (s.points.iter().filter(|p| p.1.is_finite()).count() < 2)
        .then_some(crate::plot::Marker::Circle);
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

/// A log-axis panel over the whole run (one step at least) with `series` for each arm.
fn over_steps(
    report: &LandscapeReport,
    caption: &str,
    y_label: &str,
    series: impl Fn(&LandscapeArm) -> Vec<Series>,
) -> Panel {
    let mut p = Panel::new(caption, "training step", y_label, true);
    p.x_range = Some((0.0, report.config.run.steps.saturating_sub(1).max(1) as f64));
    p.series = report.arms.iter().flat_map(series).collect();
    p
}

/// The median gradient change over a probe's step sizes.
fn median_grad_dist(p: &Probe) -> f64 {
    median(&p.grad_dist.iter().map(|v| v.0).collect::<Vec<_>>())
}

/// Loss variation: the loss at θ_t and its range along the gradient direction.
fn loss_panel(report: &LandscapeReport) -> Panel {
    over_steps(
        report,
        "Loss variation along the gradient",
        "loss on the step's batch (log)",
        |a| {
            vec![banded(
                a,
                format!("{}: L(θ_t) and range on path", a.run.label),
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
            gn.dash = crate::plot::Dash::Dashed;
            let dist = banded(
                a,
                format!("{}: median and range", a.run.label),
                median_grad_dist,
                |p| p.grad_dist_min.0,
                |p| p.grad_dist_max.0,
            );
            vec![dist, gn]
        },
    )
}

/// Effective β-smoothness: the largest gradient change per unit step along the path.
fn beta_panel(report: &LandscapeReport) -> Panel {
    over_steps(
        report,
        "Effective β-smoothness",
        "‖∇L(θ − ηg) − g‖ / ‖ηg‖ (log)",
        |a| {
            vec![banded(
                a,
                format!("{}: β = max over path, band min-max", a.run.label),
                |p| p.beta.0,
                |p| p.beta_min.0,
                |p| p.beta.0,
            )]
        },
    )
}

/// The gradient change relative to the gradient itself, with ‖Δg‖ = ‖g‖ as a guide: above it
/// the gradient says little about the gradient one step on.
fn relative_change_panel(report: &LandscapeReport) -> Panel {
    let mut p = over_steps(
        report,
        "Gradient change relative to the gradient",
        "‖∇L(θ − ηg) − g‖ / ‖g‖ (log)",
        |a| {
            vec![banded(
                a,
                format!("{}: median and range", a.run.label),
                |p| median_grad_dist(p) / p.grad_norm.0,
                |p| p.grad_dist_min.0 / p.grad_norm.0,
                |p| p.grad_dist_max.0 / p.grad_norm.0,
            )]
        },
    );
    p.guides.push((1.0, "‖Δg‖ = ‖g‖".into()));
    p
}

/// Draw the measures over training into `path` (1800 x 1300 px).
pub fn draw(report: &LandscapeReport, path: &Path) -> Result<crate::plot::Layout> {
    let cfg = &report.config;
    let multipliers = &cfg.probe_multipliers;
    let (mlo, mhi) = (
        multipliers.iter().copied().fold(f64::INFINITY, f64::min),
        multipliers
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max),
    );
    let subtitle = format!(
        "{}; probes every {} steps at η = {mlo}–{mhi} × lr",
        title(cfg),
        cfg.run.every
    );
    let panels = [
        loss_panel(report),
        predictiveness_panel(report),
        beta_panel(report),
        relative_change_panel(report),
    ];
    Grid::new(2, 2, (900, 595)).draw_panels(
        path,
        "Loss landscape during training: BatchNorm off vs on",
        &subtitle,
        &panels,
    )
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
        x_label: "α (direction d₁, filter-normalised)".into(),
        y_label: "β (direction d₂, filter-normalised)".into(),
        coords,
        values: values.to_vec(),
        marker: Some(((0.0, 0.0), "trained weights θ*".into())),
    }
}

/// An empty panel over the slice's α range in place of the map of an arm that diverged.
fn no_slice_panel(arm: &LandscapeArm, coords: &[f64]) -> Panel {
    let mut empty = Panel::new(
        format!("{}: diverged, no slice", arm.run.label),
        "α",
        "β",
        false,
    );
    empty.x_range = Some((coords[0], coords[coords.len() - 1]));
    empty
}

/// Draw the 2-D slices side by side into `path` (860 px per map plus 280 px for the colour
/// bar, 1000 px high), on one shared log colour scale so the maps compare directly.
pub fn draw_slice(report: &LandscapeReport, path: &Path) -> Result<crate::plot::Layout> {
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
        path,
        (860 * n_maps + 280, 1000),
        "Loss around the trained weights: 2-D slice (Li et al. 2018)",
        &subtitle,
        |body| {
            let (maps, bar) = body.split_horizontally(860 * n_maps);
            let areas = maps.split_evenly((1, n_maps as usize));
            let mut layout = crate::plot::Layout::default();
            for ((arm, values), area) in slices.iter().zip(areas.iter()) {
                match values {
                    Some(values) => draw_heatmap(area, &slice_map(arm, values, &coords), &scale)?,
                    None => layout.extend(draw_panel(area, &no_slice_panel(arm, &coords))?),
                }
            }
            if slices.iter().any(|(_, v)| v.is_some()) {
                draw_colorbar(
                    &bar,
                    &scale,
                    "L(θ* + α d₁ + β d₂) (log); white lines: iso-loss",
                    any_bad,
                )?;
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
