//! Threads: the `--threads N` pool, and matrix products split over it.
//!
//! The model calls [`gemm`] for every matrix product. With more than one thread in the current
//! rayon pool, a large product is cut into blocks of whole output rows or columns, one per
//! thread, and each block is a full-depth `general_mat_mul` of its own: every output element is
//! still one dot product summed in the same order, so results do not depend on the thread count.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::float::Float;

/// Number of threads `--threads` means by default: every core this process may use.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many of `runs` independent runs the current thread pool runs side by side (at least 1):
/// what memory footprints multiply a run's networks by.
pub fn side_by_side(runs: usize) -> usize {
    rayon::current_num_threads().min(runs).max(1)
}

/// Run `f` on a rayon pool of `threads` threads (0 = [`available_threads`]); every parallel
/// kernel called inside uses that many threads.
pub fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> anyhow::Result<R> {
    let n = if threads == 0 {
        available_threads()
    } else {
        threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| anyhow::anyhow!("--threads {n}: cannot start the thread pool: {e}"))?;
    Ok(pool.install(f))
}

/// Products smaller than this many multiply-adds run on one thread (splitting costs more).
const MIN_PARALLEL_MACS: usize = 1 << 18;

/// `c = alpha a b + beta c`, split over the current rayon pool. `a: (m, k)`, `b: (k, n)`,
/// `c: (m, n)`.
pub fn gemm<T: Float>(
    alpha: T,
    a: &ArrayView2<T>,
    b: &ArrayView2<T>,
    beta: T,
    c: &mut ArrayViewMut2<T>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let threads = rayon::current_num_threads();
    if threads <= 1 || m * n * k < MIN_PARALLEL_MACS {
        general_mat_mul(alpha, a, b, beta, c);
        return;
    }
    // Split the longer output side; keep blocks a multiple of 16 (a whole AVX-512 f32 tile).
    let parts = threads.min(m.max(n).div_ceil(16));
    if m >= n {
        split_rows(alpha, a.view(), b, beta, c.view_mut(), parts);
    } else {
        split_cols(alpha, a, b.view(), beta, c.view_mut(), parts);
    }
}

fn chunk(len: usize, parts: usize) -> usize {
    len.div_ceil(parts).div_ceil(16) * 16
}

fn split_rows<T: Float>(
    alpha: T,
    a: ArrayView2<T>,
    b: &ArrayView2<T>,
    beta: T,
    c: ArrayViewMut2<T>,
    parts: usize,
) {
    if parts <= 1 || a.nrows() <= 16 {
        let mut c = c;
        general_mat_mul(alpha, &a, b, beta, &mut c);
        return;
    }
    let mid = chunk(a.nrows(), parts).min(a.nrows());
    let (a0, a1) = a.split_at(Axis(0), mid);
    let (c0, c1) = c.split_at(Axis(0), mid);
    rayon::join(
        || split_rows(alpha, a0, b, beta, c0, 1),
        || split_rows(alpha, a1, b, beta, c1, parts - 1),
    );
}

fn split_cols<T: Float>(
    alpha: T,
    a: &ArrayView2<T>,
    b: ArrayView2<T>,
    beta: T,
    c: ArrayViewMut2<T>,
    parts: usize,
) {
    if parts <= 1 || b.ncols() <= 16 {
        let mut c = c;
        general_mat_mul(alpha, a, &b, beta, &mut c);
        return;
    }
    let mid = chunk(b.ncols(), parts).min(b.ncols());
    let (b0, b1) = b.split_at(Axis(1), mid);
    let (c0, c1) = c.split_at(Axis(1), mid);
    rayon::join(
        || split_cols(alpha, a, b0, beta, c0, 1),
        || split_cols(alpha, a, b1, beta, c1, parts - 1),
    );
}

