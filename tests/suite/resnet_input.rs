//! Bad input for the standard blocks' flags (`--block`, `--skip-init`, `--residual-scale` with
//! them, `--placement` with them) and for commands that do not take them: one line naming the
//! flag, a non-zero exit, nothing written.

use crate::common::{assert_refused, bn_lab_ok, json, scratch_dir};

const SMALL: [&str; 6] = ["--depth", "2", "--width", "8", "--batch", "8"];

fn with_small<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["grad-norms"];
    v.extend_from_slice(&SMALL);
    v.extend_from_slice(args);
    v
}

#[test]
fn the_block_flags_refuse_what_does_not_go_together() {
    let dir = scratch_dir("resnet-input-flags");
    for (args, says) in [
        (
            &["--skip-init"][..],
            "--skip-init: puts a learnable gain on each residual branch of a standard block, so it needs --block basic or preact",
        ),
        (&["--skip-init", "--block", "residual"][..], "--skip-init"),
        (&["--skip-init", "--block", "plain"][..], "--skip-init"),
        (&["--block", "basic", "--residual"][..], "--block"),
        (&["--block", "deep"][..], "--block"),
        (
            &[
                "--block",
                "preact",
                "--norm",
                "batch",
                "--placement",
                "post",
            ][..],
            "--placement: the standard blocks fix where the normaliser goes",
        ),
        (
            &["--block", "basic", "--histograms"][..],
            "--block: basic is not supported here",
        ),
    ] {
        assert_refused(&with_small(args), says, &dir);
    }
    assert_refused(
        &["grad-norms", "--block", "basic", "--depth", "0"],
        "--depth",
        &dir,
    );
    for command in ["ics", "input-shift", "landscape", "nonlinearity"] {
        assert_refused(
            &[command, "--block", "preact"],
            "--block: preact is not supported here",
            &dir,
        );
    }
}

#[test]
fn the_branch_scale_of_a_standard_block_is_a_positive_finite_number() {
    let dir = scratch_dir("resnet-input-scale");
    for value in ["0", "-0.5", "nan", "inf", "-inf", "1001", "1e308"] {
        assert_refused(
            &with_small(&["--block", "preact", "--residual-scale", value]),
            "--residual-scale must be a finite number > 0 and at most 1000",
            &dir,
        );
    }
}

#[test]
fn a_run_records_the_block_and_skip_init_and_a_plain_run_does_not() {
    let dir = scratch_dir("resnet-input-json");
    bn_lab_ok(
        &with_small(&["--block", "preact", "--skip-init", "--act", "relu"]),
        &dir.join("preact"),
    );
    let cfg = &json(&dir.join("preact/grad_norms.json"))["config"];
    assert_eq!(cfg["block"], "preact");
    assert_eq!(cfg["skip_init"], true);
    bn_lab_ok(&with_small(&["--block", "plain"]), &dir.join("plain"));
    let cfg = &json(&dir.join("plain/grad_norms.json"))["config"];
    assert!(
        cfg.get("block").is_none() && cfg.get("skip_init").is_none(),
        "{cfg}"
    );
    assert_eq!(cfg["residual"], false);
    bn_lab_ok(&with_small(&["--block", "residual"]), &dir.join("residual"));
    let cfg = &json(&dir.join("residual/grad_norms.json"))["config"];
    assert_eq!(cfg["residual"], true, "--block residual is --residual");
}
