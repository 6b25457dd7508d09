//! `bn-lab ics`: the measure on cases with a known answer, and the command end to end.

use bn_lab::experiment::Plan;

use crate::common;

use crate::common::{
    TINY_ICS, assert_deterministic, assert_schema, bn_lab_ok, json, rejects, scratch,
};
use bn_lab::config::{Activation, Init, Loss, NormConfig};
use bn_lab::data::{self, Stream};
use bn_lab::experiment::ics::measure;
use bn_lab::model::Mlp;
use bn_lab::optim::{Sgd, SgdConfig};
use bn_lab::spec::NetConfig;
use bn_lab::train::loss_and_grad;
use ndarray::Array2;

fn net_cfg(act: Activation, depth: usize, bn: bool) -> NetConfig {
    NetConfig {
        d_in: 5,
        width: 7,
        d_out: 3,
        depth,
        act,
        init: Init::Xavier,
        norm: bn.then(NormConfig::default),
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    }
}

/// `before` with the gradients of a train-mode backward on a batch, and `after` one SGD step later.
fn before_after(cfg: &NetConfig, lr: f64) -> (Mlp<f64>, Mlp<f64>, Array2<f64>, Array2<f64>) {
    let batch = 11;
    let d = data::linear_teacher::<f64>(2, batch, cfg.d_in, cfg.d_out);
    let mut net = Mlp::<f64>::new(cfg, &mut data::rng(2, Stream::Weights));
    let mut d_o = Array2::zeros((batch, cfg.d_out));
    loss_and_grad(&mut net, &d.x, &d.y, &mut d_o, Loss::Mse);
    let before = net.clone();
    Sgd::new(SgdConfig {
        lr,
        momentum: 0.0,
        weight_decay: 0.0,
        warmup_steps: 0,
    })
    .step(&mut net);
    (before, net, d.x, d.y)
}

/// Layer 1 has no layers before it: G' is recomputed from unchanged weights on the same batch,
/// so it equals G bit for bit, with and without BN. The later layers do shift.
#[test]
fn the_first_layers_ics_is_exactly_zero() {
    for bn in [false, true] {
        let cfg = net_cfg(Activation::Tanh, 4, bn);
        let (before, after, x, y) = before_after(&cfg, 0.5);
        let ics = measure(&before, &after, &x, &y, Loss::Mse);
        assert_eq!(ics.len(), 5, "four hidden layers and the output layer");
        assert_eq!(ics[0].l2_diff, 0.0, "bn {bn}");
        assert!((ics[0].cosine - 1.0).abs() < 1e-12);
        for (i, l) in ics.iter().enumerate().skip(1) {
            assert!(l.l2_diff > 0.0, "bn {bn}, layer {}: {l:?}", i + 1);
            assert!(l.cosine < 1.0 + 1e-12);
        }
    }
}

#[test]
fn nothing_shifts_when_the_update_is_zero() {
    let cfg = net_cfg(Activation::Relu, 3, true);
    let (before, after, x, y) = before_after(&cfg, 0.0);
    for l in measure(&before, &after, &x, &y, Loss::Mse) {
        assert_eq!(l.l2_diff, 0.0);
    }
}

/// A one-hidden-layer linear net, computed a second way with plain matrix products:
/// `G_out = h_1^T (o - y) / N` with `h_1 = x W_1 + b_1`, `o = h_1 W_out + b_out`, and `G'_out`
/// the same with layer 1's updated `W_1', b_1'`. Layer 1's own G' is G (nothing before it).
#[test]
fn the_output_layers_ics_of_a_linear_net_matches_the_closed_form() {
    let cfg = net_cfg(Activation::Linear, 1, false);
    let (before, after, x, y) = before_after(&cfg, 0.3);
    let n = x.nrows() as f64;
    let g_out = |w1: &Array2<f64>, b1: &ndarray::Array1<f64>| {
        let h1 = x.dot(w1) + b1;
        let o = h1.dot(&before.out.w) + &before.out.b;
        h1.t().dot(&(o - &y)) / n
    };
    let g = g_out(&before.blocks[0].linear.w, &before.blocks[0].linear.b);
    let g2 = g_out(&after.blocks[0].linear.w, &after.blocks[0].linear.b);
    let diff = (&g - &g2).mapv(|v| v * v).sum().sqrt();
    let cos = (&g * &g2).sum() / (g.mapv(|v| v * v).sum().sqrt() * g2.mapv(|v| v * v).sum().sqrt());
    let ics = measure(&before, &after, &x, &y, Loss::Mse);
    assert_eq!(ics[0].l2_diff, 0.0);
    assert!(
        (ics[1].l2_diff - diff).abs() <= 1e-12 * diff.max(1.0),
        "{} vs {diff}",
        ics[1].l2_diff
    );
    assert!((ics[1].cosine - cos).abs() < 1e-12);
    assert!(diff > 1e-3, "the update is large enough to measure: {diff}");
}

