//! `bn-lab nonlinearity`: files and documented fields, the probe's measures on cases with a
//! known answer, determinism, and bad flags refused.

use crate::common;
use bn_lab::experiment::Plan;

use crate::common::{
    TINY_NONLINEARITY, assert_refused, assert_schema, bn_lab as run, num, scratch_dir as scratch,
};
use std::path::Path;

use bn_lab::config::{Activation, Init, NormConfig};
use bn_lab::data::{self, Stream, Task};
use bn_lab::experiment::nonlinearity::{Histogram, activation_stats};
use bn_lab::model::{Mlp, Mode};
use bn_lab::spec::NetConfig;
use serde_json::Value;

fn run_tiny(dir: &Path, seed: &str) -> (String, Value) {
    let mut args = TINY_NONLINEARITY.to_vec();
    args.extend(["--seed", seed, "--out", dir.to_str().unwrap()]);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = serde_json::from_str(&std::fs::read_to_string(dir.join("nonlinearity.json")).unwrap())
        .unwrap();
    (String::from_utf8(out.stdout).unwrap(), r)
}

#[test]
fn nonlinearity_writes_its_pictures_and_a_json_with_the_documented_fields() {
    let dir = scratch("nl_e2e");
    let (stdout, r) = run_tiny(&dir, "1");
    for png in [
        "nonlinearity.png",
        "nonlinearity_detail.png",
        "nonlinearity_hist.png",
    ] {
        let img = image::open(dir.join(png)).expect("valid PNG").to_rgb8();
        let coloured = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(coloured > 20_000, "{png}: only {coloured} non-white pixels");
    }
    assert_schema(&r, "nonlinearity");
    let cfg = &r["config"];
    assert_eq!(cfg["acts"], serde_json::json!(["sigmoid", "relu"]));
    assert_eq!(cfg["norms"], serde_json::json!(["on", "no-affine", "off"]));
    assert_eq!(cfg["lrs"], serde_json::json!([0.1, 0.01]));
    assert_eq!(cfg["init"], "auto");
    for key in [
        "zero_predictor_test_loss",
        "linear_fit_train_loss",
        "linear_fit_test_loss",
        "tolerance",
    ] {
        assert!(num(&r[key]).is_finite(), "{key}");
    }
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2 * 3 * 2, "acts x configs x seeds");
    for run in runs {
        let act = run["act"].as_str().unwrap();
        let arm = run["norm"].as_str().unwrap();
        // Initialisation per activation when --init is not given.
        let init = if act == "relu" { "he" } else { "xavier" };
        assert_eq!(run["net"]["init"], init);
        for when in ["before", "after"] {
            let p = &run[when];
            for key in ["inside_unit", "input_std"] {
                assert_eq!(p[key].as_array().unwrap().len(), 3, "{when}.{key}");
            }
            let fractions: Vec<&str> = if act == "sigmoid" {
                assert!(p["always_active"].is_null() && p["dead"].is_null());
                vec!["inside_unit", "saturated"]
            } else {
                assert!(p["saturated"].is_null());
                vec!["inside_unit", "always_active", "dead"]
            };
            for key in fractions {
                for v in p[key].as_array().unwrap() {
                    let v = num(v);
                    assert!((0.0..=1.0).contains(&v), "{when}.{key} = {v}");
                }
            }
            let hists = p["histograms"].as_array().unwrap();
            let layers: Vec<u64> = hists.iter().map(|h| h["layer"].as_u64().unwrap()).collect();
            assert_eq!(layers, [1, 2, 3], "first, middle, last");
            for h in hists {
                let h = &h["hist"];
                let total: u64 = h["counts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_u64().unwrap())
                    .sum::<u64>()
                    + h["below"].as_u64().unwrap()
                    + h["above"].as_u64().unwrap()
                    + h["non_finite"].as_u64().unwrap();
                assert_eq!(total, 16 * 8, "probe batch x width");
            }
        }
        let has_gamma = !run["gamma"].is_null();
        assert_eq!(has_gamma, arm == "on", "{}", run["label"]);
        if has_gamma {
            let g = run["gamma"].as_array().unwrap();
            assert_eq!(g.len(), 3);
            assert_eq!(g[0].as_array().unwrap().len(), 8);
            assert_eq!(run["beta"].as_array().unwrap().len(), 3);
        }
    }
    let summary = r["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2);
    for s in summary {
        assert_eq!(s["arms"].as_array().unwrap().len(), 3);
        let verdict = s["verdict"].as_str().unwrap();
        assert!(
            ["supports", "contradicts", "no-clear-difference"].contains(&verdict),
            "{verdict}"
        );
        let better = s["seeds_affine_better"].as_u64().unwrap();
        assert!(better <= 2);
        assert!(num(&s["no_affine_over_affine_train"]) > 0.0);
    }
    for text in ["sigmoid: this run", "relu: this run", "in (-1, 1)", " s\n"] {
        assert!(stdout.contains(text), "{text:?} missing from: {stdout}");
    }
}

#[test]
fn the_same_seed_gives_the_same_numbers_and_another_seed_does_not() {
    let (a, b, c) = (scratch("nl_a"), scratch("nl_b"), scratch("nl_c"));
    let (_, ra) = run_tiny(&a, "4");
    let (_, rb) = run_tiny(&b, "4");
    let (_, rc) = run_tiny(&c, "9");
    assert_eq!(ra["runs"], rb["runs"]);
    assert_eq!(ra["summary"], rb["summary"]);
    assert_ne!(ra["runs"], rc["runs"]);
}

fn bn_net(act: Activation, affine: bool) -> NetConfig {
    NetConfig {
        d_in: 6,
        width: 12,
        d_out: 2,
        depth: 3,
        act,
        init: Init::Xavier,
        norm: Some(NormConfig {
            kind: bn_lab::config::NormKind::Batch,
            affine,
            ..NormConfig::default()
        }),
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    }
}

#[test]
fn standardised_relu_inputs_have_no_dead_and_no_always_active_units() {
    // BN without scale/shift feeds a ReLU x_hat, which has mean 0 over the batch in every
    // unit: each unit sees both signs, so none is dead or linear on that batch.
    let data = data::make_task::<f64>(&Task::Nonlinear, 5, 32, 32, 6, 2);
    let net = Mlp::<f64>::new(
        &bn_net(Activation::Relu, false),
        &mut data::rng(5, Stream::Weights),
    );
    let p = activation_stats(&net, data.test.x.view(), &[1, 3], Mode::Train);
    for l in 0..3 {
        assert_eq!(p.dead.as_ref().unwrap()[l].0, 0.0);
        assert_eq!(p.always_active.as_ref().unwrap()[l].0, 0.0);
    }
}

#[test]
fn standardised_sigmoid_inputs_have_unit_spread_and_no_saturation_at_init() {
    // x_hat = (z - mean) / sqrt(var + eps) has std sqrt(var / (var + eps)) ~ 1; saturation
    // needs |u| > 3.48, which a standardised batch reaches in few entries, if any.
    let data = data::make_task::<f64>(&Task::Nonlinear, 6, 32, 32, 6, 2);
    let net = Mlp::<f64>::new(
        &bn_net(Activation::Sigmoid, false),
        &mut data::rng(6, Stream::Weights),
    );
    let p = activation_stats(&net, data.test.x.view(), &[], Mode::Train);
    assert!(p.histograms.is_empty());
    for l in 0..3 {
        assert!(
            (p.input_std[l].0 - 1.0).abs() < 1e-3,
            "{}",
            p.input_std[l].0
        );
        assert!(p.saturated.as_ref().unwrap()[l].0 < 0.02);
        // A standard normal has 68% inside (-1, 1); a standardised batch is near that.
        assert!((0.4..0.95).contains(&p.inside_unit[l].0));
    }
}

#[test]
fn a_scaled_up_gamma_moves_sigmoid_inputs_out_of_the_unit_interval() {
    // The diary's mechanism, checked on the probe: with gamma = 10 every |u| = 10 |x_hat|, so
    // only |x_hat| < 0.1 stays inside (-1, 1), and saturation follows.
    let data = data::make_task::<f64>(&Task::Nonlinear, 7, 64, 64, 6, 2);
    let mut net = Mlp::<f64>::new(
        &bn_net(Activation::Sigmoid, true),
        &mut data::rng(7, Stream::Weights),
    );
    let before = activation_stats(&net, data.test.x.view(), &[], Mode::Train);
    for b in &mut net.blocks {
        b.bn.as_mut()
            .unwrap()
            .affine
            .as_mut()
            .unwrap()
            .gamma
            .fill(10.0);
    }
    let after = activation_stats(&net, data.test.x.view(), &[], Mode::Train);
    for l in 0..3 {
        assert!(after.inside_unit[l].0 < 0.2 * before.inside_unit[l].0);
        assert!(after.saturated.as_ref().unwrap()[l].0 > 0.5);
        assert!((after.input_std[l].0 - 10.0).abs() < 0.01);
    }
}

#[test]
fn histogram_counts_every_value_once() {
    let h = Histogram::new(
        -1.0,
        1.0,
        4,
        [-2.0, -1.0, -0.5, 0.0, 0.49, 0.5, 0.99, 1.0, f64::NAN].into_iter(),
    );
    assert_eq!(h.counts, [1, 1, 2, 2]);
    assert_eq!((h.below, h.above, h.non_finite), (1, 1, 1));
    assert_eq!(h.total(), 9);
}

#[test]
fn bad_nonlinearity_flags_get_a_one_line_error_naming_the_flag_and_write_nothing() {
    let dir = scratch("nl_bad");
    let n = "nonlinearity";
    assert_refused(&[n, "--lr", "0.1,0.2,0.3"], "--lr", &dir);
    assert_refused(&[n, "--lr", "0"], "--lr", &dir);
    assert_refused(&[n, "--acts", "relu,relu"], "--acts", &dir);
    assert_refused(&[n, "--acts", "swish"], "--acts", &dir);
    assert_refused(&[n, "--configs", "off,off"], "--configs", &dir);
    assert_refused(&[n, "--seeds", "0"], "--seeds", &dir);
    assert_refused(&[n, "--steps", "0"], "--steps", &dir);
    assert_refused(&[n, "--depth", "0"], "--depth", &dir);
    assert_refused(&[n, "--batch", "1"], "--batch", &dir);
    assert_refused(&[n, "--n-test", "10"], "--n-test", &dir);
    assert_refused(&[n, "--init", "normal:0"], "--init", &dir);
    assert_refused(&[n, "--eps", "-1"], "--eps", &dir);
    assert_refused(&[n, "--eval-every", "0"], "--eval-every", &dir);
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
}

fn nonlinearity_config(args: &[&str]) -> bn_lab::experiment::nonlinearity::NonlinearityConfig {
    match common::parse(args) {
        bn_lab::cli::Command::Nonlinearity(a) => {
            bn_lab::experiment::ExperimentArgs::config(&a).unwrap()
        }
        _ => unreachable!("a nonlinearity command line"),
    }
}

/// The bar counts each run's probes, steps, evaluations and recalibration (and the reference
/// fit) in forward passes of one sample; the runs report exactly that, also when they diverge.
#[test]
fn nonlinearity_progress_adds_up_to_its_work_units() {
    use bn_lab::config::Normaliser;
    use bn_lab::experiment::nonlinearity::Nonlinearity;
    let cfg = nonlinearity_config(&TINY_NONLINEARITY[..]);
    // Probe twice (16 samples), 40 steps of 16 samples, 5 evaluations over 64 + 32 samples,
    // recalibration forward over the 64 training samples (BN only) and the eval losses.
    let bn = 2 * 16 + 40 * 3 * 16 + 5 * 96 + 64 + 96;
    assert_eq!(cfg.run_units(Activation::Sigmoid, Normaliser::BN), bn);
    assert_eq!(cfg.run_units(Activation::Relu, Normaliser::Off), bn - 64);
    let r = common::assert_progress_adds_up::<Nonlinearity>(&cfg, 160, "nonlinearity");
    assert!(r.runs.iter().all(|r| !r.diverged));
    let cfg = nonlinearity_config(&[&TINY_NONLINEARITY[..], &["--lr", "1e10"]].concat());
    let r = common::assert_progress_adds_up::<Nonlinearity>(&cfg, u64::MAX, "--lr 1e10");
    assert!(r.runs.iter().all(|r| r.diverged));
}

/// A NaN activation input is neither inside nor outside (-1, 1), saturated or not, dead or
/// alive: the layer's fractions are NaN (and so every mean over them), never a count that
/// quietly treats NaN as "outside" or "saturated".
#[test]
fn a_layer_with_nan_inputs_has_nan_fractions() {
    let data = data::make_task::<f64>(&Task::Nonlinear, 8, 32, 32, 6, 2);
    for act in [Activation::Sigmoid, Activation::Relu] {
        let cfg = NetConfig {
            norm: None,
            ..bn_net(act, false)
        };
        let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(8, Stream::Weights));
        net.blocks[1].linear.w[[0, 0]] = f64::NAN;
        let p = activation_stats(&net, data.test.x.view(), &[1, 2, 3], Mode::Train);
        let fractions: Vec<&Vec<bn_lab::stats::Num>> = [
            Some(&p.inside_unit),
            p.saturated.as_ref(),
            p.dead.as_ref(),
            p.always_active.as_ref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let expected = if act == Activation::Sigmoid { 2 } else { 3 };
        assert_eq!(
            fractions.len(),
            expected,
            "{act}: inside, saturated or dead/linear"
        );
        for f in fractions {
            assert!(f[0].0.is_finite(), "{act}: layer 1 is untouched: {f:?}");
            // Layer 2 holds the NaN weight; sigmoid passes NaN on to layer 3, while ReLU
            // maps it to 0 (the model's max(u, 0)), so layer 3 of the ReLU net is finite.
            assert!(f[1].0.is_nan(), "{act}: {f:?}");
            assert_eq!(f[2].0.is_nan(), act == Activation::Sigmoid, "{act}: {f:?}");
        }
        assert!(p.histograms[1].hist.non_finite > 0);
    }
}

/// With every run diverged (lr 1e10) the verdict is "undetermined" with the reason, in the
/// JSON and the summary, never SUPPORTS or CONTRADICTS; with only the runs without
/// scale/shift diverged (lr 1) it is undetermined too and names them. Normal runs keep a verdict
/// and no reason.
#[test]
fn a_verdict_needs_compared_runs_that_trained() {
    let dir = scratch("nl_undetermined");
    let (_, r) = run_tiny(&dir, "0");
    for s in r["summary"].as_array().unwrap() {
        assert_ne!(s["verdict"], "undetermined", "{s}");
        assert!(s["verdict_reason"].is_null(), "{s}");
    }
    for (lr, reason) in [
        (
            "1e10",
            "every BN run compared diverged (BN on and BN, no affine in all 2 seed(s))",
        ),
        ("1", "BN, no affine diverged in all 2 seed(s)"),
    ] {
        let mut args = TINY_NONLINEARITY.to_vec();
        let d = dir.join(lr);
        args.extend(["--lr", lr, "--out", d.to_str().unwrap()]);
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("nonlinearity.json")).unwrap())
                .unwrap();
        let sigmoid = &v["summary"][0];
        assert_eq!(sigmoid["act"], "sigmoid");
        assert_eq!(sigmoid["verdict"], "undetermined", "lr {lr}: {sigmoid}");
        assert_eq!(sigmoid["verdict_reason"], reason, "lr {lr}");
        assert!(
            stdout.contains(&format!("sigmoid: this run does not tell whether scale/shift fits the non-linear task better (UNDETERMINED): {reason}")),
            "lr {lr}: {stdout}"
        );
        if lr == "1e10" {
            assert!(
                !stdout.contains("SUPPORTS") && !stdout.contains("CONTRADICTS"),
                "{stdout}"
            );
            for s in v["summary"].as_array().unwrap() {
                assert_eq!(s["verdict"], "undetermined", "{s}");
            }
        }
    }
}

