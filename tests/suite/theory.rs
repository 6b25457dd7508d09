//! Mean-field theory beside measurement: `bn-lab theory` end to end, the predictions
//! `grad-norms` records, and measured runs at width 1024 within 2% of the prediction.

use crate::common;
use bn_lab::experiment::Plan;

use crate::common::{assert_refused, assert_schema, bn_lab_ok, json, num, scratch_dir};
use bn_lab::config::{Activation, Init, Normaliser, Placement};
use bn_lab::experiment::grad_norms::{self, GradNormsConfig};
use bn_lab::spec::NetSpec;
use bn_lab::theory;

fn spec(width: usize, batch: usize, init: Init) -> NetSpec {
    NetSpec {
        width,
        batch,
        d_in: width,
        d_out: 10,
        init,
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
        eps: 1e-5,
        momentum: 0.1,
        seed: 0,
        dtype: bn_lab::config::Dtype::F32,
    }
}

fn measured_vs_predicted(
    act: Activation,
    init: Init,
    norm: Normaliser,
    width: usize,
) -> (f64, f64) {
    let cfg = GradNormsConfig {
        depths: vec![50],
        act,
        norms: vec![norm],
        net: spec(width, 256, init),
        seeds: 1,
        skips: Vec::new(),
        vanishing_below: grad_norms::VANISHING_BELOW,
        exploding_above: grad_norms::EXPLODING_ABOVE,
        steady_factor: grad_norms::STEADY_FACTOR,
        exploding_scale: grad_norms::EXPLODING_SCALE,
        loss: bn_lab::config::Loss::Mse,
        histograms: false,
        save_net: false,
    };
    cfg.validate().unwrap();
    let report = grad_norms::run(&cfg, &|_| {});
    let arm = &report.arms[0];
    let predicted = arm.theory.as_ref().expect("a theory applies").rate.0;
    (arm.measured_rate.expect("finite curve").0, predicted)
}

#[test]
fn a_wide_network_measures_within_two_percent_of_the_theory() {
    let bn = Normaliser::Batch {
        affine: true,
        placement: Placement::Pre,
    };
    for (act, init, norm) in [
        (Activation::Relu, Init::He, bn),
        (Activation::Tanh, Init::Xavier, Normaliser::Off),
    ] {
        let (measured, predicted) = measured_vs_predicted(act, init, norm, 1024);
        let off = measured / predicted - 1.0;
        assert!(
            off.abs() < 0.02,
            "{act} {norm:?}: measured {measured} vs predicted {predicted} ({:+.2}%)",
            100.0 * off
        );
    }
    // The predicted BN rate does not depend on the initialisation's scale.
    let (_, he) = measured_vs_predicted(Activation::Relu, Init::He, bn, 16);
    let (_, small) = measured_vs_predicted(Activation::Relu, Init::Normal(0.01), bn, 16);
    assert_eq!(he, small);
    assert!((he - theory::relu_bn_rate(256)).abs() < 1e-12, "{he}");
}

/// LayerNorm before the activation: `E[phi'^2] / E[phi^2]` per layer (`theory::ln_rate`). At width
/// 1024 the measured rate is within 2% for sigmoid (0.153, where BN's is 1.04), tanh and ReLU,
/// and the prediction does not depend on the weight scale.
#[test]
fn layer_norm_measures_within_two_percent_of_its_mean_field_rate() {
    for (act, init) in [
        (Activation::Sigmoid, Init::Xavier),
        (Activation::Tanh, Init::Xavier),
        (Activation::Relu, Init::He),
    ] {
        let (measured, predicted) = measured_vs_predicted(act, init, Normaliser::LN, 1024);
        let off = measured / predicted - 1.0;
        assert!(
            off.abs() < 0.02,
            "{act} LN: measured {measured} vs predicted {predicted} ({:+.2}%)",
            100.0 * off
        );
        assert_eq!(predicted, theory::ln_rate(act));
    }
    assert!((theory::ln_rate(Activation::Sigmoid) - 0.1528).abs() < 1e-3);
    let (_, he) = measured_vs_predicted(Activation::Relu, Init::He, Normaliser::LN, 16);
    let (_, small) =
        measured_vs_predicted(Activation::Relu, Init::Normal(0.01), Normaliser::LN, 16);
    assert_eq!(he, small);
}

