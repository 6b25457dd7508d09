//! The optimised model (fused passes, split matrix products, threads) against a
//! straightforward reference written here with plain ndarray `.dot()` in f64: same outputs,
//! same gradients, same running statistics, to within rounding.

#![allow(clippy::op_ref)] // `&a * &b` reads as the math and keeps every operand borrowed.

use bn_lab::config::{Activation, Init, NormConfig, NormKind, Placement};
use bn_lab::data::{self, Stream};
use bn_lab::model::{Mlp, Mode};
use bn_lab::ops;
use bn_lab::spec::NetConfig;
use ndarray::{Array1, Array2, Axis};

/// One block's parameters and running statistics, copied out of an `Mlp`.
struct RefBlock {
    w: Array2<f64>,
    b: Array1<f64>,
    gamma: Option<Array1<f64>>,
    beta: Option<Array1<f64>>,
    running: Option<(Array1<f64>, Array1<f64>)>,
    skip: bool,
    /// `h = h_in + scale * branch` where `skip`.
    scale: f64,
}

/// Everything the reference computes.
struct RefResult {
    o: Array2<f64>,
    hidden: Vec<Array2<f64>>,
    act_input: Vec<Array2<f64>>,
    /// Gradients in `params_mut` order.
    grads: Vec<Array2<f64>>,
    dx: Array2<f64>,
    signal: Vec<f64>,
    running: Vec<Option<(Array1<f64>, Array1<f64>)>>,
}

fn act(a: Activation, z: f64) -> f64 {
    match a {
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Tanh => z.tanh(),
        Activation::Relu => z.max(0.0),
        Activation::LeakyRelu => {
            if z > 0.0 {
                z
            } else {
                0.01 * z
            }
        }
        Activation::Linear => z,
    }
}

/// act'(z), written in terms of the input (the model uses the output).
fn act_grad(a: Activation, z: f64) -> f64 {
    match a {
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-z).exp());
            s * (1.0 - s)
        }
        Activation::Tanh => 1.0 - z.tanh().powi(2),
        Activation::Relu => (z > 0.0) as u8 as f64,
        Activation::LeakyRelu => {
            if z > 0.0 {
                1.0
            } else {
                0.01
            }
        }
        Activation::Linear => 1.0,
    }
}

fn row(v: &Array1<f64>) -> ndarray::ArrayView2<'_, f64> {
    v.view().insert_axis(Axis(0))
}

/// One block's forward values the backward needs.
struct Fwd {
    z: Array2<f64>,
    x_hat: Array2<f64>,
    y: Array2<f64>,
    /// `(1, width)` for BatchNorm, `(batch, 1)` for LayerNorm (broadcast against `x_hat`).
    inv_std: Array2<f64>,
}

/// A BatchNorm block's running mean and variance (LayerNorm blocks carry BN's unused pair).
type Running = Option<(Array1<f64>, Array1<f64>)>;

/// One block's forward: `(branch, cache, activation input, running statistics after it)`.
type BlockForward = (Array2<f64>, Fwd, Array2<f64>, Running);

/// The normaliser's mean and variance of `input` and the running statistics after the pass:
/// LayerNorm over each row in both modes (running statistics untouched), BatchNorm over the
/// batch in train mode (running statistics updated with the unbiased variance), BatchNorm's
/// running statistics in eval mode.
fn norm_stats(
    bc: &NormConfig,
    blk: &RefBlock,
    input: &Array2<f64>,
    mode: Mode,
) -> (Array2<f64>, Array2<f64>, Running) {
    let n = input.nrows() as f64;
    let (rm, rv) = blk.running.clone().expect("BN block");
    match mode {
        _ if bc.kind == NormKind::Layer => {
            let mean = input.mean_axis(Axis(1)).unwrap().insert_axis(Axis(1));
            let var = (input - &mean)
                .mapv(|v| v * v)
                .mean_axis(Axis(1))
                .unwrap()
                .insert_axis(Axis(1));
            (mean, var, Some((rm, rv)))
        }
        Mode::Train => {
            let mean = input.mean_axis(Axis(0)).unwrap();
            let var = (input - &row(&mean))
                .mapv(|v| v * v)
                .mean_axis(Axis(0))
                .unwrap();
            let m = bc.momentum;
            let running = (
                &rm * (1.0 - m) + &mean * m,
                &rv * (1.0 - m) + &var * (m * n / (n - 1.0)),
            );
            (row(&mean).to_owned(), row(&var).to_owned(), Some(running))
        }
        Mode::Eval => (row(&rm).to_owned(), row(&rv).to_owned(), Some((rm, rv))),
    }
}

