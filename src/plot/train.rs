//! `train.png` (the headline: best test loss against learning rate per configuration, and how
//! many updates each run survived), `train_loss.png` (loss curves, one panel per learning rate)
//! and `train_layers.png` (per-layer update-to-weight ratios and gradient norms over steps).

use anyhow::Result;
use plotters::style::RGBColor;

use crate::experiment::train::{
    HigherLr, PlacementVerdict, TrainArm, TrainConfig, TrainReport, TrainRun, short_title,
};
use crate::plot::arms::{arm_color, arm_marker};
use crate::plot::chart::{
    Dash, Grid, LegendItem, Note, Panel, Png, Series, Slide, TITLE_HEIGHT, figure,
    positive_y_extent, ramp, shared_legend, spread_marks, union,
};
use crate::plot::histograms::{self, Curve};
use crate::plot::{Figure, Figures};
use crate::stats::{Num, Short, fmt_num};

/// Spacing of ✕ marks that would sit on top of each other (runs that diverged at the same
/// step), as a share of the x axis: 20-25 px on a detail panel, more than a marker is wide.
const DODGE: f64 = 0.04;

/// Spacing of the configurations' points at one learning rate on the headline, as a share of
/// the swept decades: about 25 px apart.
const LR_DODGE: f64 = 0.03;

/// The swept learning rates, in decades from the smallest to the largest (at least 0.6, so a
/// single learning rate still gets an axis).
fn lr_span(cfg: &TrainConfig) -> f64 {
    let lo = cfg.lrs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = cfg.lrs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (hi / lo).log10().max(0.6)
}

/// Decades between neighbouring configurations' points at one learning rate.
fn dodge_decades(cfg: &TrainConfig) -> f64 {
    LR_DODGE * lr_span(cfg)
}

/// Where the headline draws the point of the `k`-th configuration of `cfg.norms` at learning
/// rate `lr`: shifted by a constant factor per configuration, centred on `lr`, so no two
/// configurations' marks at one learning rate hide each other (the same shift in both panels).
pub fn dodged_lr(cfg: &TrainConfig, k: usize, lr: f64) -> f64 {
    let mid = (cfg.norms.len() as f64 - 1.0) / 2.0;
    lr * 10f64.powf((k as f64 - mid) * dodge_decades(cfg))
}

/// The headline's x range: the sweep, the dodge and a little room either side.
fn lr_axis(cfg: &TrainConfig) -> (f64, f64) {
    let lo = cfg.lrs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = cfg.lrs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = 0.1 + (cfg.norms.len() as f64 - 1.0) / 2.0 * dodge_decades(cfg);
    (lo / 10f64.powf(pad), hi * 10f64.powf(pad))
}

/// What the headline draws for a run: its best test loss, or inf (a ✕ in the top strip) when
/// it diverged, since the best loss of a diverged run is often just its initial loss.
fn headline_loss(run: &TrainRun) -> f64 {
    if run.diverged {
        f64::INFINITY
    } else {
        run.best_test_loss.0
    }
}

/// The runs of configuration `arm`, in the order of the sweep.
fn runs_of(report: &TrainReport, arm: TrainArm) -> impl Iterator<Item = &TrainRun> {
    report.runs.iter().filter(move |r| r.arm == arm)
}

/// The headline's left panel: per configuration (its colour and marker), the best test loss at
/// each learning rate, diverged runs as ✕ in the top strip, and the best learning rate of each
/// configuration written beside its point.
pub fn best_loss_panel(report: &TrainReport) -> Panel {
    let cfg = &report.config;
    let mut p = Panel::new(
        "best test loss at each learning rate",
        "learning rate (log scale)",
        "best test loss (log scale)",
        true,
    );
    p.log_x = true;
    p.x_range = Some(lr_axis(cfg));
    let zero = report.reference.zero_predictor_test_loss.0;
    let linear = report.reference.linear_fit_test_loss.map(|v| v.0);
    // The two levels sit within 0.1% of each other on the non-linear task: one guide then.
    match linear {
        Some(l) if (l / zero - 1.0).abs() < 0.02 => p.guides.push((
            zero,
            format!("predicting 0 ({}) ≈ best linear model", fmt_num(zero)),
        )),
        Some(l) => {
            p.guides
                .push((zero, format!("predicting 0 ({})", fmt_num(zero))));
            p.guides.push((l, "best linear model (test)".into()));
        }
        None => p
            .guides
            .push((zero, format!("predicting 0 ({})", fmt_num(zero)))),
    }
    p.top_edge_label = Some(format!(
        "top strip: diverged (loss inf/NaN or ×{:.0e}); each configuration shifted a little in x",
        cfg.diverge_factor
    ));
    // Room below the lowest point for the labels of the best learning rates.
    let finite = report
        .runs
        .iter()
        .map(headline_loss)
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if lo.is_finite() {
        p.y_range = Some((lo / 4.0, hi.max(linear.unwrap_or(hi)).max(zero)));
    }
    for (k, &norm) in cfg.norms.iter().enumerate() {
        let points: Vec<(f64, f64)> = runs_of(report, norm)
            .map(|r| (dodged_lr(cfg, k, r.lr), headline_loss(r)))
            .collect();
        let best = runs_of(report, norm)
            .filter(|r| headline_loss(r).is_finite())
            .min_by(|a, b| a.best_test_loss.0.total_cmp(&b.best_test_loss.0));
        if let Some(b) = best {
            p.notes.push(Note {
                x: dodged_lr(cfg, k, b.lr),
                y: b.best_test_loss.0,
                text: format!("{} at lr {}", fmt_num(b.best_test_loss.0), Short(b.lr)),
                color: arm_color(norm),
                offset: (-12, -48),
            });
        }
        let mut s = Series::new(norm.label(), arm_color(norm), points);
        s.marker = Some(arm_marker(norm));
        p.series.push(s);
    }
    p
}