/// Arrays that share a column axis (`(rows, cols)` views, per-column slices), cut together into
/// disjoint column blocks so that threads can work on them without sharing anything.
/// Every kernel over such a bundle is column-local (element-wise work and per-column sums), so
/// the result is the same however the columns are cut.
pub trait Cols: Sized + Send {
    /// Number of columns (of the first member, for tuples).
    fn ncols(&self) -> usize;
    /// Columns `[0, at)` and `[at, ncols)`.
    fn split(self, at: usize) -> (Self, Self);
}

impl<T: Sync> Cols for ArrayView2<'_, T> {
    fn ncols(&self) -> usize {
        self.dim().1
    }
    fn split(self, at: usize) -> (Self, Self) {
        self.split_at(Axis(1), at)
    }
}

impl<T: Send> Cols for ArrayViewMut2<'_, T> {
    fn ncols(&self) -> usize {
        self.dim().1
    }
    fn split(self, at: usize) -> (Self, Self) {
        self.split_at(Axis(1), at)
    }
}

impl<T: Sync> Cols for &[T] {
    fn ncols(&self) -> usize {
        self.len()
    }
    fn split(self, at: usize) -> (Self, Self) {
        self.split_at(at)
    }
}

impl<T: Send> Cols for &mut [T] {
    fn ncols(&self) -> usize {
        self.len()
    }
    fn split(self, at: usize) -> (Self, Self) {
        self.split_at_mut(at)
    }
}

impl<C: Cols> Cols for Option<C> {
    fn ncols(&self) -> usize {
        self.as_ref().map_or(0, |c| c.ncols())
    }
    fn split(self, at: usize) -> (Self, Self) {
        match self {
            Some(c) => {
                let (l, r) = c.split(at);
                (Some(l), Some(r))
            }
            None => (None, None),
        }
    }
}

macro_rules! tuple_cols {
    ($($name:ident),+) => {
        impl<$($name: Cols),+> Cols for ($($name,)+) {
            fn ncols(&self) -> usize {
                self.0.ncols()
            }
            fn split(self, at: usize) -> (Self, Self) {
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $(
                    #[allow(non_snake_case)]
                    let $name = $name.split(at);
                )+
                (($($name.0,)+), ($($name.1,)+))
            }
        }
    };
}

tuple_cols!(A, B);
tuple_cols!(A, B, C);
tuple_cols!(A, B, C, D);
tuple_cols!(A, B, C, D, E);
tuple_cols!(A, B, C, D, E, F);
tuple_cols!(A, B, C, D, E, F, G);
tuple_cols!(A, B, C, D, E, F, G, H);

/// Element-wise passes smaller than this many elements run on one thread. They are
/// memory-bound, and waking a second thread for each costs more than it saves below about a
/// million bytes of f32: on 2 cores, a depth-50 width-256 batch-256 BatchNorm step (65,536
/// elements per pass) took 37.4 ms with its passes on one thread against 41.1 ms split at 2^15
/// (`benches/preact_cost.py`, medians of 5 rounds); at width 1024 (2^18 elements per pass) the
/// split was about 2% faster. The results are the same bits either way (every pass is
/// column-local).
pub const MIN_PARALLEL_ELEMS: usize = 1 << 18;

/// Run `f` over `bundle` (`rows` rows), cut into one column block per thread of the current
/// rayon pool when the pass is large enough. Blocks are multiples of 16 columns.
pub fn par_cols<C: Cols>(bundle: C, rows: usize, f: &(impl Fn(C) + Sync)) {
    let n = bundle.ncols();
    let threads = rayon::current_num_threads();
    let parts = if threads <= 1 || rows * n < MIN_PARALLEL_ELEMS {
        1
    } else {
        threads.min(n / 16).max(1)
    };
    run_parts(bundle, parts, f);
}

fn run_parts<C: Cols>(bundle: C, parts: usize, f: &(impl Fn(C) + Sync)) {
    if parts <= 1 {
        f(bundle);
        return;
    }
    let n = bundle.ncols();
    let mid = chunk(n, parts).min(n);
    let (left, right) = bundle.split(mid);
    rayon::join(|| f(left), || run_parts(right, parts - 1, f));
}