/// One block's branch from its pre-activation `z = h W + b`.
fn block_forward(cfg: &NetConfig, blk: &RefBlock, z: Array2<f64>, mode: Mode) -> BlockForward {
    let Some(bc) = cfg.norm else {
        let a = z.mapv(|v| act(cfg.act, v));
        let empty = || Array2::zeros((0, 0));
        let f = Fwd {
            z: z.clone(),
            x_hat: empty(),
            y: empty(),
            inv_std: empty(),
        };
        return (a, f, z, None);
    };
    let pre_input = match bc.placement {
        Placement::Pre => z.clone(),
        Placement::Post => z.mapv(|v| act(cfg.act, v)),
    };
    let (mean, var, running) = norm_stats(&bc, blk, &pre_input, mode);
    let inv_std = var.mapv(|v| 1.0 / (v + bc.eps).sqrt());
    let x_hat = (&pre_input - &mean) * &inv_std;
    let yb = match (&blk.gamma, &blk.beta) {
        (Some(g), Some(b)) => &x_hat * &row(g) + &row(b),
        _ => x_hat.clone(),
    };
    let (branch, act_in) = match bc.placement {
        Placement::Pre => (yb.mapv(|v| act(cfg.act, v)), yb.clone()),
        Placement::Post => (yb.clone(), z.clone()),
    };
    let f = Fwd {
        z,
        x_hat,
        y: yb,
        inv_std,
    };
    (branch, f, act_in, running)
}

/// `(dL/dgamma, dL/dbeta)` of a block with scale/shift.
type ScaleShiftGrads = Option<(Array1<f64>, Array1<f64>)>;

/// `dL/dz` of one block from `dL/d(branch)`, and with scale/shift `(dL/dgamma, dL/dbeta)`.
fn block_backward(
    cfg: &NetConfig,
    blk: &RefBlock,
    f: &Fwd,
    dbranch: Array2<f64>,
    mode: Mode,
) -> (Array2<f64>, ScaleShiftGrads) {
    let Some(bc) = cfg.norm else {
        return (&dbranch * &f.z.mapv(|v| act_grad(cfg.act, v)), None);
    };
    let n = dbranch.nrows() as f64;
    let dy = match bc.placement {
        Placement::Pre => &dbranch * &f.y.mapv(|v| act_grad(cfg.act, v)),
        Placement::Post => dbranch,
    };
    let bn_grads = blk
        .gamma
        .as_ref()
        .map(|_| ((&dy * &f.x_hat).sum_axis(Axis(0)), dy.sum_axis(Axis(0))));
    let dxh = match &blk.gamma {
        Some(g) => &dy * &row(g),
        None => dy,
    };
    let d_in = match mode {
        _ if bc.kind == NormKind::Layer => {
            let c = dxh.ncols() as f64;
            let s = dxh.sum_axis(Axis(1)).insert_axis(Axis(1));
            let sx = (&dxh * &f.x_hat).sum_axis(Axis(1)).insert_axis(Axis(1));
            (&dxh * c - &s - &(&f.x_hat * &sx)) * &f.inv_std / c
        }
        Mode::Train => {
            let s = dxh.sum_axis(Axis(0));
            let sx = (&dxh * &f.x_hat).sum_axis(Axis(0));
            (&dxh * n - &row(&s) - &(&f.x_hat * &row(&sx))) * &f.inv_std / n
        }
        Mode::Eval => &dxh * &f.inv_std,
    };
    let dz = match bc.placement {
        Placement::Pre => d_in,
        Placement::Post => &d_in * &f.z.mapv(|v| act_grad(cfg.act, v)),
    };
    (dz, bn_grads)
}

