//! `bn-lab shattered` as Balduzzi et al. 2017 in full: the theorems' predicted correlations
//! (Thm 1: 2^-L, Thm 2: (3/4)^L, Thm 3: ~1/(beta sqrt(L))) computed and recorded beside the
//! measured decay, the resnet arm without BN, the dense depth grid's log-x headline with its
//! dotted predictions, and `--grids` (the lag-1 correlation against the correlation at a fixed
//! distance), each checked against a second computation.

use bn_lab::cli::Command;
use bn_lab::experiment::shattered::{
    Arch, Pool, Shattered, ShatteredConfig, Theorem, correlation_at, curve_depths, evaluate,
    frozen_gradients, frozen_net_on, grid, grid_gradients, lag_pearson, lag1_pearson, outputs,
    step,
};
use bn_lab::experiment::{Experiment, Plan};
use bn_lab::limits::{MAX_FIGURE_PIXELS, MAX_PANELS};

use crate::common;
use crate::common::{assert_refused, bn_lab_ok, json, scratch_dir};

fn config(args: &[&str]) -> ShatteredConfig {
    match common::parse(args) {
        Command::Shattered(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        other => panic!("not shattered: {other:?}"),
    }
}

/// Four architectures, a dense-ish depth grid and a tiny net: well under a second in debug.
const DENSE: [&str; 13] = [
    "shattered",
    "--depths",
    "1,2,3,4,6,8",
    "--arch",
    "feedforward,feedforward+bn,resnet,resnet+bn",
    "--width",
    "8",
    "--points",
    "32",
    "--seeds",
    "2",
    "--max-lag",
    "4",
];

#[test]
fn the_theorems_give_their_stated_correlations() {
    for l in 1..=12 {
        let exact = 0.5f64.powi(l as i32);
        assert_eq!(
            Theorem::Feedforward.correlation(l, 1.0),
            exact,
            "Thm 1 at {l}"
        );
        assert_eq!(Theorem::FeedforwardBn.correlation(l, 0.3), exact);
        // Thm 2: variance 2^L, covariance (3/2)^L.
        let thm2 = 1.5f64.powi(l as i32) / 2f64.powi(l as i32);
        assert!((Theorem::Resnet.correlation(l, 1.0) - thm2).abs() < 1e-15);
        // Thm 3: ~ 1/(beta sqrt(L)), at most 1.
        let thm3 = 1.0 / (l as f64).sqrt();
        assert!((Theorem::ResnetBn.correlation(l, 1.0) - thm3).abs() < 1e-15);
        assert_eq!(
            Theorem::ResnetBn.correlation(l, 0.1),
            1.0_f64.min(10.0 * thm3)
        );
    }
    // The same path count with beta: a branch scaled by beta adds beta^2 to the variance and
    // beta^2/2 to the covariance per layer; beta -> 0 leaves the identity (correlation 1).
    let b = 0.5f64;
    let r = ((1.0 + b * b / 2.0) / (1.0 + b * b)).powi(10);
    assert!((Theorem::Resnet.correlation(10, b) - r).abs() < 1e-15);
    assert!(Theorem::Resnet.correlation(50, 1e-6) > 0.999_999);
    for (t, f, thm) in [
        (Theorem::Feedforward, "2^-L", "Thm 1"),
        (Theorem::Resnet, "(3/4)^L", "Thm 2"),
        (Theorem::ResnetBn, "1/sqrt(L)", "Thm 3"),
    ] {
        assert_eq!(t.formula(1.0), f);
        assert!(t.source().starts_with("Balduzzi et al. 2017, ") && t.source().contains(thm));
    }
    assert_eq!(Theorem::ResnetBn.formula(0.1), "1/(0.1 sqrt(L))");
    assert!(Theorem::Feedforward.exponential() && !Theorem::ResnetBn.exponential());
}

#[test]
fn curves_cover_every_depth_or_log_spaced_depths() {
    assert_eq!(curve_depths(50), (1..=50).collect::<Vec<_>>());
    let far = curve_depths(100_000);
    assert!(far.len() <= 200 && far.len() > 100, "{}", far.len());
    assert_eq!((far[0], far[far.len() - 1]), (1, 100_000));
    assert!(far.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn lag_k_correlations_generalise_lag_one_and_interpolate() {
    let g: Vec<f64> = (0..40)
        .map(|i| (i as f64 * 0.37).sin() + 0.1 * i as f64)
        .collect();
    assert_eq!(lag_pearson(&g, 1), lag1_pearson(&g));
    assert_eq!(correlation_at(&g, 1.0), lag1_pearson(&g));
    let mid = correlation_at(&g, 2.25);
    let want = 0.75 * lag_pearson(&g, 2) + 0.25 * lag_pearson(&g, 3);
    assert!((mid - want).abs() < 1e-15);
    assert!(lag_pearson(&g, 39).is_nan(), "one pair is no correlation");
    assert_eq!(step(33), 0.125);
    assert_eq!(step(16), 4.0 / 15.0);
}

#[test]
fn predictions_record_the_computed_curve_and_the_decay_beside_the_measured_one() {
    let cfg = config(&DENSE);
    let report = Shattered::run(&cfg, &|_| {});
    assert_eq!(report.predictions.len(), 4);
    let band = report.mean_noise_band;
    for p in &report.predictions {
        let t = p.name.theory();
        assert_eq!(p.source, t.source());
        assert_eq!(p.curve.len(), 8, "every depth 1..=8");
        for c in &p.curve {
            assert_eq!(c.r.0, t.correlation(c.depth, 1.0));
        }
        let d = &p.decay;
        assert_eq!((d.from_depth, d.to_depth), (1, 8));
        let r = |depth| {
            report
                .arms
                .iter()
                .find(|a| a.name == p.name && a.depth == depth)
                .unwrap()
                .lag1_correlation
                .0
        };
        let measured = r(8).abs() / r(1).abs();
        assert!((d.measured_ratio.0 - measured).abs() < 1e-12 || measured.is_nan());
        assert_eq!(
            d.predicted_ratio.0,
            t.correlation(8, 1.0) / t.correlation(1, 1.0)
        );
        // The first depth whose prediction is below the band, by brute force.
        let first = (1..).find(|&l| t.correlation(l, 1.0) < band);
        assert_eq!(d.predicted_white_from_depth, first);
        // Measured: inside the band from white_from_depth on, outside just before it.
        if let Some(w) = d.white_from_depth {
            assert!(
                cfg.depths
                    .iter()
                    .filter(|&&x| x >= w)
                    .all(|&x| r(x).abs() < band)
            );
        } else {
            assert!(r(8).abs() >= band || r(8).is_nan());
        }
    }
}

#[test]
fn the_resnet_arm_is_the_plain_net_with_skips() {
    let cfg = config(&DENSE);
    cfg.validate().unwrap();
    let (plain, res) = (cfg.net(Arch::Feedforward, 3), cfg.net(Arch::Resnet, 3));
    assert!(res.residual && res.norm.is_none() && !plain.residual);
    assert_eq!(Arch::Resnet.theory(), Theorem::Resnet);
    let report = Shattered::run(&cfg, &|_| {});
    let g = |arch: Arch, depth: usize| {
        let a = report
            .arms
            .iter()
            .find(|a| a.name == arch && a.depth == depth);
        a.unwrap().seeds[0].gradient.clone()
    };
    // Block 1 has no skip: at depth 1 the resnet is the feedforward net; deeper it is not.
    assert_eq!(g(Arch::Resnet, 1), g(Arch::Feedforward, 1));
    assert_ne!(g(Arch::Resnet, 3), g(Arch::Feedforward, 3));
}

/// `--grids`: the main grid's numbers stay as they were, every grid is listed by points, and an
/// extra grid's numbers equal a second computation through the slow path (`frozen_net_on` and
/// `evaluate`, BN statistics of that grid).
#[test]
fn grids_record_lag1_and_the_correlation_at_a_fixed_distance() {
    let base = config(&DENSE);
    let args = common::with_flag(&DENSE, "--seeds", "1");
    let mut with = args.clone();
    // Even counts: an odd grid has x = 0 on it, where a BN net of depth 1 has every unit's
    // kink (BN centres a symmetric grid) and the two paths may pick either side's slope.
    with.extend(["--grids", "64,16"]);
    let (cfg_base, cfg) = (config(&args), config(&with));
    cfg.validate().unwrap();
    assert!(base.grids.is_empty());
    let (a, b) = (
        Shattered::run(&cfg_base, &|_| {}),
        Shattered::run(&cfg, &|_| {}),
    );
    assert!(a.spacing.is_none());
    for (x, y) in a.arms.iter().zip(&b.arms) {
        assert_eq!(
            x.seeds[0].gradient, y.seeds[0].gradient,
            "the main grid moved"
        );
    }
    let s = b.spacing.as_ref().expect("--grids reports the spacing");
    let points: Vec<usize> = s.grids.iter().map(|g| g.points).collect();
    assert_eq!(points, [16, 32, 64]);
    assert_eq!(s.distance, step(16));
    assert_eq!(s.grids[0].lag, 1.0);
    // 4/15 on a grid of step 4/63: lag 4.2, between the Pearson correlations at 4 and 5.
    assert!((s.grids[2].lag - 4.2).abs() < 1e-12);
    for arm in &s.grids[0].arms {
        // On the coarsest grid the fixed distance is one step.
        assert_eq!(
            arm.at_distance.0.to_bits(),
            arm.lag1_correlation.0.to_bits()
        );
    }
    let main = &s.grids[1];
    for (m, arm) in main.arms.iter().zip(&b.arms) {
        assert_eq!(
            m.lag1_correlation.0.to_bits(),
            arm.lag1_correlation.0.to_bits()
        );
    }
    let fine = &s.grids[2];
    let x = grid(64);
    for arm in &fine.arms {
        let mut net = frozen_net_on(&cfg, arm.name, arm.depth, 0, x.view());
        let g = evaluate(&mut net, x.view()).gradient;
        for (got, want) in [
            (arm.lag1_correlation.0, lag1_pearson(&g)),
            (arm.at_distance.0, correlation_at(&g, 4.2)),
        ] {
            assert!(
                (got - want).abs() < 1e-9 || (got.is_nan() && want.is_nan()),
                "{} depth {}: {got} vs {want}",
                arm.name,
                arm.depth
            );
        }
    }
    common::assert_figures_clear::<Shattered>(&cfg, "grids");
}

#[test]
fn bad_grids_are_refused_naming_the_flag() {
    let dir = scratch_dir("balduzzi-refused");
    for grids in ["2", "32", "17,17", "5,6,7,8,9,10,11,12,13"] {
        let args = [&DENSE[..], &["--grids", grids]].concat();
        assert_refused(&args, "--grids", &dir);
    }
}

/// The dense grid through the binary: `--depths` is `--depth`, the headline's lag-1 panel is
/// on a log axis with each architecture's prediction dotted, the JSON records the predictions'
/// citations and curves, and the figures stay clear.
#[test]
fn a_dense_depth_grid_draws_its_predictions_dotted_on_a_log_axis() {
    use bn_lab::plot::chart::Dash;
    let dir = scratch_dir("balduzzi-dense");
    let o = bn_lab_ok(&DENSE, &dir);
    let stdout = String::from_utf8_lossy(&o.stdout);
    for want in ["Thm 1", "Thm 2", "Thm 3", "(3/4)^L", "resnet "] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
    let v = json(&dir.join("shattered.json"));
    assert_eq!(v["config"]["depths"].as_array().unwrap().len(), 6);
    assert!(v["config"].get("grids").is_none(), "left out when empty");
    assert!(v.get("spacing").is_none());
    assert_eq!(v["predictions"][2]["source"], "Balduzzi et al. 2017, Thm 2");
    let cfg = config(&DENSE);
    let (report, _) = common::assert_figures_clear::<Shattered>(&cfg, "dense");
    let panel = bn_lab::plot::shattered::lag1_panel(&report);
    assert!(panel.log_x);
    let dotted: Vec<_> = panel
        .series
        .iter()
        .filter(|s| s.dash == Dash::Dotted)
        .collect();
    assert_eq!(dotted.len(), 4, "one prediction per architecture");
    for (s, p) in dotted.iter().zip(&report.predictions) {
        assert!(s.label.contains(&p.formula) && s.label.contains(&p.source));
        let want: Vec<(f64, f64)> = p.curve.iter().map(|c| (c.depth as f64, c.r.0)).collect();
        assert_eq!(s.points, want);
    }
    // A few depths keep the old panel: linear, markers, no predictions.
    let few = config(&common::with_flag(&DENSE, "--depths", "1,8"));
    let few = bn_lab::plot::shattered::lag1_panel(&Shattered::run(&few, &|_| {}));
    assert!(!few.log_x && few.series.iter().all(|s| s.dash != Dash::Dotted));
}

/// The standard-block architectures, each its block, normaliser and SkipInit.
const STD_ARCHS: [Arch; 4] = [
    Arch::Preact,
    Arch::PreactBn,
    Arch::PreactSkipinit,
    Arch::BasicBn,
];

fn std_config() -> ShatteredConfig {
    config(&[
        "shattered",
        "--depths",
        "1,3",
        "--arch",
        "preact,preact+bn,preact+skipinit,basic+bn",
        "--width",
        "8",
        "--points",
        "32",
        "--seeds",
        "1",
        "--max-lag",
        "4",
    ])
}

/// Each standard-block arm builds its block (depth counts blocks), takes the slow path, and
/// its `dy/dx` on the grid is the derivative of its `y(x)`: a central finite difference of the
/// frozen net's outputs. The frozen statistics (a pre-activation block's first normaliser
/// included) reproduce the train-mode forward they were taken from. An even grid keeps x = 0
/// (where BN centring puts kinks) off the grid.
#[test]
fn standard_block_arms_differentiate_their_function_on_the_grid() {
    let cfg = std_config();
    cfg.validate().unwrap();
    let x = grid(cfg.points());
    for arch in STD_ARCHS {
        let n = cfg.net(arch, 3);
        assert_eq!(n.block, arch.block(), "{arch}");
        assert!(n.block.is_some() && !n.residual, "{arch}");
        assert_eq!(n.skip_init, arch == Arch::PreactSkipinit, "{arch}");
        assert_eq!(n.norm.is_some(), arch.parts().normalised, "{arch}");
        let mut net = frozen_net_on(&cfg, arch, 3, 0, x.view());
        assert_eq!((net.units.len(), net.blocks.len()), (3, 7), "{arch}");
        assert!(frozen_gradients(&net, x.view(), &mut Pool::default()).is_none());
        let e = evaluate(&mut net, x.view());
        assert!(e.overflow_from_layer.is_none());
        // The fallback of the run's own path gives the same bits.
        let g = grid_gradients(&cfg, arch, 3, 0, x.view(), &mut Pool::default());
        assert_eq!(g.gradient, e.gradient, "{arch}");
        assert_eq!(g.y, e.y, "{arch}");
        if n.norm.is_some() {
            let mut fresh = bn_lab::model::Mlp::<f64>::new(
                &n,
                &mut bn_lab::data::rng(0, bn_lab::data::Stream::Weights),
            );
            bn_lab::experiment::shattered::init_biases(&mut fresh, cfg.bias, 0);
            let train: Vec<f64> = fresh
                .forward(x.view(), bn_lab::model::Mode::Train)
                .unwrap()
                .column(0)
                .to_vec();
            for (a, b) in train.iter().zip(&e.y) {
                assert!(
                    (a - b).abs() <= 1e-12 * (1.0 + a.abs()),
                    "{arch}: {a} vs {b}"
                );
            }
        }
        let h = 1e-6;
        let mut shifted = |d: f64| outputs(&mut net, x.mapv(|v| v + d).view());
        let (up, down) = (shifted(h), shifted(-h));
        let mut agree = 0;
        for i in 0..x.nrows() {
            let fd = (up[i] - down[i]) / (2.0 * h);
            if (fd - e.gradient[i]).abs() <= 1e-5 * (1.0 + fd.abs()) {
                agree += 1;
            }
        }
        // A kink within h of a grid point spoils its difference: allow one.
        assert!(
            agree + 1 >= x.nrows(),
            "{arch}: {agree} of {} agree",
            x.nrows()
        );
        if arch == Arch::PreactSkipinit {
            // alpha = 0: the linear stem and head, one slope everywhere.
            assert!(e.gradient.iter().all(|&v| v == e.gradient[0]), "{arch}");
        } else {
            assert!(e.gradient.iter().any(|&v| v != e.gradient[0]), "{arch}");
        }
    }
}

/// The standard-block arms run end to end, each predicted as its parts say, and the detail
/// figure of every architecture at the most depths stays under the pixel limit.
#[test]
fn standard_block_arms_run_with_their_predictions() {
    let cfg = std_config();
    let report = Shattered::run(&cfg, &|_| {});
    assert_eq!(report.arms.len(), 8);
    for p in &report.predictions {
        let t = p.name.theory();
        assert_eq!(p.formula, t.formula(1.0));
        match p.name {
            Arch::Preact => assert_eq!(p.formula, "(5/8)^L"),
            Arch::PreactBn | Arch::BasicBn => assert_eq!(p.formula, "1/sqrt(L)"),
            Arch::PreactSkipinit => assert_eq!(p.formula, "1"),
            other => panic!("not asked for: {other}"),
        }
    }
    let skip = report
        .arms
        .iter()
        .filter(|a| a.name == Arch::PreactSkipinit);
    for a in skip {
        assert_eq!(a.lag1_correlation.0, 1.0, "a constant gradient");
    }
    // Two-layer branches under Thm 2's path count: 1 + beta^2/4 over 1 + beta^2 per block.
    assert!((Theorem::PreactResnet.correlation(3, 1.0) - 0.625f64.powi(3)).abs() < 1e-15);
    let size = bn_lab::plot::chart::Grid::new(Arch::ALL.len() + 1, MAX_PANELS, (800, 520)).size();
    assert!(f64::from(size.0) * f64::from(size.1) <= MAX_FIGURE_PIXELS);
}

#[test]
fn blocks_and_skip_init_are_set_per_architecture() {
    for (flag, field) in [("--block=preact", "--arch"), ("--skip-init", "--arch")] {
        let mut args = std_config_args();
        args.push(flag);
        let err = config(&args).validate().unwrap_err().to_string();
        assert!(err.contains(field), "{flag}: {err}");
    }
}

fn std_config_args() -> Vec<&'static str> {
    vec![
        "shattered",
        "--depths",
        "1",
        "--arch",
        "preact",
        "--width",
        "8",
        "--points",
        "32",
    ]
}