#[test]
fn grad_norms_records_each_arms_prediction_or_why_there_is_none() {
    let dir = scratch_dir("theory-grad-norms");
    let base = [
        "grad-norms",
        "--depth",
        "6",
        "--width",
        "16",
        "--batch",
        "8",
    ];
    bn_lab_ok(&base, &dir);
    let v = json(&dir.join("grad_norms.json"));
    let (off, on) = (&v["arms"][0], &v["arms"][1]);
    assert_eq!(off["theory"]["profile"].as_array().unwrap().len(), 6);
    assert_eq!(off["theory"]["q"].as_array().unwrap().len(), 6);
    assert_eq!(
        num(&off["theory"]["profile"][5]),
        1.0,
        "normalised at the last layer"
    );
    assert!(on["theory"]["q"].is_null());
    assert_eq!(on["theory"]["batch"], 8);
    let lambda = num(&on["theory"]["lambda"]);
    assert!((lambda - theory::bn_rate(Activation::Sigmoid, 8).unwrap()).abs() < 1e-12);
    // The measured rate is the signal's growth per layer, squared.
    let growth = num(&on["activation_grad"]["growth_per_layer"]);
    assert!((num(&on["measured_rate"]) - growth * growth).abs() < 1e-12 * growth * growth);
    assert!(on["theory_note"].is_null());

    for (extra, note) in [
        (&["--residual"][..], "skip connections"),
        (
            &["--placement", "post", "--bn", "on"][..],
            "BN after the activation",
        ),
        (&["--bn", "on"][..], "at least 4"),
    ] {
        let out = dir.join(extra.join("_"));
        // The last case runs on batches of 3.
        let mut args = if note == "at least 4" {
            common::with_flag(&base, "--batch", "3")
        } else {
            base.to_vec()
        };
        args.extend(extra);
        let o = bn_lab_ok(&args, &out);
        let v = json(&out.join("grad_norms.json"));
        let arm = v["arms"].as_array().unwrap().last().unwrap();
        assert!(arm["theory"].is_null(), "{extra:?}");
        assert!(
            arm["theory_note"].as_str().unwrap().contains(note),
            "{extra:?}: {}",
            arm["theory_note"]
        );
        let table = String::from_utf8_lossy(&o.stdout);
        assert!(table.contains("none: "), "{table}");
    }
}

#[test]
fn the_theory_command_prints_and_records_the_table() {
    let dir = scratch_dir("theory-command");
    let o = bn_lab_ok(
        &[
            "theory",
            "--acts",
            "relu,tanh",
            "--batch",
            "8,64",
            "--depth",
            "5",
        ],
        &dir,
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("B=64"), "{stdout}");
    assert!(stdout.contains("1.493"), "ReLU at B=64: {stdout}");
    assert!(dir.join("theory.png").exists());
    let v = json(&dir.join("theory.json"));
    assert_schema(&v, "theory");
    let relu = &v["bn"][0];
    assert_eq!(relu["act"], "relu");
    for i in 0..2 {
        let (general, closed) = (num(&relu["lambda"][i]), num(&relu["closed_form"][i]));
        assert!(
            (general - closed).abs() < 1e-10 * closed,
            "{general} vs {closed}"
        );
    }
    assert!(
        v["bn"][1]["closed_form"].is_null(),
        "no closed form for tanh"
    );
    let tanh = &v["no_bn"][1];
    assert_eq!(tanh["q"].as_array().unwrap().len(), 5);
    assert_eq!(
        num(&tanh["q"][0]),
        1.0,
        "q^1 = d_in Var(W_1) E[x^2] = 1 with Xavier"
    );
}