fn reference(
    cfg: &NetConfig,
    blocks: &[RefBlock],
    out: (&Array2<f64>, &Array1<f64>),
    x: &Array2<f64>,
    y: &Array2<f64>,
    mode: Mode,
) -> RefResult {
    let n = x.nrows() as f64;
    // Forward, keeping what the backward needs.
    let mut h = x.clone();
    let mut hs = vec![h.clone()];
    let mut fwd = Vec::new();
    let mut act_input = Vec::new();
    let mut running = Vec::new();
    for blk in blocks {
        let z = h.dot(&blk.w) + &row(&blk.b);
        let (branch, f, act_in, run) = block_forward(cfg, blk, z, mode);
        act_input.push(act_in);
        running.push(run);
        h = if blk.skip {
            &h + &(&branch * blk.scale)
        } else {
            branch
        };
        hs.push(h.clone());
        fwd.push(f);
    }
    let o = h.dot(out.0) + &row(out.1);

    // Backward of L = 1/(2N) sum (o - y)^2.
    let d_o = (&o - y) / n;
    let d_wout = h.t().dot(&d_o);
    let d_bout = d_o.sum_axis(Axis(0)).insert_axis(Axis(0));
    let mut dh = d_o.dot(&out.0.t());
    let mut signal = vec![0.0; blocks.len()];
    let mut per_block = Vec::new();
    for (l, (blk, f)) in blocks.iter().zip(&fwd).enumerate().rev() {
        signal[l] = dh.mapv(|v| v * v).sum().sqrt();
        // dL/d(branch): the residual branch is scaled by `scale`.
        let dbranch = if blk.skip {
            &dh * blk.scale
        } else {
            dh.clone()
        };
        let (dz, bn_grads) = block_backward(cfg, blk, f, dbranch, mode);
        let dw = hs[l].t().dot(&dz);
        let db = dz.sum_axis(Axis(0));
        let mut dprev = dz.dot(&blk.w.t());
        if blk.skip {
            dprev += &dh;
        }
        per_block.push((dw, db, bn_grads));
        dh = dprev;
    }
    per_block.reverse();
    let mut grads = Vec::new();
    for (dw, db, bn_grads) in per_block {
        grads.push(dw);
        grads.push(db.insert_axis(Axis(0)));
        if let Some((dg, dbeta)) = bn_grads {
            grads.push(dg.insert_axis(Axis(0)));
            grads.push(dbeta.insert_axis(Axis(0)));
        }
    }
    grads.push(d_wout);
    grads.push(d_bout);
    RefResult {
        o,
        hidden: hs,
        act_input,
        grads,
        dx: dh,
        signal,
        running,
    }
}

fn to_f64<T: bn_lab::Float>(a: ndarray::ArrayView2<T>) -> Array2<f64> {
    a.mapv(|v| v.f64())
}

fn as_2d(a: ndarray::ArrayViewD<f64>) -> Array2<f64> {
    match a.ndim() {
        1 => a.to_owned().into_shape_with_order((1, a.len())).unwrap(),
        _ => a.to_owned().into_dimensionality().unwrap(),
    }
}

/// `||a - b|| / max(||a||, ||b||, floor)`.
fn rel_err(a: &Array2<f64>, b: &Array2<f64>, floor: f64) -> f64 {
    assert_eq!(a.dim(), b.dim());
    let norm = |m: &Array2<f64>| m.mapv(|v| v * v).sum().sqrt();
    norm(&(a - b)) / norm(a).max(norm(b)).max(floor)
}

fn ref_blocks(net: &Mlp<f64>) -> Vec<RefBlock> {
    net.blocks
        .iter()
        .map(|b| RefBlock {
            w: b.linear.w.clone(),
            b: b.linear.b.clone(),
            gamma: b
                .bn
                .as_ref()
                .and_then(|bn| bn.affine.as_ref())
                .map(|s| s.gamma.clone()),
            beta: b
                .bn
                .as_ref()
                .and_then(|bn| bn.affine.as_ref())
                .map(|s| s.beta.clone()),
            running: b
                .bn
                .as_ref()
                .map(|bn| (bn.running_mean.clone(), bn.running_var.clone())),
            skip: b.skip,
            scale: b.skip_scale,
        })
        .collect()
}

/// Perturb gamma and beta away from 1 and 0 (so their use is actually tested) and, for eval
/// mode, give the running statistics realistic values with one train-mode forward.
fn prepare(net: &mut Mlp<f64>, x: &Array2<f64>, mode: Mode, seed: u64) {
    let mut k = seed as f64;
    for p in net.params_mut() {
        if matches!(
            p.id.kind,
            bn_lab::model::ParamKind::Gamma | bn_lab::model::ParamKind::Beta
        ) {
            for v in p.value {
                k += 1.0;
                *v += 0.3 * (k * 0.7).sin();
            }
        }
    }
    if mode == Mode::Eval {
        net.forward((x * 1.3).view(), Mode::Train).unwrap();
    }
}