/// Every figure of the tiny run (and of one whose runs all diverged) keeps its legends off the
/// data: the headline is a slide with one panel per activation, the histograms have one legend.
#[test]
fn nonlinearity_figures_keep_legends_off_the_data() {
    use bn_lab::experiment::nonlinearity::Nonlinearity;
    let cfg = nonlinearity_config(&TINY_NONLINEARITY[..]);
    let (_, layouts) = common::assert_figures_clear::<Nonlinearity>(&cfg, "tiny");
    let files: Vec<&str> = layouts.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(
        files,
        [
            "nonlinearity.png",
            "nonlinearity_detail.png",
            "nonlinearity_hist.png",
            "nonlinearity_curve.png",
            "nonlinearity_units.png"
        ]
    );
    assert_eq!(layouts[0].1.panels.len(), 2, "sigmoid and relu");
    assert_eq!(
        layouts[3].1.panels.len(),
        2,
        "the curve and the share in (-1, 1)"
    );
    assert_eq!(layouts[4].1.panels.len(), 2, "dead and linear units");
    let hist = &layouts[2].1;
    assert_eq!(hist.panels.len(), 2 * 3 * 3, "acts x arms x layers");
    assert_eq!(hist.legends.len(), 1, "one legend for every histogram");
    let diverged = nonlinearity_config(&[&TINY_NONLINEARITY[..], &["--lr", "1e10"]].concat());
    common::assert_figures_clear::<Nonlinearity>(&diverged, "diverged");
}

