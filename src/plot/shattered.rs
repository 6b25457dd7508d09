//! The figures of `bn-lab shattered`.
//!
//! - `shattered.png` (headline slide): the lag-1 correlation of `dy/dx` against depth per
//!   architecture (mean over seeds, band min-max over seeds, each number written beside its
//!   point), the autocorrelation against the lag at the deepest depth (the shallowest dotted),
//!   and seed 0's gradient along x at the deepest depth, one trace per architecture, each
//!   scaled to its own maximum and stacked, so white noise and a random walk are seen side by
//!   side whatever their scale.
//! - `shattered_detail.png`: the shape of Balduzzi et al.'s Figures 1 and 2. Top rows: `dy/dx`
//!   against `x` for each architecture (row) and depth (column), first seed; bottom row: the
//!   autocorrelation against the lag, one panel per depth.
//!
//! Each architecture has one colour and one marker in every panel: `feedforward` as BN off
//! elsewhere (vermillion squares), `feedforward+bn` as its BN arm elsewhere
//! ([`norm_color`]/[`norm_marker`], blue circles for the default BN), `resnet+bn` a third pair.

use anyhow::Result;
use plotters::style::RGBColor;

use crate::config::Normaliser;
use crate::experiment::shattered::{
    Arch, Prediction, ShatteredArm, ShatteredReport, X_MAX, X_MIN, title,
};
use crate::plot::arms::{norm_color, norm_marker};
use crate::plot::chart::{
    Dash, Grid, LegendItem, Marker, Note, Panel, Png, Sample, Series, Slide, okabe_ito,
};
use crate::plot::{Figure, Figures};

/// The colour and marker of an architecture whose `+bn` variants use `bn`.
pub fn arch_style(arch: Arch, bn: Normaliser) -> (RGBColor, Marker) {
    let std = |k: usize| std_block_style(k, bn);
    match arch {
        Arch::Preact => std(0),
        Arch::PreactBn => std(1),
        Arch::PreactSkipinit => std(2),
        Arch::BasicBn => std(3),
        Arch::Feedforward => (norm_color(Normaliser::Off), norm_marker(Normaliser::Off)),
        Arch::FeedforwardBn => (norm_color(bn), norm_marker(bn)),
        Arch::ResnetBn => {
            // A pair that no BN arm of this run uses.
            let color = if norm_color(bn) == okabe_ito::BLUISH_GREEN {
                okabe_ito::BLACK
            } else {
                okabe_ito::BLUISH_GREEN
            };
            let marker = if norm_marker(bn) == Marker::TriangleUp {
                Marker::Diamond
            } else {
                Marker::TriangleUp
            };
            (color, marker)
        }
        Arch::Resnet => {
            // A fourth pair that neither the BN arm nor resnet+bn uses.
            let color = if norm_color(bn) == okabe_ito::REDDISH_PURPLE {
                okabe_ito::ORANGE
            } else {
                okabe_ito::REDDISH_PURPLE
            };
            let marker = if norm_marker(bn) == Marker::TriangleDown {
                Marker::Cross
            } else {
                Marker::TriangleDown
            };
            (color, marker)
        }
    }
}

/// The `k`-th standard-block architecture's pair: the colours and markers the four
/// one-layer architectures leave free, in turn (three colours and two markers, so the four
/// pairs differ from each other and from the one-layer architectures' by colour).
fn std_block_style(k: usize, bn: Normaliser) -> (RGBColor, Marker) {
    let taken: Vec<(RGBColor, Marker)> = [
        Arch::Feedforward,
        Arch::FeedforwardBn,
        Arch::ResnetBn,
        Arch::Resnet,
    ]
    .into_iter()
    .map(|a| arch_style(a, bn))
    .collect();
    let colors: Vec<RGBColor> = [
        okabe_ito::SKY_BLUE,
        okabe_ito::BLACK,
        okabe_ito::ORANGE,
        okabe_ito::BLUISH_GREEN,
        okabe_ito::REDDISH_PURPLE,
        okabe_ito::BLUE,
        okabe_ito::VERMILLION,
    ]
    .into_iter()
    .filter(|c| taken.iter().all(|t| t.0 != *c))
    .collect();
    let markers: Vec<Marker> = [
        Marker::Diamond,
        Marker::Cross,
        Marker::TriangleUp,
        Marker::TriangleDown,
        Marker::Circle,
        Marker::Square,
    ]
    .into_iter()
    .filter(|m| taken.iter().all(|t| t.1 != *m))
    .collect();
    (colors[k % colors.len()], markers[k % markers.len()])
}

