//! `--warmup-steps K`: linear learning-rate warmup, `lr_t = lr * min(1, (t + 1) / K)` for the
//! update with index t (PyTorch's `LinearLR`, `transformers`' linear warmup). Known answers:
//! the schedule's values, K = 1 is no warmup bit for bit, the first update of K = 10 is a tenth
//! of the plain one, and the runs that measure a copy of the next step (ics) still follow the
//! same trajectory.

use crate::common;

use crate::common::{bn_lab_ok, json, parse, scratch_dir};
use bn_lab::config::{Activation, Init, Loss, NormConfig};
use bn_lab::data::{self, Stream, Task};
use bn_lab::experiment::ics::IcsConfig;
use bn_lab::model::Mlp;
use bn_lab::optim::{Sgd, SgdConfig};
use bn_lab::spec::NetConfig;
use bn_lab::train::{self, TrainSettings, loss_and_grad};
use ndarray::Array2;
use serde_json::Value;

fn sgd(lr: f64, momentum: f64, warmup_steps: usize) -> SgdConfig {
    SgdConfig {
        lr,
        momentum,
        weight_decay: 0.0,
        warmup_steps,
    }
}

fn net(bn: bool, depth: usize) -> NetConfig {
    NetConfig {
        d_in: 8,
        width: 16,
        d_out: 2,
        depth,
        act: Activation::Relu,
        init: Init::He,
        norm: bn.then(NormConfig::default),
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    }
}

fn settings(sgd: SgdConfig, steps: usize) -> TrainSettings {
    TrainSettings {
        steps,
        batch: 16,
        sgd,
        eval_every: 10,
        diag_every: 1,
        diverge_factor: 1e6,
        seed: 1,
        loss: Loss::Mse,
    }
}

/// K = 4 and lr 2: the updates use 2 * 1/4, 2 * 2/4, 2 * 3/4, then 2 from update 3 on.
#[test]
fn the_warmup_schedule_rises_linearly_to_lr_over_k_updates() {
    let c = sgd(2.0, 0.0, 4);
    let got: Vec<f64> = (0..7).map(|t| c.lr_at(t)).collect();
    assert_eq!(got, [0.5, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0]);
    for k in [0, 1] {
        let c = sgd(0.3, 0.0, k);
        assert!(
            (0..5).all(|t| c.lr_at(t).to_bits() == 0.3f64.to_bits()),
            "K {k}"
        );
    }
    // More warmup steps than a run has: the last update is still below lr.
    assert_eq!(sgd(1.0, 0.0, 1_000_000).lr_at(999), 0.001);
    // The optimiser applies the schedule update by update.
    let cfg = net(false, 1);
    let d = data::linear_teacher::<f64>(2, 16, cfg.d_in, cfg.d_out);
    let mut m = Mlp::<f64>::new(&cfg, &mut data::rng(2, Stream::Weights));
    let mut d_o = Array2::zeros((16, cfg.d_out));
    let mut opt = Sgd::<f64>::new(c);
    let mut seen = Vec::new();
    for _ in 0..6 {
        loss_and_grad(&mut m, &d.x, &d.y, &mut d_o, Loss::Mse);
        seen.push(opt.current_lr());
        opt.step(&mut m);
    }
    assert_eq!(seen, [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]);
    assert_eq!(opt.steps_done(), 6);
}

/// K = 1 multiplies every update by exactly 1: the whole History (losses, accuracies,
/// diagnostics, divergence) is the same bit for bit as K = 0, with and without BN, with and
/// without momentum, in f32 and at a learning rate that diverges.
#[test]
fn one_warmup_step_is_no_warmup_bit_for_bit() {
    let data32 = data::make_task::<f32>(&Task::Nonlinear, 3, 128, 64, 8, 2);
    for bn in [false, true] {
        for (lr, momentum) in [(0.05, 0.0), (0.05, 0.9), (20.0, 0.0)] {
            let cfg = net(bn, 3);
            let run = |k: usize| {
                let mut m = Mlp::<f32>::new(&cfg, &mut data::rng(3, Stream::Weights));
                let h = train::train(
                    &mut m,
                    &data32,
                    &settings(sgd(lr, momentum, k), 40),
                    &|_| {},
                );
                serde_json::to_value(h).unwrap()
            };
            let (none, one) = (run(0), run(1));
            assert_eq!(none, one, "bn {bn}, lr {lr}, momentum {momentum}");
            assert_ne!(none, run(5), "bn {bn}, lr {lr}: K 5 changes the run");
        }
    }
}