/// The headline draws the report's numbers: each seed's recalibrated training loss (its marker
/// beside its seed), the mean per arm as the summary has it (line and label), on one linear
/// loss axis shared by every panel, with the loss ratio of the verdict in the caption.
#[test]
fn the_headline_shows_the_reports_losses_on_one_linear_axis() {
    use bn_lab::experiment::nonlinearity::run;
    use bn_lab::plot::nonlinearity::{dodge, headline};
    let cfg = nonlinearity_config(&TINY_NONLINEARITY[..]);
    let report = run(&cfg, &|_| {});
    let slide = headline(&report);
    assert_eq!(slide.panels.len(), cfg.acts.len());
    let y_range = slide.panels[0].y_range.expect("a fixed loss axis");
    assert_eq!(y_range.0, 0.0, "the loss axis starts at 0");
    for (p, s) in slide.panels.iter().zip(&report.summary) {
        assert!(!p.log_y, "{}: a linear loss axis", p.caption);
        assert_eq!(p.y_range, Some(y_range), "{}: the shared axis", p.caption);
        let ratio = s.no_affine_over_affine_train.unwrap().0;
        assert!(p.caption.contains(&format!("{ratio:.2}x")), "{}", p.caption);
        for (i, arm) in s.arms.iter().enumerate() {
            let markers = p
                .series
                .iter()
                .find(|x| x.legend && x.label == arm.norm.label())
                .unwrap();
            let want: Vec<(f64, f64)> = report
                .runs
                .iter()
                .filter(|r| r.act == s.act && r.norm == arm.norm)
                .map(|r| {
                    (
                        r.seed as f64 + dodge(i, cfg.norms.len()),
                        r.recalibrated_train_loss.0,
                    )
                })
                .collect();
            assert_eq!(markers.points, want, "{}: {}", s.act, arm.norm.label());
            let mean = arm.train_loss.0;
            assert!(y_range.1 >= mean, "the axis covers {mean}");
            let note = p.notes.iter().find(|n| n.y == mean).unwrap();
            assert_eq!(note.text, bn_lab::stats::fmt_num(mean));
        }
    }
}

