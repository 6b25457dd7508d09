//! `bn-lab bench`: the time of one training step's forward+backward pass, and how close it
//! comes to the machine's matrix-multiply speed, measured on the spot.
//!
//! A step is `forward` (train mode) + MSE loss + `backward`, on a fixed batch, with all buffers
//! already allocated (warm-up steps run first). Its work is counted as the matrix products'
//! floating-point operations, `6 * batch * (number of weights)`: 2 FLOP per multiply-add and
//! three products per layer (`z = h W`, `dW = h^T dz`, `dh = dz W^T`), the convention PyTorch
//! comparisons use. Element-wise work (bias, BatchNorm, activation) is not counted, so the
//! GFLOP/s shown is what the whole step reaches on its matrix products' budget.

use std::time::Instant;

use ndarray::Array2;
use serde::Serialize;

use crate::config::Dtype;
use crate::data::{self, Stream};
use crate::experiment::ToolInfo;
use crate::float::Float;
use crate::model::{Mlp, Mode};
use crate::ops;
use crate::parallel;
use crate::spec::NetConfig;

/// A validated `bench` configuration.
#[derive(Clone, Debug, Serialize)]
pub struct BenchConfig {
    pub net: NetConfig,
    pub batch: usize,
    pub dtype: Dtype,
    /// Threads of the pool the steps run on.
    pub threads: usize,
    /// Timed steps; the median is reported.
    pub steps: usize,
    /// Untimed steps run first.
    pub warmup: usize,
    pub seed: u64,
    /// Side of the square matrix product timed for the ceiling.
    pub ceiling_size: usize,
}

/// Everything `bench` measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub tool: ToolInfo,
    pub config: BenchConfig,
    /// Median wall time of one forward+backward, in milliseconds.
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    /// Every timed step, in order, in milliseconds.
    pub step_ms: Vec<f64>,
    /// Matrix-product work of one step, `6 * batch * weights / 1e9`.
    pub gflop: f64,
    /// `gflop / median time`.
    pub gflops: f64,
    /// Best GFLOP/s of a `ceiling_size`^3 matrix product on the same threads, measured just before.
    pub ceiling_gflops: f64,
    /// `gflops / ceiling_gflops`.
    pub ceiling_share: f64,
    /// [`NetConfig::memory_estimate_bytes`] for this network and batch.
    pub memory_estimate_bytes: f64,
    pub num_params: usize,
}

/// Number of weights (entries of the weight matrices, not biases or BN parameters); a
/// standard block has two matrices.
pub fn num_weights(net: &NetConfig) -> usize {
    net.d_in * net.width + (net.layers() - 1) * net.width * net.width + net.width * net.d_out
}

/// `6 * batch * weights / 1e9`: matrix-product GFLOP of one forward+backward.
pub fn step_gflop(net: &NetConfig, batch: usize) -> f64 {
    6.0 * batch as f64 * num_weights(net) as f64 / 1e9
}

