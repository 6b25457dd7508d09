//! `nonlinearity.png` (per-layer fractions before/after training, learned gamma, loss curves;
//! one column per activation) and `nonlinearity_hist.png` (histograms of activation inputs of
//! the first, middle and last layer before and after training, per configuration).

use std::path::Path;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::config::{Activation, Norm};
use crate::experiment::nonlinearity::{
    ActivationStats, Histogram, NlRun, NonlinearityReport, SIGMOID_SATURATION, TANH_SATURATION,
    title,
};
use crate::plot::{
    Chart, FAMILY, Figure, Figures, Grid, Panel, Series, draw_panel, failed, legend_entry,
    norm_color,
};
use crate::stats::{Num, geometric_mean, max_nan, min_nan};

fn runs_of(report: &NonlinearityReport, act: Activation, arm: Norm) -> Vec<&NlRun> {
    report
        .runs
        .iter()
        .filter(|r| r.act == act && r.norm == arm)
        .collect()
}

/// A curve's points and its min-max band.
type Curve = (Vec<(f64, f64)>, Vec<(f64, f64, f64)>);

/// Mean over seeds per layer, with a min-max band when there are several seeds. A layer where a
/// seed is NaN has a NaN mean (marked on the top edge) and a gap in the band: no seed is dropped.
fn per_layer(runs: &[&NlRun], pick: &dyn Fn(&NlRun) -> Option<&Vec<Num>>) -> Option<Curve> {
    let per_seed: Vec<&Vec<Num>> = runs.iter().filter_map(|r| pick(r)).collect();
    let depth = per_seed.first()?.len();
    let mut pts = Vec::with_capacity(depth);
    let mut band = Vec::new();
    for l in 0..depth {
        let vals: Vec<f64> = per_seed.iter().map(|v| v[l].0).collect();
        let x = (l + 1) as f64;
        pts.push((x, vals.iter().sum::<f64>() / vals.len() as f64));
        if vals.len() > 1 {
            band.push((
                x,
                min_nan(vals.iter().copied()),
                max_nan(vals.iter().copied()),
            ));
        }
    }
    Some((pts, band))
}

/// A per-layer fraction panel: after training solid (with seed band), before training dashed.
fn fraction_panel(
    report: &NonlinearityReport,
    act: Activation,
    caption: &str,
    pick: &dyn Fn(&ActivationStats) -> Option<&Vec<Num>>,
) -> Panel {
    let mut p = layer_panel(
        report,
        act,
        caption,
        "fraction (solid: after, dashed: before)",
        pick,
    );
    p.y_range = Some((0.0, 1.0));
    p
}

/// A per-layer panel: after training solid (with seed band), before training dashed.
fn layer_panel(
    report: &NonlinearityReport,
    act: Activation,
    caption: &str,
    y_label: &str,
    pick: &dyn Fn(&ActivationStats) -> Option<&Vec<Num>>,
) -> Panel {
    let mut p = Panel::new(caption, "layer l (1 = input side)", y_label, false);
    p.integer_x = true;
    let depth = report.config.depth as f64;
    p.x_range = Some(if depth > 1.0 {
        (1.0, depth)
    } else {
        (0.5, 1.5)
    });
    for &arm in &report.config.norms {
        let runs = runs_of(report, act, arm);
        let color = norm_color(arm);
        if let Some((pts, band)) = per_layer(&runs, &|r| pick(&r.after)) {
            let mut s = Series::new(arm.label(), color, pts);
            s.band = band;
            s.marker = true.then_some(crate::plot::Marker::Circle);
            p.series.push(s);
        }
        if let Some((pts, _)) = per_layer(&runs, &|r| pick(&r.before)) {
            let mut s = Series::new(format!("{} before", arm.label()), color, pts);
            s.dash = crate::plot::Dash::Dashed;
            s.legend = false;
            p.series.push(s);
        }
    }
    p
}

/// Step outline of a histogram as density (fraction per unit of x): the learned-γ panel's
/// curve and the after-training outline of the histogram panels.
fn step_points(h: &Histogram) -> Vec<(f64, f64)> {
    let total = h.total().max(1) as f64;
    let w = h.bin_width();
    let mut pts = vec![(h.lo, 0.0)];
    for (i, &c) in h.counts.iter().enumerate() {
        let d = c as f64 / total / w;
        let x0 = h.lo + i as f64 * w;
        pts.push((x0, d));
        pts.push((x0 + w, d));
    }
    pts.push((h.hi, 0.0));
    pts
}