/// A headline panel of one number per run, at its learning rate on the dodged axis, one
/// series per configuration (its colour and marker), with `y_range` fixed.
fn per_run_panel(
    report: &TrainReport,
    caption: &str,
    y_label: &str,
    y_range: (f64, f64),
    value: impl Fn(&TrainRun) -> f64,
) -> Panel {
    let cfg = &report.config;
    let mut p = Panel::new(caption, "learning rate (log scale)", y_label, false);
    p.log_x = true;
    p.x_range = Some(lr_axis(cfg));
    p.y_range = Some(y_range);
    for (k, &norm) in cfg.norms.iter().enumerate() {
        let points = runs_of(report, norm)
            .map(|r| (dodged_lr(cfg, k, r.lr), value(r)))
            .collect();
        let mut s = Series::new(norm.label(), arm_color(norm), points);
        s.marker = Some(arm_marker(norm));
        p.series.push(s);
    }
    p
}

/// The headline's right panel: how many SGD updates each run did before it diverged (all of
/// them when it did not), on the same dodged learning-rate axis.
fn survival_panel(report: &TrainReport) -> Panel {
    let steps = report.config.steps;
    let mut p = per_run_panel(
        report,
        "updates before divergence",
        "SGD updates done",
        (0.0, (steps as f64).max(1.0)),
        |r| r.history.steps_done as f64,
    );
    p.guides
        .push((steps as f64, format!("all {steps} updates (no divergence)")));
    p
}

/// The headline's accuracy panel (classification tasks): each run's final test accuracy at
/// its learning rate, on the same dodged axis; a diverged run's is where it stopped. The
/// least-squares linear classifier is the guide.
fn accuracy_panel(report: &TrainReport) -> Panel {
    let mut p = per_run_panel(
        report,
        "final test accuracy",
        "test accuracy (%)",
        (0.0, 100.0),
        |r| 100.0 * r.accuracy.map_or(f64::NAN, |a| a.final_test_accuracy.0),
    );
    if let Some(linear) = report.reference.linear_fit_test_accuracy {
        p.guides
            .push((100.0 * linear.0, "linear classifier (least squares)".into()));
    }
    if let Some(floor) = report.learned_accuracy_floor {
        p.guides.push((
            100.0 * floor.0,
            "at or below: chance (no learning)".to_string(),
        ));
    }
    p
}

/// Draw the headline: best test loss against learning rate, the updates each run
/// survived, and (with classes) the test accuracy.
pub fn draw_headline(report: &TrainReport) -> Result<Png> {
    let cfg = &report.config;
    let placement = report.verdicts.placement.as_ref().map(|v| v.verdict);
    let title = match report.verdicts.higher_lr.as_ref().map(|v| v.verdict) {
        Some(HigherLr::Shown) => {
            "BatchNorm learns at learning rates where the plain network does not"
        }
        // Without a plain network the question is where BN goes.
        None if placement == Some(PlacementVerdict::AfterActivation) => {
            "BatchNorm after the activation reaches the lower best test loss"
        }
        None if placement == Some(PlacementVerdict::BeforeActivation) => {
            "BatchNorm before the activation reaches the lower best test loss"
        }
        _ => "Best test loss against learning rate, per configuration",
    };
    let subtitle = format!("{} · {} SGD steps per run", short_title(cfg), cfg.steps);
    let mut panels = vec![best_loss_panel(report), survival_panel(report)];
    let mut widths = vec![3, 2];
    if cfg.data.task.is_classification() {
        // Three panels: captions short enough for the narrower ones.
        panels[0].caption = "best test loss".into();
        panels[1].caption = "updates done".into();
        panels.push(accuracy_panel(report));
        widths.push(2);
    }
    let mut slide = Slide::new(title, subtitle, panels);
    slide.widths = widths;
    slide.notes.push(LegendItem::text(
        "best test loss: lowest test-set loss during the run (BN in eval mode); label: the best learning rate",
    ));
    slide.draw()
}

