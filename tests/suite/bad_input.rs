//! Every numeric flag of every command, tried with the value classes a hostile user types
//! (0, -1, a fraction, a number above u64::MAX, u64::MAX, NaN, inf, -inf, 1e400, 1e23, an
//! empty value, a repeated list entry, and for floats the huge finite `f64::MAX`, `1e308`,
//! `-1e308` and the smallest subnormal `5e-324`). A value outside the flag's range is refused
//! before any work: exit code 2, one `Error:` line naming the flag, nothing on stdout, no
//! `--out` directory. A value inside it runs to the end (exit 0; `gradcheck` may report a
//! failed check with 1) within [`RUN_LIMIT`], never a panic, an abort or a hang, whatever the
//! numbers do.

use crate::common;

use std::path::Path;

use std::time::Duration;

use crate::common::{assert_refused, bn_lab, bn_lab_ok, bn_lab_within, scratch, scratch_dir};

/// The longest one tiny run here may take: each takes about a second, so one still running
/// after two minutes hangs (it is killed, and the test fails).
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// What a flag accepts.
#[derive(Clone, Copy)]
enum Kind {
    /// A whole number in `min..=max` (`max` 0: unbounded).
    Count { min: u128, max: u128 },
    /// A comma-separated list of such whole numbers, without repeats.
    CountList { min: u128, max: u128 },
    /// A float for which `ok` holds.
    Float(fn(f64) -> bool),
    /// A comma-separated list of such floats, without repeats.
    FloatList(fn(f64) -> bool),
    /// A comma-separated list of such floats, one per item of another list, so repeats are fine.
    FloatSeq(fn(f64) -> bool),
    /// A float that must equal one of the run's other values: nothing here is accepted.
    Never,
}

use Kind::*;

fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}
fn non_negative(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}
fn unit_closed(v: f64) -> bool {
    (0.0..=1.0).contains(&v)
}
fn unit_half_open(v: f64) -> bool {
    (0.0..1.0).contains(&v)
}
fn above_one(v: f64) -> bool {
    v.is_finite() && v > 1.0
}
/// A learning rate: positive, at most 1e10.
fn lr(v: f64) -> bool {
    positive(v) && v <= 1e10
}
/// `landscape --slice-span` and `--probe-steps`: positive, at most 1000.
fn up_to_1000(v: f64) -> bool {
    positive(v) && v <= 1000.0
}
/// A weight std (`sweep --vary weight-scale --values`): positive, at most 1e8.
fn weight_scale(v: f64) -> bool {
    positive(v) && v <= 1e8
}

const COUNT_VALUES: &[&str] = &[
    "0",
    "-1",
    "2.5",
    "99999999999999999999999",
    "18446744073709551615",
    "",
    "nan",
    "inf",
];
const FLOAT_VALUES: &[&str] = &[
    "0",
    "-1",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "",
    "1e23",
    // Huge and tiny finite values, which pass a finiteness check and reach the plots.
    "1.7976931348623157e308",
    "1e308",
    "-1e308",
    "5e-324",
];

/// Whether `kind` accepts `value` (text as typed).
fn accepts(kind: Kind, value: &str) -> bool {
    let count_ok = |v: &str, min: u128, max: u128| {
        v.parse::<u128>()
            .is_ok_and(|n| n >= min && (max == 0 || n <= max) && n <= u64::MAX as u128)
    };
    let float_ok = |v: &str, ok: fn(f64) -> bool| v.parse::<f64>().is_ok_and(ok);
    let distinct = |v: &str| {
        let parts: Vec<&str> = v.split(',').collect();
        parts
            .iter()
            .enumerate()
            .all(|(i, p)| !parts[..i].contains(p))
    };
    match kind {
        Count { min, max } => count_ok(value, min, max),
        CountList { min, max } => {
            distinct(value) && value.split(',').all(|v| count_ok(v, min, max))
        }
        Float(ok) => float_ok(value, ok),
        FloatList(ok) => distinct(value) && value.split(',').all(|v| float_ok(v, ok)),
        FloatSeq(ok) => value.split(',').all(|v| float_ok(v, ok)),
        Never => false,
    }
}

/// `base` with `flag` set to `value` (replacing its value if `base` has the flag).
fn with_flag(base: &[&str], flag: &str, value: &str) -> Vec<String> {
    let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
    args
}

