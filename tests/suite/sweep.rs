//! `bn-lab sweep`: clear figures on every axis, the point order, numbers independent of the
//! thread count, bad input refused in one line, and a plan run point by point and collected
//! giving exactly the local sweep's numbers.

use bn_lab::experiment::Plan;

use crate::common;

use std::path::Path;

use bn_lab::cli::Command;
use bn_lab::commands::sweep::{plan_lines, shell_quote};
use bn_lab::config::Normaliser;
use bn_lab::experiment::sweep::{Sweep, SweepConfig};
use serde_json::Value;

/// A tiny weight-scale sweep with training: three scales, three arms, two seeds.
const TINY: &[&str] = &[
    "sweep",
    "--vary",
    "weight-scale",
    "--values",
    "0.01,0.3,3",
    "--seeds",
    "2",
    "--depth",
    "3",
    "--width",
    "8",
    "--batch",
    "8",
    "--d-out",
    "2",
    "--steps",
    "20",
    "--n-train",
    "64",
    "--n-test",
    "32",
];

fn cfg(args: &[&str]) -> SweepConfig {
    match common::parse(args) {
        Command::Sweep(a) => a.config(a.vary.expect("the tests give --vary")).unwrap(),
        _ => unreachable!("sweep parses to sweep"),
    }
}

#[test]
fn every_axis_draws_a_clear_headline() {
    let (r, _) = common::assert_figures_clear::<Sweep>(&cfg(TINY), "weight-scale");
    assert_eq!(r.points.len(), 3 * 3 * 2);
    // s = 3 with 3 layers of width 8: the plain net's loss blows up, BN's does not.
    let last = |arm: Normaliser| {
        r.means
            .iter()
            .find(|m| m.value == 3.0 && m.arm == arm)
            .unwrap()
            .clone()
    };
    assert!(last(Normaliser::BN).final_test_loss.unwrap().0.is_finite());
    let batch = [
        "sweep",
        "--vary",
        "batch",
        "--values",
        "2,4,16,64",
        "--seeds",
        "2",
        "--depth",
        "6",
        "--width",
        "8",
        "--d-out",
        "2",
        "--steps",
        "10",
        "--n-train",
        "64",
        "--n-test",
        "16",
    ];
    let (r, _) = common::assert_figures_clear::<Sweep>(&cfg(&batch), "batch");
    let bn: Vec<_> = r.means.iter().filter(|m| m.arm == Normaliser::BN).collect();
    assert_eq!(bn[0].theory_rate, None, "no lambda(B) below B = 4");
    assert!(bn[1].theory_rate.unwrap().0 > bn[3].theory_rate.unwrap().0);
    assert!(
        r.means
            .iter()
            .filter(|m| m.arm == Normaliser::Off)
            .all(|m| m.theory_rate.is_none())
    );
    let depth = [
        "sweep", "--vary", "depth", "--values", "1,3,30", "--width", "8", "--batch", "16",
    ];
    let (r, _) = common::assert_figures_clear::<Sweep>(&cfg(&depth), "depth");
    assert!(r.points.iter().all(|p| p.final_test_loss.is_none()));
    assert!(
        r.points[0].growth_per_layer.is_none(),
        "one layer has no slope"
    );
}

#[test]
fn points_run_values_then_arms_then_seeds_and_means_follow() {
    let c = cfg(TINY);
    let r = bn_lab::experiment::sweep::run(&c, &|_| {});
    let order: Vec<(f64, Normaliser, u64)> =
        r.points.iter().map(|p| (p.value, p.arm, p.seed)).collect();
    assert_eq!(order[0], (0.01, Normaliser::Off, 0));
    assert_eq!(order[1], (0.01, Normaliser::Off, 1));
    assert_eq!(order[2], (0.01, Normaliser::BN, 0));
    assert_eq!(order[6], (0.3, Normaliser::Off, 0));
    assert_eq!(r.means.len(), 9);
    let m = &r.means[0];
    let g = (r.points[0].grad_ratio.0 * r.points[1].grad_ratio.0).sqrt();
    assert!((m.grad_ratio.0 - g).abs() <= 1e-12 * g, "geometric mean");
    let l = (r.points[0].final_test_loss.unwrap().0 + r.points[1].final_test_loss.unwrap().0) / 2.0;
    assert_eq!(m.final_test_loss.unwrap().0, l, "arithmetic mean");
    let (_, seen) = common::counting_progress(|p| bn_lab::experiment::sweep::run(&c, p));
    assert_eq!(seen.iter().sum::<u64>(), c.work_units());
}

