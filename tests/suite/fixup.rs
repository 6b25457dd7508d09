//! Fixup (`--init fixup`, Zhang et al. 2019) on the standard blocks: its starting values (the
//! He draws, each branch's first matrix scaled by `1/sqrt(depth)`, its last matrix and the head
//! 0, each branch's multiplier 1), the identity stream they give, the gradients that follow
//! (only the head's at first, then every parameter's), the same model's finite-difference check,
//! and the refusals where Fixup has nothing to show or does not go.

use crate::common::{assert_refused, bn_lab_ok, json, quick, scratch, scratch_dir, with_flag};
use bn_lab::config::{Activation, Init, Loss, NormConfig, NormKind};
use bn_lab::data::{self, Stream, Task};
use bn_lab::model::{Mlp, Mode, ParamKind};
use bn_lab::optim::SgdConfig;
use bn_lab::spec::{NetConfig, StdBlock};
use bn_lab::train::Trainer;

fn blocks(kind: StdBlock, init: Init, norm: Option<NormKind>) -> NetConfig {
    NetConfig {
        d_in: 64,
        width: 16,
        d_out: 10,
        depth: 4,
        act: Activation::Relu,
        init,
        norm: norm.map(|kind| NormConfig {
            kind,
            ..NormConfig::default()
        }),
        residual: false,
        residual_scale: 1.0,
        block: Some(kind),
        skip_init: false,
    }
}

#[test]
fn fixup_scales_each_first_matrix_and_zeroes_each_last_one_and_the_head() {
    for kind in [StdBlock::Preact, StdBlock::Basic] {
        let he = Mlp::<f64>::new(
            &blocks(kind, Init::He, None),
            &mut data::rng(3, Stream::Weights),
        );
        let fx = Mlp::<f64>::new(
            &blocks(kind, Init::Fixup, None),
            &mut data::rng(3, Stream::Weights),
        );
        // The same draws: the stem is He's, W1 is He's over sqrt(4) = 2, W2 and the head are 0.
        assert_eq!(fx.blocks[0].linear.w, he.blocks[0].linear.w, "{kind}: stem");
        for u in 0..4 {
            let (w1, w2) = (&fx.blocks[1 + 2 * u].linear, &fx.blocks[2 + 2 * u].linear);
            let he_w1 = &he.blocks[1 + 2 * u].linear.w;
            assert!(he_w1.iter().any(|w| *w != 0.0));
            for (a, b) in w1.w.iter().zip(he_w1) {
                assert!((a - b / 2.0).abs() <= 1e-15 * b.abs(), "{kind}: W1 of {u}");
            }
            assert!(w2.w.iter().all(|w| *w == 0.0), "{kind}: W2 of {u}");
            assert!(w1.b.iter().chain(&w2.b).all(|b| *b == 0.0));
            let gain = fx.units[u].gain.as_ref().expect("Fixup has a multiplier");
            assert_eq!(gain.alpha[0], 1.0, "{kind}: the multiplier starts at 1");
        }
        assert!(he.units.iter().all(|u| u.gain.is_none()));
        assert!(fx.out.w.iter().all(|w| *w == 0.0), "{kind}: head");
    }
}

/// At Fixup's start every branch adds 0: the preact stream is the stem's output at every block,
/// with or without a normaliser, and the output is 0.
#[test]
fn at_fixups_start_the_stream_is_the_stem_at_every_block() {
    for norm in [None, Some(NormKind::Batch), Some(NormKind::Layer)] {
        let cfg = blocks(StdBlock::Preact, Init::Fixup, norm);
        let data = data::make_task::<f64>(&Task::Digits, 0, 32, 8, 64, 10);
        let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(0, Stream::Weights));
        let o = net.forward(data.train.x.view(), Mode::Train).unwrap();
        assert!(o.iter().all(|v| *v == 0.0), "{norm:?}: output");
        let h0 = net.stream(0).to_owned();
        assert!(h0.iter().any(|v| *v != 0.0));
        for l in 1..=cfg.depth {
            assert_eq!(net.stream(l), h0, "{norm:?}: stream after block {l}");
        }
    }
}