/// Both γ histograms of the detail figure cover the same x range, and it holds every learned
/// γ; the saturation panel is in percent on an axis of at least 1 %.
#[test]
fn the_detail_figures_gamma_histograms_share_one_x_range() {
    use bn_lab::experiment::nonlinearity::run;
    use bn_lab::plot::nonlinearity::{detail_columns, gamma_range};
    let cfg = nonlinearity_config(&TINY_NONLINEARITY[..]);
    let report = run(&cfg, &|_| {});
    let range = gamma_range(&report);
    let columns = detail_columns(&report);
    let gamma_panels: Vec<_> = columns
        .iter()
        .flatten()
        .filter(|p| p.caption.contains("learned γ"))
        .collect();
    assert_eq!(gamma_panels.len(), 2, "sigmoid and relu");
    for p in &gamma_panels {
        assert_eq!(p.x_range, Some(range), "{}", p.caption);
    }
    for r in report.runs.iter().filter(|r| r.gamma.is_some()) {
        for g in r.gamma.as_ref().unwrap().iter().flatten() {
            assert!(
                range.0 < g.0 && g.0 < range.1,
                "γ {} outside {range:?}",
                g.0
            );
        }
    }
    let sat = columns[0]
        .iter()
        .find(|p| p.caption.contains("saturated"))
        .unwrap();
    assert!(sat.y_range.unwrap().1 >= 1.0, "{:?}", sat.y_range);
    let first = report
        .runs
        .iter()
        .find(|r| r.act == Activation::Sigmoid && r.norm == cfg.norms[0])
        .unwrap();
    let seeds = cfg.seeds as f64;
    let mean_l1: f64 = report
        .runs
        .iter()
        .filter(|r| r.act == Activation::Sigmoid && r.norm == first.norm)
        .map(|r| r.after.saturated.as_ref().unwrap()[0].0)
        .sum::<f64>()
        / seeds;
    let drawn = sat.series[0].points[0].1;
    assert!(
        (drawn - 100.0 * mean_l1).abs() < 1e-9,
        "{drawn} vs {mean_l1}"
    );
}