#[test]
fn the_recorded_config_reruns_to_the_same_numbers() {
    let first = bn_lab::experiment::sweep::run(&cfg(TINY), &|_| {});
    let v = serde_json::to_value(&first).unwrap();
    let back: SweepConfig = bn_lab::experiment::load_config(&v["config"]).unwrap();
    assert_eq!(back, first.config);
    let again = bn_lab::experiment::sweep::run(&back, &|_| {});
    assert_eq!(serde_json::to_value(&again).unwrap(), v);
}

#[test]
fn the_numbers_do_not_depend_on_the_thread_count() {
    let dirs = [common::scratch("sweep-t1"), common::scratch("sweep-t2")];
    for (d, t) in dirs.iter().zip(["1", "2"]) {
        let mut args = TINY.to_vec();
        args.extend(["--threads", t]);
        common::bn_lab_ok(&args, d);
    }
    let read = |d: &Path| std::fs::read(d.join("sweep.json")).unwrap();
    assert_eq!(read(&dirs[0]), read(&dirs[1]));
    let v = common::json(&dirs[0].join("sweep.json"));
    common::assert_schema(&v, "sweep");
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn bad_input_is_refused_in_one_line_naming_the_flag() {
    let out = common::scratch("sweep-bad");
    let base = ["sweep", "--vary", "batch", "--depth", "3", "--width", "8"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = base.to_vec();
        v.extend(extra);
        v
    };
    common::rejects(&with(&["--values", "1,4"]), "--values", &out);
    common::rejects(&with(&["--values", "4,4"]), "--values", &out);
    common::rejects(&with(&["--values", "0,4"]), "--values", &out);
    common::rejects(&with(&["--values", "-2"]), "--values", &out);
    common::rejects(&with(&["--values", "2.5"]), "--values", &out);
    common::rejects(&with(&["--values", ""]), "--values", &out);
    common::rejects(&with(&["--values", "4", "--norm", ""]), "--norm", &out);
    common::rejects(
        &["sweep", "--vary", "depth", "--values", "3,1.5"],
        "--values",
        &out,
    );
    common::rejects(
        &["sweep", "--vary", "depth", "--depth", "3"],
        "--depth",
        &out,
    );
    common::rejects(&["sweep", "--vary", "sideways"], "--vary", &out);
    common::rejects(&["sweep", "--values", "1"], "--vary", &out);
    common::rejects(
        &["sweep", "--vary", "weight-scale", "--init", "he"],
        "--init",
        &out,
    );
    common::rejects(&with(&["--values", "4", "--point", "99"]), "--point", &out);
    // A batch of 1 is fine without BatchNorm.
    let ok = common::scratch("sweep-b1");
    common::bn_lab_ok(
        &with(&[
            "--values",
            "1,2",
            "--norm",
            "none,layer",
            "--steps",
            "3",
            "--seeds",
            "1",
        ]),
        &ok,
    );
    let _ = std::fs::remove_dir_all(ok);
}

#[test]
fn shell_words_survive_quoting() {
    assert_eq!(shell_quote("0.001,2"), "0.001,2");
    assert_eq!(shell_quote("/tmp/a b/it's"), r"'/tmp/a b/it'\''s'");
    assert_eq!(shell_quote(""), "''");
    let lines = plan_lines(&cfg(TINY), Path::new("/x y"));
    assert_eq!(lines.len(), 18);
    assert!(
        lines[17].ends_with("--point 17 --out '/x y/point-17'"),
        "{}",
        lines[17]
    );
}

/// Run one plan line with `bash -c`, `bn-lab` found on the PATH.
fn run_line(line: &str) {
    let bin = Path::new(env!("CARGO_BIN_EXE_bn-lab")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = std::process::Command::new("bash")
        .args(["-c", line])
        .env("PATH", path)
        .output()
        .expect("bash runs");
    assert!(
        o.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn without_tool(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("tool");
    v
}

#[test]
fn a_plan_run_point_by_point_and_collected_equals_the_local_sweep() {
    let root = common::scratch_dir("sweep plan's dir");
    let (local, points, collected) = (root.join("local"), root.join("points"), root.join("all"));
    common::bn_lab_ok(TINY, &local);
    let plan = root.join("plan.txt");
    let mut args = TINY.to_vec();
    let plan_s = plan.to_str().unwrap();
    args.extend(["--plan", plan_s]);
    common::bn_lab_ok(&args, &points);
    let text = std::fs::read_to_string(&plan).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 18);
    assert!(!points.exists(), "--plan writes only the plan");
    for line in &lines {
        run_line(line);
    }
    let one = common::json(&points.join("point-5").join("sweep.json"));
    assert_eq!(one["point"], 5);
    assert_eq!(one["points"].as_array().unwrap().len(), 1);
    assert!(!points.join("point-5").join("sweep.png").exists());
    let points_s = points.to_str().unwrap();
    common::bn_lab_ok(&["sweep", "--collect", points_s], &collected);
    assert!(collected.join("sweep.png").exists());
    let a = without_tool(common::json(&local.join("sweep.json")));
    let b = without_tool(common::json(&collected.join("sweep.json")));
    assert_eq!(a, b);

    // A missing point is named with its value, arm and seed; a file of another sweep by path.
    std::fs::rename(points.join("point-7"), root.join("point-7")).unwrap();
    let out = common::scratch("sweep-collect-missing");
    common::rejects(
        &["sweep", "--collect", points_s],
        "point 7 (weight-scale = 0.3, off, seed 1)",
        &out,
    );
    let other = points.join("point-7");
    let mut args: Vec<String> = TINY.iter().map(|s| s.to_string()).collect();
    args.extend(["--lr".into(), "0.02".into(), "--point".into(), "7".into()]);
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    common::bn_lab_ok(&refs, &other);
    common::rejects(
        &["sweep", "--collect", points_s],
        "point-7/sweep.json",
        &out,
    );
    let _ = std::fs::remove_dir_all(root);
}

// ---------------------------------------------------------------------------------------------
// Hostile plans (issue 27): whatever a value holds, one point is one line that runs only
// bn-lab, from any directory, and --collect neither overwrites its inputs nor trusts their
// configs.

/// One point: one scale, one arm, one seed.
const ONE: &[&str] = &[
    "sweep",
    "--vary",
    "weight-scale",
    "--values",
    "0.5",
    "--norm",
    "none",
    "--seeds",
    "1",
    "--depth",
    "2",
    "--width",
    "4",
    "--batch",
    "4",
    "--d-out",
    "2",
    "--steps",
    "2",
    "--n-train",
    "8",
    "--n-test",
    "4",
];

/// Write the plan of `args` + `--out out` in `cwd`; its lines.
fn plan_of(cwd: &Path, args: &[&str], out: &str) -> Vec<String> {
    let plan = cwd.join("plan.txt");
    let mut all: Vec<&str> = args.to_vec();
    let plan_s = plan.to_str().unwrap();
    all.extend(["--plan", plan_s, "--out", out]);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bn-lab"))
        .args(&all)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !stdout.trim_end().chars().any(|c| c.is_control()),
        "{stdout:?}"
    );
    std::fs::read_to_string(&plan)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// Run `script` with bash in `cwd`, `bn-lab` on the PATH.
fn bash_in(cwd: &Path, script: &str) -> std::process::Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_bn-lab")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(cwd)
        .env("PATH", path)
        .output()
        .expect("bash runs")
}

#[test]
fn a_plan_line_is_one_line_that_runs_only_bn_lab_whatever_out_holds() {
    let root = common::scratch_dir("sweep-hostile-plan");
    let (here, elsewhere) = (root.join("here"), root.join("elsewhere"));
    std::fs::create_dir_all(&here).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    // Every control character, and the shell's own syntax.
    let mut outs: Vec<String> = (1u8..0x20)
        .chain([0x7f])
        .map(|b| format!("o{b}{}touch PWNED{}", char::from(b), char::from(b)))
        .collect();
    outs.extend(
        [
            "$(touch PWNED)",
            "`touch PWNED`",
            "'; touch PWNED; '",
            "a b\\\"c",
            "\u{85}touch PWNED",
        ]
        .map(String::from),
    );
    for (i, out) in outs.iter().enumerate() {
        let lines = plan_of(&here, ONE, out);
        assert_eq!(lines.len(), 1, "{out:?}: {lines:?}");
        let line = &lines[0];
        assert!(
            line.starts_with("bn-lab sweep ") && !line.chars().any(|c| c.is_control()),
            "{out:?}: {line:?}"
        );
        // Each way the README runs a plan, from another directory.
        let plan = here.join("plan.txt");
        let runs = [
            format!("bash -c {}", shell_quote(line)),
            format!("sed -n 1p {} | bash", shell_quote(plan.to_str().unwrap())),
            format!(
                "xargs -d '\\n' -I{{}} bash -c {{}} < {}",
                shell_quote(plan.to_str().unwrap())
            ),
        ];
        let run = &runs[i % runs.len()];
        let o = bash_in(&elsewhere, run);
        assert!(
            o.status.success(),
            "{out:?}: {run}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let point = here.join(out).join("point-0").join("sweep.json");
        assert!(point.is_file(), "{out:?}: no {}", point.display());
        for d in [&here, &elsewhere] {
            assert!(
                !d.join("PWNED").exists(),
                "{out:?}: a plan line ran a command"
            );
        }
        let _ = std::fs::remove_dir_all(here.join(out));
    }
    let _ = std::fs::remove_dir_all(root);
}

/// Four IDX files of `n` 2x2 images (training and test alike) in `dir`.
fn write_idx(dir: &Path, n: u8) {
    std::fs::create_dir_all(dir).unwrap();
    for prefix in ["train", "t10k"] {
        let mut images = vec![0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 2, 0, 0, 0, 2];
        images.extend((0..4 * n).map(|i| i.wrapping_mul(37)));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        let mut labels = vec![0, 0, 8, 1, 0, 0, 0, n];
        labels.extend((0..n).map(|i| i % 10));
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
    }
}

#[test]
fn every_path_in_a_plan_line_is_absolute() {
    let root = common::scratch_dir("sweep-plan-paths");
    let (here, elsewhere) = (root.join("here"), root.join("elsewhere"));
    std::fs::create_dir_all(&elsewhere).unwrap();
    write_idx(&here.join("idx"), 8);
    // ONE without --d-out, --n-train and --n-test, which the image set decides.
    let mut args: Vec<&str> = ONE[..ONE.len() - 8].to_vec();
    assert_eq!(args[args.len() - 2..], ["--batch", "4"]);
    args.extend(["--steps", "2", "--task", "mnist:idx"]);
    let lines = plan_of(&here, &args, "runs");
    let abs = std::fs::canonicalize(&here).unwrap();
    assert!(
        lines[0].contains(&format!("--task mnist:{}/idx ", abs.display()))
            && lines[0].contains(&format!("--out {}/runs/point-0", abs.display())),
        "{}",
        lines[0]
    );
    // The line runs from another directory.
    let o = bash_in(&elsewhere, &lines[0]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(here.join("runs/point-0/sweep.json").is_file());
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn collect_refuses_an_out_among_its_inputs_and_configs_that_do_not_validate() {
    let root = common::scratch_dir("sweep-collect-hostile");
    let points = root.join("points");
    let lines = plan_of(&root, ONE, "points");
    let o = bash_in(&root, &lines[0]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let file = points.join("point-0/sweep.json");
    let before = std::fs::read(&file).unwrap();
    let points_s = points.to_str().unwrap();
    let into = points.join("point-0");
    let o = common::bn_lab(&[
        "sweep",
        "--collect",
        points_s,
        "--out",
        into.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("Error: --out: ") && stderr.contains("input of --collect"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // A point file whose config no command line could give is refused naming the field.
    let out = common::scratch("sweep-collect-invalid-out");
    for (field, value) in [
        ("norms", serde_json::json!([])),
        ("seeds", serde_json::json!(0)),
    ] {
        let mut v: Value = serde_json::from_slice(&before).unwrap();
        v["config"][field] = value;
        std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let o = common::bn_lab(&[
            "sweep",
            "--collect",
            points_s,
            "--out",
            out.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{field}: {stderr}");
        assert!(
            stderr.contains(&format!("config.{field}")) && !stderr.contains("18446744073709551615"),
            "{field}: {stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!out.exists());
    }
    let _ = std::fs::remove_dir_all(root);
}
