//! `cargo bench`: one training step's forward+backward (forward in train mode, MSE loss,
//! backward) of the network, depth 50, width 256, batch 256, ReLU, He init, f32/f64,
//! BatchNorm off/on and LayerNorm, and noisy BN (f32; a new draw of its noise every step, as in
//! training); and the matrix-multiply ceiling `bn-lab bench` compares against.
//!
//! Ids: `fwd_bwd/{f32,f64}/{bn_off,bn_on,ln}/d50_w256_b256/t{threads}` and
//! `fwd_bwd/f32/noisy_bn/d50_w256_b256/t{threads}`, the pre-activation ResNet of half the depth
//! in blocks (two matrices each, so about the same matrix-product work: issue 31 wants it within
//! 10% of the plain net) `fwd_bwd/f32/preact_{bn_off,bn_on}/d25_w256_b256/t{threads}`, then a printed
//! `ceiling/t{threads}` line (best GFLOP/s of 512^3 products), and the two losses alone on a
//! batch of 256 x 10 outputs, `loss/{mse,ce}/b256_k10` (f32). Thread counts come from
//! `BN_LAB_BENCH_THREADS` (comma-separated, default `1,2`), e.g.
//! `BN_LAB_BENCH_THREADS=1 cargo bench`. Filter as usual: `cargo bench -- fwd_bwd/f32`.

use std::hint::black_box;
use std::time::Duration;

use bn_lab::config::{Activation, BnNoise, Init, NormConfig, NormKind};
use bn_lab::data::{self, Stream};
use bn_lab::experiment::bench::matmul_ceiling;
use bn_lab::model::{Mlp, Mode};
use bn_lab::spec::{NetConfig, StdBlock};
use bn_lab::{Float, ops};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;

const DEPTH: usize = 50;
const WIDTH: usize = 256;
const BATCH: usize = 256;

fn threads() -> Vec<usize> {
    let s = std::env::var("BN_LAB_BENCH_THREADS").unwrap_or_else(|_| "1,2".into());
    s.split(',')
        .map(|t| {
            t.trim()
                .parse()
                .expect("BN_LAB_BENCH_THREADS: comma-separated thread counts, e.g. 1,2")
        })
        .collect()
}

fn fwd_bwd<T: Float>(
    c: &mut Criterion,
    norm: Option<NormKind>,
    noise: Option<BnNoise>,
    threads: usize,
    block: Option<StdBlock>,
) {
    let cfg = NetConfig {
        d_in: WIDTH,
        width: WIDTH,
        d_out: 10,
        depth: if block.is_some() { DEPTH / 2 } else { DEPTH },
        act: Activation::Relu,
        init: Init::He,
        norm: norm.map(|kind| NormConfig {
            kind,
            ..NormConfig::default()
        }),
        residual: false,
        residual_scale: 1.0,
        block,
        skip_init: false,
    };
    let d = data::linear_teacher::<T>(0, BATCH, cfg.d_in, cfg.d_out);
    let mut net = Mlp::<T>::new(&cfg, &mut data::rng(0, Stream::Weights));
    if let Some(n) = noise {
        net.set_bn_noise(n, data::rng(0, Stream::Noise))
            .expect("BN before the activation");
    }
    let mut d_o = Array2::<T>::zeros((BATCH, cfg.d_out));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let id = format!(
        "fwd_bwd/{}/{}{}/d{}_w{WIDTH}_b{BATCH}/t{threads}",
        T::NAME,
        if block.is_some() { "preact_" } else { "" },
        match (norm, noise) {
            (_, Some(_)) => "noisy_bn",
            (None, _) => "bn_off",
            (Some(NormKind::Batch), _) => "bn_on",
            (Some(NormKind::Layer), _) => "ln",
        },
        cfg.depth,
    );
    // Each step runs on the pool (criterion itself stays on this thread); entering the pool
    // costs microseconds against steps of tens of milliseconds.
    c.bench_function(&id, |b| {
        b.iter(|| {
            pool.install(|| {
                net.resample_noise();
                let o = net.forward(black_box(d.x.view()), Mode::Train).unwrap();
                ops::mse_loss(o, d.y.view(), d_o.view_mut());
                net.backward(d_o.view()).unwrap();
                black_box(&net.grad_signal_norm);
            })
        })
    });
}

/// The loss and its gradient alone: cross-entropy's per-row log-sum-exp against MSE.
fn losses(c: &mut Criterion) {
    let d = data::teacher_batch::<f32>(bn_lab::config::Loss::Ce, 0, BATCH, 10, 10);
    let o = d.x.clone();
    let mut d_o = Array2::<f32>::zeros(o.dim());
    for loss in [bn_lab::config::Loss::Mse, bn_lab::config::Loss::Ce] {
        c.bench_function(&format!("loss/{loss}/b{BATCH}_k10"), |b| {
            b.iter(|| {
                black_box(loss.loss_and_grad(black_box(o.view()), d.y.view(), d_o.view_mut()))
            })
        });
    }
}

fn benches(c: &mut Criterion) {
    losses(c);
    for t in threads() {
        for norm in [None, Some(NormKind::Batch), Some(NormKind::Layer)] {
            fwd_bwd::<f32>(c, norm, None, t, None);
            fwd_bwd::<f64>(c, norm, None, t, None);
        }
        for norm in [None, Some(NormKind::Batch)] {
            fwd_bwd::<f32>(c, norm, None, t, Some(StdBlock::Preact));
        }
        let noise = BnNoise {
            mean: 1.0,
            scale: 2.0,
            jitter: 0.1,
        };
        fwd_bwd::<f32>(c, Some(NormKind::Batch), Some(noise), t, None);
    }
    // The ceiling as `bn-lab bench` measures it (best of repeated 512^3 products).
    for t in threads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .expect("thread pool");
        pool.install(|| {
            let gf32 = matmul_ceiling::<f32>(512);
            let gf64 = matmul_ceiling::<f64>(512);
            println!(
                "ceiling/t{t}: f32 {gf32:.1} GFLOP/s, f64 {gf64:.1} GFLOP/s (512^3, best of ~0.2 s)"
            );
        });
    }
}

criterion_group! {
    name = fwd_bwd_group;
    // No HTML plots: criterion's plotters backend needs system fonts this tool does not assume.
    config = Criterion::default()
        .without_plots()
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(fwd_bwd_group);
