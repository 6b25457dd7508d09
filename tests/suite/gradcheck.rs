//! Hand-written backprop against central finite differences in f64, over every combination of
//! activation x normalisation (none, BatchNorm, LayerNorm) x affine on/off x placement pre/post x
//! residual on/off.

use bn_lab::config::{Activation, Init, NormConfig, NormKind, Placement};
use bn_lab::gradcheck::check;
use bn_lab::model::Mode;
use bn_lab::spec::NetConfig;

const TOL: f64 = 1e-6;
const STEP: f64 = 1e-5;

fn net(act: Activation, bn: Option<NormConfig>, residual: bool, d_in: usize) -> NetConfig {
    NetConfig {
        d_in,
        width: 6,
        d_out: 3,
        depth: 3,
        act,
        init: Init::Xavier,
        norm: bn,
        residual,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    }
}

fn all_configs() -> Vec<NetConfig> {
    let mut out = Vec::new();
    for act in Activation::ALL {
        for residual in [false, true] {
            out.push(net(act, None, residual, 6));
            for kind in [NormKind::Batch, NormKind::Layer] {
                for affine in [false, true] {
                    for placement in [Placement::Pre, Placement::Post] {
                        let bn = NormConfig {
                            kind,
                            affine,
                            placement,
                            ..NormConfig::default()
                        };
                        out.push(net(act, Some(bn), residual, 6));
                    }
                }
            }
        }
    }
    out
}

fn assert_passes(cfg: &NetConfig, mode: Mode, seed: u64) {
    let r = check(cfg, 8, seed, STEP, mode);
    // Every parameter tensor and the input are checked.
    let expected_tensors = cfg.depth
        * if cfg.norm.is_some_and(|b| b.affine) {
            4
        } else {
            2
        }
        + 2
        + 1;
    assert_eq!(r.tensors.len(), expected_tensors, "{cfg:?}");
    for t in &r.tensors {
        assert!(
            t.rel_error.0 < TOL,
            "{} rel error {:e} in {mode:?} mode for {cfg:?}",
            t.name,
            t.rel_error.0
        );
    }
}

#[test]
fn backward_matches_finite_differences_for_every_configuration_in_train_mode() {
    for cfg in all_configs() {
        assert_passes(&cfg, Mode::Train, 0);
    }
}

#[test]
fn backward_matches_finite_differences_with_bn_in_eval_mode() {
    for cfg in all_configs().into_iter().filter(|c| c.norm.is_some()) {
        assert_passes(&cfg, Mode::Eval, 0);
    }
}

#[test]
fn backward_matches_finite_differences_when_input_width_differs() {
    // d_in != width: the first block has no skip connection even with --residual.
    for act in [Activation::Tanh, Activation::Relu] {
        let bn = NormConfig {
            kind: NormKind::Batch,
            affine: true,
            placement: Placement::Pre,
            ..NormConfig::default()
        };
        let ln = NormConfig {
            kind: NormKind::Layer,
            ..bn
        };
        assert_passes(&net(act, Some(bn), true, 4), Mode::Train, 3);
        assert_passes(&net(act, Some(ln), true, 4), Mode::Train, 3);
        assert_passes(&net(act, None, true, 4), Mode::Train, 3);
    }
}

#[test]
fn backward_matches_finite_differences_with_a_residual_scale() {
    // h_l = h_{l-1} + beta a_l with beta != 1 (Balduzzi et al.'s rescaled ResNet).
    for act in Activation::ALL {
        let bns = [
            None,
            Some(NormConfig::default()),
            Some(NormConfig {
                kind: NormKind::Batch,
                placement: Placement::Post,
                ..NormConfig::default()
            }),
            Some(NormConfig {
                kind: NormKind::Layer,
                ..NormConfig::default()
            }),
            Some(NormConfig {
                kind: NormKind::Layer,
                placement: Placement::Post,
                ..NormConfig::default()
            }),
        ];
        for bn in bns {
            let cfg = NetConfig {
                residual_scale: 0.3,
                block: None,
                skip_init: false,
                ..net(act, bn, true, 6)
            };
            assert_passes(&cfg, Mode::Train, 1);
        }
    }
}