/// The same through the CLI: `train --warmup-steps 1` writes the report of `train` without it,
/// but for the recorded `warmup_steps` (and the wall-clock seconds).
#[test]
fn train_with_one_warmup_step_reports_the_same_numbers_as_without() {
    let read = |extra: &[&str], name: &str| -> (Value, Value) {
        let dir = scratch_dir(name);
        let mut args = common::TINY_TRAIN.to_vec();
        args.extend(extra);
        bn_lab_ok(&args, &dir);
        let mut r = json(&dir.join("train.json"));
        let m = r.as_object_mut().unwrap();
        m.remove("seconds");
        let k = m
            .get_mut("config")
            .and_then(Value::as_object_mut)
            .unwrap()
            .remove("warmup_steps")
            .expect("the config records warmup_steps");
        (k, r)
    };
    let (k0, plain) = read(&[], "warmup-cli-0");
    let (k1, one) = read(&["--warmup-steps", "1"], "warmup-cli-1");
    assert_eq!((k0, k1), (Value::from(0), Value::from(1)));
    assert_eq!(plain, one);
}

/// On a tiny net, from the same weights and batch, the first update with K = 10 moves every
/// parameter by a tenth of the plain update, and the recorded update ratio is a tenth too
/// (it uses the lr applied at that step).
#[test]
fn the_first_update_of_a_ten_step_warmup_is_a_tenth_of_the_plain_one() {
    let cfg = net(true, 2);
    let d = data::linear_teacher::<f64>(4, 16, cfg.d_in, cfg.d_out);
    let mut m = Mlp::<f64>::new(&cfg, &mut data::rng(4, Stream::Weights));
    let mut d_o = Array2::zeros((16, cfg.d_out));
    loss_and_grad(&mut m, &d.x, &d.y, &mut d_o, Loss::Mse);
    let flat = |mut n: Mlp<f64>| train::params_flat(&mut n);
    let theta = flat(m.clone());
    let stepped = |k: usize| {
        let mut n = m.clone();
        Sgd::<f64>::new(sgd(0.5, 0.0, k)).step(&mut n);
        flat(n)
    };
    let (plain, warm) = (stepped(0), stepped(10));
    let mut moved = 0;
    for ((t, p), w) in theta.iter().zip(&plain).zip(&warm) {
        let (dp, dw) = (p - t, w - t);
        assert!(
            (dw - dp / 10.0).abs() <= 1e-12 * (1.0 + t.abs()),
            "{dw} vs {dp} / 10"
        );
        moved += usize::from(dp != 0.0);
    }
    assert!(
        moved > theta.len() / 2,
        "the plain update moves most parameters"
    );

    let data = data::make_task::<f64>(&Task::Nonlinear, 4, 64, 16, 8, 2);
    let ratio = |k: usize| {
        let mut n = Mlp::<f64>::new(&cfg, &mut data::rng(4, Stream::Weights));
        let h = train::train(&mut n, &data, &settings(sgd(0.5, 0.0, k), 1), &|_| {});
        h.layers.update_ratio
    };
    let (plain, warm) = (ratio(0), ratio(10));
    for (p, w) in plain.iter().zip(&warm) {
        let (p, w) = (p[0].0, w[0].0);
        assert!(
            p > 0.0 && (w - p / 10.0).abs() <= 1e-12 * p,
            "{w} vs {p} / 10"
        );
    }
}

