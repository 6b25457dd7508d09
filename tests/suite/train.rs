//! `bn-lab train` and the training loop behind it: files and documented fields, SGD reducing
//! the loss, divergence recorded instead of a crash, determinism, the diagnostics computed two
//! ways, and bad flags refused.

use bn_lab::experiment::Plan;

use crate::common;

use crate::common::{
    TINY_TRAIN, assert_progress_adds_up, assert_refused, assert_schema, bn_lab as run, json, num,
    parse, scratch_dir as scratch, with_flag,
};
use std::path::Path;
use std::process::Output;

use bn_lab::config::{Activation, Init, Loss, NormConfig};
use bn_lab::data::{self, Sampler, Stream, Task};
use bn_lab::model::{Mlp, Mode};
use bn_lab::ops;
use bn_lab::optim::SgdConfig;
use bn_lab::spec::NetConfig;
use bn_lab::stats;
use bn_lab::train::{self, TrainSettings};
use ndarray::Array2;
use serde_json::Value;

/// [`TINY_TRAIN`] with a seed, writing into `dir`.
fn tiny(dir: &Path, seed: &str) -> Vec<String> {
    TINY_TRAIN
        .iter()
        .copied()
        .chain(["--seed", seed, "--out", dir.to_str().unwrap()])
        .map(String::from)
        .collect()
}

fn run_tiny(dir: &Path, seed: &str) -> (Output, Value) {
    let args = tiny(dir, seed);
    let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&dir.join("train.json"));
    (out, r)
}

#[test]
fn train_writes_its_pictures_and_a_json_with_the_documented_fields() {
    let dir = scratch("train_e2e");
    let (out, r) = run_tiny(&dir, "3");
    for png in ["train.png", "train_loss.png", "train_layers.png"] {
        let img = image::open(dir.join(png)).expect("valid PNG").to_rgb8();
        let coloured = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(coloured > 20_000, "{png}: only {coloured} non-white pixels");
    }
    assert_eq!(r["tool"]["name"], "bn-lab");
    assert_schema(&r, "train");
    let cfg = &r["config"];
    assert_eq!(cfg["act"], "relu");
    assert_eq!(cfg["init"], "he");
    assert_eq!(cfg["task"], "nonlinear");
    assert_eq!(
        cfg["norms"],
        serde_json::json!(["off", "on", "no-affine", "post"])
    );
    // Default: the largest learning rate at which nothing diverged.
    assert_eq!(num(&cfg["diag_lr"]), 0.02);
    for key in [
        "zero_predictor_test_loss",
        "linear_fit_train_loss",
        "linear_fit_test_loss",
    ] {
        assert!(num(&r[key]).is_finite(), "{key}");
    }

    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 8, "4 configurations x 2 learning rates");
    for run in runs {
        let h = &run["history"];
        let n = h["eval_steps"].as_array().unwrap().len();
        for key in ["batch_loss", "train_loss", "test_loss"] {
            assert_eq!(h[key].as_array().unwrap().len(), n, "{key}");
        }
        let layers = &h["layers"];
        assert_eq!(layers["layers"], serde_json::json!(["1", "2", "3", "out"]));
        let points = layers["steps"].as_array().unwrap().len();
        for key in ["update_ratio", "grad_norm"] {
            let per_layer = layers[key].as_array().unwrap();
            assert_eq!(per_layer.len(), 4, "{key}: one array per layer");
            for l in per_layer {
                assert_eq!(l.as_array().unwrap().len(), points, "{key}");
            }
        }
        if run["diverged"] == false {
            assert_eq!(h["eval_steps"], serde_json::json!([0, 10, 20, 30]));
            assert_eq!(layers["steps"], serde_json::json!([0, 5, 10, 15, 20, 25]));
            assert_eq!(h["steps_done"], 30);
            assert!(h["divergence"].is_null());
            // The summary's losses are the history's: its last and its smallest train loss.
            let losses: Vec<f64> = h["train_loss"]
                .as_array()
                .unwrap()
                .iter()
                .map(num)
                .collect();
            let best = losses.iter().copied().fold(f64::INFINITY, f64::min);
            assert_eq!(num(&run["final_train_loss"]), *losses.last().unwrap());
            assert_eq!(num(&run["best_train_loss"]), best, "{losses:?}");
        }
    }
    let summary = r["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 4);
    let stdout = String::from_utf8(out.stdout).unwrap();
    for text in ["BN off", "BN after act", "test best", "DIVERGED@", " s\n"] {
        assert!(stdout.contains(text), "{text:?} missing from: {stdout}");
    }
}