fn style(report: &ShatteredReport, arch: Arch) -> (RGBColor, Marker) {
    arch_style(arch, report.config.bn)
}

/// A correlation as the table prints it: `0.887`, `-0.012`, `NaN`.
fn fmt_r(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        crate::stats::fmt_num(v)
    }
}

fn arm(report: &ShatteredReport, arch: Arch, depth: usize) -> &ShatteredArm {
    report
        .arms
        .iter()
        .find(|a| a.name == arch && a.depth == depth)
        .expect("every (architecture, depth) pair is run")
}

fn deepest(report: &ShatteredReport) -> usize {
    report.config.depths.iter().copied().max().unwrap_or(1)
}

fn shallowest(report: &ShatteredReport) -> usize {
    report.config.depths.iter().copied().min().unwrap_or(1)
}

/// The white-noise band of the mean over seeds, `±3/sqrt(points * seeds)`, as two guides with
/// one legend line.
fn noise_guides(report: &ShatteredReport) -> Vec<(f64, String)> {
    let cfg = &report.config;
    let label = if cfg.seeds > 1 {
        format!(
            "white noise, mean of {}: |r| < {} (3/√({}·{}))",
            cfg.seeds,
            fmt_r(report.mean_noise_band),
            cfg.points(),
            cfg.seeds
        )
    } else {
        format!(
            "white noise: |r| < {} (3/√{})",
            fmt_r(report.mean_noise_band),
            cfg.points()
        )
    };
    vec![
        (report.mean_noise_band, label.clone()),
        (-report.mean_noise_band, label),
    ]
}

/// What the depth axis counts, as its label says it: hidden layers for the feedforward and
/// one-layer residual architectures, blocks (each two layers, after a stem) for the standard
/// ones ([`Arch::block`]), and which is which when a run has both.
pub fn depth_axis_label(archs: &[Arch], log: bool) -> String {
    let blocks = archs.iter().filter(|a| a.block().is_some()).count();
    let log = if log { ", log" } else { "" };
    if blocks == 0 {
        format!("depth L (hidden layers{log})")
    } else if blocks == archs.len() {
        format!("depth L (blocks{log})")
    } else {
        format!("depth L{log} (layers, or blocks for preact/basic)")
    }
}

/// Up to this many depths the lag-1 panel draws markers with min-max whiskers, not lines:
/// a straight line between depths 24 and 50 would claim values nobody measured.
pub const FEW_DEPTHS: usize = 5;