/// `(x, y)` points of a loss curve; for a diverged run the last point becomes inf, so it is
/// drawn as a ✕ in the top strip at the divergence step.
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

/// The loss panel of one learning rate: per run, training loss solid (with the configuration's
/// markers) and test loss dashed in the run's colour, a diverged run ending in a ✕ at its
/// divergence step; ✕ marks that would overlap are moved apart. When every run diverged, the x
/// axis covers only the steps they did, and a note says so.
/// The runs at one learning rate, and where their panel's x axis ends: at the last step any
/// run reached when all of them diverged, else at `--steps`.
struct LrRuns<'a> {
    runs: Vec<&'a TrainRun>,
    all_diverged: bool,
    last_step: usize,
    x_range: (f64, f64),
}

impl<'a> LrRuns<'a> {
    fn of(report: &'a TrainReport, lr: f64) -> Self {
        let runs: Vec<&TrainRun> = report.runs.iter().filter(|r| r.lr == lr).collect();
        let all_diverged = !runs.is_empty() && runs.iter().all(|r| r.diverged);
        let last_step = runs.iter().map(|r| r.history.steps_done).max().unwrap_or(0);
        let x_range = if all_diverged {
            (0.0, last_step as f64 + 1.0)
        } else {
            (0.0, (report.config.steps as f64).max(1.0))
        };
        LrRuns {
            runs,
            all_diverged,
            last_step,
            x_range,
        }
    }

    /// Where each diverged run's ✕ goes (in run order), apart from the others'.
    fn divergence_marks(&self) -> Vec<f64> {
        let steps: Vec<f64> = self
            .runs
            .iter()
            .filter_map(|r| r.history.divergence.as_ref().map(|d| d.step as f64))
            .collect();
        let gap = DODGE * (self.x_range.1 - self.x_range.0);
        spread_marks(&steps, gap, self.x_range)
    }

    /// The lowest and the largest positive finite training loss of any run.
    fn loss_extent(&self) -> Option<(f64, f64)> {
        let finite = self
            .runs
            .iter()
            .flat_map(|r| &r.history.train_loss)
            .map(|v| v.0)
            .filter(|v| v.is_finite() && *v > 0.0);
        let (lo, peak) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        lo.is_finite().then_some((lo, peak))
    }
}

/// A curve's points.
type Points = Vec<(f64, f64)>;

/// A run's training and test losses as drawn. When every run at its learning rate diverged
/// there is nothing else to squash: the losses at the divergence are drawn as they were (often
/// finite, and huge), the ✕ above them; otherwise a diverged run ends in a ✕ at its divergence
/// step ([`loss_points`]).
fn run_losses(r: &TrainRun, all_diverged: bool) -> (Points, Points) {
    if all_diverged {
        let pts = |v: &[Num]| -> Points {
            r.history
                .eval_steps
                .iter()
                .zip(v)
                .map(|(&s, v)| (s as f64, v.0))
                .chain(std::iter::once((f64::NAN, f64::INFINITY)))
                .collect()
        };
        (pts(&r.history.train_loss), pts(&r.history.test_loss))
    } else {
        (
            loss_points(r, &r.history.train_loss),
            loss_points(r, &r.history.test_loss),
        )
    }
}

/// A run's training curve (in the legend, with markers, saying where it diverged) and its
/// dashed test curve (unlisted, and without a ✕ of its own: it would sit on the training one).
fn run_series(cfg: &TrainConfig, r: &TrainRun, train: Points, test: Points) -> [Series; 2] {
    let color = arm_color(r.arm);
    let label = match &r.history.divergence {
        None => r.label.clone(),
        Some(d) => format!("{} (diverged at step {})", r.label, d.step),
    };
    let mut s = Series::new(label, color, train);
    s.marker = Some(arm_marker(r.arm));
    s.marker_phase = cfg.norms.iter().position(|&n| n == r.arm).unwrap_or(0);
    let mut t = Series::new(format!("{} test", r.label), color, test);
    t.dash = Dash::Dashed;
    t.legend = false;
    if r.diverged {
        t.points.pop();
    }
    [s, t]
}