#[test]
fn an_absurd_learning_rate_diverges_and_is_recorded_not_a_crash() {
    let dir = scratch("train_diverge");
    let (_, r) = run_tiny(&dir, "3");
    let runs = r["runs"].as_array().unwrap();
    for run in runs {
        let lr = num(&run["lr"]);
        let div = &run["history"]["divergence"];
        if lr == 50.0 {
            assert_eq!(run["diverged"], true, "{}", run["label"]);
            let step = div["step"].as_u64().unwrap();
            assert!(step < 30);
            assert_eq!(run["history"]["steps_done"].as_u64().unwrap(), step);
            let reason = div["reason"].as_str().unwrap();
            assert!(reason == "non-finite" || reason == "grew", "{reason}");
            // The 'end' losses are taken at the divergence: far worse than the start.
            let end = num(&run["final_train_loss"]);
            assert!(
                !end.is_finite() || end > 10.0 * num(&run["history"]["train_loss"][0]),
                "{end}"
            );
        } else {
            assert_eq!(run["diverged"], false, "{}", run["label"]);
        }
    }
    let off = r["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["norm"] == "off")
        .unwrap();
    assert_eq!(off["diverged_at"], serde_json::json!([50.0]));
    // At lr 0.02 the tiny net survives but, in 30 steps, does not get 3 standard errors below
    // predicting 0: no stable learning rate, since a stable rate is one the run learned at.
    let zero_level = runs
        .iter()
        .find(|r| r["norm"] == "off" && num(&r["lr"]) == 0.02)
        .unwrap();
    assert_eq!(zero_level["learned"], false);
    assert!(num(&zero_level["final_test_loss"]) >= num(&r["learned_loss_ceiling"]));
    assert_eq!(off["not_learned_at"], serde_json::json!([0.02]));
    assert!(off["largest_stable_lr"].is_null() && off["at_largest_stable_lr"].is_null());
}

#[test]
fn the_same_seed_gives_the_same_numbers_and_another_seed_does_not() {
    let (a, b, c) = (scratch("train_a"), scratch("train_b"), scratch("train_c"));
    let (_, ra) = run_tiny(&a, "5");
    let (_, rb) = run_tiny(&b, "5");
    let (_, rc) = run_tiny(&c, "6");
    assert_eq!(ra["runs"], rb["runs"]);
    assert_eq!(ra["summary"], rb["summary"]);
    assert_ne!(ra["runs"], rc["runs"]);
}

fn net(act: Activation, bn: Option<NormConfig>, depth: usize) -> NetConfig {
    NetConfig {
        d_in: 8,
        width: 16,
        d_out: 2,
        depth,
        act,
        init: Init::He,
        norm: bn,
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    }
}

fn settings(lr: f64, steps: usize) -> TrainSettings {
    TrainSettings {
        steps,
        batch: 16,
        sgd: SgdConfig {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            warmup_steps: 0,
        },
        eval_every: 50,
        diag_every: 1,
        diverge_factor: 1e6,
        seed: 1,
        loss: bn_lab::config::Loss::Mse,
    }
}

#[test]
fn sgd_on_the_linear_task_reduces_the_train_and_test_loss() {
    let data = data::make_task::<f64>(&Task::Linear, 2, 256, 128, 8, 2);
    for bn in [None, Some(NormConfig::default())] {
        let cfg = net(Activation::Relu, bn, 2);
        let mut m = Mlp::<f64>::new(&cfg, &mut data::rng(2, Stream::Weights));
        let h = train::train(&mut m, &data, &settings(0.05, 400), &|_| {});
        assert!(h.divergence.is_none());
        assert_eq!(h.steps_done, 400);
        let (t0, t1) = (h.train_loss[0].0, h.final_train_loss());
        let (s0, s1) = (h.test_loss[0].0, h.final_test_loss());
        assert!(t1 < 0.2 * t0, "BN {bn:?}: train loss {t0} -> {t1}");
        assert!(s1 < 0.2 * s0, "BN {bn:?}: test loss {s0} -> {s1}");
    }
}

#[test]
fn divergence_stops_the_run_at_the_step_it_happens() {
    let data = data::make_task::<f32>(&Task::Linear, 2, 256, 64, 8, 2);
    let cfg = net(Activation::Linear, None, 3);
    let mut m = Mlp::<f32>::new(&cfg, &mut data::rng(2, Stream::Weights));
    let units = std::sync::atomic::AtomicU64::new(0);
    let s = settings(10.0, 200);
    let h = train::train(&mut m, &data, &s, &|n| {
        units.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    });
    let d = h.divergence.expect("lr 10 on a deep linear net diverges");
    assert_eq!(h.steps_done, d.step);
    assert!(d.step < 200);
    // Progress still adds up to every step and evaluation, so a progress bar always completes.
    assert_eq!(
        units.load(std::sync::atomic::Ordering::Relaxed),
        s.work_units(256, 64)
    );
    // The last evaluation is the state at the divergence.
    assert_eq!(*h.eval_steps.last().unwrap(), d.step);
}

#[test]
fn update_ratio_and_gradient_norm_match_a_forward_backward_done_by_hand() {
    let data = data::make_task::<f64>(&Task::Nonlinear, 4, 128, 32, 8, 2);
    let cfg = net(Activation::Tanh, Some(NormConfig::default()), 3);
    let lr = 0.3;
    let mut a = Mlp::<f64>::new(&cfg, &mut data::rng(4, Stream::Weights));
    let mut b = a.clone();
    let h = train::train(&mut a, &data, &settings(lr, 1), &|_| {});

    // The same first mini-batch, drawn again from the same shuffle stream.
    let mut x = Array2::<f64>::zeros((16, 8));
    let mut y = Array2::<f64>::zeros((16, 2));
    Sampler::new(128, 1).next_into(&data.train, x.view_mut(), y.view_mut());
    let mut d_o = Array2::<f64>::zeros((16, 2));
    let o = b.forward(x.view(), Mode::Train).unwrap();
    ops::mse_loss(o, y.view(), d_o.view_mut());
    b.backward(d_o.view()).unwrap();
    for l in 0..3 {
        let lin = &b.blocks[l].linear;
        let ratio = lr * stats::std_dev(&lin.dw) / stats::std_dev(&lin.w);
        let got = h.layers.update_ratio[l][0].0;
        assert!(
            (got - ratio).abs() <= 1e-12 * ratio,
            "layer {l}: {got} vs {ratio}"
        );
        let norm = stats::frobenius_norm(&lin.dw);
        assert!((h.layers.grad_norm[l][0].0 - norm).abs() <= 1e-12 * norm);
    }
    let out_norm = stats::frobenius_norm(&b.out.dw);
    assert!((h.layers.grad_norm[3][0].0 - out_norm).abs() <= 1e-12 * out_norm);
}

#[test]
fn top_eigenvalue_of_a_rank_one_second_moment_is_its_squared_norm() {
    // Every row h = (1, 2, 2): M = [h,1][h,1]^T, rank one, lambda = |[h, 1]|^2 = 1 + 4 + 4 + 1.
    let h = Array2::from_shape_fn((5, 3), |(_, j)| [1.0f64, 2.0, 2.0][j]);
    let lambda = train::second_moment_top_eigenvalue(h.view());
    assert!((lambda - 10.0).abs() < 1e-9, "{lambda}");
    // Rows +-e_1 (mean 0): M = diag(1, 0, 1) over [h, 1], lambda = 1.
    let h = Array2::from_shape_fn((4, 2), |(i, j)| {
        if j == 0 {
            if i % 2 == 0 { 1.0f64 } else { -1.0 }
        } else {
            0.0
        }
    });
    assert!((train::second_moment_top_eigenvalue(h.view()) - 1.0).abs() < 1e-9);
}

#[test]
fn output_lr_limit_separates_stable_from_divergent_for_a_linear_model() {
    // The output layer's curvature lambda_out is a diagonal block of the full Hessian, so the
    // largest curvature is at least lambda_out: above 2 / lambda_out gradient descent is
    // unstable from the start. A one-block linear network on the linear task: 5x the limit
    // diverges, a fifth of it trains.
    let data = data::make_task::<f64>(&Task::Linear, 7, 256, 64, 8, 2);
    let cfg = NetConfig {
        d_in: 8,
        width: 8,
        d_out: 2,
        depth: 1,
        act: Activation::Linear,
        init: Init::Lecun,
        norm: None,
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    };
    let fresh = || Mlp::<f64>::new(&cfg, &mut data::rng(7, Stream::Weights));
    let probe = train::train(&mut fresh(), &data, &settings(1e-3, 1), &|_| {});
    let limit = probe.output_lr_limit();
    assert!(limit.is_finite() && limit > 0.0);
    let low = train::train(&mut fresh(), &data, &settings(0.2 * limit, 300), &|_| {});
    assert!(low.divergence.is_none());
    let high = train::train(&mut fresh(), &data, &settings(5.0 * limit, 300), &|_| {});
    assert!(high.divergence.is_some());
}

#[test]
fn the_best_linear_model_fits_the_linear_task_exactly_and_not_the_nonlinear_one() {
    let lin = data::make_task::<f64>(&Task::Linear, 3, 512, 128, 16, 3);
    let (train_loss, test_loss) = train::linear_fit_losses(&lin);
    assert!(
        train_loss < 1e-12 && test_loss < 1e-12,
        "{train_loss} {test_loss}"
    );
    // The non-linear target sin(3 u1) cos(2 u2) has almost no linear part: the best linear
    // model scores about as badly as predicting 0.
    let non = data::make_task::<f64>(&Task::Nonlinear, 3, 2048, 512, 16, 3);
    let (_, test_loss) = train::linear_fit_losses(&non);
    let zero = non.test.y.mapv(|v| v * v).sum() / (2.0 * 512.0);
    assert!(
        test_loss > 0.9 * zero,
        "{test_loss} vs zero predictor {zero}"
    );
}

#[test]
fn bad_train_flags_get_a_one_line_error_naming_the_flag_and_write_nothing() {
    let dir = scratch("train_bad");
    let t = "train";
    assert_refused(&[t, "--lr", "0"], "--lr", &dir);
    assert_refused(&[t, "--lr", "-0.1"], "--lr", &dir);
    assert_refused(&[t, "--lr", "0.1,0.1"], "--lr", &dir);
    assert_refused(&[t, "--lr", "fast"], "--lr", &dir);
    assert_refused(&[t, "--configs", "on,on"], "--configs", &dir);
    assert_refused(&[t, "--configs", "bn"], "--configs", &dir);
    assert_refused(&[t, "--steps", "0"], "--steps", &dir);
    assert_refused(&[t, "--depth", "0"], "--depth", &dir);
    assert_refused(&[t, "--width", "0"], "--width", &dir);
    assert_refused(&[t, "--batch", "1"], "--batch", &dir);
    assert_refused(&[t, "--n-train", "10"], "--n-train", &dir);
    assert_refused(&[t, "--n-test", "0"], "--n-test", &dir);
    assert_refused(&[t, "--sgd-momentum", "1"], "--sgd-momentum", &dir);
    assert_refused(&[t, "--weight-decay", "-1"], "--weight-decay", &dir);
    assert_refused(&[t, "--eval-every", "0"], "--eval-every", &dir);
    assert_refused(&[t, "--diag-every", "0"], "--diag-every", &dir);
    assert_refused(&[t, "--diverge-factor", "0.5"], "--diverge-factor", &dir);
    assert_refused(&[t, "--diag-lr", "0.7"], "--diag-lr", &dir);
    assert_refused(&[t, "--placement", "post"], "--placement", &dir);
    assert_refused(&[t, "--no-affine"], "--no-affine", &dir);
    assert_refused(&[t, "--task", "xor"], "--task", &dir);
    assert_refused(&[t, "--momentum", "2"], "--momentum", &dir);
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[test]
fn recalibrated_losses_equal_the_eval_losses_without_bn_and_use_population_statistics_with_it() {
    let data = data::make_task::<f64>(&Task::Nonlinear, 9, 96, 32, 8, 2);
    let plain = Mlp::<f64>::new(
        &net(Activation::Tanh, None, 2),
        &mut data::rng(9, Stream::Weights),
    );
    let (tr, te) = train::recalibrated_losses(&plain, &data, 16, Loss::Mse);
    let mut c = plain.clone();
    assert_eq!(
        tr.loss,
        train::eval_loss(&mut c, &data.train, 16, Loss::Mse)
    );
    assert_eq!(te.loss, train::eval_loss(&mut c, &data.test, 16, Loss::Mse));

    // With BN, the recalibrated network normalises with the statistics of the whole training
    // set: its training-set loss equals a train-mode forward of the whole set as one batch,
    // up to the unbiased (n / (n - 1)) variance the running statistics keep.
    let bn = Mlp::<f64>::new(
        &net(
            Activation::Tanh,
            Some(NormConfig {
                kind: bn_lab::config::NormKind::Batch,
                eps: 0.0,
                ..NormConfig::default()
            }),
            2,
        ),
        &mut data::rng(9, Stream::Weights),
    );
    let (tr, _) = train::recalibrated_losses(&bn, &data, 16, Loss::Mse);
    let tr = tr.loss;
    let mut c = bn.clone();
    let mut d_o = Array2::<f64>::zeros((96, 2));
    let o = c.forward(data.train.x.view(), Mode::Train).unwrap();
    let whole_batch = ops::mse_loss(o, data.train.y.view(), d_o.view_mut());
    assert!(
        (tr - whole_batch).abs() < 0.02 * whole_batch,
        "{tr} vs {whole_batch}"
    );
    // The original's running statistics are untouched.
    assert!(
        bn.blocks[0]
            .bn
            .as_ref()
            .unwrap()
            .running_mean
            .iter()
            .all(|&m| m == 0.0)
    );
}

fn train_config(args: &[&str]) -> bn_lab::experiment::train::TrainConfig {
    match parse(args) {
        bn_lab::cli::Command::Train(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        _ => unreachable!("a train command line"),
    }
}

/// The progress bar's total is every step (3 units per sample: forward and backward) and every
/// evaluation (a forward over both splits) of every run, plus the reference fit; the run
/// reports exactly that, evaluation by evaluation, also when a run diverges (TINY_TRAIN's
/// lr 50) and reports the rest at once.
#[test]
fn train_progress_adds_up_to_its_work_units() {
    use bn_lab::experiment::train::{Train, reference_units};
    let cfg = train_config(&with_flag(&TINY_TRAIN[..], "--lr", "0.02"));
    let s = cfg.settings(0.02);
    // 30 steps of 8 samples, evaluations at 0, 10, 20, 30 over 64 + 32 samples.
    assert_eq!(s.evaluations(), 4);
    assert_eq!(s.work_units(64, 32), 30 * 3 * 8 + 4 * 96);
    assert_eq!(
        cfg.work_units(),
        reference_units(&cfg) + 4 * s.work_units(64, 32)
    );
    let r = assert_progress_adds_up::<Train>(&cfg, reference_units(&cfg).max(96), "train");
    assert!(r.runs.iter().all(|r| !r.diverged));
    let cfg = train_config(&TINY_TRAIN[..]);
    let r = assert_progress_adds_up::<Train>(&cfg, u64::MAX, "train, lr 50 diverges");
    assert!(r.runs.iter().any(|r| r.diverged));
}

/// The verdicts are in the JSON with a reason when undetermined: the tiny nets learn nothing in
/// 30 steps at lr 0.02 and diverge at 50, so no BN configuration learned where BN off did not
/// ("not shown", a result), and no placement learned, so which one does better is
/// undetermined; at lr 1e10 every run diverges, with the same verdicts.
#[test]
fn verdicts_need_runs_that_learned() {
    let dir = scratch("train-verdicts");
    let (_, r) = run_tiny(&dir, "0");
    let v = &r["verdicts"];
    assert_eq!(v["higher_lr"]["verdict"], "not-shown", "{v}");
    assert_eq!(v["placement"]["verdict"], "undetermined", "{v}");
    assert!(v["higher_lr"]["reason"].is_null());
    assert!(
        v["placement"]["reason"]
            .as_str()
            .unwrap()
            .contains("BN after act learned at no learning rate"),
        "{v}"
    );

    let mut args = with_flag(&TINY_TRAIN[..], "--lr", "1e10");
    let d = dir.join("diverged");
    args.extend(["--out", d.to_str().unwrap()]);
    let out = run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v = json(&d.join("train.json"))["verdicts"].clone();
    assert_eq!(v["higher_lr"]["verdict"], "not-shown", "{v}");
    assert_eq!(v["placement"]["verdict"], "undetermined", "{v}");
    let reason = v["placement"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("BN on learned at no learning rate"),
        "{reason}"
    );
    assert!(
        stdout.contains(&format!(
            "BN placement (best test loss over the sweep): UNDETERMINED: {reason}."
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("did better"), "{stdout}");
}

/// Every figure of the tiny sweep (one learning rate that trains, one where some runs diverge)
/// and of a sweep whose second learning rate makes every run diverge: the headline first, at
/// slide size, no legend over data.
#[test]
fn train_figures_are_clear_on_the_tiny_sweep_and_when_every_run_diverges() {
    use bn_lab::experiment::train::Train;
    common::assert_figures_clear::<Train>(&train_config(&TINY_TRAIN[..]), "tiny");
    let (r, _) = common::assert_figures_clear::<Train>(
        &train_config(&with_flag(&TINY_TRAIN[..], "--lr", "0.02,1e10")),
        "all diverge at 1e10",
    );
    assert!(r.runs.iter().filter(|r| r.lr == 1e10).all(|r| r.diverged));
}

/// The headline's left panel draws, per configuration, each run's best test loss from the
/// report at its learning rate, and a diverged run as inf (a mark in the top strip); each
/// configuration's points are shifted by one constant factor, a different one per
/// configuration, and by a few percent of the axis.
#[test]
fn the_headline_draws_each_runs_best_test_loss_and_diverged_runs_in_the_top_strip() {
    let cfg = train_config(&TINY_TRAIN[..]);
    let report = bn_lab::experiment::train::run(&cfg, &|_| {});
    assert!(report.runs.iter().any(|r| r.diverged) && report.runs.iter().any(|r| !r.diverged));
    let panel = bn_lab::plot::train::best_loss_panel(&report);
    assert_eq!(panel.series.len(), cfg.norms.len());
    let mut factors = Vec::new();
    for (s, &norm) in panel.series.iter().zip(&cfg.norms) {
        assert_eq!(s.label, norm.label());
        let runs: Vec<_> = report.runs.iter().filter(|r| r.arm == norm).collect();
        assert_eq!(s.points.len(), runs.len(), "{}", s.label);
        let factor = s.points[0].0 / runs[0].lr;
        for (&(x, y), r) in s.points.iter().zip(&runs) {
            let want = if r.diverged {
                f64::INFINITY
            } else {
                r.best_test_loss.0
            };
            assert_eq!(y.to_bits(), want.to_bits(), "{} at lr {}", s.label, r.lr);
            assert!(
                (x / r.lr / factor - 1.0).abs() < 1e-12,
                "{} at lr {}",
                s.label,
                r.lr
            );
        }
        let (lo, hi) = panel.x_range.expect("the headline fixes its lr axis");
        assert!(
            factor.log10().abs() <= 0.06 * (hi / lo).log10(),
            "{factor} on {lo}..{hi}"
        );
        factors.push(factor);
    }
    for (i, a) in factors.iter().enumerate() {
        for b in &factors[i + 1..] {
            assert!((a / b - 1.0).abs() > 0.01, "{factors:?}");
        }
    }
    // The label of each configuration's best learning rate sits on that run's point.
    for note in &panel.notes {
        assert!(
            report.runs.iter().any(|r| !r.diverged
                && r.best_test_loss.0 == note.y
                && note
                    .text
                    .contains(&format!("lr {}", bn_lab::stats::Short(r.lr)))),
            "{note:?}"
        );
    }
}

/// The ✕ marks of the top strip (the topmost drawn points of a panel): one per diverged run,
/// and no two closer than a marker is wide (14 px), so none hides another, on the headline and
/// on the loss panel of the learning rate where every run diverged at the same step.
#[test]
fn diverged_marks_at_one_learning_rate_do_not_share_a_pixel() {
    use bn_lab::experiment::Experiment;
    use bn_lab::experiment::train::Train;
    use bn_lab::plot::Figures;
    let cfg = train_config(&with_flag(&TINY_TRAIN[..], "--lr", "0.02,1e10"));
    let report = Train::run(&cfg, &|_| {});
    let diverged: Vec<_> = report.runs.iter().filter(|r| r.diverged).collect();
    assert_eq!(
        diverged.len(),
        cfg.norms.len(),
        "every run diverges at 1e10"
    );
    let steps: Vec<usize> = diverged.iter().map(|r| r.history.steps_done).collect();
    assert!(
        steps.windows(2).any(|w| w[0] == w[1]),
        "two at the same step: {steps:?}"
    );
    let figures = Train::figures();
    let top_marks = |panel: &bn_lab::plot::PanelLayout| -> Vec<(i32, i32)> {
        let top = panel.points.iter().map(|p| p.1).min().unwrap();
        panel
            .points
            .iter()
            .copied()
            .filter(|p| p.1 == top)
            .collect()
    };
    let apart = |marks: &[(i32, i32)], what: &str| {
        assert_eq!(marks.len(), cfg.norms.len(), "{what}: {marks:?}");
        for (i, a) in marks.iter().enumerate() {
            for b in &marks[i + 1..] {
                assert!((a.0 - b.0).abs() >= 14, "{what}: {a:?} and {b:?}");
            }
        }
    };
    let headline = (figures[0].draw)(&report).unwrap().layout;
    apart(&top_marks(&headline.panels[0]), "train.png");
    let loss = (figures[1].draw)(&report).unwrap().layout;
    let panel = loss
        .panels
        .iter()
        .find(|p| {
            p.caption
                .contains(&format!("learning rate {}", bn_lab::stats::Short(1e10)))
        })
        .expect("a panel for lr 1e10");
    apart(&top_marks(panel), "train_loss.png");
}

#[test]
fn spread_marks_keeps_marks_a_gap_apart_inside_the_range() {
    use bn_lab::plot::chart::spread_marks;
    let xs = spread_marks(&[3.0, 1.0, 3.0, 3.0, 5.0], 0.5, (0.0, 5.0));
    let mut sorted = xs.clone();
    sorted.sort_by(f64::total_cmp);
    for w in sorted.windows(2) {
        assert!(w[1] - w[0] >= 0.5 - 1e-12, "{xs:?}");
    }
    assert!(xs.iter().all(|x| (0.0..=5.0).contains(x)), "{xs:?}");
    assert_eq!(xs[1], 1.0, "a mark with room stays where it is");
    assert_eq!(spread_marks(&[0.0, 0.0], 1.0, (0.0, 10.0)), vec![0.0, 1.0]);
}

/// The least-squares reference is accumulated a block of rows at a time. A set of 4500 rows
/// stacked twice (9000 > `LINEAR_FIT_ROWS`, so two blocks that cut through the second copy)
/// has the same least-squares solution as the 4500 rows (one block), so the same losses; a fit
/// from any one block alone would differ. On the linear task it is exact.
#[test]
fn the_linear_fit_accumulates_every_row_block() {
    const { assert!(9000 > train::LINEAR_FIT_ROWS && 4500 < train::LINEAR_FIT_ROWS) };
    let half = data::make_task::<f64>(&Task::Nonlinear, 5, 4500, 500, 6, 3);
    let twice = |a: &Array2<f64>| ndarray::concatenate![ndarray::Axis(0), a.view(), a.view()];
    let doubled = data::Dataset {
        train: data::Batch {
            x: twice(&half.train.x),
            y: twice(&half.train.y),
        },
        test: half.test.clone(),
        classes: None,
    };
    let (a, b) = (train::linear_fit(&half), train::linear_fit(&doubled));
    assert!(
        a.train.loss > 0.1,
        "the non-linear task is not linear: {}",
        a.train.loss
    );
    for (x, y) in [(a.train.loss, b.train.loss), (a.test.loss, b.test.loss)] {
        assert!((x - y).abs() < 1e-9 * x, "{x} vs {y}");
    }
    let lin = data::make_task::<f64>(&Task::Linear, 5, 9000, 100, 6, 3);
    let fit = train::linear_fit(&lin);
    assert!(fit.train.loss < 1e-18 && fit.test.loss < 1e-18);
    assert_eq!(
        fit.test.accuracy, 1.0,
        "outputs equal to the targets pick their argmax"
    );
}