/// Headline panel: the lag-1 correlation against depth, one series per architecture (mean over
/// seeds, min-max over seeds), each mean written beside its point. Its series' points are
/// `(depth, arm.lag1_correlation)` in `config.depths` order (sorted by depth). Up to
/// [`FEW_DEPTHS`] depths: markers only, each architecture nudged sideways so that their
/// min-max whiskers stay apart; more: lines with a shaded min-max band.
pub fn lag1_panel(report: &ShatteredReport) -> Panel {
    let cfg = &report.config;
    let mut p = Panel::new(
        "Lag-1 correlation vs depth",
        depth_axis_label(&cfg.archs, false),
        "lag-1 correlation r",
        false,
    );
    let mut depths = cfg.depths.clone();
    depths.sort_unstable();
    let (lo, hi) = (depths[0] as f64, depths[depths.len() - 1] as f64);
    let pad = ((hi - lo) * 0.06).max(1.0);
    let few = depths.len() <= FEW_DEPTHS;
    if few {
        p.x_range = Some((lo - pad, hi + pad));
    } else {
        // A dense depth grid (1, 2, 4, ..., 50) on a log axis, with each architecture's
        // prediction (Balduzzi et al. 2017) dotted beside its measured line.
        p.log_x = true;
        p.x_range = Some((lo / 1.2, hi * 1.2));
        p.x_label = depth_axis_label(&cfg.archs, true);
        p.caption = "Lag-1 r vs depth (dotted: theory)".into();
    }
    p.y_range = Some((-0.3, 1.05));
    p.integer_x = true;
    p.guides = noise_guides(report);
    let archs = cfg.archs.len() as f64;
    for (i, &arch) in cfg.archs.iter().enumerate() {
        let (color, marker) = style(report, arch);
        let arms: Vec<&ShatteredArm> = depths.iter().map(|&d| arm(report, arch, d)).collect();
        let nudge = if few {
            (i as f64 - (archs - 1.0) / 2.0) * pad * 0.5
        } else {
            0.0
        };
        let x = |a: &ShatteredArm| a.depth as f64 + nudge;
        let mut s = Series::new(
            arch.name(),
            color,
            arms.iter().map(|a| (x(a), a.lag1_correlation.0)).collect(),
        );
        s.marker = Some(marker);
        s.no_line = few;
        // Markers alone: the legend lists each architecture once, as the other panels draw it.
        s.legend = !few;
        let spread: Vec<(f64, f64, f64)> = arms
            .iter()
            .map(|a| {
                let r = a.seeds.iter().map(|s| s.lag1_correlation.0);
                let lo = r.clone().fold(f64::INFINITY, f64::min);
                let hi = r.fold(f64::NEG_INFINITY, f64::max);
                (x(a), lo, hi)
            })
            .collect();
        if cfg.seeds > 1 && few {
            for &(x, lo, hi) in &spread {
                let mut w = Series::new(format!("{arch} min-max"), color, vec![(x, lo), (x, hi)]);
                w.width = 3;
                w.legend = false;
                p.series.push(w);
            }
        } else if cfg.seeds > 1 {
            s.band = spread;
        }
        p.series.push(s);
        if !few {
            p.series.push(prediction_series(report, arch, color));
        }
        for a in &arms {
            // Left of the last point, right of the others, so a note stays beside its point;
            // on a dense grid only the deepest is written.
            let last = a.depth as f64 == hi && depths.len() > 1;
            if !few && !last {
                continue;
            }
            p.notes.push(Note {
                x: x(a),
                y: a.lag1_correlation.0,
                text: fmt_r(a.lag1_correlation.0),
                color,
                offset: (if last { -95 } else { 12 }, 18 - 18 * i as i32),
            });
        }
    }
    p
}

/// `arch`'s predicted correlation against depth ([`Prediction::curve`]), dotted in its colour,
/// without a legend line (the slide's note says what dotted means).
pub fn prediction_series(report: &ShatteredReport, arch: Arch, color: RGBColor) -> Series {
    let p = prediction(report, arch);
    let mut s = Series::new(
        format!("{arch}: {} ({})", p.formula, p.source),
        color,
        p.curve.iter().map(|c| (c.depth as f64, c.r.0)).collect(),
    );
    s.dash = Dash::Dotted;
    s.width = 3;
    s.legend = false;
    s
}

