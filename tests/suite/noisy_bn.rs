//! Noisy BN (Santurkar et al. 2018, section 2.1) in the model: its hand-written backward against
//! finite differences, zero noise equals BN bit for bit, and the noise moves what the
//! activation sees as documented.

use bn_lab::config::{Activation, BnNoise, Init, NormConfig, NormKind, Placement};
use bn_lab::data::{self, Stream};
use bn_lab::gradcheck::check_noisy;
use bn_lab::model::{Mlp, Mode, ModelError};
use bn_lab::spec::NetConfig;

const NOISE: BnNoise = BnNoise {
    mean: 1.0,
    scale: 2.5,
    jitter: 0.3,
};
const ZERO: BnNoise = BnNoise {
    mean: 0.0,
    scale: 1.0,
    jitter: 0.0,
};

fn net(act: Activation, affine: bool, residual: bool) -> NetConfig {
    NetConfig {
        d_in: 6,
        width: 6,
        d_out: 3,
        depth: 3,
        act,
        init: Init::Xavier,
        norm: Some(NormConfig {
            affine,
            ..NormConfig::default()
        }),
        residual,
        residual_scale: if residual { 0.7 } else { 1.0 },
        block: None,
        skip_init: false,
    }
}

#[test]
fn noisy_bn_backward_matches_finite_differences() {
    for act in Activation::ALL {
        for affine in [false, true] {
            for residual in [false, true] {
                let cfg = net(act, affine, residual);
                for mode in [Mode::Train, Mode::Eval] {
                    let r = check_noisy(&cfg, 8, 2, 1e-5, mode, NOISE);
                    for t in &r.tensors {
                        assert!(
                            t.rel_error.0 < 1e-6,
                            "{} rel error {:e} in {mode:?} for {cfg:?}",
                            t.name,
                            t.rel_error.0
                        );
                    }
                }
            }
        }
    }
}

/// One SGD-free comparison: forward and backward of the same weights and batch.
fn forward_backward(cfg: &NetConfig, noise: Option<BnNoise>, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let batch = data::linear_teacher::<f64>(seed, 16, cfg.d_in, cfg.d_out);
    let mut net = Mlp::<f64>::new(cfg, &mut data::rng(seed, Stream::Weights));
    if let Some(n) = noise {
        net.set_bn_noise(n, data::rng(seed, Stream::Noise)).unwrap();
    }
    let mut outs = Vec::new();
    let mut grads = Vec::new();
    for _ in 0..3 {
        net.resample_noise();
        let o = net.forward(batch.x.view(), Mode::Train).unwrap().to_owned();
        outs.extend(o.iter().map(|v| v.to_bits() as f64));
        net.backward((&o - &batch.y).view()).unwrap();
        for p in net.params_mut() {
            grads.extend(p.grad.iter().map(|v| v.to_bits() as f64));
        }
    }
    let o = net.forward(batch.x.view(), Mode::Eval).unwrap();
    outs.extend(o.iter().map(|v| v.to_bits() as f64));
    (outs, grads)
}

#[test]
fn zero_noise_is_batchnorm_bit_for_bit() {
    for act in Activation::ALL {
        for residual in [false, true] {
            let cfg = net(act, true, residual);
            assert_eq!(
                forward_backward(&cfg, None, 5),
                forward_backward(&cfg, Some(ZERO), 5),
                "{cfg:?}"
            );
            // And the comparison can fail: real noise changes the bits.
            assert_ne!(
                forward_backward(&cfg, None, 5).0,
                forward_backward(&cfg, Some(NOISE), 5).0
            );
        }
    }
}

#[test]
fn the_noise_shifts_and_scales_each_unit_and_changes_every_step() {
    // A linear net of one block with gamma = 1, beta = 0: the activation input is
    // s * x_hat + m, so per unit its batch mean is about mu_tj and its std about sigma_tj.
    let cfg = NetConfig {
        d_in: 4,
        width: 64,
        d_out: 1,
        depth: 1,
        act: Activation::Linear,
        ..net(Activation::Linear, true, false)
    };
    let noise = BnNoise {
        mean: 2.0,
        scale: 3.0,
        jitter: 0.0,
    };
    let batch = data::linear_teacher::<f64>(1, 256, 4, 1);
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(1, Stream::Weights));
    net.set_bn_noise(noise, data::rng(1, Stream::Noise))
        .unwrap();
    let mut means = Vec::new();
    for _ in 0..2 {
        net.resample_noise();
        net.forward(batch.x.view(), Mode::Train).unwrap();
        let u = net.activation_input(1);
        let m: Vec<f64> = u.columns().into_iter().map(|c| c.mean().unwrap()).collect();
        let sd: Vec<f64> = u.columns().into_iter().map(|c| c.std(0.0)).collect();
        // Shifts are within (-2, 2), scales within [1, 3] (x_hat has std 1 up to eps).
        assert!(m.iter().all(|v| v.abs() < 2.0 + 1e-9), "{m:?}");
        assert!(sd.iter().all(|v| (0.99..=3.0 + 1e-9).contains(v)), "{sd:?}");
        // Spread over the whole range: some unit near each end.
        assert!(m.iter().any(|v| *v > 1.0) && m.iter().any(|v| *v < -1.0));
        assert!(sd.iter().any(|v| *v > 2.5) && sd.iter().any(|v| *v < 1.5));
        means.push(m);
    }
    // A new step draws new noise; a second forward of the same step reuses it.
    assert_ne!(means[0], means[1]);
    let before = net.activation_input(1);
    net.forward(batch.x.view(), Mode::Train).unwrap();
    assert_eq!(before, net.activation_input(1));
    // Eval mode applies the mean scale (1 + 3) / 2 = 2 and no shift.
    net.forward(batch.x.view(), Mode::Eval).unwrap();
    let u = net.activation_input(1);
    let ratio = u[[0, 0]] / {
        let mut plain = net.clone();
        plain.blocks[0].noise = None;
        plain.forward(batch.x.view(), Mode::Eval).unwrap();
        plain.activation_input(1)[[0, 0]]
    };
    assert!((ratio - 2.0).abs() < 1e-12, "{ratio}");
}

#[test]
fn noise_needs_batchnorm_before_the_activation() {
    for bn in [
        None,
        Some(NormConfig {
            placement: Placement::Post,
            ..NormConfig::default()
        }),
        Some(NormConfig {
            kind: NormKind::Layer,
            ..NormConfig::default()
        }),
    ] {
        let cfg = NetConfig {
            norm: bn,
            ..net(Activation::Tanh, true, false)
        };
        let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(0, Stream::Weights));
        assert_eq!(
            net.set_bn_noise(NOISE, data::rng(0, Stream::Noise)),
            Err(ModelError::NoiseWithoutBatchNormPre)
        );
    }
}
