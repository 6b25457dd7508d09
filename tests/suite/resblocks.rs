//! The standard residual blocks (`--block basic|preact`, `--skip-init`): hand-written backward
//! against central finite differences in f64 over every block x normaliser x activation x affine,
//! with and without SkipInit and a branch scale; the forward against the block equations written
//! out with plain array arithmetic; and the stream and parameter layout.

use bn_lab::config::{Activation, Init, NormConfig, NormKind};
use bn_lab::data::{self, Stream};
use bn_lab::gradcheck::check;
use bn_lab::model::{Mlp, Mode};
use bn_lab::spec::{NetConfig, StdBlock};
use ndarray::Array2;

const TOL: f64 = 1e-6;
const STEP: f64 = 1e-5;

fn net(block: StdBlock, act: Activation, norm: Option<NormConfig>, d_in: usize) -> NetConfig {
    NetConfig {
        d_in,
        width: 6,
        d_out: 3,
        depth: 2,
        act,
        init: Init::He,
        norm,
        residual: false,
        residual_scale: 1.0,
        block: Some(block),
        skip_init: false,
    }
}

fn norms() -> Vec<Option<NormConfig>> {
    let mut out = vec![None];
    for kind in [NormKind::Batch, NormKind::Layer] {
        for affine in [false, true] {
            out.push(Some(NormConfig {
                kind,
                affine,
                ..NormConfig::default()
            }));
        }
    }
    out
}

fn assert_passes(cfg: &NetConfig, mode: Mode, seed: u64) {
    let r = check(cfg, 8, seed, STEP, mode);
    let affine = cfg.norm.is_some_and(|n| n.affine);
    let per_layer = if affine { 4 } else { 2 };
    // Stem, two layers per block (the preact block's second without a normaliser), the
    // preact block's first normaliser, the gains, the output layer, the input.
    let layers = match cfg.block {
        Some(StdBlock::Basic) => (1 + 2 * cfg.depth) * per_layer,
        _ => 2 + cfg.depth * (per_layer + 2) + if affine { 2 * cfg.depth } else { 0 },
    };
    let gains = if cfg.skip_init { cfg.depth } else { 0 };
    assert_eq!(r.tensors.len(), layers + gains + 2 + 1, "{cfg:?}");
    for t in &r.tensors {
        assert!(
            t.rel_error.0 < TOL,
            "{} rel error {:e} in {mode:?} mode for {cfg:?}",
            t.name,
            t.rel_error.0
        );
    }
}

/// Seed 1 throughout: with zero biases a basic ReLU block without a normaliser puts a sample
/// exactly on its last ReLU's kink whenever the sample's first-layer ReLUs are all 0 (then
/// `u = h + s (0 W2 + 0)` and `h = 0` there too), where the derivative is undefined and the
/// difference quotient of `W2`'s bias straddles it; seeds 0 and 3 have such a sample, seed 1
/// has none.
#[test]
fn standard_blocks_match_finite_differences_for_every_configuration() {
    for block in [StdBlock::Basic, StdBlock::Preact] {
        for act in Activation::ALL {
            for norm in norms() {
                for skip_init in [false, true] {
                    let cfg = NetConfig {
                        skip_init,
                        ..net(block, act, norm, 6)
                    };
                    assert_passes(&cfg, Mode::Train, 1);
                }
            }
        }
    }
}

#[test]
fn standard_blocks_match_finite_differences_in_eval_mode_with_a_branch_scale_and_a_stem() {
    for block in [StdBlock::Basic, StdBlock::Preact] {
        for act in [Activation::Relu, Activation::Tanh] {
            for norm in norms() {
                let cfg = NetConfig {
                    residual_scale: 0.3,
                    skip_init: true,
                    ..net(block, act, norm, 4)
                };
                assert_passes(&cfg, Mode::Eval, 2);
                assert_passes(&cfg, Mode::Train, 3);
            }
        }
    }
}

