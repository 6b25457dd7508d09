//! The `bn-lab` binary end to end: files written, the diary's vanishing-gradient claim, non-finite
//! results, determinism, and bad input.

use bn_lab::experiment::Plan;

use crate::common;

use crate::common::{
    assert_refused, assert_schema, bn_lab as run, bn_lab_ok, json, num, scratch_dir as scratch,
};
use std::path::Path;

use serde_json::Value;

fn arm(report: &Value, bn: bool) -> &Value {
    report["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["norm"] == if bn { "on" } else { "off" })
        .unwrap()
}

#[test]
fn grad_norms_depth_50_vanishes_without_bn_and_not_with_it() {
    let dir = scratch("depth50");
    let out = bn_lab_ok(&["grad-norms", "--depth", "50"], &dir);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("vanishing") && stdout.contains("stable"),
        "{stdout}"
    );

    // A real PNG of the documented size with something drawn on it.
    let img = image::open(dir.join("grad_norms.png"))
        .expect("valid PNG")
        .to_rgb8();
    assert_eq!(img.dimensions(), bn_lab::plot::SLIDE_SIZE);
    let detail = image::open(dir.join("grad_norms_detail.png")).expect("valid PNG");
    assert_eq!((detail.width(), detail.height()), (1800, 1300));
    let coloured = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(coloured > 50_000, "only {coloured} non-white pixels");

    let r = json(&dir.join("grad_norms.json"));
    assert_schema(&r, "grad_norms");
    assert_eq!(r["config"]["seed"], 0);
    assert_eq!(r["config"]["dtype"], "f32");
    assert_eq!(r["tool"]["version"], env!("CARGO_PKG_VERSION"));
    for bn in [false, true] {
        let a = arm(&r, bn);
        let s = &a["seeds"][0];
        for key in ["weight_grad_norm", "activation_grad_norm", "activation_std"] {
            assert_eq!(s[key].as_array().unwrap().len(), 50, "{key}");
        }
    }
    let off = arm(&r, false);
    let ratio_off = num(&off["weight_grad"]["ratio"]);
    assert!(ratio_off < 1e-20, "BN off first/last ratio {ratio_off:e}");
    assert_eq!(off["weight_grad"]["verdict"], "vanishing");
    let on = arm(&r, true);
    let ratio_on = num(&on["weight_grad"]["ratio"]);
    assert!(
        (1e-2..1e2).contains(&ratio_on),
        "BN on first/last ratio {ratio_on:e}"
    );
    assert_eq!(on["weight_grad"]["verdict"], "stable");
    // The ratio is what the per-layer values say.
    let w = off["seeds"][0]["weight_grad_norm"].as_array().unwrap();
    assert!((num(&w[0]) / num(&w[49]) / ratio_off - 1.0).abs() < 1e-9);
}

#[test]
fn same_seed_gives_identical_numbers_and_another_seed_does_not() {
    let (a, b, c) = (scratch("seed_a"), scratch("seed_b"), scratch("seed_c"));
    let args = |d: &Path, seed: &'static str| {
        vec![
            "grad-norms".to_string(),
            "--depth".into(),
            "3,8".into(),
            "--width".into(),
            "32".into(),
            "--batch".into(),
            "16".into(),
            "--seeds".into(),
            "2".into(),
            "--seed".into(),
            seed.into(),
            "--out".into(),
            d.to_str().unwrap().into(),
        ]
    };
    for (d, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        let args = args(d, seed);
        let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success());
    }
    let (ra, rb, rc) = (
        json(&a.join("grad_norms.json")),
        json(&b.join("grad_norms.json")),
        json(&c.join("grad_norms.json")),
    );
    assert_eq!(ra["arms"], rb["arms"]);
    assert_ne!(ra["arms"], rc["arms"]);
    assert_eq!(ra["arms"].as_array().unwrap().len(), 4);
    assert_eq!(ra["arms"][0]["seeds"].as_array().unwrap().len(), 2);
}