/// The histograms share one x and one y range (so a spike reads as a spike), whose top covers
/// every bar; the mode marker sits on the tallest after-training bin.
#[test]
fn the_histograms_share_their_axes() {
    use bn_lab::experiment::nonlinearity::run;
    use bn_lab::plot::nonlinearity::{hist_figure, mode};
    let cfg = nonlinearity_config(&TINY_NONLINEARITY[..]);
    let report = run(&cfg, &|_| {});
    let fig = hist_figure(&report);
    assert_eq!((fig.rows, fig.cols), (6, 3));
    let (x, y) = (fig.panels[0].x_range, fig.panels[0].y_range);
    assert_eq!(y, Some((0.0, fig.top)));
    for p in &fig.panels {
        assert_eq!((p.x_range, p.y_range), (x, y), "{}", p.caption);
    }
    for r in report.runs.iter().filter(|r| r.seed == cfg.net.seed) {
        for h in r.before.histograms.iter().chain(&r.after.histograms) {
            let total = h.hist.total() as f64;
            for &c in &h.hist.counts {
                assert!(c as f64 / total / h.hist.bin_width() <= fig.top);
            }
        }
    }
    let h = Histogram::new(-1.0, 1.0, 4, [-0.9, 0.1, 0.2, 0.3, 0.9].into_iter());
    assert_eq!(mode(&h), Some((0.25, 3.0 / 5.0 / 0.5)));
    let empty = Histogram::new(-1.0, 1.0, 4, [f64::NAN, 5.0].into_iter());
    assert_eq!(mode(&empty), None);
}