/// When every run diverged: the largest loss any run reached, written in the lower right
/// corner, which the curves (rising from the initial loss at step 0) leave empty.
fn peak_note(at: &LrRuns<'_>) -> Option<Note> {
    if !at.all_diverged {
        return None;
    }
    let (lo, peak) = at.loss_extent()?;
    let last_step = at.last_step;
    Some(Note {
        x: at.x_range.1,
        y: lo,
        text: format!(
            "loss up to {} within {last_step} update{}",
            fmt_num(peak),
            if last_step == 1 { "" } else { "s" }
        ),
        color: RGBColor(60, 60, 60),
        offset: (0, 16),
    })
}

fn lr_panel(report: &TrainReport, lr: f64) -> Panel {
    let cfg = &report.config;
    let at = LrRuns::of(report, lr);
    let mut p = Panel::new(
        lr_caption(report, lr),
        "step (SGD updates)",
        cfg.data.loss.axis_label(),
        true,
    );
    p.integer_x = at.all_diverged;
    p.x_range = Some(at.x_range);
    if let Some(linear) = report.reference.linear_fit_train_loss {
        p.guides
            .push((linear.0, "best linear model (train)".into()));
    }
    p.top_edge_label = Some(format!(
        "top strip: diverged (loss inf/NaN or ×{:.0e})",
        cfg.diverge_factor
    ));
    let mut marks = at.divergence_marks().into_iter();
    for r in &at.runs {
        let (mut train, mut test) = run_losses(r, at.all_diverged);
        if r.history.divergence.is_some() {
            let x = marks.next().unwrap_or(f64::NAN);
            for pts in [&mut train, &mut test] {
                if let Some(last) = pts.last_mut() {
                    last.0 = x;
                }
            }
        }
        p.series.extend(run_series(cfg, r, train, test));
    }
    p.notes.extend(peak_note(&at));
    p
}

/// Draw the loss curves: one panel per learning rate.
pub fn draw_loss(report: &TrainReport) -> Result<Png> {
    let cfg = &report.config;
    let panels: Vec<Panel> = cfg.lrs.iter().map(|&lr| lr_panel(report, lr)).collect();
    let (cols, rows) = loss_layout(panels.len());
    let subtitle = format!(
        "{}  ·  solid: training set, dashed: test set (BN in eval mode)",
        short_title(cfg)
    );
    Grid::new(rows, cols, (900, 640)).draw_panels(
        "Training with and without BatchNorm across learning rates",
        &subtitle,
        &panels,
    )
}

/// A weight matrix's legend label from its name in [`crate::train::LayerDiagnostics::layers`]:
/// `layer 3`, `stem`, `block 7 W2`.
fn matrix_label(name: &str) -> String {
    match name.split_once('.') {
        Some((b, w)) => format!("block {b} {w}"),
        None if name == "stem" => name.to_string(),
        None => format!("layer {name}"),
    }
}

/// Up to four of `depth` hidden weight matrices spread from the input side to the output side
/// (1-based).
pub fn shown_layers(depth: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..4)
        .map(|k| 1 + ((depth - 1) as f64 * k as f64 / 3.0).round() as usize)
        .collect();
    v.dedup();
    v
}

/// The two diagnostics panels of one run: update-to-weight ratio and gradient norm over the
/// steps, for the [`shown_layers`] (coloured input side to output side) and the output layer
/// (dashed dark grey). The caption names the run; the y axis the quantity.
fn layer_panels(report: &TrainReport, run: &TrainRun) -> (Panel, Panel) {
    let cfg = &report.config;
    let d = &run.history.layers;
    let caption = match &run.history.divergence {
        None => run.label.clone(),
        Some(dv) => format!("{}: diverged at step {}", run.label, dv.step),
    };
    let mut ratio = Panel::new(
        caption.clone(),
        "step (SGD updates)",
        "std(lr·∂L/∂W) / std(W) (log scale)",
        true,
    );
    let mut norm = Panel::new(caption, "step (SGD updates)", "‖∂L/∂W_l‖ (log scale)", true);
    for p in [&mut ratio, &mut norm] {
        p.x_range = Some((0.0, (cfg.steps as f64).max(1.0)));
    }
    ratio
        .guides
        .push((1e-3, "update/weight 1e-3 (rule of thumb)".to_string()));
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
            s.dash = if dashed { Dash::Dashed } else { Dash::Solid };
            s.marker = (few).then_some(crate::plot::chart::Marker::Circle);
        }
        ratio.series.push(a);
        norm.series.push(b);
    };
    // The hidden weight matrices (one per layer, or a stem and two per standard block).
    let matrices = d.layers.len().saturating_sub(1);
    let hidden = shown_layers(matrices);
    let n = hidden.len();
    for (k, &l) in hidden.iter().enumerate() {
        let t = if n > 1 {
            k as f64 / (n - 1) as f64
        } else {
            0.0
        };
        layer_series(l - 1, matrix_label(&d.layers[l - 1]), ramp(t), false);
    }
    layer_series(
        matrices,
        "output layer".to_string(),
        RGBColor(40, 40, 40),
        true,
    );
    (ratio, norm)
}