#[test]
fn overflow_is_a_result_not_a_crash() {
    let dir = scratch("overflow");
    let out = bn_lab_ok(
        &[
            "grad-norms",
            "--act",
            "linear",
            "--init",
            "normal:3",
            "--depth",
            "100",
            "--dtype",
            "f32",
            "--bn",
            "off",
            "--width",
            "64",
            "--batch",
            "32",
        ],
        &dir,
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("NaN") || stdout.contains("inf"), "{stdout}");
    let r = json(&dir.join("grad_norms.json"));
    let a = arm(&r, false);
    // The forward pass overflows at layer 28, so every gradient is NaN: no evidence of the
    // gradients' trend, and the verdict says so instead of guessing "exploding".
    assert_eq!(a["weight_grad"]["verdict"], "undetermined");
    let reason = a["weight_grad"]["verdict_reason"].as_str().unwrap();
    assert!(
        reason.contains("NaN at layers 1-100") && reason.contains("forward pass overflowed"),
        "{reason}"
    );
    assert!(
        stdout.contains("|dW_l| is undetermined: the forward pass overflowed"),
        "{stdout}"
    );
    let std = a["seeds"][0]["activation_std"].as_array().unwrap();
    assert!(
        std.iter().any(|v| v == "inf" || v == "NaN"),
        "activation std never overflowed"
    );
    let sp = &a["weight_grad"]["special"];
    assert!(!sp["inf"].as_array().unwrap().is_empty() || !sp["nan"].as_array().unwrap().is_empty());
    assert!(image::open(dir.join("grad_norms.png")).is_ok());
}