#[test]
fn ics_writes_the_documented_json_and_picture() {
    let out = scratch("ics-e2e");
    let o = bn_lab_ok(&TINY_ICS[..], &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("BN reduced internal covariate shift in this run: "),
        "{stdout}"
    );
    assert!(stdout.contains(" s\n"), "prints the time taken: {stdout}");
    assert!(out.join("ics.png").metadata().unwrap().len() > 1000);
    let v = json(&out.join("ics.json"));
    assert_schema(&v, "ics");
    assert_eq!(v["layer_names"], serde_json::json!(["1", "2", "3", "out"]));
    let arms = v["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2);
    for a in arms {
        let records = a["records"].as_array().unwrap();
        assert_eq!(
            records
                .iter()
                .map(|r| r["step"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [0, 4, 8]
        );
        for r in records {
            let l2 = r["l2_diff"].as_array().unwrap();
            assert_eq!(l2.len(), 4);
            assert_eq!(l2[0].as_f64(), Some(0.0), "layer 1's ICS is exactly 0");
            assert!(l2[1..].iter().all(|v| v.as_f64().unwrap() > 0.0));
        }
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn ics_is_deterministic_for_a_seed() {
    assert_deterministic(&TINY_ICS[..], "ics.json", "ics");
}

#[test]
fn bad_ics_flags_give_one_line_naming_the_flag_and_write_nothing() {
    let out = scratch("ics-bad");
    for (extra, flag) in [
        (&["--steps", "0"][..], "--steps"),
        (&["--every", "0"], "--every"),
        (&["--lr", "0"], "--lr"),
        (&["--lr", "inf"], "--lr"),
        (&["--n-train", "4"], "--n-train"),
        (&["--batch", "1"], "--batch"),
        (&["--width", "0"], "--width"),
        (&["--eps=-1"], "--eps"),
        (&["--lr", "-0.1"], "--lr"),
        (&["--init", "normal"], "--init"),
        (&["--task", "xor"], "--task"),
    ] {
        let mut args = TINY_ICS.to_vec();
        args.extend(extra);
        rejects(&args, flag, &out);
    }
}

fn ics_config(args: &[&str]) -> bn_lab::experiment::ics::IcsConfig {
    match common::parse(args) {
        bn_lab::cli::Command::Ics(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        _ => unreachable!("an ics command line"),
    }
}

/// The bar counts the measurements (a forward and backward pass per layer after the first, whose
/// ICS is 0 without a pass) beside the training steps: per arm 12 steps of 8 samples at 3 units,
/// 3 measurements of 3 layers' passes
/// and the final test loss over 16 samples; the run reports exactly that, also when both arms
/// diverge at once.
#[test]
fn ics_progress_adds_up_to_its_work_units() {
    use bn_lab::experiment::ics::{Ics, measure_units};
    let mut single = TINY_ICS.to_vec();
    single.extend(["--sweep-lr", "none"]);
    let cfg = ics_config(&single);
    assert_eq!(measure_units(&cfg), 3 * 3 * 8);
    assert_eq!(cfg.work_units(), 2 * (12 * 24 + 3 * 72 + 16));
    // The default sweep trains both arms again at three more learning rates.
    let cfg = ics_config(&TINY_ICS[..]);
    assert_eq!(cfg.work_units(), 4 * 2 * (12 * 24 + 3 * 72 + 16));
    let r = common::assert_progress_adds_up::<Ics>(&cfg, measure_units(&cfg), "ics");
    assert!(r.arms.iter().all(|a| a.run.diverged_at.is_none()));
    let cfg = ics_config(&common::with_flag(&TINY_ICS[..], "--lr", "1e10"));
    let r = common::assert_progress_adds_up::<Ics>(&cfg, u64::MAX, "ics --lr 1e10");
    assert!(r.arms.iter().all(|a| a.run.diverged_at.is_some()));
}

/// With lr 1e10 the BN-off arm's later layers are NaN/inf: the verdict is "undetermined" with a
/// reason naming the arm and the layers, the layer medians keep the NaN (no mean over the
/// remaining layers), and a normal run keeps its verdict with no reason.
#[test]
fn a_verdict_needs_finite_medians_in_both_arms() {
    let out = scratch("ics-undetermined");
    bn_lab_ok(&TINY_ICS[..], &out);
    let v = json(&out.join("ics.json"));
    let verdict = &v["verdict"];
    assert!(
        ["yes", "no", "mixed"].contains(&verdict["bn_reduced_ics"].as_str().unwrap()),
        "{verdict}"
    );
    assert!(verdict["reason"].is_null(), "{verdict}");

    let diverging = common::with_flag(&TINY_ICS[..], "--lr", "1e10");
    let o = bn_lab_ok(&diverging, &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v = json(&out.join("ics.json"));
    let verdict = &v["verdict"];
    assert_eq!(verdict["bn_reduced_ics"], "undetermined", "{verdict}");
    let reason = verdict["reason"].as_str().unwrap();
    let off = &v["arms"][0];
    assert_eq!(off["label"], "BN off");
    // Every non-finite median of layers 2..out is named, under its arm.
    let medians = off["summary"]["layer_l2_diff"].as_array().unwrap();
    let bad: Vec<usize> = (1..medians.len())
        .filter(|&l| !common::num(&medians[l]).is_finite())
        .collect();
    assert!(!bad.is_empty(), "lr 1e10 blows up some layer: {medians:?}");
    assert!(reason.contains("in the BN off arm"), "{reason}");
    assert!(
        !common::num(&off["summary"]["l2_diff"]).is_finite(),
        "the mean over layers keeps the non-finite layers: {}",
        off["summary"]
    );
    assert!(
        stdout.contains(&format!("in this run: undetermined: {reason}")),
        "{stdout}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// The headline scatter draws, per arm, exactly the report's `(summary ||G - G'||, final test
/// loss)` of each learning rate; the runs at `--lr` are the detailed arms' own numbers, and a
/// sweep run equals the detailed run of a command line with that `--lr`.
#[test]
fn the_scatter_points_are_the_reports_numbers() {
    use bn_lab::experiment::ics::{Ics, run};
    use bn_lab::plot::ics::scatter_points;
    let cfg = ics_config(&TINY_ICS[..]);
    let r = run(&cfg, &|_| {});
    assert_eq!(r.runs.len(), 8, "2 arms x 4 learning rates");
    let lrs: Vec<f64> = r.runs.iter().map(|x| x.lr).collect();
    assert_eq!(lrs, [0.001, 0.001, 0.003, 0.003, 0.015, 0.015, 0.05, 0.05]);
    for a in &r.arms {
        let pts = scatter_points(&r, &a.run.label);
        let want: Vec<(f64, f64)> = r
            .runs
            .iter()
            .filter(|x| x.label == a.run.label)
            .map(|x| (x.l2_diff.0, x.final_test_loss.0))
            .collect();
        assert_eq!(pts.len(), 4);
        assert_eq!(pts, want, "{}", a.run.label);
        let main = r
            .runs
            .iter()
            .find(|x| x.label == a.run.label && x.lr == 0.05)
            .unwrap();
        assert_eq!(main.l2_diff.0, a.summary.l2_diff.0);
        assert_eq!(main.final_test_loss.0, a.run.final_test_loss.0);
    }
    let mut at = common::with_flag(&TINY_ICS[..], "--lr", "0.015");
    at.extend(["--sweep-lr", "none"]);
    let alone = run(&ics_config(&at), &|_| {});
    for a in &alone.arms {
        let swept = r
            .runs
            .iter()
            .find(|x| x.label == a.run.label && x.lr == 0.015)
            .unwrap();
        assert_eq!(swept.l2_diff.0, a.summary.l2_diff.0, "{}", a.run.label);
        assert_eq!(swept.final_test_loss.0, a.run.final_test_loss.0);
    }
    // The counts over the learning rates are those of the runs listed: recounted here, per
    // rate, from the BN-off and BN-on runs at it (every run of this tiny config is finite).
    let v = &r.ics_vs_loss;
    assert_eq!(v.lrs, 4);
    let (mut lower_loss, mut lower_ics) = (0, 0);
    for lr in [0.001, 0.003, 0.015, 0.05] {
        let at = |label: &str| {
            r.runs
                .iter()
                .find(|x| x.lr == lr && x.label == label)
                .unwrap_or_else(|| panic!("no {label} run at {lr}"))
        };
        let (off, on) = (at("BN off"), at("BN on"));
        lower_loss += usize::from(on.final_test_loss.0 < off.final_test_loss.0);
        lower_ics += usize::from(on.l2_diff.0 < off.l2_diff.0);
    }
    assert_eq!((v.bn_lower_loss, v.bn_lower_ics), (lower_loss, lower_ics));
    let _ = Ics;
}

/// Spearman's rho on cases worked by hand: a monotone pair is +1 whatever the scale, a
/// reversed one -1, and ties share their mean rank (x = 1, 2, 2, 3 against y = 1, 3, 2, 4:
/// ranks 1, 2.5, 2.5, 4 and 1, 3, 2, 4 give rho = 4.5 / sqrt(4.5 * 5) = 0.9487).
#[test]
fn spearman_matches_hand_computed_cases() {
    use bn_lab::experiment::ics::spearman;
    assert!((spearman(&[1.0, 2.0, 3.0], &[1.0, 100.0, 1e4]) - 1.0).abs() < 1e-12);
    assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[9.0, 5.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]);
    assert!((rho - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-12, "{rho}");
    assert!(spearman(&[1.0, 2.0], &[1.0, 2.0]).is_nan());
}

/// Every figure of a tiny run (the default one takes about 6 s in a release build) and of
/// one whose BN-off arm diverges: no legend over data, the headline a slide.
#[test]
fn ics_figures_keep_their_legends_clear() {
    use bn_lab::experiment::ics::Ics;
    let (_, layouts) = common::assert_figures_clear::<Ics>(&ics_config(&TINY_ICS[..]), "tiny");
    assert_eq!(layouts[0].1.panels.len(), 2, "scatter and ratios");
    // Each scatter point is recorded by its line vertex and its marker: 8 distinct pixels.
    let distinct: std::collections::BTreeSet<(i32, i32)> =
        layouts[0].1.panels[0].points.iter().copied().collect();
    assert_eq!(distinct.len(), 8, "one point per arm and learning rate");
    let diverging = common::with_flag(&TINY_ICS[..], "--lr", "1e10");
    common::assert_figures_clear::<Ics>(&ics_config(&diverging), "diverging");
}

/// `ics` backpropagates only down to the layer it measures: above that block the gradients
/// are bit for bit those of a full backward.
#[test]
fn a_partial_backward_matches_the_full_one_above_its_stop() {
    use bn_lab::config::{Activation, Init, NormConfig, NormKind, Placement};
    use bn_lab::model::{Mlp, Mode};
    use bn_lab::spec::NetConfig;
    use ndarray::Array2;
    let cfg = NetConfig {
        d_in: 5,
        width: 6,
        d_out: 3,
        depth: 4,
        act: Activation::Relu,
        init: Init::He,
        norm: Some(NormConfig {
            kind: NormKind::Batch,
            affine: true,
            placement: Placement::Pre,
            eps: 1e-5,
            momentum: 0.1,
        }),
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    };
    let mut rng = bn_lab::data::rng(3, bn_lab::data::Stream::Weights);
    let mut full = Mlp::<f64>::new(&cfg, &mut rng);
    let x = Array2::from_shape_fn((7, 5), |(i, j)| ((i * 5 + j) as f64 * 0.37).sin());
    let d_o = Array2::from_shape_fn((7, 3), |(i, j)| ((i + 2 * j) as f64 * 0.61).cos());
    let mut part = full.clone();
    full.forward(x.view(), Mode::Train).unwrap();
    full.backward(d_o.view()).unwrap();
    part.forward(x.view(), Mode::Train).unwrap();
    part.backward_to(d_o.view(), 2).unwrap();
    assert_eq!(full.out.dw, part.out.dw);
    for l in 2..4 {
        assert_eq!(
            full.blocks[l].linear.dw, part.blocks[l].linear.dw,
            "block {l}"
        );
    }
    // Below the stop nothing was computed: still the fresh net's zeros.
    assert!(part.blocks[0].linear.dw.iter().all(|&v| v == 0.0));
}

/// The per-rate counts of every measure, read from hand-made runs: at lr 0.001 BN trains
/// better with more ICS by all three measures; at lr 0.01 it has less by all three; at lr 0.1
/// more by the raw measure only (not counted as "more by all three").
#[test]
fn the_counts_per_measure_follow_the_runs() {
    use bn_lab::config::Normaliser;
    use bn_lab::experiment::ics::{IcsRun, IcsVsLoss};
    use bn_lab::stats::Num;
    let run = |norm: Normaliser, lr: f64, l2: f64, rel: f64, cos: f64, loss: f64| IcsRun {
        label: norm.label().to_string(),
        norm,
        lr,
        l2_diff: Num(l2),
        relative: Num(rel),
        cosine: Num(cos),
        final_test_loss: Num(loss),
        final_test_accuracy: None,
        diverged_at: None,
    };
    let runs = [
        run(Normaliser::Off, 0.001, 0.4, 0.2, 0.97, 1.0),
        run(Normaliser::BN, 0.001, 1.0, 0.4, 0.92, 0.4),
        run(Normaliser::Off, 0.01, 0.7, 0.7, 0.65, 0.6),
        run(Normaliser::BN, 0.01, 0.5, 0.4, 0.91, 0.1),
        run(Normaliser::Off, 0.1, 0.3, 0.5, 0.80, 0.9),
        run(Normaliser::BN, 0.1, 0.4, 0.3, 0.90, 0.2),
    ];
    let v = IcsVsLoss::of(&runs);
    assert_eq!((v.runs, v.lrs, v.bn_lower_loss), (6, 3, 3));
    assert_eq!(
        (v.bn_lower_ics, v.bn_lower_relative, v.bn_higher_cosine),
        (1, 2, 2)
    );
    assert_eq!(v.bn_better_with_more_ics, 1);
    assert_eq!(v.bn_better_with_more_ics_lrs, vec![0.001]);
    // The cosine's correlation is of 1 - cos: less aligned gradients, more ICS.
    let loss: Vec<f64> = runs.iter().map(|r| r.final_test_loss.0).collect();
    let one_minus_cos: Vec<f64> = runs.iter().map(|r| 1.0 - r.cosine.0).collect();
    assert_eq!(
        v.spearman_cosine.0,
        bn_lab::experiment::ics::spearman(&one_minus_cos, &loss)
    );
}

/// The summary's "medians cover only ..." note lists the arms that diverged after at least one
/// measurement, with the step and how many steps were measured; not an arm that finished, nor
/// one that diverged before its first measurement.
#[test]
fn partial_medians_name_the_arms_that_diverged_after_measuring() {
    use bn_lab::experiment::ics::{PartialMedians, partial_medians, run};
    let mut single = TINY_ICS.to_vec();
    single.extend(["--sweep-lr", "none"]);
    let cfg = ics_config(&single);
    let mut arms = run(&cfg, &|_| {}).arms;
    assert!(arms.len() >= 2 && arms.iter().all(|a| a.records.len() >= 2));
    assert_eq!(partial_medians(&arms), Vec::new());
    arms[1].run.diverged_at = Some(7);
    arms[1].records.truncate(2);
    arms[0].run.diverged_at = Some(1);
    arms[0].records.clear();
    assert_eq!(
        partial_medians(&arms),
        vec![PartialMedians {
            label: &arms[1].run.label,
            diverged_at: 7,
            measured: 2
        }]
    );
}
