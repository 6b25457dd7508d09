//! `train_loss.png` (loss curves, one panel per learning rate, one colour per configuration)
//! and `train_layers.png` (per-layer update-to-weight ratios and gradient norms over steps).

use std::path::Path;

use anyhow::Result;
use plotters::style::RGBColor;

use crate::experiment::train::{TrainReport, TrainRun, short_title};
use crate::plot::{Figure, Figures, Grid, Panel, Series, norm_color};
use crate::stats::{Num, Short};

/// A colour from dark blue-violet (`t = 0`) to orange (`t = 1`) (the readable part of plasma).
pub fn ramp(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 4] = [
        (13.0, 8.0, 135.0),
        (126.0, 3.0, 168.0),
        (204.0, 71.0, 120.0),
        (240.0, 140.0, 40.0),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// `(x, y)` points of a loss curve; for a diverged run the last point becomes inf, so it is
/// drawn as a ✕ on the top edge at the divergence step.
fn loss_points(run: &TrainRun, values: &[Num]) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = run
        .history
        .eval_steps
        .iter()
        .zip(values)
        .map(|(&s, v)| (s as f64, v.0))
        .collect();
    if let (Some(d), Some(last)) = (&run.history.divergence, pts.last_mut()) {
        *last = (d.step as f64, f64::INFINITY);
    }
    pts
}

/// Smallest and largest positive finite value.
fn extent<'a>(values: impl Iterator<Item = &'a (f64, f64)>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .map(|p| p.1)
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    lo.is_finite().then_some((lo, hi))
}

fn union(a: Option<(f64, f64)>, b: Option<(f64, f64)>) -> Option<(f64, f64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `(columns, rows)` for `n` loss panels: two columns for 2 or 4 panels (a square), at most
/// three otherwise, so the figure stays wider than tall.
fn loss_layout(n: usize) -> (usize, usize) {
    let cols = match n {
        0 | 1 => 1,
        2 | 4 => 2,
        _ => 3,
    };
    (cols, n.div_ceil(cols))
}

/// The caption of a learning rate's panel, naming the runs that diverged at it.
fn lr_caption(report: &TrainReport, lr: f64) -> String {
    let diverged: Vec<&str> = report
        .runs
        .iter()
        .filter(|r| r.lr == lr && r.diverged)
        .map(|r| r.label.as_str())
        .collect();
    let n = report.runs.iter().filter(|r| r.lr == lr).count();
    if diverged.is_empty() {
        format!("learning rate {}", Short(lr))
    } else if diverged.len() == n && n > 1 {
        format!("learning rate {}: all diverged", Short(lr))
    } else {
        format!(
            "learning rate {}: {} diverged",
            Short(lr),
            diverged.join(", ")
        )
    }
}

/// The loss panel of one learning rate: per run, training loss solid and test loss dashed in
/// the run's colour, a diverged run ending in a ✕ at its divergence step.
fn lr_panel(report: &TrainReport, lr: f64) -> Panel {
    let cfg = &report.config;
    let mut p = Panel::new(
        lr_caption(report, lr),
        "step (SGD updates)",
        "loss ½‖o − y‖² per sample (log scale)",
        true,
    );
    p.x_range = Some((0.0, (cfg.steps as f64).max(1.0)));
    p.guides.push((
        report.reference.linear_fit_train_loss.0,
        "best linear model (train)".into(),
    ));
    p.top_edge_label = Some(format!(
        "top edge: diverged (loss inf/NaN or ×{:.0e})",
        cfg.diverge_factor
    ));
    for r in report.runs.iter().filter(|r| r.lr == lr) {
        let color = norm_color(r.norm);
        let train = loss_points(r, &r.history.train_loss);
        let test = loss_points(r, &r.history.test_loss);
        let label = match &r.history.divergence {
            None => r.label.clone(),
            Some(d) => format!("{} (diverged at step {})", r.label, d.step),
        };
        // A run that diverged at once has a single finite point: show it as a dot.
        let few = train.iter().filter(|p| p.1.is_finite()).count() < 2;
        let mut s = Series::new(label, color, train);
        s.marker = (few).then_some(crate::plot::Marker::Circle);
        p.series.push(s);
        let mut t = Series::new(format!("{} test", r.label), color, test);
        t.dash = crate::plot::Dash::Dashed;
        t.legend = false;
        p.series.push(t);
    }
    p
}

/// Draw the loss curves into `path`: one panel per learning rate.
pub fn draw_loss(report: &TrainReport, path: &Path) -> Result<crate::plot::Layout> {
    let cfg = &report.config;
    let panels: Vec<Panel> = cfg.lrs.iter().map(|&lr| lr_panel(report, lr)).collect();
    let (cols, rows) = loss_layout(panels.len());
    let subtitle = format!(
        "{}  ·  solid: training set, dashed: test set (BN in eval mode)",
        short_title(cfg)
    );
    Grid::new(rows, cols, (900, 640)).draw_panels(
        path,
        "Training with and without BatchNorm across learning rates",
        &subtitle,
        &panels,
    )
}

/// Up to four hidden layers spread from the input side to the output side (1-based), and the
/// output layer.
pub fn shown_layers(depth: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..4)
        .map(|k| 1 + ((depth - 1) as f64 * k as f64 / 3.0).round() as usize)
        .collect();
    v.dedup();
    v
}

