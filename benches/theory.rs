//! What the mean-field predictions cost: `lambda(B)` from the sphere law (one- and
//! two-dimensional quadrature) and the no-BN variance map of a depth-50 network, the work
//! `grad-norms --depth 50` adds to its run for its two arms.
//!
//! `cargo bench --bench theory`

use bn_lab::config::{Activation, Init};
use bn_lab::spec::NetConfig;
use bn_lab::theory;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    for (act, b) in [(Activation::Tanh, 256), (Activation::Relu, 8)] {
        c.bench_function(&format!("lambda(B={b}) {act}"), |bench| {
            bench.iter(|| theory::bn_rate(black_box(act), black_box(b)))
        });
    }
    let net = NetConfig {
        d_in: 256,
        width: 256,
        d_out: 10,
        depth: 50,
        act: Activation::Tanh,
        init: Init::Xavier,
        norm: None,
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    };
    c.bench_function("variance map, tanh, depth 50", |bench| {
        bench.iter(|| theory::variance_map(black_box(&net), 1.0))
    });
}

criterion_group! {
    name = theory_group;
    // No HTML plots: criterion's plotters backend needs system fonts this tool does not assume.
    config = Criterion::default().without_plots().sample_size(20);
    targets = benches
}
criterion_main!(theory_group);
