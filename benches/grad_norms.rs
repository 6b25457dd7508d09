//! Where `bn-lab grad-norms --depth 50` (defaults: sigmoid, width 256, batch 256, BN off and
//! on) spends its time: the run (both arms' forward and backward passes and the theory), the
//! JSON, and each figure (drawing and PNG encoding). The whole process, with start-up and
//! file writes, is measured with `hyperfine` (see the README).
//!
//! `cargo bench --bench grad_norms`

use bn_lab::experiment::Experiment;
use bn_lab::experiment::grad_norms::GradNorms;
use bn_lab::plot::Figures;
use clap::Parser;
use criterion::{Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    let cli = bn_lab::cli::Cli::parse_from(["bn-lab", "grad-norms", "--depth", "50"]);
    let bn_lab::cli::Command::GradNorms(args) = cli.command else {
        unreachable!("grad-norms parses to grad-norms")
    };
    let cfg = bn_lab::experiment::ExperimentArgs::config(&args).unwrap();
    c.bench_function("grad-norms depth 50: run", |b| {
        b.iter(|| GradNorms::run(&cfg, &|_| {}))
    });
    let report = GradNorms::run(&cfg, &|_| {});
    c.bench_function("grad-norms depth 50: JSON", |b| {
        b.iter(|| serde_json::to_string_pretty(&report).expect("serialises"))
    });
    for fig in GradNorms::figures() {
        c.bench_function(&format!("grad-norms depth 50: {}", fig.file), |b| {
            b.iter(|| (fig.draw)(&report).expect("draws"))
        });
    }
}

criterion_group! {
    name = grad_norms_group;
    // No HTML plots: criterion's plotters backend needs system fonts this tool does not assume.
    config = Criterion::default().without_plots().sample_size(10);
    targets = benches
}
criterion_main!(grad_norms_group);