/// Histogram of every learned gamma of the BN + affine runs of `act` (all seeds and layers).
fn gamma_panel(report: &NonlinearityReport, act: Activation) -> Option<Panel> {
    let affine = report.config.norms.iter().copied().find(|n| n.affine())?;
    let runs = runs_of(report, act, affine);
    let values: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.gamma.as_ref())
        .flat_map(|g| g.iter().flatten().map(|v| v.0))
        .collect();
    if values.is_empty() {
        return None;
    }
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(1.0f64, f64::min);
    let hi = finite.iter().copied().fold(1.0f64, f64::max);
    let pad = ((hi - lo) * 0.05).max(0.05);
    let h = Histogram::new(lo - pad, hi + pad, 40, values.iter().copied());
    let mean_abs = finite.iter().map(|v| v.abs()).sum::<f64>() / finite.len().max(1) as f64;
    let all_betas: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.beta.as_ref())
        .flat_map(|b| b.iter().flatten().map(|v| v.0.abs()))
        .collect();
    let betas: Vec<f64> = all_betas
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let mean_beta = betas.iter().sum::<f64>() / betas.len().max(1) as f64;
    // The means are over finite values: say how many were left out.
    let left_out = (values.len() - finite.len()) + (all_betas.len() - betas.len());
    let note = if left_out > 0 {
        format!(" ({left_out} inf/NaN γ, β left out)")
    } else {
        String::new()
    };
    let mut p = Panel::new(
        format!("{act}: learned γ (all start at 1)"),
        "γ (BN scale), all layers and units",
        "density",
        false,
    );
    p.series.push(Series::new(
        format!(
            "{}: mean |γ| {mean_abs:.2}, mean |β| {mean_beta:.2}{note}",
            affine.label()
        ),
        norm_color(affine),
        step_points(&h),
    ));
    Some(p)
}

/// The geometric mean over `runs` of the training mini-batch loss (or, with `test`, the test
/// loss) at each evaluation step, with a min-max band where every seed is finite. A diverged
/// seed counts as inf from its last recorded value on, so the mean turns inf there too.
/// `runs` must not be empty (its first run gives the evaluation steps).
fn mean_loss(runs: &[&NlRun], test: bool) -> Curve {
    let mut pts = Vec::new();
    let mut band = Vec::new();
    for (i, &step) in runs[0].history.eval_steps.iter().enumerate() {
        let v: Vec<f64> = runs
            .iter()
            .map(|r| {
                let h = &r.history;
                let series = if test { &h.test_loss } else { &h.batch_loss };
                if r.diverged && i + 1 >= series.len() {
                    f64::INFINITY
                } else {
                    series.get(i).map_or(f64::NAN, |x| x.0)
                }
            })
            .collect();
        pts.push((step as f64, geometric_mean(&v)));
        if v.len() > 1 && v.iter().all(|x| x.is_finite()) {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            band.push((step as f64, lo, hi));
        }
    }
    (pts, band)
}

/// Loss curves (train solid, test dashed; geometric mean over seeds with a min-max band).
fn loss_panel(report: &NonlinearityReport, act: Activation) -> Panel {
    let mut p = Panel::new(
        format!("{act}: loss (solid: train mini-batch, dashed: test)"),
        "step (SGD updates)",
        "loss (log scale)",
        true,
    );
    p.x_range = Some((0.0, report.config.steps.max(1) as f64));
    p.top_edge_label = Some("top edge: diverged".into());
    p.guides.push((
        report.reference.linear_fit_train_loss.0,
        "best linear model (train)".into(),
    ));
    for &arm in &report.config.norms {
        let runs = runs_of(report, act, arm);
        if runs.is_empty() {
            continue;
        }
        for test in [false, true] {
            let (pts, band) = mean_loss(&runs, test);
            let mut s = Series::new(arm.label(), norm_color(arm), pts);
            s.band = band;
            if test {
                s.dash = crate::plot::Dash::Dashed;
                s.legend = false;
            }
            p.series.push(s);
        }
    }
    p
}

