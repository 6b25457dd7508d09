//! `grad-norms`' figures and verdicts: the headline slide and the detail figure keep every
//! legend off the data on the default run and on the edge cases a class runs into (underflow
//! at depth 200 in f32, overflow with a linear net at weight scale 3, a ReLU residual net whose
//! gradients reach 1e23), and the verdicts say what the plot shows.

use crate::common;

use bn_lab::cli::Command;
use bn_lab::experiment::grad_norms::{GradNorms, GradNormsConfig, GradNormsReport, Trend};

fn cfg(args: &[&str]) -> GradNormsConfig {
    let all: Vec<&str> = std::iter::once("grad-norms")
        .chain(args.iter().copied())
        .collect();
    match common::parse(&all) {
        Command::GradNorms(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        _ => unreachable!("grad-norms parses to grad-norms"),
    }
}

fn figures(args: &[&str], what: &str) -> GradNormsReport {
    common::assert_figures_clear::<GradNorms>(&cfg(args), what).0
}

#[test]
fn the_default_run_draws_clear_figures() {
    let report = figures(&[], "default");
    assert_eq!(report.arms[0].weight_grad.verdict, Trend::Vanishing);
}

#[test]
fn underflow_at_depth_200_in_f32_is_marked_off_the_legend() {
    let report = figures(&["--depth", "200", "--dtype", "f32"], "depth-200-f32");
    assert!(
        !report.arms[0].weight_grad.special.zero.is_empty(),
        "layers underflow to 0"
    );
}

#[test]
fn overflow_of_a_linear_net_is_marked_off_the_legend() {
    let report = figures(
        &["--act", "linear", "--init", "normal:3", "--depth", "50"],
        "linear-normal3",
    );
    // The forward pass overflows, so the gradients are NaN: drawn as marks, judged as no evidence.
    let off = &report.arms[0].weight_grad;
    assert_eq!(off.verdict, Trend::Undetermined);
    assert!(
        off.verdict_reason
            .as_ref()
            .unwrap()
            .contains("forward pass overflowed")
    );
}

#[test]
fn a_relu_residual_net_without_bn_is_exploding_on_the_absolute_scale() {
    let report = figures(
        &[
            "--act",
            "relu",
            "--init",
            "he",
            "--residual",
            "--depth",
            "50",
        ],
        "relu-residual",
    );
    let off = &report.arms[0].weight_grad;
    assert!(
        off.ratio.0 < 1.0 && off.first.0 > 1e20,
        "ratio {}, first {}",
        off.ratio.0,
        off.first.0
    );
    assert_eq!(off.verdict, Trend::Exploding, "{}", off.verdict_basis);
    assert!(
        off.verdict_basis.contains("absolute scale"),
        "{}",
        off.verdict_basis
    );
}

#[test]
fn tanh_with_bn_grows_steadily() {
    let report = common::assert_figures_clear::<GradNorms>(
        &cfg(&["--act", "tanh", "--depth", "50"]),
        "tanh",
    )
    .0;
    let on = &report.arms[1].weight_grad;
    assert!(
        on.ratio.0 > 10.0 && on.ratio.0 < 100.0,
        "ratio {}",
        on.ratio.0
    );
    assert_eq!(on.verdict, Trend::Growing, "{}", on.verdict_basis);
}

#[test]
fn several_depths_share_one_axis_with_notes_per_arm() {
    let (report, layouts) = common::assert_figures_clear::<GradNorms>(
        &cfg(&["--depth", "3,50", "--seeds", "3"]),
        "depths",
    );
    let headline = &layouts[0].1;
    // One note per arm beside its line in the weight-gradient panel.
    assert_eq!(headline.panels[0].labels.len(), report.arms.len());
    // Both depths span the same plot width: l/L runs to 1 for each.
    let plot = headline.panels[0].plot;
    let rightmost = headline.panels[0].points.iter().map(|p| p.0).max().unwrap();
    assert!(rightmost >= plot.x1 - 2, "{rightmost} vs {plot:?}");
}

/// `--norm none,batch,layer` draws the three arms in one picture; LayerNorm keeps the ReLU net
/// flat where BatchNorm explodes, and its measured rate sits beside its mean-field rate.
#[test]
fn layer_norm_stays_flat_where_batch_norm_explodes() {
    use bn_lab::config::Normaliser;
    let report = figures(
        &[
            "--norm",
            "none,batch,layer",
            "--act",
            "relu",
            "--init",
            "he",
        ],
        "relu-three-norms",
    );
    let norms: Vec<Normaliser> = report.arms.iter().map(|a| a.norm).collect();
    assert_eq!(norms, [Normaliser::Off, Normaliser::BN, Normaliser::LN]);
    let (bn, ln) = (&report.arms[1], &report.arms[2]);
    assert_eq!(ln.label, "LN");
    assert_eq!(bn.weight_grad.verdict, Trend::Exploding);
    assert_eq!(ln.activation_grad.verdict, Trend::Stable);
    let (measured, predicted) = (
        ln.measured_rate.unwrap().0,
        ln.theory.as_ref().unwrap().rate.0,
    );
    assert!(
        (measured / predicted - 1.0).abs() < 0.03,
        "{measured} vs {predicted}"
    );
    assert_eq!(
        ln.net.norm.map(|b| b.kind),
        Some(bn_lab::config::NormKind::Layer)
    );
    // `--bn` and `--norm` do not go together; `--norm` with a repeat names the flag.
    let dir = common::scratch("norm-flags");
    common::rejects(
        &["grad-norms", "--bn", "on", "--norm", "layer"],
        "--norm",
        &dir,
    );
    common::rejects(&["grad-norms", "--norm", "layer,layer"], "--norm", &dir);
    let o = common::bn_lab(&["gradcheck", "--norm", "none,layer"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.trim_end().lines().count() == 1 && err.contains("--norm"),
        "{err}"
    );
}

/// `--skips off,on` measures the plain and the residual net from the same seeds in one run:
/// both are labelled apart, an experiment file can pick each by `residual`, and with BN on a
/// deep ReLU net only the plain one explodes (He et al. 2016; Balduzzi et al. 2017).
#[test]
fn skips_off_and_on_run_side_by_side() {
    let (report, layouts) = common::assert_figures_clear::<GradNorms>(
        &cfg(&[
            "--depth", "30", "--act", "relu", "--init", "he", "--bn", "on", "--skips", "off,on",
            "--width", "64", "--batch", "64",
        ]),
        "skips",
    );
    let labels: Vec<&str> = report.arms.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["BN on, no skips", "BN on, skips"]);
    let (plain, skips) = (&report.arms[0], &report.arms[1]);
    assert!(!plain.residual && !plain.net.residual);
    assert!(skips.residual && skips.net.residual);
    assert_eq!(plain.weight_grad.verdict, Trend::Exploding);
    assert_eq!(skips.weight_grad.verdict, Trend::Stable);
    // No mean-field theory for the residual stream: the theory figure says so and still draws.
    assert!(skips.theory.is_none() && plain.theory.is_some());
    let files: Vec<&str> = layouts.iter().map(|(f, _)| f.as_str()).collect();
    assert!(files.contains(&"grad_norms_theory.png"), "{files:?}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["config"]["skips"], serde_json::json!(["off", "on"]));
    assert_eq!(json["arms"][1]["residual"], serde_json::json!(true));
}