/// Run the benchmark on a pool of `cfg.threads` threads.
pub fn run(cfg: &BenchConfig) -> anyhow::Result<BenchReport> {
    parallel::with_threads(cfg.threads, || match cfg.dtype {
        Dtype::F32 => run_typed::<f32>(cfg),
        Dtype::F64 => run_typed::<f64>(cfg),
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

fn run_typed<T: Float>(cfg: &BenchConfig) -> BenchReport {
    let ceiling_gflops = matmul_ceiling::<T>(cfg.ceiling_size);
    let net_cfg = &cfg.net;
    let data = data::linear_teacher::<T>(cfg.seed, cfg.batch, net_cfg.d_in, net_cfg.d_out);
    let mut net = Mlp::<T>::new(net_cfg, &mut data::rng(cfg.seed, Stream::Weights));
    let mut d_o = Array2::<T>::zeros((cfg.batch, net_cfg.d_out));
    let mut step = |net: &mut Mlp<T>| {
        let o = net
            .forward(data.x.view(), Mode::Train)
            .expect("data is drawn with the config's shapes");
        ops::mse_loss(o, data.y.view(), d_o.view_mut());
        net.backward(d_o.view()).expect("forward ran just before");
    };
    for _ in 0..cfg.warmup {
        step(&mut net);
    }
    let step_ms: Vec<f64> = (0..cfg.steps)
        .map(|_| {
            let t = Instant::now();
            step(&mut net);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let median_ms = median(&step_ms);
    let gflop = step_gflop(net_cfg, cfg.batch);
    let gflops = gflop / (median_ms / 1e3);
    BenchReport {
        tool: ToolInfo::current(),
        config: cfg.clone(),
        median_ms,
        min_ms: step_ms.iter().copied().fold(f64::INFINITY, f64::min),
        max_ms: step_ms.iter().copied().fold(0.0, f64::max),
        step_ms,
        gflop,
        gflops,
        ceiling_gflops,
        ceiling_share: gflops / ceiling_gflops,
        memory_estimate_bytes: net_cfg.memory_estimate_bytes(cfg.batch, T::BYTES),
        num_params: net.num_params(),
    }
}

/// Best GFLOP/s of `c = a b` for `n x n` matrices through [`parallel::gemm`] on the current
/// pool: the fastest of repeated runs over about 0.2 s (after one untimed run).
pub fn matmul_ceiling<T: Float>(n: usize) -> f64 {
    let a = Array2::<T>::from_shape_fn((n, n), |(i, j)| T::of(((i * 7 + j * 3) % 11) as f64 - 5.0));
    let b = a.t().to_owned();
    let mut c = Array2::<T>::zeros((n, n));
    let flop = 2.0 * (n as f64).powi(3);
    let mut best = f64::INFINITY;
    parallel::gemm(T::one(), &a.view(), &b.view(), T::zero(), &mut c.view_mut());
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || (start.elapsed().as_secs_f64() < 0.2 && runs < 1000) {
        let t = Instant::now();
        parallel::gemm(T::one(), &a.view(), &b.view(), T::zero(), &mut c.view_mut());
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    flop / best / 1e9
}

/// A one-line description of the network, e.g. `depth 50, width 256, batch 256, relu, he init, BN on (pre, affine), f32`
/// (for standard blocks the depth counts blocks, and `preact blocks` follows).
pub fn describe(cfg: &BenchConfig) -> String {
    let n = &cfg.net;
    let bn = match &n.norm {
        None => "BN off".to_string(),
        Some(bn) => format!(
            "{} on ({}, {})",
            bn.kind.short(),
            bn.placement,
            if bn.affine { "affine" } else { "no affine" }
        ),
    };
    let mut s = format!(
        "depth {}, width {}, batch {}, {}, {} init, {bn}, {}",
        n.depth, n.width, cfg.batch, n.act, n.init, cfg.dtype
    );
    if let Some(r) = crate::spec::arch_label(n.residual, n.block, n.skip_init, n.residual_scale) {
        s.push_str(&format!(", {r}"));
    }
    s.push_str(&format!(
        ", {} thread{}",
        cfg.threads,
        if cfg.threads == 1 { "" } else { "s" }
    ));
    s
}

/// The stdout summary.
pub fn table(r: &BenchReport) -> String {
    let c = &r.config;
    format!(
        "bench: {}\n\
         forward+backward: median {:.2} ms (min {:.2}, max {:.2}) over {} steps after {} warm-up\n\
         matrix products:  {:.3} GFLOP per step -> {:.1} GFLOP/s\n\
         ceiling:          {:.1} GFLOP/s ({} {n}x{n}x{n} matrix product on {} thread{}, measured now) -> {:.0}% of it\n\
         memory estimate:  {} (parameters, gradients, cached activations, scratch, packing)\n",
        describe(c),
        r.median_ms,
        r.min_ms,
        r.max_ms,
        c.steps,
        c.warmup,
        r.gflop,
        r.gflops,
        r.ceiling_gflops,
        c.dtype,
        c.threads,
        if c.threads == 1 { "" } else { "s" },
        100.0 * r.ceiling_share,
        crate::config::human_bytes(r.memory_estimate_bytes),
        n = c.ceiling_size,
    )
}
