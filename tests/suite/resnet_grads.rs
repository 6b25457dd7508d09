//! `grad-norms` with the standard residual blocks (issue 31): the residual stream's variance per
//! block beside its prediction (De & Smith 2020: doubling unnormalised, + about 1 per block
//! normalised, constant with SkipInit), SkipInit's exactly-zero branch gradients judged
//! truthfully, the `--skips` arms of standard blocks, and the figures kept clear.

use crate::common;

use bn_lab::cli::Command;
use bn_lab::config::{Activation, Init, NormConfig};
use bn_lab::experiment::Experiment;
use bn_lab::experiment::grad_norms::{GradNorms, GradNormsConfig, Skips, Trend};
use bn_lab::spec::{NetConfig, StdBlock};
use bn_lab::theory::preact_stream;

fn cfg(args: &[&str]) -> GradNormsConfig {
    let all: Vec<&str> = std::iter::once("grad-norms")
        .chain(args.iter().copied())
        .collect();
    match common::parse(&all) {
        Command::GradNorms(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        _ => unreachable!("grad-norms parses to grad-norms"),
    }
}

const SMALL: &[&str] = &[
    "--width", "64", "--batch", "64", "--act", "relu", "--init", "he",
];

fn small(args: &[&str]) -> GradNormsConfig {
    let all: Vec<&str> = SMALL.iter().chain(args).copied().collect();
    cfg(&all)
}

fn preact(norm: Option<NormConfig>, skip_init: bool) -> NetConfig {
    NetConfig {
        d_in: 8,
        width: 64,
        d_out: 2,
        depth: 10,
        act: Activation::Relu,
        init: Init::He,
        norm,
        residual: false,
        residual_scale: 1.0,
        block: Some(StdBlock::Preact),
        skip_init,
    }
}

#[test]
fn the_stream_prediction_doubles_adds_one_or_stays() {
    let q = preact_stream(&preact(None, false), 2.0).unwrap();
    for (l, v) in q.iter().enumerate() {
        let want = 2.0 * 2f64.powi(l as i32);
        assert!((v / want - 1.0).abs() < 1e-9, "block {l}: {v} vs {want}");
    }
    let q = preact_stream(&preact(Some(NormConfig::default()), false), 2.0).unwrap();
    for (l, v) in q.iter().enumerate() {
        assert!((v - (2.0 + l as f64)).abs() < 1e-9, "block {l}: {v}");
    }
    let q = preact_stream(&preact(None, true), 2.0).unwrap();
    assert!(q.iter().all(|&v| v == 2.0), "{q:?}");
    // A branch scale beta adds beta^2 per normalised block.
    let mut half = preact(Some(NormConfig::default()), false);
    half.residual_scale = 0.5;
    let q = preact_stream(&half, 1.0).unwrap();
    assert!((q[10] - 3.5).abs() < 1e-9, "{}", q[10]);
    let mut basic = preact(None, false);
    basic.block = Some(StdBlock::Basic);
    assert!(
        preact_stream(&basic, 2.0)
            .unwrap_err()
            .contains("measured only")
    );
}

#[test]
fn a_preact_run_records_the_stream_beside_its_prediction() {
    let c = small(&["--depth", "12", "--block", "preact", "--norm", "none,batch"]);
    let report = GradNorms::run(&c, &|_| {});
    for arm in &report.arms {
        let s = &arm.seeds[0];
        assert_eq!(s.weight_grad_norm.len(), 1 + 2 * 12, "per matrix");
        assert_eq!(s.activation_grad_norm.len(), 12, "per block");
        assert_eq!(s.stream_std.as_ref().unwrap().len(), 13, "h_0..h_12");
        assert_eq!(s.block_weight_grad_norm.as_ref().unwrap().len(), 12);
        assert!(s.skip_gain_grad.is_none());
        // No mean-field rate is claimed for standard blocks.
        assert!(arm.theory.is_none());
        assert!(
            arm.theory_note
                .as_ref()
                .unwrap()
                .contains("standard preact")
        );
        let st = arm.stream.as_ref().unwrap();
        let off = st.off_by.unwrap().0;
        assert!(off.abs() < 0.35, "{}: off by {off}", arm.label);
    }
    let (off, on) = (&report.arms[0], &report.arms[1]);
    let (r_off, r_on) = (
        off.stream.as_ref().unwrap().var_ratio.0,
        on.stream.as_ref().unwrap().var_ratio.0,
    );
    // 2^12 = 4096 against (2 + 12) / 2 = 7.
    assert!(r_off > 1000.0 && r_on < 10.0, "{r_off} {r_on}");
    let table = GradNorms::summary(&report);
    assert!(
        table.contains("per MATRIX") && table.contains("per BLOCK"),
        "{table}"
    );
    assert!(table.contains("Var(h_L) / Var(h_0)"), "{table}");
    assert!(!table.contains("off by +"), "no rate claimed: {table}");
}

#[test]
fn skip_init_branches_get_exactly_zero_and_are_not_called_exploding() {
    let c = small(&[
        "--depth",
        "6",
        "--block",
        "preact",
        "--skip-init",
        "--norm",
        "none,batch",
    ]);
    let report = GradNorms::run(&c, &|_| {});
    for arm in &report.arms {
        let w = &arm.weight_grad;
        assert_eq!(w.verdict, Trend::Undetermined, "{}", w.verdict_basis);
        assert!(w.verdict_reason.as_ref().unwrap().contains("alpha is 0"));
        let s = &arm.seeds[0];
        assert!(s.weight_grad_norm[1..].iter().all(|v| v.0 == 0.0));
        let dalpha = s.skip_gain_grad.as_ref().unwrap();
        assert_eq!(dalpha.len(), 6);
        assert!(dalpha.iter().all(|v| v.0 > 0.0), "{dalpha:?}");
        let st = arm.stream.as_ref().unwrap();
        assert_eq!(st.var_ratio.0, 1.0, "the stream is the stem's output");
        assert_eq!(arm.activation_grad.verdict, Trend::Stable);
    }
    let table = GradNorms::summary(&report);
    assert!(!table.contains("0 (underflow)"), "{table}");
    assert!(table.contains("|dL/dalpha_l|"), "{table}");
}

#[test]
fn skips_compare_plain_residual_and_standard_blocks_in_one_run() {
    let c = small(&[
        "--depth",
        "4",
        "--norm",
        "batch",
        "--skips",
        "plain,residual,basic,preact,preact-skipinit",
    ]);
    assert_eq!(c.skips[..2], [Skips::Off, Skips::On]);
    let (report, layouts) = common::assert_figures_clear::<GradNorms>(&c, "skips with blocks");
    let labels: Vec<&str> = report.arms.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "BN on, no skips",
            "BN on, skips",
            "BN on, basic",
            "BN on, preact",
            "BN on, preact+SkipInit",
        ]
    );
    assert!(layouts.iter().any(|(f, _)| f == "grad_norms_stream.png"));
    // Basic blocks: measured only, said so. (Ten arms, BN off as well, overflow the theory
    // slide's legend: one normaliser keeps this test's figures checkable.)
    let basic = &report.arms[2].stream.as_ref().unwrap();
    assert!(basic.predicted_std.is_none());
    assert!(basic.note.as_ref().unwrap().contains("measured only"));
    // --skips replaces --block.
    let mut both = c.clone();
    both.net.block = Some(StdBlock::Preact);
    assert!(bn_lab::experiment::Plan::validate(&both).is_err());
}

#[test]
fn runs_without_blocks_keep_their_json() {
    let c = small(&["--depth", "3"]);
    let report = GradNorms::run(&c, &|_| {});
    let json = serde_json::to_string(&report).unwrap();
    for key in [
        "stream",
        "block_weight_grad_norm",
        "skip_gain_grad",
        "\"block\"",
        "skip_init",
    ] {
        assert!(!json.contains(key), "{key} in a plain run's JSON");
    }
    let files = <GradNorms as bn_lab::plot::Figures>::figures_for(&c);
    assert!(!files.iter().any(|f| f.file == "grad_norms_stream.png"));
}