/// `ics` measures each step's update on a copy of the optimiser: its runs follow the same
/// trajectory as plain training with the same warmup (and not the trajectory without it).
#[test]
fn ics_measures_without_advancing_the_warmup() {
    let mut args = common::TINY_ICS.to_vec();
    args.extend(["--warmup-steps", "6"]);
    let bn_lab::cli::Command::Ics(a) = parse(&args) else {
        unreachable!("an ics command line")
    };
    let cfg = IcsConfig {
        sweep_lrs: Vec::new(),
        ..bn_lab::experiment::ExperimentArgs::config(&a).unwrap()
    };
    let report = bn_lab::experiment::ics::run(&cfg, &|_| {});
    let trained = |k: usize, norm| {
        let mut run = cfg.run.clone();
        run.sgd.warmup_steps = k;
        let data = run.dataset::<f32>();
        let mut net = run.initial_net::<f32>(norm);
        run.train_measured(norm, &mut net, &data, &|_| {}, 0, |_, _, _| {})
            .train_loss
    };
    for arm in &report.arms {
        let plain = trained(6, arm.run.norm);
        assert_eq!(arm.run.train_loss, plain, "{}", arm.run.label);
        assert_ne!(arm.run.train_loss, trained(0, arm.run.norm));
    }
}

/// With a warmup the settings line of every training command's figures and summary says so
/// (`lr 0.05, 4 warmup steps`), and the figures stay clear (no legend over data).
#[test]
fn figures_and_titles_name_the_warmup_and_stay_clear() {
    use bn_lab::cli::Command;
    use bn_lab::experiment::{
        ics::Ics, landscape::Landscape, nonlinearity::Nonlinearity, train::Train,
    };
    let with = |base: &[&'static str]| {
        let mut v = base.to_vec();
        v.extend(["--warmup-steps", "4"]);
        parse(&v)
    };
    let Command::Train(a) = with(&common::TINY_TRAIN[..]) else {
        unreachable!()
    };
    let cfg = bn_lab::experiment::ExperimentArgs::config(&a).unwrap();
    assert!(bn_lab::experiment::train::title(&cfg).contains("4 warmup steps"));
    common::assert_figures_clear::<Train>(&cfg, "warmup");
    let Command::Nonlinearity(a) = with(&common::TINY_NONLINEARITY[..]) else {
        unreachable!()
    };
    let cfg = bn_lab::experiment::ExperimentArgs::config(&a).unwrap();
    assert!(bn_lab::experiment::nonlinearity::title(&cfg).contains(", 4 warmup steps"));
    common::assert_figures_clear::<Nonlinearity>(&cfg, "warmup");
    let Command::Landscape(a) = with(&common::TINY_LANDSCAPE[..]) else {
        unreachable!()
    };
    let cfg = bn_lab::experiment::ExperimentArgs::config(&a).unwrap();
    assert!(
        cfg.run
            .title()
            .contains("lr 0.05, 4 warmup steps, 12 steps")
    );
    common::assert_figures_clear::<Landscape>(&cfg, "warmup");
    let Command::Ics(a) = with(&common::TINY_ICS[..]) else {
        unreachable!()
    };
    let cfg = bn_lab::experiment::ExperimentArgs::config(&a).unwrap();
    common::assert_figures_clear::<Ics>(&cfg, "warmup");
    // One warmup step is no warmup, and says "step".
    assert_eq!(bn_lab::optim::warmup_label(0), None);
    assert_eq!(bn_lab::optim::warmup_label(1).unwrap(), "1 warmup step");
}

