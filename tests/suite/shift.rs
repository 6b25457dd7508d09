//! `bn-lab noisy-bn` and `bn-lab input-shift`: known answers of the measures, zero noise equal
//! to BN bit for bit, the verdicts read from the numbers, and the commands end to end.

use bn_lab::experiment::Plan;

use crate::common;

use crate::common::{
    TINY_INPUT_SHIFT, TINY_NOISY, assert_deterministic, assert_figures_clear,
    assert_progress_adds_up, assert_schema, bn_lab_ok, json, parse, scratch,
};
use bn_lab::cli::Command;
use bn_lab::config::BnNoise;
use bn_lab::experiment::Experiment;
use bn_lab::experiment::shift::{
    InputShift, NoisyBn, ShiftArm, ShiftConfig, drift, noisy_verdict, shift_between,
};
use bn_lab::stats::Num;

fn noisy_cfg(args: &[&str]) -> ShiftConfig {
    match parse(args) {
        Command::NoisyBn(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        _ => unreachable!("a noisy-bn command line"),
    }
}

fn shift_cfg(args: &[&str]) -> ShiftConfig {
    match parse(args) {
        Command::InputShift(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        _ => unreachable!("an input-shift command line"),
    }
}

/// `args` with `extra` flags after them.
fn plus<'a>(args: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [args, extra].concat()
}

/// Everything an arm measured, as JSON, without the fields that name the arm.
fn measured(a: &ShiftArm) -> serde_json::Value {
    let mut v = serde_json::to_value(a).unwrap();
    let m = v.as_object_mut().unwrap();
    for k in ["label", "noise", "seen_shift", "net_seen_shift"] {
        m.remove(k);
    }
    v
}

#[test]
fn zero_noise_makes_noisy_bn_identical_to_bn() {
    let mut cfg = noisy_cfg(&TINY_NOISY[..]);
    cfg.noise = Some(BnNoise {
        mean: 0.0,
        scale: 1.0,
        jitter: 0.0,
    });
    let r = NoisyBn::run(&cfg, &|_| {});
    let (bn, noisy) = (&r.arms[1], &r.arms[2]);
    assert_eq!(bn.run.label, "BN on");
    assert_eq!(noisy.run.label, "noisy BN");
    assert_eq!(measured(bn), measured(noisy));
    // With the default noise the two differ.
    let r = NoisyBn::run(&noisy_cfg(&TINY_NOISY[..]), &|_| {});
    assert_ne!(measured(&r.arms[1]), measured(&r.arms[2]));
}

#[test]
fn nothing_shifts_when_the_weights_do_not_move_but_the_noise_does() {
    // lr 1e-12: the weights stay put to rounding and the probe is the same samples every time,
    // so the plain and BN nets' inputs keep their moments; noisy BN's noise moves them anyway.
    // In train mode: each probe standardises with its own statistics and draws fresh noise.
    let train = plus(&TINY_NOISY[..], &["--probe-mode", "train"]);
    let cfg = noisy_cfg(&common::with_flag(&train, "--lr", "1e-12"));
    let r = NoisyBn::run(&cfg, &|_| {});
    for a in &r.arms[..2] {
        assert!(a.net_shift.0 < 1e-6, "{}: {}", a.run.label, a.net_shift.0);
        assert!(a.unit_drift.0 < 1e-6, "{}: {}", a.run.label, a.unit_drift.0);
    }
    assert!(r.arms[2].net_shift.0 > 0.1, "{}", r.arms[2].net_shift.0);
}

#[test]
fn bn_inputs_start_standardised() {
    // At step 0 BN's scale is 1 and its shift 0, so over the probe every unit's input has mean 0
    // and standard deviation sqrt(var / (var + eps)), just under 1.
    // (In train mode: the probe's own statistics.)
    let train = plus(&TINY_INPUT_SHIFT[..], &["--probe-mode", "train"]);
    let r = InputShift::run(&shift_cfg(&train), &|_| {});
    let bn = r.arms.iter().find(|a| a.run.label == "BN on").unwrap();
    for l in 0..3 {
        assert!(
            bn.input_mean[l][0].0.abs() < 1e-6,
            "{:?}",
            bn.input_mean[l][0]
        );
        let sd = bn.input_std[l][0].0;
        assert!((0.99..=1.0).contains(&sd), "{sd}");
    }
}

#[test]
fn the_shift_of_known_moments() {
    let before = (vec![0.0, 1.0], vec![1.0, 2.0]);
    assert_eq!(shift_between(&before, &before), 0.0);
    // Unit 0's mean moves by its std; unit 1's std doubles: (1 + 0) / 2 + (0 + ln 2) / 2.
    let after = (vec![1.0, 1.0], vec![1.0, 4.0]);
    let want = 0.5 + 0.5 * 2f64.ln();
    assert!((shift_between(&before, &after) - want).abs() < 1e-12);
    // A unit with zero spread is left out.
    let flat = (vec![0.0, 5.0], vec![1.0, 0.0]);
    assert_eq!(shift_between(&before, &flat), 0.0);
    // Drift: the median moves by 1 and the 15-85 spread grows from 2 to 4: (1 + 2) / 4.
    let p = |v: &[f64]| v.iter().map(|&x| Num(x)).collect::<Vec<_>>();
    let pc = vec![p(&[-1.0, -1.0]), p(&[0.0, 1.0]), p(&[1.0, 3.0])];
    assert!((drift(&pc, 0) - 0.75).abs() < 1e-12);
    // From a later measurement; none from there on is no drift to measure.
    assert_eq!(drift(&pc, 1), 0.0);
    assert!(drift(&pc, 2).is_nan());
}

#[test]
fn the_verdict_follows_the_numbers() {
    let r = NoisyBn::run(&noisy_cfg(&TINY_NOISY[..]), &|_| {});
    let (plain, bn, noisy) = (&r.arms[0], &r.arms[1], &r.arms[2]);
    let mut p = plain.clone();
    let mut n = noisy.clone();
    // Noisy BN as good as BN, plain worse, noisy shifting more than BN: supported.
    p.run.final_test_loss = Num(10.0 * bn.run.final_test_loss.0);
    n.run.final_test_loss = bn.run.final_test_loss;
    let mut b = bn.clone();
    b.net_shift = Num(0.1);
    n.net_shift = Num(0.5);
    assert_eq!(noisy_verdict(&p, &b, &n).verdict, "supported");
    // Within a factor of 2 of BN's loss either way; beyond it, it is not "almost as well".
    n.run.final_test_loss = Num(1.9 * b.run.final_test_loss.0);
    assert_eq!(noisy_verdict(&p, &b, &n).verdict, "supported");
    n.run.final_test_loss = Num(0.49 * b.run.final_test_loss.0);
    assert_eq!(noisy_verdict(&p, &b, &n).verdict, "mixed");
    n.run.final_test_loss = b.run.final_test_loss;
    // Shifting no more than BN: mixed.
    n.net_shift = Num(0.1);
    assert_eq!(noisy_verdict(&p, &b, &n).verdict, "mixed");
    // And training like the plain net as well: not supported.
    n.run.final_test_loss = p.run.final_test_loss;
    assert_eq!(noisy_verdict(&p, &b, &n).verdict, "not supported");
}

#[test]
fn the_eval_probe_counts_from_settled_running_statistics() {
    // Momentum 0.1: 0.9^44 < 1% < 0.9^43.
    let cfg = shift_cfg(&common::with_flag(
        &TINY_INPUT_SHIFT[..],
        "--momentum",
        "0.1",
    ));
    assert_eq!(cfg.reference_step(), 44);
    // Train mode, or no BN arm: from the start.
    let cfg = shift_cfg(&plus(&TINY_INPUT_SHIFT[..], &["--probe-mode", "train"]));
    assert_eq!(cfg.reference_step(), 0);
    let cfg = shift_cfg(&plus(&TINY_INPUT_SHIFT[..], &["--bn", "off"]));
    assert_eq!(cfg.reference_step(), 0);
    // The tiny run (momentum 0.9: 2 steps) counts its shifts and drift from step 4.
    let r = InputShift::run(&shift_cfg(&TINY_INPUT_SHIFT[..]), &|_| {});
    for a in &r.arms {
        assert_eq!(a.steps[a.reference], 4, "{}", a.run.label);
        assert_eq!(a.shift[0].len(), 1, "{}", a.run.label);
        assert!(a.seen_shift.is_none());
    }
    // Noisy BN probed in eval mode also records what its layers see in training.
    let r = NoisyBn::run(&noisy_cfg(&TINY_NOISY[..]), &|_| {});
    let noisy = &r.arms[2];
    let seen = noisy.net_seen_shift.unwrap().0;
    assert!(seen.is_finite() && seen > 0.0, "{seen}");
    assert_eq!(noisy.seen_shift.as_ref().unwrap().len(), 3);
    assert_eq!(r.noisy_verdict.unwrap().seen_shift_noisy.unwrap().0, seen);
    assert!(r.arms[..2].iter().all(|a| a.seen_shift.is_none()));
}

#[test]
fn an_eval_probe_without_settled_measurements_measures_no_shift() {
    // Momentum 0.1 settles at step 44, after the 12 steps: nothing to count, so NaN (and a
    // verdict on NaN is undetermined), with a note saying why.
    let cfg = shift_cfg(&common::with_flag(
        &TINY_INPUT_SHIFT[..],
        "--momentum",
        "0.1",
    ));
    let r = InputShift::run(&cfg, &|_| {});
    for a in &r.arms {
        assert!(
            a.net_shift.0.is_nan() && a.unit_drift.0.is_nan(),
            "{}",
            a.run.label
        );
    }
    assert_eq!(r.drift_verdict.as_ref().unwrap().verdict, "undetermined");
    assert!(InputShift::summary(&r).contains("--probe-mode train"));
}

#[test]
fn noisy_bn_end_to_end() {
    let dir = scratch("noisy-bn-cli");
    let out = bn_lab_ok(&TINY_NOISY[..], &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Santurkar et al."), "{stdout}");
    for f in ["noisy_bn.png", "noisy_bn_detail.png", "noisy_bn.json"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let v = json(&dir.join("noisy_bn.json"));
    assert_schema(&v, "noisy_bn");
    assert_eq!(v["arms"].as_array().unwrap().len(), 3);
    assert_eq!(v["config"]["noise"]["scale"], 2.0);
    // The verdict in the file is the one its own numbers give.
    let verdict = &v["noisy_verdict"];
    let word = verdict["verdict"].as_str().unwrap();
    let votes = [&verdict["trains_like_bn"], &verdict["shifts_more_than_bn"]]
        .iter()
        .filter(|b| b.as_bool().unwrap())
        .count();
    assert_eq!(
        word,
        ["not supported", "mixed", "supported"][votes],
        "{verdict}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn input_shift_end_to_end() {
    let dir = scratch("input-shift-cli");
    let out = bn_lab_ok(&TINY_INPUT_SHIFT[..], &dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Ioffe & Szegedy"), "{stdout}");
    let v = json(&dir.join("input_shift.json"));
    assert_schema(&v, "input_shift");
    let arms = v["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2);
    // The unit's drift is the one its written percentiles (15, 50, 85) give, from the
    // reference measurement to the last: the median's move plus the 15-85 spread's change, over
    // the larger spread.
    for a in arms {
        let p = a["unit_percentiles"].as_array().unwrap();
        let col =
            |k: usize| -> Vec<f64> { p[k].as_array().unwrap().iter().map(common::num).collect() };
        let (lo, mid, hi) = (col(0), col(1), col(2));
        let steps = a["steps"].as_array().unwrap().len();
        assert!(
            lo.len() == steps && mid.len() == steps && hi.len() == steps,
            "{a}"
        );
        let (from, last) = (a["reference"].as_u64().unwrap() as usize, steps - 1);
        assert!(
            from < last,
            "the reference comes before the last measurement: {a}"
        );
        let (s0, s1) = (hi[from] - lo[from], hi[last] - lo[last]);
        let want = ((mid[last] - mid[from]).abs() + (s1 - s0).abs()) / s0.max(s1);
        let got = common::num(&a["unit_drift"]);
        assert!((got - want).abs() <= 1e-12 * want.abs(), "{got} vs {want}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn runs_are_deterministic_per_seed() {
    assert_deterministic(&TINY_NOISY[..], "noisy_bn.json", "noisy-bn");
    assert_deterministic(&TINY_INPUT_SHIFT[..], "input_shift.json", "input-shift");
}

#[test]
fn progress_adds_up() {
    let cfg = noisy_cfg(&TINY_NOISY[..]);
    assert_progress_adds_up::<NoisyBn>(&cfg, cfg.work_units() / 4, "noisy-bn");
}

#[test]
fn figures_are_clear() {
    assert_figures_clear::<NoisyBn>(&noisy_cfg(&TINY_NOISY[..]), "tiny");
    assert_figures_clear::<InputShift>(&shift_cfg(&TINY_INPUT_SHIFT[..]), "tiny");
    // Digits (accuracy panels) at a size that trains, and a diverging plain net.
    let digits = [
        "noisy-bn", "--depth", "4", "--steps", "60", "--every", "5", "--probe", "64",
    ];
    assert_figures_clear::<NoisyBn>(&noisy_cfg(&digits), "digits");
    let hot = common::with_flag(&TINY_NOISY[..], "--lr", "30");
    assert_figures_clear::<NoisyBn>(&noisy_cfg(&hot), "diverging");
    let ioffe = [
        "input-shift",
        "--steps",
        "60",
        "--every",
        "5",
        "--probe",
        "64",
    ];
    assert_figures_clear::<InputShift>(&shift_cfg(&ioffe), "digits");
}

/// The summary's unit line reads the percentiles at the reference measurement and at the last
/// one, with their steps; an arm with no measurement there gets NaN at step 0.
#[test]
fn unit_ends_are_the_reference_and_the_last_measurement() {
    use bn_lab::experiment::shift::{UnitPercentilesAt, run, unit_ends};
    let mut arm = run(&shift_cfg(&TINY_INPUT_SHIFT[..]), &|_| {})
        .arms
        .remove(0);
    arm.steps = vec![0, 10, 20];
    arm.reference = 1;
    arm.unit_percentiles = (0..3)
        .map(|k| (0..3).map(|i| Num((3 * k + i) as f64)).collect())
        .collect();
    let at = |step, percentiles| UnitPercentilesAt { step, percentiles };
    assert_eq!(
        unit_ends(&arm),
        [at(10, [1.0, 4.0, 7.0]), at(20, [2.0, 5.0, 8.0])]
    );
    arm.steps.clear();
    arm.unit_percentiles = vec![Vec::new(); 3];
    let [from, to] = unit_ends(&arm);
    assert_eq!((from.step, to.step), (0, 0));
    assert!(
        from.percentiles
            .iter()
            .chain(&to.percentiles)
            .all(|v| v.is_nan())
    );
}