/// The saturated share is what the histogram of the same inputs says lies beyond the
/// threshold (|u| > ln(0.97 / 0.03) = 3.48): the measure behind the detail figure's saturation
/// panel, checked two ways, both on a standardised net (next to no saturation, as in the
/// default run) and with gamma = 10 (much).
#[test]
fn the_saturated_share_agrees_with_the_histogram_beyond_the_threshold() {
    use bn_lab::plot::nonlinearity::saturation_threshold;
    let t = saturation_threshold(Activation::Sigmoid).unwrap();
    assert!((t - 3.476).abs() < 1e-3, "{t}");
    let data = data::make_task::<f64>(&Task::Nonlinear, 9, 256, 256, 6, 2);
    let mut net = Mlp::<f64>::new(
        &bn_net(Activation::Sigmoid, true),
        &mut data::rng(9, Stream::Weights),
    );
    for gamma in [1.0, 10.0] {
        for b in &mut net.blocks {
            let ss = b.bn.as_mut().unwrap().affine.as_mut().unwrap();
            ss.gamma.fill(gamma);
        }
        let p = activation_stats(&net, data.test.x.view(), &[1, 2, 3], Mode::Train);
        for h in &p.histograms {
            let hist = &h.hist;
            let w = hist.bin_width();
            // Bins wholly beyond 3.5 count as saturated, bins reaching past 3.25 may.
            let beyond = |edge: f64| {
                hist.counts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| {
                        let x0 = hist.lo + *i as f64 * w;
                        x0 >= edge || x0 + w <= -edge
                    })
                    .map(|(_, &c)| c)
                    .sum::<u64>()
                    + hist.below
                    + hist.above
            };
            let n = hist.total() as f64;
            let sat = p.saturated.as_ref().unwrap()[h.layer - 1].0;
            let (lo, hi) = (beyond(3.5) as f64 / n, beyond(3.25) as f64 / n);
            assert!(
                lo <= sat && sat <= hi,
                "gamma {gamma}, layer {}: saturated {sat}, histogram {lo}..{hi}",
                h.layer
            );
            if gamma == 10.0 {
                assert!(sat > 0.5, "{sat}");
            } else {
                assert!(sat < 0.01, "{sat}");
            }
        }
    }
}