#[test]
fn underflow_to_exactly_zero_is_reported_per_layer() {
    let dir = scratch("underflow");
    let out = run(&[
        "grad-norms",
        "--depth",
        "200",
        "--dtype",
        "f32",
        "--bn",
        "off",
        "--width",
        "64",
        "--batch",
        "32",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("0 (underflow)"), "{stdout}");
    let r = json(&dir.join("grad_norms.json"));
    let a = arm(&r, false);
    let zeros = a["weight_grad"]["special"]["zero"].as_array().unwrap();
    assert!(zeros.len() > 50 && zeros[0] == 1, "{zeros:?}");
    assert_eq!(a["seeds"][0]["weight_grad_norm"][0], 0.0);
    assert_eq!(a["weight_grad"]["verdict"], "vanishing");
}

#[test]
fn save_net_writes_parameters_and_gradients_that_reproduce_the_loss() {
    let dir = scratch("save_net");
    let file = dir.join("net.json");
    let out = run(&[
        "grad-norms",
        "--depth",
        "3",
        "--width",
        "8",
        "--batch",
        "5",
        "--d-out",
        "2",
        "--bn",
        "off",
        "--dtype",
        "f64",
        "--out",
        dir.to_str().unwrap(),
        "--save-net",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = json(&file);
    assert_eq!(n["format"], "bn-lab-net-v1");
    let names: Vec<&str> = n["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "layers.1.weight",
            "layers.1.bias",
            "layers.2.weight",
            "layers.2.bias",
            "layers.3.weight",
            "layers.3.bias",
            "out.weight",
            "out.bias"
        ]
    );
    // Recompute the forward pass from the saved numbers alone (sigmoid MLP, z = h W + b).
    let mat = |v: &Value| -> ndarray::Array2<f64> {
        let shape: Vec<usize> = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap() as usize)
            .collect();
        let data = v
            .get("data")
            .or(v.get("value"))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(num)
            .collect();
        let cols = if shape.len() == 2 { shape[1] } else { shape[0] };
        let rows = if shape.len() == 2 { shape[0] } else { 1 };
        ndarray::Array2::from_shape_vec((rows, cols), data).unwrap()
    };
    let p = n["params"].as_array().unwrap();
    let mut h = mat(&n["x"]);
    for l in 0..3 {
        let z = h.dot(&mat(&p[2 * l])) + &mat(&p[2 * l + 1]);
        h = z.mapv(|v| 1.0 / (1.0 + (-v).exp()));
    }
    let o = h.dot(&mat(&p[6])) + &mat(&p[7]);
    let y = mat(&n["y"]);
    let loss = 0.5 * (&o - &y).mapv(|r| r * r).sum() / 5.0;
    assert!(
        (loss - num(&n["loss"])).abs() < 1e-12,
        "{loss} vs {}",
        n["loss"]
    );
    // dL/db_out = sum over the batch of (o - y) / batch.
    let db_out = (&o - &y).sum_axis(ndarray::Axis(0)) / 5.0;
    let saved: Vec<f64> = p[7]["grad"].as_array().unwrap().iter().map(num).collect();
    for (a, b) in db_out.iter().zip(&saved) {
        assert!((a - b).abs() < 1e-12);
    }
}

#[test]
fn bad_input_gets_a_one_line_error_naming_the_flag_and_writes_nothing() {
    let dir = scratch("bad_input");
    let out_dir = dir.join("out");
    let g = "grad-norms";
    assert_refused(&[g, "--depth", "0"], "--depth", &dir);
    assert_refused(&[g, "--depth", "3,0"], "--depth", &dir);
    assert_refused(&[g, "--width", "0"], "--width", &dir);
    assert_refused(&[g, "--batch", "0", "--bn", "off"], "--batch", &dir);
    assert_refused(&[g, "--batch", "1"], "--batch", &dir);
    assert_refused(&[g, "--act", "swish"], "--act", &dir);
    assert_refused(&[g, "--init", "glorot"], "--init", &dir);
    assert_refused(&[g, "--init", "normal:-1"], "--init", &dir);
    assert_refused(&[g, "--init", "normal:"], "--init", &dir);
    assert_refused(&[g, "--init", "normal"], "--init", &dir);
    assert_refused(&[g, "--seeds", "0"], "--seeds", &dir);
    assert_refused(&[g, "--dtype", "f16"], "--dtype", &dir);
    assert_refused(
        &[g, "--depth", "1000", "--width", "100000"],
        "--width",
        &dir,
    );
    assert_refused(&[g, "--eps", "-1"], "--eps", &dir);
    assert_refused(&[g, "--depth", "-3"], "--depth", &dir);
    assert_refused(&[g, "--momentum", "2"], "--momentum", &dir);
    let _ = out_dir;
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[test]
fn an_unwritable_output_path_is_refused_before_any_work() {
    let dir = scratch("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("sub");
    let out = run(&[
        "grad-norms",
        "--depth",
        "3",
        "--out",
        under_file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--out"), "{stderr}");
    let out = run(&[
        "grad-norms",
        "--depth",
        "3",
        "--out",
        dir.to_str().unwrap(),
        "--save-net",
        under_file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--save-net"), "{stderr}");
    // Nothing but the file we made.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("a-file")]);
}

#[test]
fn gradcheck_command_passes_and_reports_every_tensor() {
    let out = run(&[
        "gradcheck",
        "--act",
        "tanh",
        "--placement",
        "post",
        "--residual",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for name in [
        "layers.1.weight",
        "layers.3.gamma",
        "out.bias",
        "input",
        "PASS",
    ] {
        assert!(stdout.contains(name), "{name} missing: {stdout}");
    }
}

/// `--save-net /dev/stdout` or a named pipe is written into, never replaced by a rename.
#[cfg(unix)]
#[test]
fn save_net_into_a_named_pipe_writes_through_it() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("save_net_fifo");
    let fifo = dir.join("net.pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("mkfifo not available; skipped");
        return;
    }
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out_dir = dir.join("out");
    let out = run(&[
        "grad-norms",
        "--depth",
        "2",
        "--width",
        "4",
        "--batch",
        "3",
        "--bn",
        "off",
        "--out",
        out_dir.to_str().unwrap(),
        "--save-net",
        fifo.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = reader.join().unwrap();
    let saved: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(saved["format"], "bn-lab-net-v1");
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the pipe was replaced"
    );
}

/// A check estimated above the limit is refused before any work, naming the flags and the
/// estimate; `--tol` must be a positive number.
#[test]
fn gradcheck_refuses_oversized_checks_and_bad_tolerances_in_one_line() {
    for (args, flag) in [
        (
            &["gradcheck", "--width", "300"][..],
            "--width/--depth/--batch",
        ),
        (
            &["gradcheck", "--depth", "2000"][..],
            "--width/--depth/--batch",
        ),
        (&["gradcheck", "--tol", "nan"][..], "--tol"),
        (&["gradcheck", "--tol", "-1"][..], "--tol"),
        (&["gradcheck", "--tol", "0"][..], "--tol"),
        (&["gradcheck", "--tol", "inf"][..], "--tol"),
    ] {
        let start = std::time::Instant::now();
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("Error: ") && err.contains(flag),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(
            start.elapsed().as_secs_f64() < 20.0,
            "{args:?} was not refused at once"
        );
    }
    let out = run(&["gradcheck", "--width", "300"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2.5e12") && err.contains("3e11"),
        "the estimate: {err}"
    );
}

/// grad-norms counts one unit per layer of each network's forward and backward pass, so a
/// deep configuration weighs in proportion; the run reports exactly that total.
#[test]
fn grad_norms_progress_adds_up_to_its_work_units() {
    use bn_lab::experiment::grad_norms::GradNorms;
    let cfg = match common::parse(&[
        "grad-norms",
        "--depth",
        "3,40",
        "--seeds",
        "2",
        "--width",
        "8",
        "--batch",
        "8",
    ]) {
        bn_lab::cli::Command::GradNorms(a) => {
            bn_lab::experiment::ExperimentArgs::config(&a).unwrap()
        }
        _ => unreachable!("a grad-norms command line"),
    };
    assert_eq!(cfg.work_units(), 2 * 2 * (4 + 41));
    common::assert_progress_adds_up::<GradNorms>(&cfg, 41, "grad-norms");
}

/// Overflow to inf is evidence of exploding gradients even where the layers nearer the input
/// are NaN (inf - inf): at depth 16 the backward pass overflows from layer 16 down to 6.
#[test]
fn a_gradient_that_overflows_to_inf_is_exploding_even_with_nan_layers_beside_it() {
    let dir = scratch("overflow-inf");
    let out = bn_lab_ok(
        &[
            "grad-norms",
            "--act",
            "linear",
            "--init",
            "normal:3",
            "--depth",
            "16",
            "--bn",
            "off",
            "--width",
            "64",
            "--batch",
            "32",
        ],
        &dir,
    );
    let r = json(&dir.join("grad_norms.json"));
    let w = &arm(&r, false)["weight_grad"];
    assert_eq!(w["verdict"], "exploding", "{w}");
    assert!(w["verdict_reason"].is_null());
    assert!(!w["special"]["inf"].as_array().unwrap().is_empty(), "{w}");
    assert!(!w["special"]["nan"].as_array().unwrap().is_empty(), "{w}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("inf (overflow)") && stdout.contains("exploding"),
        "{stdout}"
    );
}

/// The registry is what the CLI offers: every experiment in it is a subcommand with the output
/// flags, and its config on the defaults draws its headline `<STEM>.png` first.
#[test]
fn every_registered_experiment_is_a_subcommand_with_a_headline() {
    use bn_lab::commands::VisitConfig;
    use clap::CommandFactory;
    struct Drawn;
    impl VisitConfig for Drawn {
        type Output = (&'static str, Vec<&'static str>);
        fn visit<E: bn_lab::plot::Figures>(
            &mut self,
            cfg: E::Config,
            _: bn_lab::flags::Renames,
        ) -> anyhow::Result<Self::Output> {
            Ok((
                E::STEM,
                E::figures_for(&cfg).iter().map(|f| f.file).collect(),
            ))
        }
    }
    let cli = bn_lab::cli::Cli::command();
    assert!(!bn_lab::cli::EXPERIMENTS.is_empty());
    for &name in bn_lab::cli::EXPERIMENTS {
        let sub = cli
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("`{name}` is registered but not a subcommand"));
        for flag in ["out", "json"] {
            assert!(
                sub.get_arguments().any(|a| a.get_id() == flag),
                "`{name}` has no --{flag}"
            );
        }
        let mut args = vec![name];
        if name == "sweep" {
            args.extend(["--vary", "depth"]);
        }
        let command = common::parse(&args);
        assert_eq!(command.name(), name);
        let (stem, figures) = command
            .visit_config(&mut Drawn)
            .unwrap_or_else(|| panic!("`{name}` runs no experiment"))
            .unwrap();
        assert_eq!(
            figures.first().copied(),
            Some(format!("{stem}.png").as_str()),
            "`{name}` draws {figures:?}"
        );
    }
    // The tools are not experiments.
    assert!(
        common::parse(&["gradcheck"])
            .visit_config(&mut Drawn)
            .is_none()
    );
}
