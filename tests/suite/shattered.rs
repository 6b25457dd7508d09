//! `bn-lab shattered`: the gradients are derivatives of the function the network computes
//! (central finite differences agree), a depth-1 ReLU net's gradient is piecewise constant,
//! frozen BN statistics reproduce the train-mode forward, bad values are refused, and a tiny
//! run end to end through the binary.

use bn_lab::experiment::Plan;

use crate::common;

use crate::common::{assert_refused, bn_lab_ok, json, num, scratch_dir};
use bn_lab::cli::Command;
use bn_lab::experiment::Experiment;
use bn_lab::experiment::shattered::{
    Agreement, Arch, Shattered, ShatteredConfig, frozen_net, grid, input_gradients, outputs,
};
use bn_lab::model::Mode;

use crate::common::TINY_SHATTERED as TINY;

fn config(args: &[&str]) -> ShatteredConfig {
    match common::parse(args) {
        Command::Shattered(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        other => panic!("not shattered: {other:?}"),
    }
}

#[test]
fn gradients_match_central_finite_differences_of_the_frozen_network() {
    let cfg = config(&[
        "shattered",
        "--depth",
        "4",
        "--width",
        "16",
        "--points",
        "40",
        "--max-lag",
        "8",
    ]);
    cfg.validate().unwrap();
    let x = grid(cfg.points());
    let h = 1e-6;
    for arch in [Arch::Feedforward, Arch::FeedforwardBn, Arch::ResnetBn] {
        for seed in [0, 5] {
            let mut net = frozen_net(&cfg, arch, 4, seed);
            let g = input_gradients(&mut net, x.view());
            let plus = outputs(&mut net, (&x + h).view());
            let minus = outputs(&mut net, (&x - h).view());
            for i in 0..g.len() {
                let fd = (plus[i] - minus[i]) / (2.0 * h);
                assert!(
                    (g[i] - fd).abs() <= 1e-6 * (1.0 + g[i].abs()),
                    "{arch} seed {seed}, x = {}: backprop {} vs finite difference {fd}",
                    x[[i, 0]],
                    g[i]
                );
            }
        }
    }
}

#[test]
fn frozen_statistics_reproduce_the_train_mode_forward() {
    let cfg = config(&[
        "shattered",
        "--depth",
        "3",
        "--width",
        "12",
        "--points",
        "50",
    ]);
    let x = grid(cfg.points());
    for arch in [Arch::FeedforwardBn, Arch::ResnetBn] {
        let mut net = frozen_net(&cfg, arch, 3, 1);
        let eval = outputs(&mut net, x.view());
        let train: Vec<f64> = net
            .forward(x.view(), Mode::Train)
            .unwrap()
            .column(0)
            .to_vec();
        for (e, t) in eval.iter().zip(&train) {
            assert!(
                (e - t).abs() <= 1e-12 * (1.0 + t.abs()),
                "{arch}: {e} vs {t}"
            );
        }
    }
}

/// Indices where the gradient changes between neighbouring grid points.
fn jumps(g: &[f64]) -> usize {
    g.windows(2)
        .filter(|w| (w[1] - w[0]).abs() > 1e-12 * (1.0 + w[0].abs()))
        .count()
}

#[test]
fn a_depth_one_relu_net_has_a_piecewise_constant_gradient() {
    let width = 8;
    for bias in ["pytorch", "normal:1"] {
        let cfg = config(&[
            "shattered",
            "--depth",
            "1",
            "--width",
            "8",
            "--points",
            "256",
            "--bias",
            bias,
        ]);
        let x = grid(cfg.points());
        for seed in 0..4 {
            let mut net = frozen_net(&cfg, Arch::Feedforward, 1, seed);
            let g = input_gradients(&mut net, x.view());
            // Each unit switches at most once along x, so the gradient jumps at most `width` times.
            assert!(
                jumps(&g) <= width,
                "bias {bias}, seed {seed}: {} jumps",
                jumps(&g)
            );
            assert!(
                jumps(&g) >= 1,
                "bias {bias}, seed {seed}: no kink in [-2, 2]"
            );
        }
    }
    // Zero biases: y is positively homogeneous, one kink at 0, so two values at any depth.
    let cfg = config(&[
        "shattered",
        "--depth",
        "6",
        "--width",
        "8",
        "--points",
        "64",
        "--bias",
        "zero",
    ]);
    let mut net = frozen_net(&cfg, Arch::Feedforward, 6, 0);
    let g = input_gradients(&mut net, grid(64).view());
    assert!(jumps(&g) <= 1, "{} jumps with zero biases", jumps(&g));
}

#[test]
fn overflowing_gradients_are_recorded_and_make_the_verdict_undetermined() {
    let cfg = config(&[
        "shattered",
        "--depth",
        "60",
        "--width",
        "64",
        "--points",
        "16",
        "--arch",
        "feedforward",
        "--init",
        "normal:1e8",
        "--seeds",
        "1",
        "--max-lag",
        "3",
    ]);
    cfg.validate().unwrap();
    let report = Shattered::run(&cfg, &|_| {});
    let arm = &report.arms[0];
    // The output overflows; a ReLU maps the NaN to 0, so the gradient may look finite.
    assert!(
        arm.seeds[0].overflow_from_layer.is_some(),
        "(1e8)^60 overflows f64"
    );
    assert!(arm.lag1_correlation.0.is_nan());
    assert!(arm.reason.as_deref().unwrap().contains("overflowed"));
    let p = &report.predictions[0];
    assert_eq!(p.verdict, Agreement::Undetermined);
    assert!(p.reason.is_some());
    let text = Shattered::summary(&report);
    assert!(text.contains("undetermined"), "{text}");
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"NaN\""), "NaN is recorded as such");
}