/// The network flags every command takes.
fn net_flags() -> Vec<(&'static str, Kind)> {
    vec![
        (
            "--width",
            Count {
                min: 1,
                max: 1 << 20,
            },
        ),
        (
            "--batch",
            Count {
                min: 1,
                max: 1 << 24,
            },
        ),
        (
            "--d-in",
            Count {
                min: 1,
                max: 1 << 20,
            },
        ),
        (
            "--d-out",
            Count {
                min: 1,
                max: 1 << 20,
            },
        ),
        (
            "--seed",
            Count {
                min: 0,
                max: u64::MAX as u128,
            },
        ),
        ("--eps", Float(non_negative)),
        ("--momentum", Float(unit_closed)),
    ]
}

fn data_flags() -> Vec<(&'static str, Kind)> {
    vec![
        (
            "--n-train",
            Count {
                min: 1,
                max: 1 << 26,
            },
        ),
        (
            "--n-test",
            Count {
                min: 1,
                max: 1 << 26,
            },
        ),
    ]
}

const DEPTH: Kind = Count {
    min: 1,
    max: 100_000,
};
const STEPS: Kind = Count {
    min: 1,
    max: 1_000_000,
};
/// `--warmup-steps`: 0 (none) up to the steps' cap; more than `--steps` is allowed.
const WARMUP: Kind = Count {
    min: 0,
    max: 1_000_000,
};
const EVERY: Kind = Count { min: 1, max: 0 };