#[test]
fn the_error_measure_flags_a_gradient_that_is_off_by_one_percent() {
    // The check must be able to fail: an analytic gradient 1% off gives a relative error of ~1e-2.
    use bn_lab::gradcheck::compare;
    use ndarray::ArrayD;
    let numeric = ArrayD::from_shape_vec(vec![4], vec![0.3, -1.2, 0.05, 2.0]).unwrap();
    let wrong = &numeric * 1.01;
    let t = compare("w".into(), &wrong, &numeric, 1.0);
    assert!(
        (t.rel_error.0 - 0.01 / 1.01).abs() < 1e-12,
        "{}",
        t.rel_error.0
    );
    // A tensor whose true gradient is 0 but whose analytic gradient is not also fails.
    let zero = ArrayD::zeros(vec![4]);
    let t = compare("b".into(), &numeric, &zero, 1.0);
    assert!(t.rel_error.0 >= 1.0);
}

/// The progress callback is told of every perturbed element once, `perturbations()` in all,
/// and changes no number of the check.
#[test]
fn progress_counts_every_perturbed_element_and_changes_nothing() {
    use bn_lab::gradcheck::{check_with_progress, perturbations};
    use std::sync::atomic::{AtomicU64, Ordering};
    let bn = NormConfig::default();
    for (cfg, mode) in [
        (net(Activation::Tanh, Some(bn), true, 4), Mode::Train),
        (net(Activation::Relu, None, false, 6), Mode::Eval),
    ] {
        let (sum, calls) = (AtomicU64::new(0), AtomicU64::new(0));
        let with = check_with_progress(&cfg, 8, 3, STEP, mode, bn_lab::config::Loss::Mse, &|n| {
            sum.fetch_add(n, Ordering::Relaxed);
            calls.fetch_add(1, Ordering::Relaxed);
        });
        let without = check(&cfg, 8, 3, STEP, mode);
        let elements: usize = with.tensors.iter().map(|t| t.len).sum();
        assert_eq!(perturbations(&cfg, 8), elements as f64, "{cfg:?}");
        assert_eq!(sum.load(Ordering::Relaxed), elements as u64);
        assert_eq!(
            calls.load(Ordering::Relaxed),
            elements as u64,
            "one unit per element"
        );
        assert_eq!(with.loss.to_bits(), without.loss.to_bits());
        for (a, b) in with.tensors.iter().zip(&without.tensors) {
            assert_eq!(
                a.rel_error.0.to_bits(),
                b.rel_error.0.to_bits(),
                "{}",
                a.name
            );
            assert_eq!(a.numeric_norm.0.to_bits(), b.numeric_norm.0.to_bits());
        }
    }
}

/// The estimate grows with the square of the network and covers the per-layer cost of deep,
/// narrow nets; the defaults are far below the limit, width 300 and depth 2000 above it.
#[test]
fn the_cost_estimate_admits_the_defaults_and_refuses_width_300_and_depth_2000() {
    use bn_lab::commands::gradcheck::MAX_GRADCHECK_OPS as MAX_OPS;
    use bn_lab::gradcheck::{cost_ops as cost, perturbations};
    let sized = |depth: usize, width: usize| NetConfig {
        d_in: width,
        width,
        depth,
        ..net(Activation::Sigmoid, Some(NormConfig::default()), false, 6)
    };
    let default = sized(3, 6);
    // 3 blocks of 6x6 weights, 6 biases, 6 gammas, 6 betas; out 6x3 + 3; input 8x6.
    assert_eq!(default.param_count(), 3.0 * (36.0 + 18.0) + 21.0);
    assert_eq!(perturbations(&default, 8), default.param_count() + 48.0);
    assert!(cost(&default, 8) < 1e-3 * MAX_OPS, "{}", cost(&default, 8));
    assert!(cost(&sized(3, 140), 8) < MAX_OPS);
    assert!(cost(&sized(3, 300), 8) > MAX_OPS);
    assert!(cost(&sized(2000, 6), 8) > MAX_OPS);
    // Huge sizes stay finite numbers (f64), so the refusal can print them.
    assert!(cost(&sized(usize::MAX, usize::MAX), usize::MAX).is_finite());
}