/// Run one forward+backward of the model on `threads` threads and compare with the reference.
fn check(cfg: &NetConfig, batch: usize, mode: Mode, threads: usize, tol: f64) -> Vec<Array2<f64>> {
    let d = data::linear_teacher::<f64>(7, batch, cfg.d_in, cfg.d_out);
    let mut net = Mlp::<f64>::new(cfg, &mut data::rng(7, Stream::Weights));
    prepare(&mut net, &d.x, mode, 3);
    let blocks = ref_blocks(&net);
    let out = (net.out.w.clone(), net.out.b.clone());
    let r = reference(cfg, &blocks, (&out.0, &out.1), &d.x, &d.y, mode);

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let (o, dx) = pool.install(|| {
        let o = net.forward(d.x.view(), mode).unwrap().to_owned();
        let mut d_o = Array2::zeros(o.dim());
        ops::mse_loss(o.view(), d.y.view(), d_o.view_mut());
        let dx = net.backward_with_input_grad(d_o.view()).unwrap().to_owned();
        (o, dx)
    });
    let what = format!("{cfg:?} batch {batch} {mode:?} threads {threads}");
    assert!(rel_err(&o, &r.o, 1e-12) < tol, "output differs: {what}");
    for l in 0..=cfg.depth {
        let e = rel_err(&to_f64(net.hidden(l)), &r.hidden[l], 1e-12);
        assert!(e < tol, "h_{l} differs by {e:e}: {what}");
    }
    for l in 1..=cfg.depth {
        let e = rel_err(&net.activation_input(l), &r.act_input[l - 1], 1e-12);
        assert!(e < tol, "activation_input({l}) differs by {e:e}: {what}");
    }
    let e = rel_err(&dx, &r.dx, 1e-12);
    assert!(e < tol, "dL/dX differs by {e:e}: {what}");
    for (l, (&a, &b)) in net.grad_signal_norm.iter().zip(&r.signal).enumerate() {
        assert!(
            (a - b).abs() <= tol * a.abs().max(b.abs()),
            "grad_signal_norm[{l}] {a} vs {b}: {what}"
        );
    }
    for (blk, rr) in net.blocks.iter().zip(&r.running) {
        if let (Some(bn), Some((rm, rv))) = (&blk.bn, rr) {
            let e1 = rel_err(
                &row(&bn.running_mean).to_owned(),
                &row(rm).to_owned(),
                1e-12,
            );
            let e2 = rel_err(&row(&bn.running_var).to_owned(), &row(rv).to_owned(), 1e-12);
            assert!(e1 < tol && e2 < tol, "running statistics differ: {what}");
        }
    }
    // Gradients: a bias right before BatchNorm has a true gradient of 0, seen as rounding
    // noise in both (about 1e-16 * batch * |dz|), so norms are compared against a floor of
    // 1e-4 times the same layer's weight gradient (a wrong gradient would be ~1e4 times larger).
    let params = net.params_mut();
    assert_eq!(params.len(), r.grads.len(), "{what}");
    let mut grads = Vec::new();
    for (i, (p, g)) in params.iter().zip(&r.grads).enumerate() {
        let a = as_2d(p.grad.view());
        let floor = 1e-4 * weight_grad_norm(&r.grads, i);
        let e = rel_err(&a, g, floor.max(1e-14));
        assert!(e < tol, "{} differs by {e:e}: {what}", p.id);
        grads.push(a);
    }
    grads.push(dx);
    grads
}

/// Norm of the weight gradient of the layer that `grads[i]` belongs to (params_mut order:
/// weight, bias[, gamma, beta] per layer; weights are the 2-D tensors with more than one row).
fn weight_grad_norm(grads: &[Array2<f64>], i: usize) -> f64 {
    let w = (0..=i)
        .rev()
        .find(|&j| grads[j].nrows() > 1)
        .expect("a weight first");
    grads[w].mapv(|v| v * v).sum().sqrt()
}

fn net(act: Activation, bn: Option<NormConfig>, residual: bool) -> NetConfig {
    NetConfig {
        d_in: 12,
        width: 20,
        d_out: 3,
        depth: 4,
        act,
        init: Init::Xavier,
        norm: bn,
        residual,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    }
}

fn bn(affine: bool, placement: Placement) -> Option<NormConfig> {
    Some(NormConfig {
        kind: NormKind::Batch,
        affine,
        placement,
        ..NormConfig::default()
    })
}

fn ln(affine: bool, placement: Placement) -> Option<NormConfig> {
    Some(NormConfig {
        kind: NormKind::Layer,
        affine,
        placement,
        ..NormConfig::default()
    })
}