/// Try every value class on every flag of one command; `writes`: whether it takes `--out`.
fn sweep(name: &str, base: &[&str], flags: &[(&str, Kind)], writes: bool) {
    let dir = scratch(&format!("bad-input-{name}"));
    let mut failures = Vec::new();
    let mut tried = 0;
    for &(flag, kind) in flags {
        let mut values: Vec<String> = match kind {
            Count { .. } | CountList { .. } => COUNT_VALUES.iter().map(|s| s.to_string()).collect(),
            _ => FLOAT_VALUES.iter().map(|s| s.to_string()).collect(),
        };
        match kind {
            CountList { .. } => values.push("3,3".into()),
            FloatList(_) | FloatSeq(_) => values.push("0.5,0.5".into()),
            _ => {}
        }
        for value in &values {
            tried += 1;
            let out = dir.join(format!("o{tried}"));
            let mut args = with_flag(base, flag, value);
            if writes {
                args.extend(["--out".to_string(), out.display().to_string()]);
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Err(e) = judge(&argv, flag, accepts(kind, value), name, &out) {
                failures.push(e);
            }
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} of {tried} inputs of {name} mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Check one run against the rules in the module docs.
fn judge(argv: &[&str], flag: &str, accepted: bool, name: &str, out: &Path) -> Result<(), String> {
    let what = format!("bn-lab {}", argv.join(" "));
    let Some(o) = bn_lab_within(argv, RUN_LIMIT) else {
        return Err(format!(
            "{what}: still running after {RUN_LIMIT:?} (killed)"
        ));
    };
    let err = String::from_utf8_lossy(&o.stderr);
    let code = o.status.code();
    if err.contains("panicked") || matches!(code, Some(101) | Some(134)) || code.is_none() {
        return Err(format!("{what}: crashed ({code:?}): {err}"));
    }
    if accepted {
        let ok = code == Some(0) || (name == "gradcheck" && code == Some(1));
        return if ok {
            Ok(())
        } else {
            Err(format!("{what}: should run, got {code:?}: {err}"))
        };
    }
    if code != Some(2) {
        return Err(format!(
            "{what}: should be refused with exit 2, got {code:?}: {err}"
        ));
    }
    if err.trim_end().lines().count() != 1 || !err.starts_with("Error: ") {
        return Err(format!("{what}: not one 'Error:' line: {err}"));
    }
    if !err.contains(flag) {
        return Err(format!("{what}: the error does not name {flag}: {err}"));
    }
    if !o.stdout.is_empty() {
        return Err(format!("{what}: wrote to stdout"));
    }
    if out.exists() {
        return Err(format!("{what}: left {}", out.display()));
    }
    Ok(())
}

#[test]
fn grad_norms_bounds_every_numeric_flag() {
    let mut flags = net_flags();
    flags.extend([
        (
            "--depth",
            CountList {
                min: 1,
                max: 100_000,
            },
        ),
        ("--seeds", Count { min: 1, max: 1000 }),
        ("--threads", Count { min: 1, max: 0 }),
    ]);
    let base = ["grad-norms", "--depth", "3", "--width", "8", "--batch", "4"];
    sweep("grad-norms", &base, &flags, true);
}

#[test]
fn theory_bounds_every_numeric_flag() {
    let flags: Vec<(&str, Kind)> = vec![
        (
            "--batch",
            CountList {
                min: 4,
                max: 1 << 24,
            },
        ),
        ("--depth", DEPTH),
        (
            "--width",
            Count {
                min: 1,
                max: 1 << 20,
            },
        ),
        (
            "--d-in",
            Count {
                min: 1,
                max: 1 << 20,
            },
        ),
    ];
    let base = ["theory", "--depth", "3", "--batch", "4,8", "--width", "8"];
    sweep("theory", &base, &flags, true);
}

#[test]
fn shattered_bounds_every_numeric_flag() {
    let mut flags: Vec<(&str, Kind)> = net_flags()
        .into_iter()
        .filter(|(f, _)| !["--batch", "--d-in", "--d-out"].contains(f))
        .collect();
    flags.extend([
        (
            "--depth",
            CountList {
                min: 1,
                max: 100_000,
            },
        ),
        (
            "--points",
            Count {
                min: 3,
                max: 10_000,
            },
        ),
        ("--d-in", Count { min: 1, max: 1 }),
        ("--d-out", Count { min: 1, max: 1 }),
        ("--max-lag", Count { min: 1, max: 15 }),
        ("--seeds", Count { min: 1, max: 1000 }),
        ("--threads", Count { min: 1, max: 0 }),
    ]);
    let base = [
        "shattered",
        "--depth",
        "2",
        "--width",
        "4",
        "--points",
        "16",
        "--seeds",
        "1",
        "--max-lag",
        "4",
    ];
    sweep("shattered", &base, &flags, true);
}

#[test]
fn gradcheck_bounds_every_numeric_flag() {
    let mut flags = net_flags();
    flags.extend([
        ("--depth", DEPTH),
        ("--step", Float(positive)),
        ("--tol", Float(positive)),
    ]);
    sweep("gradcheck", &["gradcheck", "--depth", "2"], &flags, false);
}

#[test]
fn bench_bounds_every_numeric_flag() {
    let mut flags = net_flags();
    flags.extend([
        ("--depth", DEPTH),
        ("--threads", Count { min: 1, max: 0 }),
        ("--steps", STEPS),
        (
            "--warmup",
            Count {
                min: 0,
                max: 1_000_000,
            },
        ),
        ("--ceiling-size", Count { min: 1, max: 4096 }),
    ]);
    let base = [
        "bench",
        "--depth",
        "2",
        "--width",
        "8",
        "--batch",
        "4",
        "--steps",
        "2",
        "--warmup",
        "0",
        "--ceiling-size",
        "16",
    ];
    sweep("bench", &base, &flags, false);
}

fn measured_flags() -> Vec<(&'static str, Kind)> {
    let mut flags = net_flags();
    flags.extend(data_flags());
    flags.extend([
        ("--depth", DEPTH),
        ("--steps", STEPS),
        ("--lr", Float(lr)),
        ("--warmup-steps", WARMUP),
        ("--every", EVERY),
    ]);
    flags
}

#[test]
fn landscape_bounds_every_numeric_flag() {
    let mut flags = measured_flags();
    flags.extend([
        ("--probe-steps", FloatList(up_to_1000)),
        ("--slice-grid", Count { min: 3, max: 401 }),
        ("--slice-span", Float(up_to_1000)),
        ("--slice-samples", Count { min: 1, max: 16 }),
    ]);
    sweep("landscape", &common::TINY_LANDSCAPE[..], &flags, true);
}

#[test]
fn ics_bounds_every_numeric_flag() {
    let mut flags = measured_flags();
    // Extra learning rates, each its own run: a repeat is run once.
    flags.push(("--sweep-lr", FloatSeq(lr)));
    sweep("ics", &common::TINY_ICS[..], &flags, true);
}

fn in_0_100(v: f64) -> bool {
    (0.0..=100.0).contains(&v)
}
fn in_1_100(v: f64) -> bool {
    (1.0..=100.0).contains(&v)
}
fn in_0_10(v: f64) -> bool {
    (0.0..=10.0).contains(&v)
}

/// The unit flags of `noisy-bn` and `input-shift` on the tiny runs (depth 3, width 8, 64
/// training samples).
fn unit_flags() -> Vec<(&'static str, Kind)> {
    vec![
        ("--layer", Count { min: 1, max: 3 }),
        ("--unit", Count { min: 0, max: 7 }),
        ("--probe", Count { min: 2, max: 64 }),
    ]
}

#[test]
fn noisy_bn_bounds_every_numeric_flag() {
    let mut flags = measured_flags();
    flags.extend(unit_flags());
    flags.extend([
        ("--noise-mean", Float(in_0_100)),
        ("--noise-scale", Float(in_1_100)),
        ("--noise-jitter", Float(in_0_10)),
    ]);
    sweep("noisy-bn", &common::TINY_NOISY[..], &flags, true);
}

#[test]
fn input_shift_bounds_every_numeric_flag() {
    let mut flags = measured_flags();
    flags.extend(unit_flags());
    sweep("input-shift", &common::TINY_INPUT_SHIFT[..], &flags, true);
}

fn training_flags() -> Vec<(&'static str, Kind)> {
    let mut flags = net_flags();
    flags.extend(data_flags());
    flags.extend([
        ("--lr", FloatList(lr)),
        ("--depth", DEPTH),
        ("--steps", STEPS),
        ("--sgd-momentum", Float(unit_half_open)),
        ("--weight-decay", Float(non_negative)),
        ("--warmup-steps", WARMUP),
        ("--eval-every", EVERY),
    ]);
    flags
}

#[test]
fn train_bounds_every_numeric_flag() {
    let mut flags = training_flags();
    flags.extend([
        ("--diag-every", EVERY),
        ("--diverge-factor", Float(above_one)),
        ("--diag-lr", Never),
    ]);
    sweep("train", &common::TINY_TRAIN[..], &flags, true);
}

#[test]
fn nonlinearity_bounds_every_numeric_flag() {
    let mut flags = training_flags();
    // One learning rate per activation: the same for two of them is fine.
    for f in flags.iter_mut().filter(|f| f.0 == "--lr") {
        f.1 = FloatSeq(lr);
    }
    flags.push(("--seeds", Count { min: 1, max: 1000 }));
    sweep("nonlinearity", &common::TINY_NONLINEARITY[..], &flags, true);
}

/// A run too large for the memory allowed is refused before work, with the estimate, the
/// memory and the flags to reduce; `BN_LAB_MEMORY_LIMIT` makes the limit the same everywhere.
#[test]
fn runs_too_large_for_memory_are_refused_before_work() {
    let cases: &[(&[&str], &str)] = &[
        (&["train", "--d-in", "70000"], "--d-in"),
        (&["train", "--n-train", "10000000"], "--n-train"),
        (
            &[
                "train",
                "--d-out",
                "1000000",
                "--width",
                "8",
                "--depth",
                "1",
                "--batch",
                "2",
                "--configs",
                "off",
                "--lr",
                "0.1",
                "--steps",
                "1",
            ],
            "--n-train",
        ),
        (&["ics", "--n-train", "60000000"], "--n-train"),
        (
            &[
                "grad-norms",
                "--depth",
                "90000",
                "--width",
                "1000",
                "--batch",
                "2",
                "--bn",
                "off",
            ],
            "--depth",
        ),
        (
            &[
                "grad-norms",
                "--seeds",
                "1000",
                "--depth",
                "100000",
                "--width",
                "8",
                "--batch",
                "2",
            ],
            "--seeds",
        ),
        (
            &[
                "nonlinearity",
                "--seeds",
                "1000",
                "--steps",
                "1000000",
                "--eval-every",
                "200",
            ],
            "--seeds",
        ),
        (
            &["landscape", "--slice-grid", "401", "--width", "4096"],
            "--depth",
        ),
        (&["bench", "--width", "100000", "--depth", "10"], "--depth"),
    ];
    let dir = scratch("bad-input-memory");
    for (i, (args, flag)) in cases.iter().enumerate() {
        let out = dir.join(format!("o{i}"));
        let mut all: Vec<&str> = args.to_vec();
        let out_s = out.display().to_string();
        if args[0] != "bench" {
            all.extend(["--out", &out_s]);
        }
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bn-lab"));
        cmd.args(&all).env("BN_LAB_MEMORY_LIMIT", "4G");
        let o = common::output_within(&mut cmd, RUN_LIMIT)
            .unwrap_or_else(|| panic!("{all:?}: still running after {RUN_LIMIT:?}"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {err}");
        assert!(
            err.contains("this run needs about") && err.contains("4.0 GiB of memory"),
            "{all:?}: {err}"
        );
        assert!(err.contains(flag), "{all:?} should suggest {flag}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{all:?}: {err}");
        assert!(!out.exists(), "{all:?} left {}", out.display());
    }
}

/// Histories and figures are bounded: too many points or panels are refused with the rule.
#[test]
fn histories_and_panels_are_bounded() {
    let dir = scratch("bad-input-bounds");
    let lrs: Vec<String> = (1..=9).map(|i| format!("0.0{i}")).collect();
    let lrs = lrs.join(",");
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &[
                "train",
                "--steps",
                "1000000",
                "--eval-every",
                "1000",
                "--diag-every",
                "1",
            ],
            "--diag-every",
            "at most 10000 points",
        ),
        (
            &["train", "--steps", "100000", "--eval-every", "5"],
            "--eval-every",
            "at least 11",
        ),
        (
            &["ics", "--steps", "200000", "--every", "10"],
            "--every",
            "at least 21",
        ),
        (&["train", "--lr", &lrs], "--lr", "at most 8 values"),
        (
            &["grad-norms", "--depth", "1,2,3,4,5,6,7,8,9"],
            "--depth",
            "at most 8 values",
        ),
    ];
    for (args, flag, says) in cases {
        let out = dir.join("o");
        let mut all = args.to_vec();
        let out_s = out.display().to_string();
        all.extend(["--out", &out_s]);
        let o = bn_lab(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{all:?}: {err}");
        assert!(err.contains(flag) && err.contains(says), "{all:?}: {err}");
        assert!(!out.exists());
    }
}

/// Messages echo what the user typed, and tiny or huge numbers stay short.
#[test]
fn messages_echo_the_input_and_keep_numbers_short() {
    let o = bn_lab(&["nonlinearity", "--acts", "relu,relu"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--acts: 'relu' is given twice"), "{err}");
    // `--norm none` makes the arm called `off`, and `batch` the one called `on`: the error
    // names what was typed.
    let cases: &[(&[&str], &str)] = &[
        (
            &["grad-norms", "--norm", "none,none"],
            "--norm: 'none' is given twice",
        ),
        (
            &["landscape", "--norm", "batch,layer,batch"],
            "--norm: 'batch' is given twice",
        ),
        (
            &["grad-norms", "--skips", "on,off,on"],
            "--skips: 'on' is given twice",
        ),
        (
            &["grad-norms", "--skips", "off,on", "--residual"],
            "'--skips <SKIPS>' cannot be used with '--residual'",
        ),
        (
            &["sweep", "--vary", "depth", "--norm", "none,none"],
            "--norm: 'none' is given twice",
        ),
        // `--configs` reads `none` as `off`: the repeat is named with both spellings.
        (
            &["train", "--configs", "none,none"],
            "--configs: 'off' (also written 'none') is given twice",
        ),
        (
            &["nonlinearity", "--configs", "on,batch"],
            "--configs: 'on' (also written 'affine' or 'batch') is given twice",
        ),
        // Huge and subnormal numbers are echoed in the short form they were typed in.
        (&["noisy-bn", "--noise-mean", "1e308"], "(got 1e308)"),
        (&["train", "--diverge-factor", "5e-324"], "(got 5e-324)"),
        (
            &["train", "--lr", "1e-300,1e-300"],
            "--lr: '1e-300' is given twice",
        ),
        (
            &["sweep", "--vary", "depth", "--values", "1e300"],
            "(got 1e300)",
        ),
        (&["train", "--weight-decay", "-5e-324"], "(got -5e-324)"),
    ];
    let dir = scratch_dir("bad-input-echo");
    for (args, says) in cases {
        assert_refused(args, says, &dir);
        let err = String::from_utf8_lossy(&bn_lab(args).stderr).to_string();
        assert!(err.len() < 200, "{args:?}: a long message: {err}");
    }
    let dir = scratch("bad-input-short");
    let out_s = dir.display().to_string();
    let o = bn_lab(&[
        "grad-norms",
        "--depth",
        "2",
        "--width",
        "4",
        "--batch",
        "4",
        "--init",
        "normal:1e-300",
        "--out",
        &out_s,
    ]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("normal:1e-300"), "{text}");
    // The last line lists the files written, whose paths are as long as the scratch directory.
    assert!(
        text.lines()
            .filter(|l| !l.starts_with("wrote "))
            .all(|l| l.len() < 200),
        "a line ran long: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The std inside `--init normal:STD` and `shattered --bias normal:STD` takes the same values
/// as the float flags.
#[test]
fn stds_of_normal_inits_are_bounded() {
    let cases: [(&[&str], &str, Kind); 2] = [
        (
            &["grad-norms", "--depth", "3", "--width", "8", "--batch", "4"],
            "--init",
            Float(weight_scale),
        ),
        (
            &[
                "shattered",
                "--depth",
                "2",
                "--width",
                "4",
                "--points",
                "16",
                "--seeds",
                "1",
                "--max-lag",
                "4",
            ],
            "--bias",
            Float(positive),
        ),
    ];
    let dir = scratch("bad-input-std");
    let mut failures = Vec::new();
    for (base, flag, kind) in cases {
        for (i, v) in FLOAT_VALUES.iter().enumerate() {
            let out = dir.join(format!("o{i}"));
            let value = format!("normal:{v}");
            let mut args = with_flag(base, flag, &value);
            args.extend(["--out".to_string(), out.display().to_string()]);
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let accepted = accepts(kind, v);
            if let Err(e) = judge(&argv, flag, accepted, base[0], &out) {
                failures.push(e);
            }
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn residual_scale_needs_residual_and_a_positive_finite_value() {
    let dir = scratch_dir("bad-input-residual-scale");
    for value in [
        "0",
        "-0.5",
        "nan",
        "inf",
        "1001",
        "1e308",
        "1.7976931348623157e308",
        "-1e308",
    ] {
        assert_refused(
            &["grad-norms", "--residual", "--residual-scale", value],
            "--residual-scale must be a finite number > 0 and at most 1000",
            &dir,
        );
    }
    assert_refused(
        &["grad-norms", "--residual-scale", "0.5"],
        "--residual-scale: scales the residual branch, so it needs a skip: --block residual (--residual), basic or preact (got 0.5 without one)",
        &dir,
    );
    // The smallest subnormal scale is a (useless) residual branch, not an error.
    bn_lab_ok(
        &[
            "grad-norms",
            "--depth",
            "3",
            "--width",
            "8",
            "--batch",
            "8",
            "--residual",
            "--residual-scale",
            "5e-324",
        ],
        &dir.join("subnormal"),
    );
    // 1 is a plain skip connection, and no skip connection at all without --residual.
    let out = dir.join("ok");
    bn_lab_ok(
        &[
            "grad-norms",
            "--depth",
            "3",
            "--width",
            "8",
            "--batch",
            "8",
            "--residual-scale",
            "1",
        ],
        &out,
    );
}

#[test]
fn sweep_bounds_every_numeric_flag() {
    let mut flags = net_flags();
    flags.extend(data_flags());
    flags.extend([
        ("--values", FloatList(weight_scale)),
        ("--depth", DEPTH),
        ("--seeds", Count { min: 1, max: 1000 }),
        (
            "--steps",
            Count {
                min: 0,
                max: 1_000_000,
            },
        ),
        ("--lr", Float(lr)),
        ("--warmup-steps", WARMUP),
        ("--threads", Count { min: 1, max: 0 }),
        // 2 values x 3 arms x 1 seed.
        ("--point", Count { min: 0, max: 5 }),
    ]);
    let base = [
        "sweep",
        "--vary",
        "weight-scale",
        "--values",
        "0.1,1",
        "--depth",
        "2",
        "--width",
        "4",
        "--batch",
        "4",
        "--d-out",
        "2",
        "--seeds",
        "1",
        "--steps",
        "3",
        "--n-train",
        "16",
        "--n-test",
        "8",
    ];
    sweep("sweep", &base, &flags, true);
}