/// `sweep --plan` passes the warmup on to every point's command line (and leaves it out at 0,
/// so plans without it are unchanged), and those lines parse back to the same config.
#[test]
fn sweep_plans_carry_the_warmup() {
    use bn_lab::cli::Command;
    use bn_lab::commands::sweep::plan_lines;
    let base = [
        "sweep", "--vary", "batch", "--values", "4,16", "--depth", "3", "--width", "8", "--steps",
        "5",
    ];
    let sweep_cfg = |extra: &[&'static str]| {
        let mut v = base.to_vec();
        v.extend(extra);
        match parse(&v) {
            Command::Sweep(a) => a.config(a.vary.unwrap()).unwrap(),
            _ => unreachable!(),
        }
    };
    let dir = std::path::Path::new("/plan");
    let plain = plan_lines(&sweep_cfg(&[]), dir);
    assert!(plain.iter().all(|l| !l.contains("--warmup-steps")));
    let warm = sweep_cfg(&["--warmup-steps", "7"]);
    let lines = plan_lines(&warm, dir);
    assert!(lines.iter().all(|l| l.contains(" --warmup-steps 7")));
    let words: Vec<&str> = lines[0].split(' ').skip(1).collect();
    let Command::Sweep(a) = parse(&words) else {
        unreachable!()
    };
    let again = a.config(a.vary.unwrap()).unwrap();
    assert_eq!(again.sgd.warmup_steps, 7);
    assert_eq!(
        bn_lab::experiment::sweep::SweepConfig {
            point: None,
            ..again
        },
        warm
    );
}

/// The commands that train with plain SGD flatten one [`PlainSgdSpec`]: their JSON keeps
/// `steps`, `lr`, `warmup_steps` side by side, in that order and before the same key as before
/// the spec existed, and a config written without `warmup_steps` loads with no warmup.
#[test]
fn plain_sgd_configs_keep_their_keys_and_read_a_missing_warmup_as_none() {
    use bn_lab::cli::Command;
    use bn_lab::experiment::ExperimentArgs;
    use bn_lab::optim::PlainSgdSpec;
    fn check<C>(name: &str, cfg: &C, spec: impl Fn(&C) -> PlainSgdSpec, next: &str)
    where
        C: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let s = spec(cfg);
        assert_eq!(s.warmup_steps, 3, "{name}: the flag reaches the config");
        let text = serde_json::to_string(cfg).unwrap();
        let keys = format!(
            r#""steps":{},"lr":{},"warmup_steps":3,"{next}":"#,
            s.steps,
            serde_json::to_string(&s.lr).unwrap()
        );
        assert!(text.contains(&keys), "{name}: {keys} not in {text}");
        let mut old = serde_json::to_value(cfg).unwrap();
        old.as_object_mut().unwrap().remove("warmup_steps");
        let loaded: C = bn_lab::experiment::load_config(&old).expect("loads without warmup_steps");
        assert_eq!(
            spec(&loaded),
            PlainSgdSpec {
                warmup_steps: 0,
                ..s
            },
            "{name}"
        );
    }
    let with = |base: &[&'static str]| {
        let mut v = base.to_vec();
        v.extend(["--warmup-steps", "3"]);
        parse(&v)
    };
    let Command::Landscape(a) = with(&common::TINY_LANDSCAPE[..]) else {
        unreachable!()
    };
    check("landscape", &a.config().unwrap(), |c| c.run.sgd, "every");
    let Command::Ics(a) = with(&common::TINY_ICS[..]) else {
        unreachable!()
    };
    check("ics", &a.config().unwrap(), |c| c.run.sgd, "every");
    let Command::NoisyBn(a) = with(&common::TINY_NOISY[..]) else {
        unreachable!()
    };
    check("noisy-bn", &a.config().unwrap(), |c| c.run.sgd, "every");
    let Command::InputShift(a) = with(&common::TINY_INPUT_SHIFT[..]) else {
        unreachable!()
    };
    check("input-shift", &a.config().unwrap(), |c| c.run.sgd, "every");
    let Command::Sweep(a) = with(&["sweep", "--vary", "batch", "--point", "0"]) else {
        unreachable!()
    };
    check(
        "sweep",
        &a.config(a.vary.unwrap()).unwrap(),
        |c| c.sgd,
        "point",
    );
}
