//! `--histograms` on `grad-norms` and `train`: the backprop signal of each histogram layer is the
//! one the network's own backward measures, the counts add up, saturation shows where it must,
//! the figures keep their legend off the data, and without the flag nothing changes.

use crate::common;

use crate::common::{TINY_TRAIN, assert_refused, parse, scratch};
use bn_lab::cli::Command;
use bn_lab::config::{Activation, Loss, Normaliser};
use bn_lab::experiment::grad_norms::{GradNorms, GradNormsConfig};
use bn_lab::experiment::train::{Train, TrainConfig};
use bn_lab::histogram::{self, Histogram, Snapshot};
use bn_lab::{Mlp, Mode, data};

fn grad_norms_cfg(args: &[&str]) -> GradNormsConfig {
    let all: Vec<&str> = std::iter::once("grad-norms")
        .chain(args.iter().copied())
        .collect();
    match parse(&all) {
        Command::GradNorms(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        _ => unreachable!("grad-norms parses to grad-norms"),
    }
}

fn train_cfg(args: &[&str]) -> TrainConfig {
    match parse(args) {
        Command::Train(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        _ => unreachable!("a train command line"),
    }
}

fn assert_adds_up(h: &Histogram, n: u64, what: &str) {
    assert_eq!(h.n, n, "{what}");
    assert_eq!(h.counts.len(), histogram::BINS, "{what}");
    assert_eq!(h.edges.len(), histogram::BINS + 1, "{what}");
    assert!(h.edges.windows(2).all(|e| e[0] < e[1]), "{what}: edges");
    assert_eq!(
        h.counts.iter().sum::<u64>(),
        h.n - h.non_finite,
        "{what}: counts"
    );
}

fn snapshots_add_up(s: &Snapshot, n: u64, what: &str) {
    for l in &s.layers {
        assert_adds_up(&l.activation, n, what);
        assert_adds_up(&l.grad, n, what);
    }
}

/// `dL/dh_l` from the copied tail has the norm `Mlp::backward` records for layer l, for plain,
/// BN (before and after the activation), LayerNorm and residual networks.
#[test]
fn the_tail_gradient_is_the_backward_signal_of_every_layer() {
    for (act, norm, residual) in [
        (Activation::Tanh, Normaliser::Off, false),
        (Activation::Tanh, Normaliser::BN, false),
        (
            Activation::Sigmoid,
            Normaliser::BN.placed(bn_lab::Placement::Post),
            false,
        ),
        (Activation::Relu, Normaliser::LN, true),
    ] {
        let mut spec = grad_norms_cfg(&["--width", "12", "--d-in", "12", "--batch", "16"]).net;
        spec.residual = residual;
        spec.dtype = bn_lab::Dtype::F64;
        let cfg = spec.net(6, act, norm);
        let batch = data::teacher_batch::<f64>(Loss::Mse, 0, 16, cfg.d_in, cfg.d_out);
        let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(0, data::Stream::Weights));
        let mut d_o = ndarray::Array2::zeros((16, cfg.d_out));
        let o = net.forward(batch.x.view(), Mode::Train).unwrap();
        Loss::Mse.loss_and_grad(o, batch.y.view(), d_o.view_mut());
        let tails: Vec<f64> = (1..=6)
            .map(|l| {
                let g = histogram::grad_at(&net, l, d_o.view());
                g.iter().map(|v| v * v).sum::<f64>().sqrt()
            })
            .collect();
        net.backward(d_o.view()).unwrap();
        for (l, (t, b)) in tails.iter().zip(&net.grad_signal_norm).enumerate() {
            assert!(
                (t / b - 1.0).abs() < 1e-12,
                "{act} {norm:?} residual {residual}, layer {}: tail {t} vs backward {b}",
                l + 1
            );
        }
    }
}

/// Every histogram of a run holds batch x width values, its counts those that are finite.
#[test]
fn grad_norms_histograms_count_every_value() {
    let cfg = grad_norms_cfg(&[
        "--histograms",
        "--act",
        "tanh",
        "--depth",
        "3,20",
        "--width",
        "16",
        "--batch",
        "32",
        "--seeds",
        "2",
    ]);
    let r = bn_lab::experiment::grad_norms::run(&cfg, &|_| {});
    // The JSON's shape with histograms, pinned (the shape without them is grad_norms.schema).
    common::assert_schema(&serde_json::to_value(&r).unwrap(), "grad_norms_histograms");
    for a in &r.arms {
        let s = a.histograms.as_ref().expect("every arm has histograms");
        assert_eq!(s.step, 0);
        let layers: Vec<usize> = s.layers.iter().map(|l| l.layer).collect();
        assert_eq!(layers, histogram::layers(a.depth), "{}", a.label);
        snapshots_add_up(s, 16 * 32, &a.label);
        // tanh without a skip: the activation's own range.
        let h = &s.layers[0].activation;
        assert_eq!((h.edges[0], h.edges[histogram::BINS]), (-1.0, 1.0));
        assert!(h.saturated_share.is_some());
        // The first seed's, as `seeds[0].activation_std` (population std over batch x units).
        let std = a.seeds[0].activation_std[s.layers[1].layer - 1].0;
        assert!((s.layers[1].activation.std.0 / std - 1.0).abs() < 1e-6);
    }
}

/// Sigmoid units with weights of std 10 sit in their tails: the share beyond 0.03/0.97 is near
/// 1 in every layer; with Xavier init and BN on it stays small. ReLU has no saturation share.
#[test]
fn huge_weights_saturate_a_sigmoid_net() {
    let run = |args: &[&str]| {
        let mut all = vec!["--histograms", "--depth", "6"];
        all.extend(args);
        bn_lab::experiment::grad_norms::run(&grad_norms_cfg(&all), &|_| {})
    };
    let big = run(&["--act", "sigmoid", "--init", "normal:10", "--norm", "none"]);
    for l in &big.arms[0].histograms.as_ref().unwrap().layers {
        let s = l.activation.saturated_share.unwrap().0;
        assert!(s > 0.9, "layer {}: {s}", l.layer);
    }
    let bn = run(&["--act", "sigmoid", "--norm", "batch"]);
    for l in &bn.arms[0].histograms.as_ref().unwrap().layers {
        let s = l.activation.saturated_share.unwrap().0;
        assert!(s < 0.05, "layer {}: {s}", l.layer);
    }
    let relu = run(&["--act", "relu", "--norm", "none"]);
    let l = &relu.arms[0].histograms.as_ref().unwrap().layers[0];
    assert!(l.activation.saturated_share.is_none());
    assert_eq!(l.activation.edges[0], 0.0, "ReLU outputs: [0, max]");
}

/// Without the flag the JSON has no `histograms` key (config or results): earlier reports and
/// snapshots read as before.
#[test]
fn without_the_flag_nothing_is_added() {
    let cfg = grad_norms_cfg(&["--depth", "3", "--width", "8", "--batch", "8"]);
    let v = serde_json::to_string(&bn_lab::experiment::grad_norms::run(&cfg, &|_| {})).unwrap();
    assert!(!v.contains("histogram"), "{v}");
    let cfg = train_cfg(&TINY_TRAIN[..]);
    let v = serde_json::to_value(bn_lab::experiment::train::run(&cfg, &|_| {})).unwrap();
    assert!(!v.to_string().contains("histogram"));
    assert_eq!(
        <GradNorms as bn_lab::plot::Figures>::figures_for(&grad_norms_cfg(&[])).len(),
        3,
        "the headline, the detail and the theory figure"
    );
}

/// Histograms observe training without changing it: every history is the same with and without
/// them; snapshots are taken at the steps asked for that the run reached (lr 50 diverges).
#[test]
fn train_histograms_leave_training_unchanged() {
    let mut args = TINY_TRAIN.to_vec();
    args.extend([
        "--act",
        "tanh",
        "--histograms",
        "--histogram-steps",
        "0,5,29",
    ]);
    let cfg = train_cfg(&args);
    assert_eq!(cfg.histogram_steps, Some(vec![0, 5, 29]));
    let with = common::assert_progress_adds_up::<Train>(&cfg, u64::MAX, "train histograms");
    let mut plain = cfg.clone();
    plain.histogram_steps = None;
    let without = bn_lab::experiment::train::run(&plain, &|_| {});
    for (a, b) in with.runs.iter().zip(&without.runs) {
        assert_eq!(
            serde_json::to_value(&a.history).unwrap(),
            serde_json::to_value(&b.history).unwrap(),
            "{} at lr {}",
            a.label,
            a.lr
        );
        let snaps = a.histograms.as_ref().unwrap();
        let steps: Vec<usize> = snaps.iter().map(|s| s.step).collect();
        match &a.history.divergence {
            None => assert_eq!(steps, vec![0, 5, 29]),
            Some(d) => assert!(steps.iter().all(|&s| s <= d.step), "{steps:?}"),
        }
        for s in snaps {
            snapshots_add_up(s, 8 * 8, &a.label);
        }
    }
    // --histograms alone: 0, 10 and the last step.
    let mut args = TINY_TRAIN.to_vec();
    args.push("--histograms");
    let cfg = train_cfg(&args);
    assert_eq!(cfg.histogram_steps, Some(vec![0, 10, 29]));
}

#[test]
fn histogram_figures_keep_their_legend_off_the_data() {
    for (args, what) in [
        (&["--histograms", "--act", "tanh"][..], "tanh-depth-50"),
        (
            &[
                "--histograms",
                "--act",
                "relu",
                "--depth",
                "3,12",
                "--residual",
                "--norm",
                "none,batch,layer",
            ][..],
            "relu-residual",
        ),
    ] {
        let cfg = grad_norms_cfg(args);
        let (_, layouts) = common::assert_figures_clear::<GradNorms>(&cfg, what);
        assert_eq!(layouts.last().unwrap().0, "grad_norms_histograms.png");
    }
    let mut args = TINY_TRAIN.to_vec();
    args.extend(["--act", "sigmoid", "--histograms"]);
    let (_, layouts) = common::assert_figures_clear::<Train>(&train_cfg(&args), "train");
    assert_eq!(layouts.last().unwrap().0, "train_histograms.png");
    assert_eq!(layouts.last().unwrap().1.panels.len(), 2 * 3);
}

#[test]
fn histogram_steps_out_of_range_are_refused_naming_the_flag() {
    let dir = scratch("histogram-steps");
    let mut args = TINY_TRAIN.to_vec();
    args.extend(["--histograms", "--histogram-steps", "0,30"]);
    assert_refused(&args, "--histogram-steps", &dir);
    let mut args = TINY_TRAIN.to_vec();
    args.extend(["--histograms", "--histogram-steps", "0,1,2,3,4"]);
    assert_refused(&args, "--histogram-steps", &dir);
    let mut args = TINY_TRAIN.to_vec();
    args.extend(["--histogram-steps", "0"]);
    assert_refused(&args, "--histograms", &dir);
}
