//! Training the standard residual blocks (`train --block basic|preact`, SkipInit as the
//! configuration `skip-init`): SkipInit's gain is optimised like any parameter (it leaves 0 on
//! the first step, and only then do the branches get gradients), the per-matrix records name
//! the stem and each block's two matrices, and a short run is deterministic (but for its wall-clock seconds) and records its
//! block, its SkipInit and the gains it ended with.

use crate::common::{bn_lab_ok, json, parse, quick, scratch};
use bn_lab::config::{Activation, Init, Loss, Normaliser};
use bn_lab::data::{self, Stream, Task};
use bn_lab::experiment::train::{TrainArm, TrainConfig};
use bn_lab::model::{Mlp, ParamKind};
use bn_lab::optim::SgdConfig;
use bn_lab::spec::{NetConfig, StdBlock};
use bn_lab::train::Trainer;

fn frobenius(v: &ndarray::ArrayViewD<f64>) -> f64 {
    v.iter().map(|g| g * g).sum::<f64>().sqrt()
}

/// Per parameter name: the gradient's norm after the last backward.
fn grad_norms(net: &mut Mlp<f64>) -> Vec<(String, ParamKind, f64)> {
    net.params_mut()
        .iter()
        .map(|p| (p.id.to_string(), p.id.kind, frobenius(&p.grad)))
        .collect()
}

#[test]
fn skip_init_gains_leave_zero_on_the_first_step_and_then_the_branches_learn() {
    let cfg = NetConfig {
        d_in: 64,
        width: 8,
        d_out: 10,
        depth: 3,
        act: Activation::Relu,
        init: Init::He,
        norm: None,
        residual: false,
        residual_scale: 1.0,
        block: Some(StdBlock::Preact),
        skip_init: true,
    };
    let data = data::make_task::<f64>(&Task::Digits, 0, 64, 16, 64, 10);
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(0, Stream::Weights));
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
        warmup_steps: 0,
    };
    let mut tr = Trainer::new(&mut net, &data, sgd, 16, 0, Loss::Ce);
    tr.forward();
    tr.backward();
    let first = grad_norms(tr.net);
    let is_branch = |name: &str| name.starts_with("layers.") && name != "layers.1.weight";
    for (name, kind, g) in &first {
        if is_branch(name) && name != "layers.1.bias" {
            assert_eq!(
                *g, 0.0,
                "{name}: a branch behind alpha = 0 gets no gradient"
            );
        }
        if *kind == ParamKind::Gain {
            assert!(*g > 0.0, "{name}: the gain gets a gradient at 0");
        }
    }
    tr.step();
    let alphas = bn_lab::experiment::train::gains(tr.net);
    assert_eq!(alphas.len(), cfg.depth);
    assert!(
        alphas.iter().all(|a| a.0 != 0.0),
        "every gain left 0 after one step: {alphas:?}"
    );
    tr.forward();
    tr.backward();
    for (name, _, g) in grad_norms(tr.net) {
        assert!(
            g > 0.0,
            "{name}: after one step every parameter has a gradient"
        );
    }
}

/// Weight decay reaches SkipInit's gain as every other parameter (PyTorch's default parameter
/// group): with a zero gradient one step multiplies alpha by `1 - lr * weight_decay`.
#[test]
fn weight_decay_applies_to_the_gain_as_to_every_parameter() {
    let cfg = NetConfig {
        d_in: 4,
        width: 4,
        d_out: 2,
        depth: 1,
        act: Activation::Relu,
        init: Init::He,
        norm: None,
        residual: false,
        residual_scale: 1.0,
        block: Some(StdBlock::Preact),
        skip_init: true,
    };
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(0, Stream::Weights));
    net.units[0].gain.as_mut().unwrap().alpha[0] = 0.5;
    let mut sgd = bn_lab::optim::Sgd::<f64>::new(SgdConfig {
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.2,
        warmup_steps: 0,
    });
    sgd.step(&mut net);
    let alpha = net.units[0].gain.as_ref().unwrap().alpha[0];
    assert!((alpha - 0.5 * (1.0 - 0.1 * 0.2)).abs() < 1e-15, "{alpha}");
}

