//! A steady-state training step (forward, loss, backward) makes no heap allocation of its own:
//! every buffer is allocated by the first step and reused. The one exception is inside the
//! `matrixmultiply` crate, which allocates and frees a packing buffer in each matrix product;
//! those requests ask for SIMD alignment (16, 32 or 64 bytes on x86-64), which none of
//! bn-lab's buffers do (4 or 8), so the counting allocator below tells them apart.
//!
//! Which threads are counted. The step runs inside `pool.install`, so bn-lab code during the
//! step runs only on the threads of that pool: the worker that runs the step and the workers that
//! steal halves of its `rayon::join`s. The allocator counts an allocation when the step is under
//! way (`COUNTING`) *and* the allocating thread is one of those workers (the thread-local
//! `IN_STEP_POOL`, switched on and off on every worker of the pool by `rayon::broadcast` while
//! `COUNTING` is off). Anything bn-lab code allocates during the step is therefore counted, and
//! so is anything rayon allocates on those threads to run the step's work.
//!
//! What is not counted are other threads of the process that happen to allocate during the step.
//! Counting every thread made the test fail now and then (most often for the first net at 2
//! threads, more often under load), because of two things rayon and crossbeam do on threads that
//! run none of the step's work (backtraces recorded in the allocator showed exactly these):
//! - a worker of a freshly built pool that the OS starts late, after the warm-up steps: it
//!   allocates its FIFO job queue's first block (1520 bytes) in `WorkerThread::from`;
//! - a worker of the pool of the previous `count_steps` call, still exiting (dropping a
//!   `ThreadPool` does not wait for its threads): crossbeam-epoch's thread-local destructor
//!   (`Local::finalize`) moves its garbage bag onto the global queue (a 2072-byte node).
//!
//! The first no longer happens during the count at all: the broadcast that switches
//! `IN_STEP_POOL` on has to run on every worker, so each has started before counting begins. The
//! second happens on a thread that is not a worker of this pool and runs no bn-lab code. Work
//! bn-lab might hand to a thread outside the pool (a spawned thread, another pool) is still
//! caught: handing it over allocates on the handing thread, which is counted.
//!
//! One test per file: the allocator is the whole process's.

#![warn(clippy::too_many_lines)] // as in src/: no test function over 100 lines either

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bn_lab::config::{Activation, Init, NormConfig, NormKind, Placement};
use bn_lab::data::{self, Stream};
use bn_lab::model::{Mlp, Mode};
use bn_lab::optim::{Sgd, SgdConfig};
use bn_lab::spec::{NetConfig, StdBlock};
use bn_lab::{Float, ops};
use ndarray::Array2;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ORDINARY: AtomicUsize = AtomicUsize::new(0);
static SIMD_ALIGNED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread is a worker of the pool the counted steps run on. A `const` cell without
    /// destructor: readable from the allocator at any time, even while the thread exits.
    static IN_STEP_POOL: Cell<bool> = const { Cell::new(false) };
}

/// The step is under way and this thread may run its work.
fn counted() -> bool {
    COUNTING.load(Ordering::Relaxed) && IN_STEP_POOL.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            if layout.align() >= 16 {
                SIMD_ALIGNED.fetch_add(1, Ordering::Relaxed);
            } else {
                ORDINARY.fetch_add(1, Ordering::Relaxed);
            }
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ORDINARY.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (ordinary, SIMD-aligned) allocations of `steps` steady-state steps after two warm-up steps.
fn count_steps<T: Float>(
    cfg: &NetConfig,
    batch: usize,
    threads: usize,
    steps: usize,
) -> (usize, usize) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let d = data::linear_teacher::<T>(1, batch, cfg.d_in, cfg.d_out);
        let mut net = Mlp::<T>::new(cfg, &mut data::rng(1, Stream::Weights));
        let mut opt = Sgd::<T>::new(SgdConfig {
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 0.0,
            warmup_steps: 0,
        });
        let mut d_o = Array2::<T>::zeros((batch, cfg.d_out));
        let mut step = |net: &mut Mlp<T>, opt: &mut Sgd<T>| {
            let o = net.forward(d.x.view(), Mode::Train).unwrap();
            ops::mse_loss(o, d.y.view(), d_o.view_mut());
            net.backward(d_o.view()).unwrap();
            // The SGD update (with momentum) allocates nothing after its first step either.
            opt.step(net);
        };
        for _ in 0..2 {
            step(&mut net, &mut opt);
        }
        ORDINARY.store(0, Ordering::SeqCst);
        SIMD_ALIGNED.store(0, Ordering::SeqCst);
        // On every worker of this pool, the caller included; returns once all have run it.
        rayon::broadcast(|_| IN_STEP_POOL.set(true));
        for _ in 0..steps {
            COUNTING.store(true, Ordering::SeqCst);
            step(&mut net, &mut opt);
        }
        COUNTING.store(false, Ordering::SeqCst);
        rayon::broadcast(|_| IN_STEP_POOL.set(false));
        (
            ORDINARY.load(Ordering::SeqCst),
            SIMD_ALIGNED.load(Ordering::SeqCst),
        )
    })
}

#[test]
fn steady_state_forward_backward_allocates_nothing_of_its_own() {
    let nets = [
        (Activation::Relu, None, false),
        (
            Activation::Sigmoid,
            Some((NormKind::Batch, Placement::Pre)),
            false,
        ),
        (
            Activation::Tanh,
            Some((NormKind::Batch, Placement::Post)),
            true,
        ),
        (
            Activation::Relu,
            Some((NormKind::Layer, Placement::Pre)),
            true,
        ),
        (
            Activation::Tanh,
            Some((NormKind::Layer, Placement::Post)),
            false,
        ),
    ];
    let mut cfgs: Vec<NetConfig> = nets
        .into_iter()
        .map(|(act, bn, residual)| NetConfig {
            d_in: 64,
            width: 128,
            d_out: 4,
            depth: 4,
            act,
            init: Init::He,
            norm: bn.map(|(kind, placement)| NormConfig {
                kind,
                placement,
                ..NormConfig::default()
            }),
            residual,
            residual_scale: 1.0,
            block: None,
            skip_init: false,
        })
        .collect();
    // The standard blocks: their stream, gains and preact's first normaliser too.
    for (block, kind, skip_init) in [
        (StdBlock::Preact, Some(NormKind::Batch), false),
        (StdBlock::Preact, None, true),
        (StdBlock::Basic, Some(NormKind::Layer), true),
    ] {
        cfgs.push(NetConfig {
            act: Activation::Relu,
            norm: kind.map(|kind| NormConfig {
                kind,
                ..NormConfig::default()
            }),
            residual: false,
            block: Some(block),
            skip_init,
            ..cfgs[0].clone()
        });
    }
    for cfg in &cfgs {
        for threads in [1, 2] {
            let (ordinary, packing) = count_steps::<f32>(cfg, 256, threads, 3);
            assert_eq!(
                ordinary, 0,
                "{ordinary} allocations in 3 steady-state steps ({threads} threads, {cfg:?})"
            );
            if cfg!(target_arch = "x86_64") {
                // At least one packing buffer per product: not bn-lab's, but it shows the
                // counter sees the products at all.
                assert!(packing >= 3 * 3 * cfg.layers(), "{packing} packing buffers");
            }
            let (ordinary, _) = count_steps::<f64>(cfg, 256, threads, 3);
            assert_eq!(
                ordinary, 0,
                "f64: {ordinary} allocations ({threads} threads)"
            );
        }
    }
}