/// The curve slide draws sigmoid with every arm's after-training inputs, pooled over seeds and
/// probed layers (each histogram counts `batch x width` inputs), and the units slide draws the
/// report's per-layer dead shares after training (mean over seeds).
#[test]
fn the_diarys_pictures_draw_the_reports_numbers() {
    use bn_lab::experiment::nonlinearity::Nonlinearity;
    use bn_lab::plot::nonlinearity::{curve_act, curve_panel, pooled_after, units_slide};
    let cfg = nonlinearity_config(&TINY_NONLINEARITY[..]);
    cfg.validate().unwrap();
    let report = <Nonlinearity as bn_lab::experiment::Experiment>::run(&cfg, &|_| {});
    assert_eq!(curve_act(&report), Activation::Sigmoid);
    let per_hist = (cfg.net.batch * cfg.net.width) as u64;
    for &arm in &cfg.norms {
        let h = pooled_after(&report, Activation::Sigmoid, arm).unwrap();
        let want = per_hist * (cfg.seeds * cfg.hist_layers().len()) as u64;
        assert_eq!(h.total(), want, "{arm:?}");
    }
    let panel = curve_panel(&report);
    for &arm in &cfg.norms {
        assert!(
            panel
                .series
                .iter()
                .any(|s| s.label == format!("density of u, {}", arm.label())),
            "{arm:?} has its density under the curve"
        );
    }
    let slide = units_slide(&report);
    let dead = &slide.panels[0];
    for &arm in &cfg.norms {
        let runs: Vec<_> = report
            .runs
            .iter()
            .filter(|r| r.act == Activation::Relu && r.norm == arm)
            .collect();
        let s = dead.series.iter().find(|s| s.label == arm.label()).unwrap();
        for (l, &(x, y)) in s.points.iter().enumerate() {
            let mean = runs
                .iter()
                .map(|r| r.after.dead.as_ref().unwrap()[l].0)
                .sum::<f64>()
                / runs.len() as f64;
            assert_eq!(x, (l + 1) as f64);
            assert!(
                (y - mean).abs() < 1e-12,
                "{arm:?} layer {}: {y} vs {mean}",
                l + 1
            );
        }
    }
}