#[test]
fn optimised_gradients_match_reference_on_small_nets() {
    let bns = [
        None,
        bn(true, Placement::Pre),
        bn(false, Placement::Pre),
        bn(true, Placement::Post),
        bn(false, Placement::Post),
        ln(true, Placement::Pre),
        ln(false, Placement::Pre),
        ln(true, Placement::Post),
        ln(false, Placement::Post),
    ];
    for act in Activation::ALL {
        for b in bns {
            for residual in [false, true] {
                for mode in [Mode::Train, Mode::Eval] {
                    if b.is_none() && mode == Mode::Eval {
                        continue;
                    }
                    let mut cfg = net(act, b, residual);
                    check(&cfg, 7, mode, 1, 1e-10);
                    // Square first block: the skip connection starts at layer 1.
                    cfg.d_in = cfg.width;
                    check(&cfg, 9, mode, 1, 1e-10);
                    if residual {
                        // Balduzzi's beta-rescaled branch.
                        cfg.residual_scale = 0.3;
                        check(&cfg, 9, mode, 1, 1e-10);
                    }
                }
            }
        }
    }
}

#[test]
fn threads_split_work_without_changing_a_bit() {
    // Large enough that products and element-wise passes are split over threads.
    let batch = bn_lab::parallel::MIN_PARALLEL_ELEMS.div_ceil(144) + 16;
    for (act, b, residual) in [
        (Activation::Relu, None, false),
        (Activation::Tanh, bn(true, Placement::Pre), true),
        (Activation::Sigmoid, bn(true, Placement::Post), true),
        (Activation::LeakyRelu, bn(false, Placement::Post), false),
        (Activation::Relu, ln(true, Placement::Pre), true),
        (Activation::Tanh, ln(false, Placement::Pre), false),
        (Activation::Sigmoid, ln(true, Placement::Post), true),
        (Activation::Linear, ln(false, Placement::Post), false),
    ] {
        let cfg = NetConfig {
            d_in: 96,
            width: 144,
            d_out: 5,
            depth: 3,
            ..net(act, b, residual)
        };
        let one = check(&cfg, batch, Mode::Train, 1, 1e-10);
        let two = check(&cfg, batch, Mode::Train, 2, 1e-10);
        let three = check(&cfg, batch, Mode::Train, 3, 1e-10);
        assert_eq!(one, two, "1 vs 2 threads: {cfg:?}");
        assert_eq!(one, three, "1 vs 3 threads: {cfg:?}");
    }
}

#[test]
fn f32_model_matches_f64_reference_within_f32_rounding() {
    for b in [
        None,
        bn(true, Placement::Pre),
        bn(true, Placement::Post),
        ln(true, Placement::Pre),
        ln(true, Placement::Post),
    ] {
        let cfg = net(Activation::Tanh, b, true);
        let d = data::linear_teacher::<f64>(7, 16, cfg.d_in, cfg.d_out);
        let mut n64 = Mlp::<f64>::new(&cfg, &mut data::rng(7, Stream::Weights));
        let mut n32 = Mlp::<f32>::new(&cfg, &mut data::rng(7, Stream::Weights));
        // Same draws, rounded: start both from the f32 weights.
        for (p64, p32) in n64.params_mut().into_iter().zip(n32.params_mut()) {
            let mut v = p64.value;
            v.zip_mut_with(&p32.value, |a, &b| *a = b as f64);
        }
        let blocks = ref_blocks(&n64);
        let r = reference(
            &cfg,
            &blocks,
            (&n64.out.w, &n64.out.b),
            &d.x,
            &d.y,
            Mode::Train,
        );
        let x32 = d.x.mapv(|v| v as f32);
        let y32 = d.y.mapv(|v| v as f32);
        let o = n32.forward(x32.view(), Mode::Train).unwrap().to_owned();
        let mut d_o = Array2::zeros(o.dim());
        ops::mse_loss(o.view(), y32.view(), d_o.view_mut());
        n32.backward(d_o.view()).unwrap();
        assert!(rel_err(&to_f64(o.view()), &r.o, 1e-12) < 1e-5);
        for (i, (p, g)) in n32.params_mut().iter().zip(&r.grads).enumerate() {
            let a = as_2d(p.grad.mapv(|v| v as f64).view());
            let floor = 1e-3 * weight_grad_norm(&r.grads, i);
            let e = rel_err(&a, g, floor);
            assert!(e < 1e-4, "{} differs by {e:e} (f32)", p.id);
        }
    }
}