/// `Thm 1: 2^-L; Thm 3: 1/sqrt(L)`: each theorem drawn, once.
fn theory_list(report: &ShatteredReport) -> String {
    let mut seen: Vec<String> = Vec::new();
    for &a in &report.config.archs {
        let p = prediction(report, a);
        let thm = p.source.split(", ").nth(1).unwrap_or(&p.source);
        let item = format!("{thm}: {}", p.formula);
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    seen.join("; ")
}

fn prediction(report: &ShatteredReport, arch: Arch) -> &Prediction {
    report
        .predictions
        .iter()
        .find(|p| p.name == arch)
        .expect("one prediction per architecture")
}

/// Headline panel: the autocorrelation against the lag at the deepest depth (solid, band
/// min-max over seeds) and, when the run has another depth, at the shallowest (dotted).
fn autocorrelation_slide_panel(report: &ShatteredReport) -> Panel {
    let cfg = &report.config;
    let (deep, shallow) = (deepest(report), shallowest(report));
    let mut p = Panel::new(
        if shallow < deep {
            format!("Autocorrelation, depth {deep} (dotted: {shallow})")
        } else {
            format!("Autocorrelation, depth {deep}")
        },
        "lag k (grid steps)",
        "autocorrelation r_k",
        false,
    );
    p.x_range = Some((0.0, cfg.max_lag as f64));
    p.y_range = Some((-0.3, 1.05));
    p.integer_x = true;
    p.guides = noise_guides(report);
    let curve = |a: &ShatteredArm| {
        a.autocorrelation
            .mean
            .iter()
            .enumerate()
            .map(|(k, v)| (k as f64, v.0))
            .collect::<Vec<_>>()
    };
    for (i, &arch) in cfg.archs.iter().enumerate() {
        let (color, marker) = style(report, arch);
        let a = arm(report, arch, deep);
        let mut s = Series::new(arch.name(), color, curve(a));
        s.marker = Some(marker);
        s.marker_phase = i;
        if cfg.seeds > 1 {
            let ac = &a.autocorrelation;
            s.band = (0..ac.mean.len())
                .map(|k| (k as f64, ac.min[k].0, ac.max[k].0))
                .collect();
        }
        p.series.push(s);
        if shallow < deep {
            let mut s = Series::new(
                format!("{arch}, depth {shallow}"),
                color,
                curve(arm(report, arch, shallow)),
            );
            s.dash = Dash::Dotted;
            s.width = 2;
            s.legend = false;
            p.series.push(s);
        }
    }
    p
}

/// Seed 0's gradient divided by its largest |value|, in `[-1, 1]`, or `None` when it has no
/// finite non-zero value.
fn scaled_gradient(a: &ShatteredArm) -> Option<(f64, Vec<f64>)> {
    let g: Vec<f64> = a.seeds[0].gradient.iter().map(|v| v.0).collect();
    let max = g
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    (max > 0.0).then(|| (max, g.iter().map(|v| v / max).collect()))
}

/// Headline panel: seed 0's `dy/dx` along x at `depth`, each architecture scaled to its own
/// largest |value| and shifted down by [`SHIFT`] per architecture; a note at each trace gives
/// seed 0's lag-1 correlation `r` and that largest |value|.
fn traces_panel(report: &ShatteredReport, depth: usize) -> Panel {
    let cfg = &report.config;
    let seed = report.arms[0].seeds[0].seed;
    let mut p = Panel::new(
        format!("dy/dx along x, depth {depth}, seed {seed}"),
        "input x",
        "dy/dx / max |dy/dx|, shifted",
        false,
    );
    p.x_range = Some((X_MIN, X_MAX));
    p.y_range = Some((-SHIFT * (cfg.archs.len() as f64 - 1.0) - 1.1, 1.7));
    for (i, &arch) in cfg.archs.iter().enumerate() {
        let (color, marker) = style(report, arch);
        let a = arm(report, arch, depth);
        let offset = -SHIFT * i as f64;
        let (max, g) = scaled_gradient(a).unwrap_or((0.0, vec![f64::NAN; report.x.len()]));
        let mut s = Series::new(
            arch.name(),
            color,
            report
                .x
                .iter()
                .zip(&g)
                .map(|(x, v)| (x.0, v + offset))
                .collect(),
        );
        s.marker = Some(marker);
        s.marker_phase = i;
        p.series.push(s);
        p.notes.push(Note {
            x: X_MIN,
            y: offset + 1.0,
            text: format!(
                "r = {}, max {}",
                fmt_r(a.seeds[0].lag1_correlation.0),
                sig3(max)
            ),
            color,
            offset: (4, 16),
        });
    }
    p
}

/// Three significant digits: `7.76`, `224`, `1.50e5`.
fn sig3(v: f64) -> String {
    if v.is_finite() && v != 0.0 && (1e-2..1e4).contains(&v.abs()) {
        let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        crate::stats::fmt_num(v)
    }
}

/// How far apart the stacked traces sit (each spans `[-1, 1]`).
const SHIFT: f64 = 2.6;

/// The headline slide's panels: lag-1 correlation against depth, autocorrelation against lag,
/// and the gradients themselves at the shallowest and the deepest depth.
pub fn headline_panels(report: &ShatteredReport) -> Vec<Panel> {
    let (deep, shallow) = (deepest(report), shallowest(report));
    let mut panels = vec![lag1_panel(report), autocorrelation_slide_panel(report)];
    if shallow < deep {
        panels.push(traces_panel(report, shallow));
    }
    panels.push(traces_panel(report, deep));
    panels
}

/// Draw the headline slide.
pub fn draw_headline(report: &ShatteredReport) -> Result<Png> {
    let cfg = &report.config;
    let (deep, shallow) = (deepest(report), shallowest(report));
    let mut slide = Slide::new(
        "Shattered gradients: how alike is dy/dx at neighbouring inputs?",
        format!("{}; BN statistics of the grid held fixed", title(cfg)),
        headline_panels(report),
    );
    if shallow == deep {
        // One row of three: room for the traces.
        slide.widths = vec![5, 5, 6];
    }
    if cfg.seeds > 1 {
        slide.notes.push(LegendItem::new(
            format!("bars and bands: min-max, {} seeds", cfg.seeds),
            Sample::Band(RGBColor(120, 120, 120)),
        ));
    }
    if cfg.depths.len() > FEW_DEPTHS {
        slide.notes.push(LegendItem::new(
            format!(
                "dotted, lag-1 panel: Balduzzi et al. 2017 ({}), for inputs whose activation patterns are unrelated",
                theory_list(report)
            ),
            Sample::Line {
                color: RGBColor(90, 90, 90),
                dash: Dash::Dotted,
                marker: None,
                width: 3,
            },
        ));
    }
    if shallow < deep {
        slide.notes.push(LegendItem::new(
            format!("dotted: depth {shallow}"),
            Sample::Line {
                color: RGBColor(90, 90, 90),
                dash: Dash::Dotted,
                marker: None,
                width: 2,
            },
        ));
    }
    slide.draw()
}

/// `dy/dx` of the first seed along the grid.
fn gradient_panel(report: &ShatteredReport, arm: &ShatteredArm) -> Panel {
    let first = &arm.seeds[0];
    let mut p = Panel::new(
        format!(
            "{}, depth {}: lag-1 r = {}",
            arm.name,
            arm.depth,
            fmt_r(arm.lag1_correlation.0)
        ),
        "input x (dimensionless)",
        format!("dy/dx (seed {})", first.seed),
        false,
    );
    p.x_range = Some((X_MIN, X_MAX));
    let points = report
        .x
        .iter()
        .zip(&first.gradient)
        .map(|(x, g)| (x.0, g.0))
        .collect();
    // No legend: the caption names the architecture and the y label the seed.
    let mut s = Series::new(
        format!("seed {}", first.seed),
        style(report, arm.name).0,
        points,
    );
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
    for (i, &arch) in report.config.archs.iter().enumerate() {
        let a = arm(report, arch, depth);
        let ac = &a.autocorrelation;
        let (color, marker) = style(report, arch);
        let mut s = Series::new(
            arch.name(),
            color,
            ac.mean
                .iter()
                .enumerate()
                .map(|(k, v)| (k as f64, v.0))
                .collect(),
        );
        s.marker = Some(marker);
        s.marker_phase = i;
        if bands {
            s.band = (0..ac.mean.len())
                .map(|k| (k as f64, ac.min[k].0, ac.max[k].0))
                .collect();
        }
        s.legend = legend;
        p.series.push(s);
    }
    // The white-noise band as two grey dashed lines (not guides, which a panel's legend would
    // list twice), listed once.
    let x1 = report.config.max_lag as f64;
    let label = noise_guides(report).swap_remove(0).1;
    for (i, y) in [report.mean_noise_band, -report.mean_noise_band]
        .into_iter()
        .enumerate()
    {
        let mut s = Series::new(label.clone(), RGBColor(90, 90, 90), vec![(0.0, y), (x1, y)]);
        s.dash = Dash::Dashed;
        s.width = 2;
        s.legend = legend && i == 0;
        p.series.push(s);
    }
    p
}

/// Draw the detail figure: `archs + 1` rows of `depths` panels.
pub fn draw_detail(report: &ShatteredReport) -> Result<Png> {
    let cfg = &report.config;
    let cols = cfg.depths.len();
    let mut panels = Vec::new();
    for &arch in &cfg.archs {
        for &depth in &cfg.depths {
            panels.push(gradient_panel(report, arm(report, arch, depth)));
        }
    }
    // The legend beside the last panel, whose bands are the widest (at depth 1 the BN nets'
    // seeds agree and the legend would explain a band too thin to see).
    for (i, &depth) in cfg.depths.iter().enumerate() {
        panels.push(autocorrelation_panel(report, depth, i + 1 == cols));
    }
    Grid::new(cfg.archs.len() + 1, cols, (800, 520)).draw_panels(
        "Shattered gradients (Balduzzi et al. 2017): dy/dx of a scalar network along its input",
        &format!(
            "{}; BN statistics of the grid held fixed; bottom row: autocorrelation over lags{}",
            title(cfg),
            if cfg.seeds > 1 {
                " (mean, band min-max over seeds)"
            } else {
                ""
            }
        ),
        &panels,
    )
}

/// One colour and marker per grid of the spacing figure, coarsest first.
const GRID_STYLES: [(RGBColor, Marker); 4] = [
    (okabe_ito::ORANGE, Marker::Square),
    (okabe_ito::BLUE, Marker::Circle),
    (okabe_ito::BLACK, Marker::TriangleUp),
    (okabe_ito::REDDISH_PURPLE, Marker::Diamond),
];

fn grid_style(i: usize) -> (RGBColor, Marker) {
    let (color, marker) = GRID_STYLES[i % GRID_STYLES.len()];
    // Past the fourth grid the colours repeat with other markers.
    let marker = if i >= GRID_STYLES.len() {
        [
            Marker::Cross,
            Marker::TriangleDown,
            Marker::Diamond,
            Marker::Circle,
        ][i % 4]
    } else {
        marker
    };
    (color, marker)
}

/// One architecture of the spacing figure: per grid its lag-1 correlation against depth
/// (solid, markers) and its correlation at the fixed distance (dotted, same colour).
pub fn spacing_panel(report: &ShatteredReport, arch: Arch, legend: bool) -> Panel {
    let spacing = report
        .spacing
        .as_ref()
        .expect("the spacing figure is drawn only with --grids");
    let mut depths = report.config.depths.clone();
    depths.sort_unstable();
    let (lo, hi) = (depths[0] as f64, depths[depths.len() - 1] as f64);
    let mut p = Panel::new(
        format!("{arch}"),
        depth_axis_label(&[arch], false),
        "correlation of dy/dx",
        false,
    );
    if hi >= 4.0 * lo {
        p.log_x = true;
        p.x_range = Some((lo / 1.2, hi * 1.2));
        p.x_label = depth_axis_label(&[arch], true);
    } else {
        let pad = ((hi - lo) * 0.06).max(1.0);
        p.x_range = Some((lo - pad, hi + pad));
    }
    p.integer_x = true;
    p.y_range = Some((-0.3, 1.05));
    for (i, g) in spacing.grids.iter().enumerate() {
        let (color, marker) = grid_style(i);
        let arms: Vec<_> = depths
            .iter()
            .filter_map(|&d| g.arms.iter().find(|a| a.name == arch && a.depth == d))
            .collect();
        let mut s = Series::new(
            format!("lag 1, {} points (step {:.4})", g.points, g.step),
            color,
            arms.iter()
                .map(|a| (a.depth as f64, a.lag1_correlation.0))
                .collect(),
        );
        s.marker = Some(marker);
        s.marker_phase = i;
        s.legend = legend;
        p.series.push(s);
        let mut d = Series::new(
            format!(
                "at distance {:.4}, {} points (lag {:.2})",
                spacing.distance, g.points, g.lag
            ),
            color,
            arms.iter()
                .map(|a| (a.depth as f64, a.at_distance.0))
                .collect(),
        );
        d.dash = Dash::Dotted;
        d.width = 3;
        d.legend = legend;
        p.series.push(d);
    }
    p
}

/// The spacing figure (`--grids`): one panel per architecture.
pub fn draw_spacing(report: &ShatteredReport) -> Result<Png> {
    let cfg = &report.config;
    let distance = report.spacing.as_ref().map_or(f64::NAN, |s| s.distance);
    let cols = cfg.archs.len().min(2);
    let rows = cfg.archs.len().div_ceil(cols);
    let panels: Vec<Panel> = cfg
        .archs
        .iter()
        .enumerate()
        .map(|(i, &a)| spacing_panel(report, a, i + 1 == cols))
        .collect();
    Grid::new(rows, cols, (1100, 560)).draw_panels(
        "Grid spacing: lag-1 r (solid) rises on finer grids; r at a fixed distance (dotted) does not",
        &format!(
            "{}; distance {:.4} = the coarsest grid's step (lag distance/step, interpolated)",
            title(cfg),
            distance
        ),
        &panels,
    )
}

impl Figures for crate::experiment::shattered::Shattered {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![
            Figure {
                file: "shattered.png",
                draw: draw_headline,
            },
            Figure {
                file: "shattered_detail.png",
                draw: draw_detail,
            },
        ]
    }

    /// With `--grids`, the spacing figure too.
    fn figures_for(
        cfg: &crate::experiment::shattered::ShatteredConfig,
    ) -> Vec<Figure<Self::Report>> {
        let mut f = Self::figures();
        if !cfg.grids.is_empty() {
            f.push(Figure {
                file: "shattered_spacing.png",
                draw: draw_spacing,
            });
        }
        f
    }
}
