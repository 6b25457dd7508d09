//! `shattered.png`: the shape of Balduzzi et al.'s Figures 1 and 2. Top rows: `dy/dx` against
//! `x` for each architecture (row) and depth (column), first seed; bottom row: the gradient's
//! autocorrelation against the lag, one panel per depth with one line per architecture (mean
//! over seeds, band min-max over seeds).

use std::path::Path;

use anyhow::Result;
use plotters::style::RGBColor;

use crate::experiment::shattered::{Arch, ShatteredArm, ShatteredReport, title};
use crate::plot::{COOL, Figure, Figures, Grid, Panel, Series, WARM};

fn color(arch: Arch) -> RGBColor {
    match arch {
        Arch::Feedforward => WARM[0],
        Arch::FeedforwardBn => COOL[0],
        Arch::ResnetBn => COOL[2],
    }
}

/// `dy/dx` of the first seed along the grid.
fn gradient_panel(report: &ShatteredReport, arm: &ShatteredArm) -> Panel {
    let first = &arm.seeds[0];
    let mut p = Panel::new(
        format!(
            "{}, depth {}: lag-1 r = {}",
            arm.name,
            arm.depth,
            crate::stats::fmt_num(arm.lag1_correlation.0)
        ),
        "input x (dimensionless)",
        format!("dy/dx (seed {})", first.seed),
        false,
    );
    p.x_range = Some((
        crate::experiment::shattered::X_MIN,
        crate::experiment::shattered::X_MAX,
    ));
    let points = report
        .x
        .iter()
        .zip(&first.gradient)
        .map(|(x, g)| (x.0, g.0))
        .collect();
    // No legend: the caption names the architecture and the y label the seed.
    let mut s = Series::new(format!("seed {}", first.seed), color(arm.name), points);
    s.legend = false;
    p.series.push(s);
    p
}

/// The autocorrelation against the lag at one depth: one line per architecture.
fn autocorrelation_panel(report: &ShatteredReport, depth: usize, legend: bool) -> Panel {
    let bands = report.config.seeds > 1;
    let mut p = Panel::new(
        format!("Autocorrelation of dy/dx, depth {depth}"),
        "lag k (grid steps)",
        "autocorrelation r_k",
        false,
    );
    p.x_range = Some((0.0, report.config.max_lag as f64));
    p.y_range = Some((-0.3, 1.0));
    p.integer_x = true;
    for arm in report.arms.iter().filter(|a| a.depth == depth) {
        let ac = &arm.autocorrelation;
        let mut s = Series::new(
            if bands {
                format!("{}: mean, band min-max over seeds", arm.name)
            } else {
                arm.name.name().to_string()
            },
            color(arm.name),
            ac.mean
                .iter()
                .enumerate()
                .map(|(k, v)| (k as f64, v.0))
                .collect(),
        );
        if bands {
            s.band = (0..ac.mean.len())
                .map(|k| (k as f64, ac.min[k].0, ac.max[k].0))
                .collect();
        }
        s.legend = legend;
        p.series.push(s);
    }
    // The white-noise band as two dashed grey lines (not guides, which every panel would list
    // in its legend): listed once, in the panel that carries the legend.
    let x1 = report.config.max_lag as f64;
    for (i, y) in [report.noise_floor, -report.noise_floor]
        .into_iter()
        .enumerate()
    {
        let mut s = Series::new(
            format!("±2/sqrt({}): white-noise band", report.config.points()),
            RGBColor(90, 90, 90),
            vec![(0.0, y), (x1, y)],
        );
        s.dash = crate::plot::Dash::Dashed;
        s.legend = legend && i == 0;
        p.series.push(s);
    }
    p
}

/// Draw the report into `path`: `archs + 1` rows of `depths` panels.
pub fn draw(report: &ShatteredReport, path: &Path) -> Result<crate::plot::Layout> {
    let cfg = &report.config;
    let cols = cfg.depths.len();
    let mut panels = Vec::new();
    for &arch in &cfg.archs {
        for &depth in &cfg.depths {
            let arm = report
                .arms
                .iter()
                .find(|a| a.name == arch && a.depth == depth)
                .expect("every (architecture, depth) pair is run");
            panels.push(gradient_panel(report, arm));
        }
    }
    for (i, &depth) in cfg.depths.iter().enumerate() {
        panels.push(autocorrelation_panel(report, depth, i == 0));
    }
    Grid::new(cfg.archs.len() + 1, cols, (800, 520)).draw_panels(
        path,
        "Shattered gradients (Balduzzi et al. 2017): dy/dx of a scalar network along its input",
        &format!(
            "{}; BN statistics of the grid held fixed; bottom row: autocorrelation over lags",
            title(cfg)
        ),
        &panels,
    )
}

impl Figures for crate::experiment::shattered::Shattered {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![Figure {
            file: "shattered.png",
            draw,
        }]
    }
}