/// The two diagnostics panels of one run: update-to-weight ratio and gradient norm over the
/// steps, for the [`shown_layers`] (coloured input side to output side) and the output layer
/// (dashed dark grey).
fn layer_panels(report: &TrainReport, run: &TrainRun) -> (Panel, Panel) {
    let cfg = &report.config;
    let d = &run.history.layers;
    let suffix = match &run.history.divergence {
        None => String::new(),
        Some(dv) => format!(" (diverged at step {})", dv.step),
    };
    let mut ratio = Panel::new(
        format!("{}: update / weight{suffix}", run.label),
        "step (SGD updates)",
        "std(lr·∂L/∂W) / std(W) (log)",
        true,
    );
    let mut norm = Panel::new(
        format!("{}: gradient norm{suffix}", run.label),
        "step (SGD updates)",
        "‖∂L/∂W_l‖ (log scale)",
        true,
    );
    for p in [&mut ratio, &mut norm] {
        p.x_range = Some((0.0, (cfg.steps as f64).max(1.0)));
    }
    ratio
        .guides
        .push((1e-3, "1e-3 (rule of thumb)".to_string()));
    let xs: Vec<f64> = d.steps.iter().map(|&s| s as f64).collect();
    let mut layer_series = |idx: usize, label: String, color: RGBColor, dashed: bool| {
        let pts = |v: &Vec<Num>| -> Vec<(f64, f64)> {
            xs.iter().zip(v).map(|(&x, y)| (x, y.0)).collect()
        };
        let rp = pts(&d.update_ratio[idx]);
        let few = rp.len() < 3;
        let mut a = Series::new(label.clone(), color, rp);
        let mut b = Series::new(label, color, pts(&d.grad_norm[idx]));
        for s in [&mut a, &mut b] {
            s.dash = if dashed {
                crate::plot::Dash::Dashed
            } else {
                crate::plot::Dash::Solid
            };
            s.marker = (few).then_some(crate::plot::Marker::Circle);
        }
        ratio.series.push(a);
        norm.series.push(b);
    };
    let hidden = shown_layers(cfg.depth);
    let n = hidden.len();
    for (k, &l) in hidden.iter().enumerate() {
        let t = if n > 1 {
            k as f64 / (n - 1) as f64
        } else {
            0.0
        };
        layer_series(l - 1, format!("layer {l}"), ramp(t), false);
    }
    layer_series(
        cfg.depth,
        "output layer".to_string(),
        RGBColor(40, 40, 40),
        true,
    );
    (ratio, norm)
}

/// The smallest and largest positive finite value over every series of `panels`.
fn shared_extent<'a>(panels: impl Iterator<Item = &'a Panel>) -> Option<(f64, f64)> {
    panels
        .flat_map(|p| &p.series)
        .map(|s| extent(s.points.iter()))
        .fold(None, union)
}

/// Draw the per-layer diagnostics of the runs at `config.diag_lr` into `path`: one row per
/// configuration, update-to-weight ratio on the left and gradient norm on the right, each
/// column on one y scale so the rows compare directly.
pub fn draw_layers(report: &TrainReport, path: &Path) -> Result<crate::plot::Layout> {
    let cfg = &report.config;
    let lr = cfg.diag_lr.unwrap_or(f64::NAN);
    let runs: Vec<&TrainRun> = report.runs.iter().filter(|r| r.lr == lr).collect();
    let mut rows: Vec<(Panel, Panel)> = runs.iter().map(|r| layer_panels(report, r)).collect();
    // Keep the 1e-3 guide on the scale.
    let ratio_range = union(shared_extent(rows.iter().map(|r| &r.0)), Some((1e-3, 1e-3)));
    let norm_range = shared_extent(rows.iter().map(|r| &r.1));
    for (ratio, norm) in &mut rows {
        ratio.y_range = ratio_range;
        norm.y_range = norm_range;
    }
    let subtitle = format!("learning rate {} · {}", Short(lr), short_title(cfg));
    Grid::new(runs.len().max(1), 2, (900, 520)).draw_panels(
        path,
        "Per-layer update-to-weight ratio and gradient norm during training",
        &subtitle,
        rows.iter().flat_map(|(ratio, norm)| [ratio, norm]),
    )
}

impl Figures for crate::experiment::train::Train {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![
            Figure {
                file: "train_loss.png",
                draw: draw_loss,
            },
            Figure {
                file: "train_layers.png",
                draw: draw_layers,
            },
        ]
    }
}