/// The panels of one activation's column, top to bottom: inputs inside (−1, 1); saturation
/// and input spread (sigmoid, tanh) or dead and linear units (ReLU kinds); learned γ (when a
/// BN + affine arm ran); the loss.
fn activation_column(report: &NonlinearityReport, act: Activation) -> Vec<Panel> {
    let mut col = vec![fraction_panel(
        report,
        act,
        &format!("{act}: activation inputs inside (−1, 1)"),
        &|s| Some(&s.inside_unit),
    )];
    match act {
        Activation::Sigmoid | Activation::Tanh => {
            let cap = if act == Activation::Sigmoid {
                format!(
                    "{act}: saturated (output < {SIGMOID_SATURATION} or > {})",
                    1.0 - SIGMOID_SATURATION
                )
            } else {
                format!("{act}: saturated (|tanh| > {TANH_SATURATION})")
            };
            col.push(fraction_panel(report, act, &cap, &|s| s.saturated.as_ref()));
            col.push(layer_panel(
                report,
                act,
                &format!("{act}: spread of the activation inputs"),
                "std of u (solid: after, dashed: before)",
                &|s| Some(&s.input_std),
            ));
        }
        Activation::Relu | Activation::LeakyRelu => {
            col.push(fraction_panel(
                report,
                act,
                &format!("{act}: dead units (input ≤ 0 for the whole batch)"),
                &|s| s.dead.as_ref(),
            ));
            col.push(fraction_panel(
                report,
                act,
                &format!("{act}: linear units (input > 0 for the whole batch)"),
                &|s| s.always_active.as_ref(),
            ));
        }
        Activation::Linear => {}
    }
    col.extend(gamma_panel(report, act));
    col.push(loss_panel(report, act));
    col
}

/// Draw the main figure into `path`: one column per activation (shorter columns leave their
/// bottom cells blank).
pub fn draw(report: &NonlinearityReport, path: &Path) -> Result<crate::plot::Layout> {
    let columns: Vec<Vec<Panel>> = report
        .config
        .acts
        .iter()
        .map(|&act| activation_column(report, act))
        .collect();
    let rows = columns.iter().map(|c| c.len()).max().unwrap_or(1);
    let cols = columns.len().max(1);
    Grid::new(rows, cols, (900, 560)).draw(
        path,
        "Does BatchNorm's scale/shift restore the non-linearity? (diary argument 4)",
        &title(&report.config),
        |cells| {
            let mut layout = crate::plot::Layout::default();
            for (c, col) in columns.iter().enumerate() {
                for (r, p) in col.iter().enumerate() {
                    layout.extend(draw_panel(&cells[r * cols + c], p)?);
                }
            }
            Ok(layout)
        },
    )
}

/// Density (fraction per unit of x) of each bin.
fn densities(h: &Histogram) -> Vec<f64> {
    let total = h.total().max(1) as f64;
    h.counts
        .iter()
        .map(|&c| c as f64 / total / h.bin_width())
        .collect()
}

/// One histogram panel: before training grey, after training in the configuration's colour,
/// the nearly-linear interval (-1, 1) shaded and, for sigmoid/tanh, the saturation thresholds
/// drawn as dotted lines.
fn draw_hist_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    act: Activation,
    before: &Histogram,
    after: &Histogram,
    color: RGBColor,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (db, da) = (densities(before), densities(after));
    let top = db
        .iter()
        .chain(&da)
        .copied()
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.1;
    let mut chart = hist_chart(area, caption, (after.lo, after.hi), top)?;
    draw_linear_interval(&mut chart, top)?;
    draw_saturation_thresholds(&mut chart, act, top)?;
    draw_before_bars(&mut chart, before, &db, after.bin_width())?;
    let style = ShapeStyle::from(&color).stroke_width(3);
    chart
        .draw_series(LineSeries::new(step_points(after), style))
        .map_err(failed("drawing outline"))?
        .label("after training")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
    note_outside(&mut chart, before, after)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 18))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .margin(8)
        .draw()
        .map_err(failed("drawing legend"))?;
    Ok(())
}

/// The chart of a histogram panel: activation input `x` from `x.0` to `x.1`, density from 0
/// to `top`, with smaller text than a [`Panel`] as the figure has many small cells.
fn hist_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    x: (f64, f64),
    top: f64,
) -> Result<Chart<'a, DB>>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 24))
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x.0..x.1, 0.0..top)
        .map_err(failed("building chart"))?;
    chart
        .configure_mesh()
        .x_desc("activation input u")
        .y_desc("density")
        .axis_desc_style((FAMILY, 20))
        .label_style((FAMILY, 18))
        .y_labels(4)
        .y_label_formatter(&|v: &f64| format!("{v:.2}"))
        .light_line_style(BLACK.mix(0.04))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(failed("drawing axes"))?;
    Ok(chart)
}

/// Shade (−1, 1), where a sigmoid is nearly linear: inputs there see no non-linearity.
fn draw_linear_interval<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    top: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(-1.0, 0.0), (1.0, top)],
            RGBColor(255, 200, 0).mix(0.18).filled(),
        )))
        .map_err(failed("drawing band"))?
        .label("(−1, 1)")
        .legend(|(x, y)| {
            Rectangle::new(
                [(x, y - 7), (x + 24, y + 7)],
                RGBColor(255, 200, 0).mix(0.35).filled(),
            )
        });
    Ok(())
}

