//! `landscape.png`: Santurkar et al.'s three measures over training, BN off warm and BN on
//! cool, plus the gradient change relative to the gradient; `landscape_slice.png`: the 2-D
//! slices around the trained weights as side-by-side heat maps on one colour scale.

use std::path::Path;

use anyhow::Result;

use crate::experiment::landscape::{LandscapeArm, LandscapeReport, Probe, title};
use crate::plot::heatmap::{HeatMap, LogScale, draw_colorbar, draw_heatmap};
use crate::plot::{COOL, Figure, Figures, Panel, Series, WARM, draw_panel, png, titled};
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

/// Draw the measures over training into `path` (1800 x 1300 px).
pub fn draw(report: &LandscapeReport, path: &Path) -> Result<()> {
    let cfg = &report.config;
    let x_range = Some((0.0, cfg.run.steps.saturating_sub(1).max(1) as f64));
    let x_label = "training step";
    let mut loss = Panel::new(
        "Loss variation along the gradient",
        x_label,
        "loss on the step's batch (log)",
        true,
    );
    let mut grad = Panel::new(
        "Gradient predictiveness",
        x_label,
        "‖∇L(θ − ηg) − g‖ (log)",
        true,
    );
    let mut beta = Panel::new(
        "Effective β-smoothness",
        x_label,
        "‖∇L(θ − ηg) − g‖ / ‖ηg‖ (log)",
        true,
    );
    let mut rel = Panel::new(
        "Gradient change relative to the gradient",
        x_label,
        "‖∇L(θ − ηg) − g‖ / ‖g‖ (log)",
        true,
    );
    for p in [&mut loss, &mut grad, &mut beta, &mut rel] {
        p.x_range = x_range;
    }
    for a in &report.arms {
        loss.series.push(banded(
            a,
            format!("{}: L(θ_t) and range on path", a.run.label),
            |p| p.loss.0,
            |p| p.loss_min.0,
            |p| p.loss_max.0,
        ));
        grad.series.push(banded(
            a,
            format!("{}: median and range", a.run.label),
            |p| median(&p.grad_dist.iter().map(|v| v.0).collect::<Vec<_>>()),
            |p| p.grad_dist_min.0,
            |p| p.grad_dist_max.0,
        ));
        let mut gn = Series::new(
            format!("{}: ‖g‖ (dashed), for scale", a.run.label),
            color(a),
            a.probes
                .iter()
                .map(|p| (p.step as f64, p.grad_norm.0))
                .collect(),
        );
        gn.dashed = true;
        grad.series.push(gn);
        beta.series.push(banded(
            a,
            format!("{}: β = max over path, band min-max", a.run.label),
            |p| p.beta.0,
            |p| p.beta_min.0,
            |p| p.beta.0,
        ));
        rel.series.push(banded(
            a,
            format!("{}: median and range", a.run.label),
            |p| median(&p.grad_dist.iter().map(|v| v.0).collect::<Vec<_>>()) / p.grad_norm.0,
            |p| p.grad_dist_min.0 / p.grad_norm.0,
            |p| p.grad_dist_max.0 / p.grad_norm.0,
        ));
    }
    rel.guides.push((1.0, "‖Δg‖ = ‖g‖".into()));
    let multipliers = &cfg.probe_multipliers;
    let (mlo, mhi) = (
        multipliers.iter().copied().fold(f64::INFINITY, f64::min),
        multipliers
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max),
    );
    png(path, (1800, 1300), |root| {
        let subtitle = format!(
            "{}; probes every {} steps at η = {mlo}–{mhi} × lr",
            title(cfg),
            cfg.run.every
        );
        let body = titled(
            root,
            "Loss landscape during training: BatchNorm off vs on",
            &subtitle,
        )?;
        let (top, bottom) = body.split_vertically(595);
        let (tl, tr) = top.split_horizontally(900);
        let (bl, br) = bottom.split_horizontally(900);
        draw_panel(&tl, &loss)?;
        draw_panel(&tr, &grad)?;
        draw_panel(&bl, &beta)?;
        draw_panel(&br, &rel)?;
        Ok(())
    })
}

/// Draw the 2-D slices side by side into `path` (2000 x 1000 px), on one shared log colour
/// scale so the two maps compare directly.
pub fn draw_slice(report: &LandscapeReport, path: &Path) -> Result<()> {
    let cfg = &report.config;
    let slices: Vec<(&LandscapeArm, Option<Vec<Vec<f64>>>)> = report
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
        .collect();
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
    let width = 860 * n_maps + 280;
    png(path, (width, 1000), |root| {
        let subtitle = format!(
            "{}; loss on {} training samples, BN in train mode",
            title(cfg),
            cfg.slice_samples
        );
        let body = titled(
            root,
            "Loss around the trained weights: 2-D slice (Li et al. 2018)",
            &subtitle,
        )?;
        let (maps, bar) = body.split_horizontally(860 * n_maps);
        let areas = maps.split_evenly((1, n_maps as usize));
        for ((arm, values), area) in slices.iter().zip(areas.iter()) {
            match values {
                Some(values) => {
                    let s = arm.slice.as_ref().expect("values come from the slice");
                    let map = HeatMap {
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
                        coords: &coords,
                        values: values.clone(),
                        marker: Some(((0.0, 0.0), "trained weights θ*".into())),
                    };
                    draw_heatmap(area, &map, &scale)?;
                }
                None => {
                    let mut empty = Panel::new(
                        format!("{}: diverged, no slice", arm.run.label),
                        "α",
                        "β",
                        false,
                    );
                    empty.x_range = Some((coords[0], coords[coords.len() - 1]));
                    draw_panel(area, &empty)?;
                }
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
        Ok(())
    })
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