/// A cell of `train_layers.png`, and the width of its legend column.
const LAYER_CELL: (u32, u32) = (620, 520);
const LAYER_LEGEND_W: u32 = 430;

/// Draw the per-layer diagnostics of the runs at `config.diag_lr`: one column per
/// configuration, update-to-weight ratio on top and gradient norm below, each row on one y
/// scale so the columns compare directly, and one legend for all of them on the right.
pub fn draw_layers(report: &TrainReport) -> Result<Png> {
    let cfg = &report.config;
    let lr = cfg.diag_lr.unwrap_or(f64::NAN);
    let runs: Vec<&TrainRun> = report.runs.iter().filter(|r| r.lr == lr).collect();
    let (mut ratios, mut norms): (Vec<Panel>, Vec<Panel>) =
        runs.iter().map(|r| layer_panels(report, r)).unzip();
    // Keep the 1e-3 guide on the scale.
    let ratio_range = union(positive_y_extent(ratios.iter()), Some((1e-3, 1e-3)));
    let norm_range = positive_y_extent(norms.iter());
    for p in &mut ratios {
        p.y_range = ratio_range;
    }
    for p in &mut norms {
        p.y_range = norm_range;
    }
    let cols = runs.len().max(1);
    let size = (
        LAYER_CELL.0 * cols as u32 + LAYER_LEGEND_W,
        TITLE_HEIGHT + 2 * LAYER_CELL.1,
    );
    let subtitle = format!("learning rate {} · {}", Short(lr), short_title(cfg));
    let panels: Vec<&Panel> = ratios.iter().chain(&norms).collect();
    let items = shared_legend(panels.iter().copied());
    figure(
        size,
        "Per-layer update-to-weight ratio (top) and gradient norm (bottom) during training",
        &subtitle,
        |body| {
            crate::plot::chart::panels_with_legend(
                body,
                LAYER_CELL.0 * cols as u32,
                (2, cols),
                &panels,
                &items,
            )
        },
    )
}

impl Figures for crate::experiment::train::Train {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![
            Figure {
                file: "train.png",
                draw: draw_headline,
            },
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

    fn figures_for(cfg: &Self::Config) -> Vec<Figure<Self::Report>> {
        let mut v = Self::figures();
        if cfg.histogram_steps.is_some() {
            v.push(Figure {
                file: "train_histograms.png",
                draw: draw_histograms,
            });
        }
        v
    }
}

/// `train_histograms.png`: the histograms of the runs at `config.diag_lr`, one colour per
/// configuration and one dash per step.
pub fn draw_histograms(report: &TrainReport) -> Result<Png> {
    let cfg = &report.config;
    let lr = cfg.diag_lr.unwrap_or(f64::NAN);
    let steps = cfg.histogram_steps.clone().unwrap_or_default();
    let mut curves = Vec::new();
    for r in report.runs.iter().filter(|r| r.lr == lr) {
        let snaps = r.histograms.as_deref().unwrap_or_default();
        for (i, snap) in snaps.iter().enumerate() {
            let k = steps.iter().position(|&s| s == snap.step).unwrap_or(0);
            curves.push(Curve {
                label: r.label.clone(),
                variant: Some(format!("step {}", snap.step)),
                color: arm_color(r.arm),
                marker: arm_marker(r.arm),
                dash: Dash::nth(k),
                snapshot: snap,
                note: i + 1 == snaps.len(),
            });
        }
    }
    let subtitle = format!(
        "learning rate {} · step s: after s updates, on its mini-batch · {}",
        Short(lr),
        short_title(cfg)
    );
    histograms::draw(
        "Per-layer histograms during training: activations h_l (top) and backprop signal dL/dh_l (bottom)",
        &subtitle,
        &curves,
        histograms::saturation_note(cfg.act, "one per configuration at the last step it reached")
            .as_deref(),
    )
}