/// `act(norm(z))` of one layer written out: BatchNorm over the batch with the biased variance,
/// LayerNorm over each row; no affine (gamma 1, beta 0 at initialisation anyway).
fn norm_act(z: &Array2<f64>, norm: Option<NormKind>, act: Activation) -> Array2<f64> {
    let eps = 1e-5;
    let y = match norm {
        None => z.clone(),
        Some(NormKind::Batch) => {
            let mean = z.mean_axis(ndarray::Axis(0)).unwrap();
            let var = z.var_axis(ndarray::Axis(0), 0.0);
            (z - &mean) / &var.mapv(|v| (v + eps).sqrt())
        }
        Some(NormKind::Layer) => {
            let mut y = z.clone();
            for mut row in y.rows_mut() {
                let (m, v) = (row.mean().unwrap(), row.var(0.0));
                row.mapv_inplace(|x| (x - m) / (v + eps).sqrt());
            }
            y
        }
    };
    y.mapv(|v| bn_lab::ops::act_scalar(act, v))
}

#[test]
fn the_forward_follows_the_block_equations() {
    for block in [StdBlock::Basic, StdBlock::Preact] {
        for kind in [None, Some(NormKind::Batch), Some(NormKind::Layer)] {
            let norm = kind.map(|kind| NormConfig {
                kind,
                ..NormConfig::default()
            });
            let cfg = NetConfig {
                residual_scale: 0.7,
                ..net(block, Activation::Relu, norm, 5)
            };
            let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(4, Stream::Weights));
            let x = data::linear_teacher::<f64>(9, 16, 5, 3).x;
            net.forward(x.view(), Mode::Train).unwrap();
            let lin = |h: &Array2<f64>, l: usize| h.dot(&net.blocks[l].linear.w);
            let relu = Activation::Relu;
            let mut h = match block {
                StdBlock::Basic => norm_act(&lin(&x, 0), kind, relu),
                StdBlock::Preact => lin(&x, 0),
            };
            assert!(max_diff(&h, &net.stream(0).to_owned()) < 1e-12);
            for b in 0..cfg.depth {
                let (w1, w2) = (1 + 2 * b, 2 + 2 * b);
                h = match block {
                    StdBlock::Basic => {
                        let a = norm_act(&lin(&h, w1), kind, relu);
                        let y = norm_act(&lin(&a, w2), kind, Activation::Linear);
                        (&h + &(y * 0.7)).mapv(|v| v.max(0.0))
                    }
                    StdBlock::Preact => {
                        let p = norm_act(&h, kind, relu);
                        let a = norm_act(&lin(&p, w1), kind, relu);
                        &h + &(lin(&a, w2) * 0.7)
                    }
                };
                let got = net.hidden(b + 1).to_owned();
                assert!(max_diff(&h, &got) < 1e-10, "{block} {kind:?} block {b}");
            }
        }
    }
}

fn max_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    (a - b).iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[test]
fn skip_init_starts_as_the_identity_and_only_its_gains_move_first() {
    let cfg = NetConfig {
        skip_init: true,
        ..net(StdBlock::Preact, Activation::Relu, None, 6)
    };
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(1, Stream::Weights));
    let d = data::linear_teacher::<f64>(2, 8, 6, 3);
    let o = net.forward(d.x.view(), Mode::Train).unwrap().to_owned();
    for l in 1..=cfg.depth {
        assert_eq!(net.hidden(l), net.stream(0), "block {l} is the identity");
    }
    let d_o = &o - &d.y;
    net.backward(d_o.view()).unwrap();
    for p in net.params_mut() {
        let name = p.id.to_string();
        let norm = p.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        let branch =
            name.starts_with("layers.") && name != "layers.1.weight" && name != "layers.1.bias";
        if branch {
            assert_eq!(
                norm, 0.0,
                "{name}: a branch behind a zero gain gets no gradient"
            );
        } else {
            assert!(norm > 0.0, "{name} has a gradient");
        }
    }
}