#[test]
fn progress_adds_up() {
    let cfg = config(&TINY);
    common::assert_progress_adds_up::<Shattered>(&cfg, 4 * 32, "shattered");
}

#[test]
fn a_tiny_run_writes_its_json_and_figure() {
    let dir = scratch_dir("shattered-tiny");
    let o = bn_lab_ok(&TINY, &dir);
    let stdout = String::from_utf8_lossy(&o.stdout);
    for want in [
        "feedforward+bn",
        "resnet+bn",
        "2^-L",
        "1/sqrt(L)",
        "white noise",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    assert!(dir.join("shattered.png").exists());
    let v = json(&dir.join("shattered.json"));
    common::assert_schema(&v, "shattered");
    assert_eq!(v["config"]["batch"], 32);
    let arms = v["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 6, "3 architectures x 2 depths");
    for a in arms {
        assert!(
            ["feedforward", "feedforward+bn", "resnet+bn"].contains(&a["name"].as_str().unwrap())
        );
        let seeds = a["seeds"].as_array().unwrap();
        assert_eq!(seeds.len(), 2);
        assert_eq!(seeds[0]["gradient"].as_array().unwrap().len(), 32);
        assert_eq!(a["autocorrelation"]["mean"].as_array().unwrap().len(), 9);
        assert_eq!(num(&a["autocorrelation"]["mean"][0]), 1.0);
        let r = num(&a["lag1_correlation"]);
        assert!((-1.0..=1.0).contains(&r), "{r}");
    }
    // Block 1 has no skip (d_in 1 != width): at depth 1 the resnet is the BN feedforward net.
    let at = |name: &str, depth: u64| {
        arms.iter()
            .find(|a| a["name"] == name && a["depth"] == depth)
            .unwrap()["seeds"][0]["gradient"]
            .clone()
    };
    assert_eq!(at("resnet+bn", 1), at("feedforward+bn", 1));
    assert_eq!(v["predictions"].as_array().unwrap().len(), 3);
}

#[test]
fn the_scalar_network_and_its_counts_are_enforced() {
    let dir = scratch_dir("shattered-refused");
    for (extra, flag) in [
        (&["--d-in", "3"][..], "--d-in"),
        (&["--d-out", "2"], "--d-out"),
        (&["--dtype", "f32"], "--dtype"),
        (&["--residual"], "--residual"),
        (&["--points", "2"], "--points"),
        (&["--max-lag", "32"], "--max-lag"),
        (&["--depth", "1,1"], "--depth"),
        (&["--arch", "resnet+bn,resnet+bn"], "--arch"),
        (&["--bias", "normal:-1"], "--bias"),
        (&["--points", "20000"], "--points"),
    ] {
        let mut args = TINY.to_vec();
        args.extend(extra);
        assert_refused(&args, flag, &dir);
    }
}

#[test]
fn runs_are_deterministic() {
    common::assert_deterministic(&TINY, "shattered.json", "shattered");
}

#[test]
fn the_residual_scale_is_the_resnets_branch_scale_only() {
    let base = config(&TINY);
    let mut args = TINY.to_vec();
    args.extend(["--residual-scale", "0.25"]);
    let cfg = config(&args);
    cfg.validate().unwrap();
    let resnet = cfg.net(Arch::ResnetBn, 3);
    let plain = cfg.net(Arch::FeedforwardBn, 3);
    assert!(resnet.residual && resnet.residual_scale == 0.25);
    assert!(!plain.residual && plain.residual_scale == 1.0);
    // A different beta changes the resnet's gradients and nothing else.
    let (a, b) = (
        bn_lab::experiment::shattered::run(&base, &|_| {}),
        bn_lab::experiment::shattered::run(&cfg, &|_| {}),
    );
    for (x, y) in a.arms.iter().zip(&b.arms) {
        let same = x.seeds[0].gradient == y.seeds[0].gradient;
        assert_eq!(
            same,
            x.name != Arch::ResnetBn || x.depth == 1,
            "{} depth {}",
            x.name,
            x.depth
        );
    }
}

#[test]
fn the_shattered_figures_are_clear_on_a_tiny_run_one_depth_and_an_overflow() {
    common::assert_figures_clear::<Shattered>(&config(&TINY), "tiny");
    let one_depth = common::with_flag(&TINY, "--depth", "4");
    common::assert_figures_clear::<Shattered>(&config(&one_depth), "one-depth");
    // NaN lag-1 correlations (the forward overflows) are marked, not lost.
    let overflow = config(&[
        "shattered",
        "--depth",
        "2,40",
        "--width",
        "16",
        "--points",
        "16",
        "--arch",
        "feedforward,resnet+bn",
        "--init",
        "normal:1e8",
        "--seeds",
        "1",
        "--max-lag",
        "3",
    ]);
    let (report, _) = common::assert_figures_clear::<Shattered>(&overflow, "overflow");
    assert!(report.arms.iter().any(|a| a.lag1_correlation.0.is_nan()));
}

#[test]
fn the_headline_plots_and_writes_the_reports_lag1_correlations() {
    use bn_lab::plot::shattered::{arch_style, headline_panels, lag1_panel};
    let cfg = config(&common::with_flag(&TINY, "--depth", "3,1"));
    let report = Shattered::run(&cfg, &|_| {});
    let panel = lag1_panel(&report);
    // One series of means per architecture (the others are its min-max whiskers).
    let means: Vec<_> = panel
        .series
        .iter()
        .filter(|s| cfg.archs.iter().any(|a| a.name() == s.label))
        .collect();
    assert_eq!(means.len(), cfg.archs.len());
    for (s, &arch) in means.into_iter().zip(&cfg.archs) {
        assert_eq!(s.label, arch.name());
        // Two depths: markers without a line, nudged sideways by at most half a depth step.
        assert!(s.no_line, "{arch}: a line would claim the depths between");
        assert_eq!((s.color, s.marker), {
            let (c, m) = arch_style(arch, cfg.bn);
            (c, Some(m))
        });
        // Depths in increasing order, whatever order they were given in.
        let want: Vec<(f64, f64)> = [1, 3]
            .iter()
            .map(|&d| {
                let a = report
                    .arms
                    .iter()
                    .find(|a| a.name == arch && a.depth == d)
                    .unwrap();
                (d as f64, a.lag1_correlation.0)
            })
            .collect();
        assert_eq!(s.points.len(), want.len(), "{arch}");
        for (&(x, y), &(d, r)) in s.points.iter().zip(&want) {
            assert!(
                (x - d).abs() <= 0.5 && y == r,
                "{arch}: ({x}, {y}) for ({d}, {r})"
            );
            assert!(
                panel
                    .notes
                    .iter()
                    .any(|n| n.x == x && n.y == r && n.text == format!("{r:.3}")),
                "{arch} depth {d}: {r:.3} is written on the plot"
            );
        }
    }
    // The three architectures read apart without colour, and feedforward matches BN off.
    let styles: Vec<_> = cfg.archs.iter().map(|&a| arch_style(a, cfg.bn)).collect();
    for i in 0..styles.len() {
        for j in 0..i {
            assert!(styles[i].0 != styles[j].0 && styles[i].1 != styles[j].1);
        }
    }
    assert_eq!(
        styles[0],
        (
            bn_lab::plot::norm_color(bn_lab::config::Normaliser::Off),
            bn_lab::plot::norm_marker(bn_lab::config::Normaliser::Off)
        )
    );
    assert_eq!(
        headline_panels(&report).len(),
        4,
        "two depths: traces of each"
    );
}

/// `--norm layer` puts LayerNorm in the `+bn` architectures: per-sample statistics keep the
/// gradient of a 24-layer feedforward net correlated between neighbouring inputs, where
/// BatchNorm's (frozen) batch statistics leave white noise.
#[test]
fn layer_norm_does_not_shatter_the_feedforward_gradient_as_batch_norm_does() {
    let lag1 = |norm: &str| {
        let cfg = config(&[
            "shattered",
            "--norm",
            norm,
            "--arch",
            "feedforward+bn",
            "--depth",
            "24",
            "--points",
            "128",
            "--seeds",
            "4",
        ]);
        cfg.validate().unwrap();
        let report = Shattered::run(&cfg, &|_| {});
        (report.arms[0].lag1_correlation.0, report.mean_noise_band)
    };
    let (bn, floor) = lag1("batch");
    let (ln, _) = lag1("layer");
    assert!(
        bn.abs() < floor,
        "BN: lag-1 {bn} should be white noise (< {floor})"
    );
    assert!(
        ln > floor,
        "LN: lag-1 {ln} should be above the floor {floor}"
    );
}

/// The one-forward, one-backward path (`grid_gradients`, which `run` uses) computes the same
/// function and gradients as the reference path (train-mode forward, frozen statistics,
/// eval-mode forward, full backward), for every architecture, activations with and without
/// a kink, BN without scale/shift and a rescaled resnet branch; LayerNorm takes the reference
/// path itself. The two take BN's statistics from two forward passes that differ in the last
/// bit (the reference normalises with `(mean + b) - b`), which a sigmoid layer of small
/// variance amplifies to about 1e-12: hence 1e-9, not exact equality (the default run gives
/// the same bits).
#[test]
fn the_fast_path_agrees_with_the_frozen_network() {
    use bn_lab::experiment::shattered::{Pool, evaluate, grid_gradients};
    for extra in [
        &[][..],
        &["--act", "sigmoid"][..],
        &["--no-affine", "--residual-scale", "0.3"][..],
        &["--norm", "layer"][..],
    ] {
        let mut args = vec![
            "shattered",
            "--depth",
            "5",
            "--width",
            "24",
            "--points",
            "64",
            "--max-lag",
            "8",
        ];
        args.extend_from_slice(extra);
        let cfg = config(&args);
        cfg.validate().unwrap();
        let x = grid(cfg.points());
        let mut pool = Pool::default();
        for arch in [Arch::Feedforward, Arch::FeedforwardBn, Arch::ResnetBn] {
            for seed in [0, 3] {
                let fast = grid_gradients(&cfg, arch, 5, seed, x.view(), &mut pool);
                let reference = evaluate(&mut frozen_net(&cfg, arch, 5, seed), x.view());
                for (what, a, b) in [
                    ("y", &fast.y, &reference.y),
                    ("dy/dx", &fast.gradient, &reference.gradient),
                ] {
                    for (i, (u, v)) in a.iter().zip(b).enumerate() {
                        assert!(
                            (u - v).abs() <= 1e-9 * (1.0 + v.abs()),
                            "{extra:?} {arch} seed {seed} point {i}: {what} {u} vs {v}"
                        );
                    }
                }
                assert_eq!(fast.overflow_from_layer, reference.overflow_from_layer);
            }
        }
    }
}