/// The eval-mode probe can find dead BN units (the train-mode one cannot): with running means
/// far above every unit's input, eval mode standardises every input of layer 1 below 0, while a
/// train-mode probe re-centres them over the batch and finds none.
#[test]
fn an_eval_mode_probe_sees_units_that_running_statistics_kill() {
    let data = data::make_task::<f64>(&Task::Nonlinear, 5, 32, 32, 6, 2);
    let mut net = Mlp::<f64>::new(
        &bn_net(Activation::Relu, false),
        &mut data::rng(5, Stream::Weights),
    );
    net.blocks[0].bn.as_mut().unwrap().running_mean.fill(100.0);
    let train = activation_stats(&net, data.test.x.view(), &[], Mode::Train);
    let eval = activation_stats(&net, data.test.x.view(), &[], Mode::Eval);
    assert_eq!(train.dead.as_ref().unwrap()[0].0, 0.0);
    assert_eq!(eval.dead.as_ref().unwrap()[0].0, 1.0);
}

/// The facts behind each verdict paragraph: which arm reached the lower train loss and by what
/// factor, and the "within tolerance" note only when the ratio is near 1 (not when the seeds
/// merely disagree); an undetermined activation carries its reason, one without a verdict none.
#[test]
fn affine_evidence_names_the_lower_arm_its_factor_and_when_the_two_are_within_tolerance() {
    use bn_lab::config::Normaliser;
    use bn_lab::experiment::nonlinearity::{
        ActSummary, AffineEvidence, AffineVerdict, ArmMeans, LowerArm, affine_evidence,
    };
    use bn_lab::stats::Num;
    let cfg = nonlinearity_config(&TINY_NONLINEARITY[..]);
    let (with, without) = cfg.affine_pair().unwrap();
    let arm = |norm: Normaliser, loss: f64| ArmMeans {
        norm,
        train_loss: Num(loss),
        test_loss: Num(loss),
        batch_loss: Num(loss),
        test_accuracy: None,
        inside_unit_before: Num(0.5),
        inside_unit_after: Num(0.5),
        saturated_before: None,
        saturated_after: None,
        always_active_after: None,
        dead_after: None,
        diverged_runs: 0,
    };
    let summary = |with_loss: f64, without_loss: f64, better, verdict| ActSummary {
        act: Activation::Tanh,
        arms: vec![arm(with, with_loss), arm(without, without_loss)],
        no_affine_over_affine_train: Some(Num(without_loss / with_loss)),
        no_affine_over_affine_test: Some(Num(2.0 * without_loss / with_loss)),
        seeds_affine_better: Some(better),
        verdict: Some(verdict),
        verdict_reason: None,
    };
    let compared = |s: &ActSummary| match affine_evidence(&cfg, 0.05, s) {
        Some(AffineEvidence::Compared(c)) => {
            assert_eq!(
                (c.with.norm, c.without.norm, c.seeds),
                (with, without, cfg.seeds)
            );
            assert_eq!(
                c.test_ratio,
                2.0 * c.without.train_loss.0 / c.with.train_loss.0
            );
            (c.lower, c.factor, c.within_tolerance)
        }
        other => panic!("{other:?}"),
    };
    let s = summary(0.125, 0.5, 2, AffineVerdict::Supports);
    assert_eq!(compared(&s), (LowerArm::WithAffine, 4.0, None));
    let s = summary(0.5, 0.125, 0, AffineVerdict::Contradicts);
    assert_eq!(compared(&s), (LowerArm::WithoutAffine, 4.0, None));
    let s = summary(0.5, 0.51, 1, AffineVerdict::NoClearDifference);
    assert_eq!(compared(&s).2, Some(0.05));
    // No clear difference because the seeds disagree, though affine is 4x lower on average.
    let s = summary(0.125, 0.5, 1, AffineVerdict::NoClearDifference);
    assert_eq!(compared(&s), (LowerArm::WithAffine, 4.0, None));
    let mut s = summary(0.125, 0.5, 2, AffineVerdict::Undetermined);
    s.verdict_reason = Some("a run diverged".into());
    assert!(matches!(
        affine_evidence(&cfg, 0.05, &s),
        Some(AffineEvidence::Undetermined {
            act: Activation::Tanh,
            reason: Some("a run diverged")
        })
    ));
    s.verdict = None;
    assert!(affine_evidence(&cfg, 0.05, &s).is_none());
}