#[test]
fn the_theory_command_refuses_batches_below_four() {
    let dir = scratch_dir("theory-refused");
    assert_refused(&["theory", "--batch", "3"], "--batch", &dir);
    assert_refused(&["theory", "--batch", "8,8"], "--batch", &dir);
    assert_refused(&["theory", "--depth", "0"], "--depth", &dir);
}

fn theory_config(args: &[&str]) -> bn_lab::experiment::theory::TheoryConfig {
    match common::parse(args) {
        bn_lab::cli::Command::Theory(a) => bn_lab::experiment::ExperimentArgs::config(&a).unwrap(),
        other => panic!("not theory: {other:?}"),
    }
}

#[test]
fn the_theory_slide_is_clear_on_the_default_run_and_on_one_activation_and_batch() {
    use bn_lab::experiment::theory::Theory;
    common::assert_figures_clear::<Theory>(&theory_config(&["theory"]), "default");
    // One batch size that is not the annotated one, He init resolved per activation.
    common::assert_figures_clear::<Theory>(
        &theory_config(&[
            "theory",
            "--acts",
            "tanh,relu",
            "--batch",
            "16",
            "--init",
            "auto",
            "--depth",
            "3",
        ]),
        "one-batch",
    );
}

#[test]
fn the_theory_slide_writes_lambda_at_the_default_batch_and_each_rate() {
    use bn_lab::experiment::theory::Theory;
    use bn_lab::plot::theory::{ANNOTATED_BATCH, annotated_batch, headline_panels};
    let cfg = theory_config(&["theory"]);
    let report = <Theory as bn_lab::experiment::Experiment>::run(&cfg, &|_| {});
    let (k, b) = annotated_batch(&report).unwrap();
    assert_eq!(
        b, ANNOTATED_BATCH,
        "the default batches include grad-norms' batch"
    );
    let panels = headline_panels(&report);
    assert_eq!(panels.len(), 2);
    for (r, note) in report.bn.iter().zip(&panels[0].notes) {
        assert_eq!(note.y, r.lambda[k].0, "{}", r.act);
        assert_eq!(note.text, bn_lab::stats::fmt_rate(r.lambda[k].0));
    }
    for (m, note) in report.no_bn.iter().zip(&panels[1].notes) {
        assert!(
            note.text.contains(&bn_lab::stats::fmt_rate(m.rate.0)),
            "{}: {}",
            m.act,
            note.text
        );
    }
    // Only the no-BN profile is on a log axis; each activation is listed once in the slide.
    let legend = bn_lab::plot::shared_legend(&panels);
    assert_eq!(legend.len(), report.bn.len(), "{legend:?}");
    // Without the annotated batch, the largest is written.
    let cfg = theory_config(&["theory", "--batch", "8,64,32"]);
    let report = <Theory as bn_lab::experiment::Experiment>::run(&cfg, &|_| {});
    assert_eq!(annotated_batch(&report), Some((1, 64)));
}

/// The summary's "agrees to a relative ..." is the worst relative gap over the batch sizes,
/// measured against the closed form; an activation without one has no such number.
#[test]
fn closed_form_disagreement_is_the_worst_relative_gap_over_batch_sizes() {
    use bn_lab::experiment::theory::{BnRates, closed_form_disagreement};
    use bn_lab::stats::Num;
    let rates = |closed: Option<Vec<Num>>| BnRates {
        act: Activation::Relu,
        lambda: vec![Num(2.0), Num(3.3), Num(1.5)],
        closed_form: closed,
        large_batch_limit: Num(1.0),
    };
    let gap = closed_form_disagreement(&rates(Some(vec![Num(2.0), Num(3.0), Num(1.6)]))).unwrap();
    assert!((gap - 0.1).abs() < 1e-12, "{gap}");
    assert_eq!(
        closed_form_disagreement(&rates(Some(vec![Num(2.0), Num(3.3), Num(1.5)]))),
        Some(0.0)
    );
    assert_eq!(closed_form_disagreement(&rates(None)), None);
}