fn train_config(args: &[&str]) -> TrainConfig {
    match parse(args) {
        bn_lab::cli::Command::Train(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        _ => unreachable!("a train command line"),
    }
}

#[test]
fn block_nets_compare_the_four_configurations_by_default_and_skip_init_is_one_of_them() {
    let plain = train_config(&quick("train", &[]));
    let names = |c: &TrainConfig| c.norms.iter().map(|a| a.name()).collect::<Vec<_>>();
    assert_eq!(names(&plain), ["off", "on", "no-affine", "post"]);
    let block = train_config(&quick("train", &["--block", "preact"]));
    assert_eq!(names(&block), ["off", "on", "layer", "skip-init"]);
    assert_eq!(block.norms[3], TrainArm::SKIP_INIT);
    assert!(block.net(TrainArm::SKIP_INIT).skip_init);
    assert!(!block.net(TrainArm::OFF).skip_init);
    // --skip-init puts SkipInit on every configuration named.
    let all = train_config(&quick(
        "train",
        &["--block", "preact", "--skip-init", "--configs", "off,on"],
    ));
    assert_eq!(
        all.norms,
        [TrainArm::SKIP_INIT, TrainArm::skip_init(Normaliser::BN)]
    );
    assert!(!all.net.skip_init);
    assert_eq!(all.norms[1].label(), "BN on + SkipInit");
    // Without --configs, --skip-init goes on the three others (not `skip-init` twice), and
    // Fixup's multiplier leaves SkipInit out.
    let default = train_config(&quick("train", &["--block", "preact", "--skip-init"]));
    assert_eq!(
        names(&default),
        ["skip-init", "on+skip-init", "layer+skip-init"]
    );
    let fixup = train_config(&quick("train", &["--block", "preact", "--init", "fixup"]));
    assert_eq!(names(&fixup), ["off", "on", "layer"]);
}

#[test]
fn skip_init_and_histograms_need_what_they_need() {
    let dir = scratch("resnet-train-refusals");
    let base = quick("train", &[]);
    let with = |extra: &[&'static str]| {
        let mut v = base.clone();
        v.extend(extra);
        v
    };
    crate::common::assert_refused(&with(&["--configs", "off,skip-init"]), "--configs", &dir);
    // --skip-init is folded into the configurations, so the refusal names --configs.
    crate::common::assert_refused(&with(&["--skip-init"]), "needs --block", &dir);
    crate::common::assert_refused(
        &with(&["--block", "preact", "--histograms"]),
        "--block",
        &dir,
    );
    crate::common::assert_refused(
        &with(&["--block", "preact", "--configs", "skip-init,skipinit"]),
        "--configs",
        &dir,
    );
}

#[test]
fn a_short_block_run_is_deterministic_and_records_its_block_and_gains() {
    let tiny = quick(
        "train",
        &["--block", "preact", "--configs", "off,skip-init"],
    );
    let args = crate::common::with_flag(&tiny, "--depth", "2");
    // Two runs of one seed agree in everything but the wall-clock `seconds`.
    let out = scratch("resnet-train-json");
    let again = scratch("resnet-train-json-again");
    bn_lab_ok(&args, &out);
    bn_lab_ok(&args, &again);
    let report = json(&out.join("train.json"));
    let mut a = report.clone();
    let mut b = json(&again.join("train.json"));
    for v in [&mut a, &mut b] {
        v.as_object_mut().unwrap().remove("seconds");
    }
    assert_eq!(a, b, "one seed, two different reports");
    std::fs::remove_dir_all(again).expect("scratch dirs are removable");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for r in runs {
        assert_eq!(r["net"]["block"], "preact");
        let skip = r["arm"] == "skip-init";
        assert_eq!(r["net"]["skip_init"].as_bool().unwrap_or(false), skip);
        let alphas = r["final_alpha"].as_array().map_or(0, Vec::len);
        assert_eq!(alphas, if skip { 2 } else { 0 }, "{}", r["label"]);
        let layers: Vec<&str> = r["history"]["layers"]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(layers, ["stem", "1.W1", "1.W2", "2.W1", "2.W2", "out"]);
        let per_matrix = r["history"]["layers"]["grad_norm"].as_array().unwrap();
        assert_eq!(per_matrix.len(), layers.len());
    }
    assert_eq!(report["summary"][1]["arm"], "skip-init");
    assert_eq!(report["summary"][1]["label"], "SkipInit");
    assert_eq!(report["summary"][1]["norm"], "off");
    std::fs::remove_dir_all(out).expect("scratch dirs are removable");
}
