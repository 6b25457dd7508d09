//! A run's JSON records its config; read back and rerun, that config gives the same numbers,
//! for every command that writes a JSON (`gradcheck` and `bench` write none: bench's only
//! numbers are timings).

use bn_lab::experiment::Plan;

use crate::common;

use crate::common::{bn_lab_ok, json, scratch_dir};
use bn_lab::experiment::grad_norms::GradNorms;
use bn_lab::experiment::ics::Ics;
use bn_lab::experiment::landscape::Landscape;
use bn_lab::experiment::nonlinearity::Nonlinearity;
use bn_lab::experiment::shattered::Shattered;
use bn_lab::experiment::shift::{InputShift, NoisyBn};
use bn_lab::experiment::sweep::Sweep;
use bn_lab::experiment::theory::Theory;
use bn_lab::experiment::train::{Train, TrainConfig};
use bn_lab::experiment::{Experiment, LoadError, load_config};
use serde_json::Value;

/// Run `args` through the CLI, rebuild the config from its JSON, run it through the library
/// and compare every field but the wall-clock `seconds`.
fn rerun_gives_the_same_report<E: Experiment>(args: &[&str], name: &str) {
    let dir = scratch_dir(&format!("roundtrip-{name}"));
    bn_lab_ok(args, &dir);
    let mut written = json(&dir.join(format!("{}.json", E::STEM)));
    let cfg: E::Config = load_config(&written["config"]).expect("the recorded config loads");
    cfg.validate().expect("the recorded config is valid");
    let mut again = serde_json::to_value(E::run(&cfg, &|_| {})).unwrap();
    for v in [&mut written, &mut again] {
        if let Value::Object(m) = v {
            m.remove("seconds");
        }
    }
    assert_eq!(
        written, again,
        "{name}: rerunning the recorded config differs"
    );
}

#[test]
fn grad_norms_reruns_from_its_json() {
    rerun_gives_the_same_report::<GradNorms>(
        &[
            "grad-norms",
            "--depth",
            "4,12",
            "--width",
            "16",
            "--batch",
            "32",
            "--seeds",
            "2",
            "--act",
            "tanh",
            "--residual",
            "--placement",
            "post",
            "--seed",
            "3",
        ],
        "grad-norms",
    );
}

#[test]
fn train_reruns_from_its_json_with_the_resolved_diag_lr() {
    let mut args = common::TINY_TRAIN.to_vec();
    args.extend(["--sgd-momentum", "0.5"]);
    rerun_gives_the_same_report::<Train>(&args, "train");
    // diag_lr was left open on the command line and is recorded resolved.
    let dir = scratch_dir("roundtrip-train-diag");
    bn_lab_ok(&args, &dir);
    let cfg: TrainConfig = load_config(&json(&dir.join("train.json"))["config"]).unwrap();
    assert_eq!(cfg.diag_lr, Some(0.02));
}

/// `--histograms` is recorded (`histograms: true`, `histogram_steps`) and reruns to the same
/// bins and counts.
#[test]
fn histogram_runs_rerun_from_their_json() {
    rerun_gives_the_same_report::<GradNorms>(
        &[
            "grad-norms",
            "--depth",
            "3,10",
            "--width",
            "16",
            "--batch",
            "32",
            "--act",
            "tanh",
            "--histograms",
        ],
        "grad-norms-histograms",
    );
    let mut args = common::TINY_TRAIN.to_vec();
    args.extend(["--histograms", "--histogram-steps", "0,7"]);
    rerun_gives_the_same_report::<Train>(&args, "train-histograms");
}

/// A digits run (cross-entropy, accuracies) and a grad-norms cross-entropy run rerun from
/// their JSON too: `task` and `loss` are recorded as typed.
#[test]
fn digits_and_cross_entropy_runs_rerun_from_their_json() {
    rerun_gives_the_same_report::<Train>(
        &[
            "train",
            "--task",
            "digits",
            "--n-train",
            "300",
            "--steps",
            "30",
            "--eval-every",
            "10",
            "--lr",
            "0.1,1",
            "--depth",
            "3",
            "--configs",
            "off,on",
        ],
        "train-digits",
    );
    rerun_gives_the_same_report::<bn_lab::experiment::grad_norms::GradNorms>(
        &[
            "grad-norms",
            "--depth",
            "5",
            "--width",
            "16",
            "--batch",
            "8",
            "--loss",
            "ce",
        ],
        "grad-norms-ce",
    );
}

#[test]
fn nonlinearity_reruns_from_its_json() {
    let mut args = common::TINY_NONLINEARITY.to_vec();
    args.extend(["--acts", "tanh,relu", "--warmup-steps", "3"]);
    rerun_gives_the_same_report::<Nonlinearity>(&args, "nonlinearity");
}

#[test]
fn landscape_reruns_from_its_json() {
    let mut args = common::TINY_LANDSCAPE.to_vec();
    args.extend(["--seed", "2", "--warmup-steps", "4"]);
    rerun_gives_the_same_report::<Landscape>(&args, "landscape");
}