/// The first backward reaches only the head (everything below it is multiplied by its zero
/// weights); one step later every parameter has a gradient.
#[test]
fn only_the_head_learns_on_the_first_step_and_then_every_parameter() {
    let cfg = blocks(StdBlock::Preact, Init::Fixup, None);
    let data = data::make_task::<f64>(&Task::Digits, 0, 64, 16, 64, 10);
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(0, Stream::Weights));
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
        warmup_steps: 0,
    };
    let mut tr = Trainer::new(&mut net, &data, sgd, 16, 0, Loss::Ce);
    for step in 0..3 {
        tr.forward();
        tr.backward();
        for p in tr.net.params_mut() {
            let name = p.id.to_string();
            let g = p.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
            let head = name.starts_with("out.");
            match step {
                0 if head => assert!(g > 0.0, "{name} at step 0"),
                0 => assert_eq!(g, 0.0, "{name}: below the zero head at step 0"),
                // Step 1: the head is no longer 0, so the stream, the stem, W2 and the gains
                // learn; W1 waits for W2. Step 2: every parameter.
                1 if name.ends_with("weight") && p.id.kind == ParamKind::Weight => {}
                _ if step == 2 => assert!(g > 0.0, "{name} at step 2"),
                _ => {}
            }
        }
        tr.step();
    }
}

/// Fixup changes where the net starts, not the model: the check differentiates the same net
/// (the gain on each branch) at its He draws with the gain at `CHECK_GAIN`, where no gradient is
/// 0 by construction.
#[test]
fn the_fixup_model_passes_the_finite_difference_check() {
    for (kind, norm) in [
        (StdBlock::Preact, None),
        (StdBlock::Basic, Some(NormKind::Layer)),
    ] {
        let mut cfg = blocks(kind, Init::Fixup, norm);
        cfg.width = 6;
        cfg.d_in = 5;
        cfg.d_out = 3;
        cfg.depth = 2;
        cfg.act = Activation::Tanh;
        let check = bn_lab::gradcheck::check(&cfg, 4, 1, 1e-6, Mode::Train);
        assert!(
            check.max_rel_error() < 1e-6,
            "{kind}: {}",
            check.max_rel_error()
        );
        assert!(
            check.tensors.iter().all(|t| t.analytic_norm.0 > 0.0),
            "{kind}: a tensor with no gradient checks nothing"
        );
    }
}

#[test]
fn fixup_is_refused_where_it_does_not_go_or_shows_nothing() {
    let dir = scratch_dir("fixup-refused");
    let small = ["--depth", "2", "--width", "8", "--batch", "8"];
    let with = |cmd: &'static str, extra: &[&'static str]| {
        let mut v = vec![cmd];
        v.extend_from_slice(&small);
        v.extend_from_slice(extra);
        v
    };
    for args in [
        with("train", &["--init", "fixup"]),
        with("train", &["--init", "fixup", "--block", "residual"]),
        with(
            "train",
            &[
                "--init",
                "fixup",
                "--block",
                "preact",
                "--configs",
                "skip-init",
            ],
        ),
        with("grad-norms", &["--init", "fixup", "--block", "preact"]),
        vec![
            "shattered",
            "--depth",
            "2",
            "--width",
            "8",
            "--init",
            "fixup",
        ],
    ] {
        assert_refused(&args, "--init", &dir);
    }
}

/// `train --init fixup` records the init and the multipliers it ended with, near 1.
#[test]
fn a_fixup_run_records_its_init_and_its_multipliers() {
    let tiny = quick(
        "train",
        &[
            "--block",
            "preact",
            "--init",
            "fixup",
            "--configs",
            "off,on",
        ],
    );
    let args = with_flag(&tiny, "--depth", "2");
    let out = scratch("fixup-train");
    bn_lab_ok(&args, &out);
    let report = json(&out.join("train.json"));
    assert_eq!(report["config"]["init"], "fixup");
    for r in report["runs"].as_array().unwrap() {
        let alphas = r["final_alpha"].as_array().expect("Fixup has gains");
        assert_eq!(alphas.len(), 2, "{}", r["label"]);
        for a in alphas {
            let a = a.as_f64().unwrap();
            assert!(a.is_finite() && (a - 1.0).abs() < 0.5, "{a}");
        }
    }
    std::fs::remove_dir_all(out).expect("scratch dirs are removable");
}