/// Dotted vertical lines at ± the input beyond which sigmoid/tanh count as saturated (the
/// same thresholds as the saturation panels); nothing for other activations.
fn draw_saturation_thresholds<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    act: Activation,
    top: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let threshold = match act {
        Activation::Sigmoid => Some(((1.0 - SIGMOID_SATURATION) / SIGMOID_SATURATION).ln()),
        Activation::Tanh => Some(TANH_SATURATION.atanh()),
        _ => None,
    };
    if let Some(t) = threshold {
        let style = ShapeStyle::from(&RGBColor(110, 110, 110)).stroke_width(2);
        for x in [-t, t] {
            chart
                .draw_series(DashedLineSeries::new(vec![(x, 0.0), (x, top)], 5, 6, style))
                .map_err(failed("drawing threshold"))?;
        }
    }
    Ok(())
}

/// The before-training histogram as translucent grey bars of `densities`, `width` wide.
fn draw_before_bars<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    before: &Histogram,
    densities: &[f64],
    width: f64,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .draw_series(densities.iter().enumerate().map(|(i, &d)| {
            let x0 = before.lo + i as f64 * width;
            Rectangle::new(
                [(x0, 0.0), (x0 + width, d)],
                RGBColor(150, 150, 150).mix(0.45).filled(),
            )
        }))
        .map_err(failed("drawing bars"))?
        .label("before training")
        .legend(|(x, y)| {
            Rectangle::new(
                [(x, y - 7), (x + 24, y + 7)],
                RGBColor(150, 150, 150).mix(0.6).filled(),
            )
        });
    Ok(())
}

/// A legend line with the share of values outside the histogram's range (or not finite),
/// before → after, when it is at least 0.05 % either time: the bars alone would hide them.
fn note_outside<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    before: &Histogram,
    after: &Histogram,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let outside =
        |h: &Histogram| (h.below + h.above + h.non_finite) as f64 / h.total().max(1) as f64;
    let (ob, oa) = (outside(before), outside(after));
    if ob >= 5e-4 || oa >= 5e-4 {
        let label = format!(
            "outside ±{}: {:.1}% → {:.1}%",
            after.hi,
            100.0 * ob,
            100.0 * oa
        );
        legend_entry(chart, label, |(x, y)| EmptyElement::at((x, y)))?;
    }
    Ok(())
}

/// Draw the histograms of the first seed into `path`: one row per (activation, configuration),
/// one column per probed layer.
pub fn draw_histograms(report: &NonlinearityReport, path: &Path) -> Result<crate::plot::Layout> {
    let cfg = &report.config;
    let runs: Vec<&NlRun> = report
        .runs
        .iter()
        .filter(|r| r.seed == cfg.net.seed)
        .collect();
    let layers = cfg.hist_layers();
    let cols = layers.len().max(1);
    let subtitle = format!(
        "probe: first {} test samples, BN with batch statistics · shaded: (−1, 1) · dotted: sigmoid/tanh saturation thresholds · seed {}",
        cfg.net.batch, cfg.net.seed
    );
    Grid::new(runs.len().max(1), cols, (700, 380)).draw(
        path,
        "Activation inputs before and after training (first, middle, last layer)",
        &subtitle,
        |cells| {
            for (r, run) in runs.iter().enumerate() {
                for (c, &layer) in layers.iter().enumerate() {
                    let find = |s: &ActivationStats| {
                        s.histograms
                            .iter()
                            .find(|h| h.layer == layer)
                            .map(|h| h.hist.clone())
                    };
                    let (Some(before), Some(after)) = (find(&run.before), find(&run.after)) else {
                        continue;
                    };
                    draw_hist_panel(
                        &cells[r * cols + c],
                        &format!("{}: layer {layer}", run.label),
                        run.act,
                        &before,
                        &after,
                        norm_color(run.norm),
                    )?;
                }
            }
            // The histogram panels draw their own legends (not recorded).
            Ok(crate::plot::Layout::default())
        },
    )
}

impl Figures for crate::experiment::nonlinearity::Nonlinearity {
    fn figures() -> Vec<Figure<Self::Report>> {
        vec![
            Figure {
                file: "nonlinearity.png",
                draw,
            },
            Figure {
                file: "nonlinearity_hist.png",
                draw: draw_histograms,
            },
        ]
    }
}