#[test]
fn ics_reruns_from_its_json() {
    let mut args = common::TINY_ICS.to_vec();
    args.extend(["--dtype", "f64", "--warmup-steps", "4"]);
    rerun_gives_the_same_report::<Ics>(&args, "ics");
}

#[test]
fn noisy_bn_and_input_shift_rerun_from_their_json() {
    let mut args = common::TINY_NOISY.to_vec();
    args.extend(["--dtype", "f64", "--warmup-steps", "3"]);
    rerun_gives_the_same_report::<NoisyBn>(&args, "noisy-bn");
    rerun_gives_the_same_report::<InputShift>(&common::TINY_INPUT_SHIFT[..], "input-shift");
}

#[test]
fn sweep_reruns_from_its_json() {
    rerun_gives_the_same_report::<Sweep>(
        &[
            "sweep",
            "--vary",
            "batch",
            "--values",
            "4,16",
            "--norm",
            "none,batch,layer",
            "--depth",
            "5",
            "--width",
            "16",
            "--seeds",
            "2",
            "--steps",
            "8",
            "--n-train",
            "64",
            "--n-test",
            "32",
            "--seed",
            "5",
        ],
        "sweep",
    );
}

#[test]
fn shattered_reruns_from_its_json() {
    let mut args = common::TINY_SHATTERED.to_vec();
    args.extend([
        "--bias",
        "normal:0.5",
        "--seed",
        "4",
        "--residual-scale",
        "0.5",
    ]);
    rerun_gives_the_same_report::<Shattered>(&args, "shattered");
}

#[test]
fn theory_reruns_from_its_json() {
    rerun_gives_the_same_report::<Theory>(
        &[
            "theory",
            "--acts",
            "tanh,relu",
            "--batch",
            "4,9",
            "--depth",
            "7",
            "--width",
            "32",
            "--d-in",
            "5",
            "--init",
            "auto",
        ],
        "theory",
    );
}

#[test]
fn a_config_with_an_unknown_or_misspelt_field_is_refused() {
    let dir = scratch_dir("roundtrip-unknown");
    bn_lab_ok(
        &["grad-norms", "--depth", "3", "--width", "8", "--batch", "8"],
        &dir,
    );
    let mut cfg = json(&dir.join("grad_norms.json"))["config"].clone();
    cfg["widht"] = Value::from(8);
    match load_config::<<GradNorms as Experiment>::Config>(&cfg) {
        Err(LoadError::UnknownField(f)) => assert_eq!(f, "widht"),
        other => panic!("expected an unknown-field error, got {other:?}"),
    }
    cfg.as_object_mut().unwrap().remove("widht");
    cfg.as_object_mut().unwrap().remove("width");
    let err = load_config::<<GradNorms as Experiment>::Config>(&cfg).unwrap_err();
    assert!(err.to_string().contains("width"), "{err}");
}

#[test]
fn validation_errors_name_the_config_field() {
    let dir = scratch_dir("roundtrip-invalid");
    bn_lab_ok(
        &[
            "train", "--depth", "2", "--width", "8", "--batch", "8", "--steps", "5",
        ],
        &dir,
    );
    let mut cfg: TrainConfig = load_config(&json(&dir.join("train.json"))["config"]).unwrap();
    cfg.data.n_train = 4;
    let err = cfg.validate().unwrap_err();
    assert_eq!(err.field(), "n_train");
    assert_eq!(
        err.to_string(),
        "n_train must be at least batch (8) (got 4)",
        "the library names config fields"
    );
}

/// `--warmup-steps` is recorded and reruns: train (with momentum) and sweep; nonlinearity,
/// landscape and ics run with it above. A config written before the flag existed reads as 0.
#[test]
fn warmup_runs_rerun_from_their_json_and_old_configs_read_as_no_warmup() {
    let mut args = common::TINY_TRAIN.to_vec();
    args.extend(["--sgd-momentum", "0.5", "--warmup-steps", "5"]);
    rerun_gives_the_same_report::<Train>(&args, "train-warmup");
    rerun_gives_the_same_report::<Sweep>(
        &[
            "sweep",
            "--vary",
            "batch",
            "--values",
            "4,16",
            "--norm",
            "none,batch",
            "--depth",
            "4",
            "--width",
            "16",
            "--seeds",
            "1",
            "--steps",
            "8",
            "--warmup-steps",
            "4",
            "--n-train",
            "64",
            "--n-test",
            "32",
        ],
        "sweep-warmup",
    );
    let dir = scratch_dir("roundtrip-train-old-config");
    bn_lab_ok(&common::TINY_TRAIN[..], &dir);
    let mut config = json(&dir.join("train.json"))["config"].clone();
    assert_eq!(config["warmup_steps"], 0);
    config.as_object_mut().unwrap().remove("warmup_steps");
    let cfg: TrainConfig = load_config(&config).expect("a config without warmup_steps loads");
    assert_eq!(cfg.sgd.warmup_steps, 0);
}
