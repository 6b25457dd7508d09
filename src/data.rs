//! Seeded synthetic data and the random streams every experiment draws from.
//!
//! All randomness comes from ChaCha8 (rand_chacha), whose output stream is specified by the
//! algorithm and documented as portable, so a seed gives the same numbers on every platform and
//! crate version. Each use gets its own stream of the same seed, so changing one (say the data)
//! never shifts another (the weights).

use ndarray::{Array2, ArrayViewMut2, Axis};
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::StandardNormal;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::float::Float;
pub mod images;

/// Independent random streams of one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Data = 0,
    Weights = 1,
    Shuffle = 2,
    Directions = 3,
    Teacher = 4,
}

/// The generator for `stream` of `seed`.
pub fn rng(seed: u64, stream: Stream) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream as u64);
    r
}

/// A batch of inputs and regression targets.
#[derive(Clone, Debug)]
pub struct Batch<T> {
    /// `(n, d_in)`
    pub x: Array2<T>,
    /// `(n, d_out)`
    pub y: Array2<T>,
}

/// The linear-teacher regression task: `X ~ N(0, 1)` of shape `(n, d_in)`,
/// `T ~ N(0, 1/d_in)` of shape `(d_in, d_out)`, `Y = X T`. Drawn and multiplied in f64, then
/// rounded to `T`, so f32 and f64 runs see the same data.
pub fn linear_teacher<F: Float>(seed: u64, n: usize, d_in: usize, d_out: usize) -> Batch<F> {
    let mut r = rng(seed, Stream::Data);
    let x = Array2::<f64>::random_using((n, d_in), StandardNormal, &mut r);
    let teacher =
        Array2::<f64>::random_using((d_in, d_out), StandardNormal, &mut r) / (d_in as f64).sqrt();
    let y = x.dot(&teacher);
    Batch {
        x: x.mapv(F::of),
        y: y.mapv(F::of),
    }
}

/// A synthetic regression task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// `Y = X T` with `X ~ N(0, 1)`, `T ~ N(0, 1/d_in)`: a linear model fits it exactly.
    Linear,
    /// A 2-D target lifted to the input width: `u ~ N(0, I_2)`, `x = u P` with
    /// `P ~ N(0, 1/2)` of shape `(2, d_in)` (so each input has variance about 1), and
    /// `y_k = sin(3 u_1 + k pi / d_out) cos(2 u_2)` for output `k`. No linear model can fit it
    /// (its best linear fit explains almost none of the variance), so it needs non-linearity.
    Nonlinear,
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Task::Linear => "linear",
            Task::Nonlinear => "non-linear",
        })
    }
}

/// Train and test samples of one task; the same seed gives the same split.
#[derive(Clone, Debug)]
pub struct Dataset<T> {
    pub train: Batch<T>,
    pub test: Batch<T>,
}

/// Draw `n_train + n_test` samples of `task` from `seed` and split them.
pub fn make_task<F: Float>(
    task: Task,
    seed: u64,
    n_train: usize,
    n_test: usize,
    d_in: usize,
    d_out: usize,
) -> Dataset<F> {
    let n = n_train
        .checked_add(n_test)
        .expect("validated: n_train and n_test are at most limits::MAX_SAMPLES each");
    let all: Batch<f64> = match task {
        Task::Linear => linear_teacher(seed, n, d_in, d_out),
        Task::Nonlinear => {
            let mut r = rng(seed, Stream::Data);
            let u = Array2::<f64>::random_using((n, 2), StandardNormal, &mut r);
            let p =
                Array2::<f64>::random_using((2, d_in), StandardNormal, &mut r) * (0.5f64).sqrt();
            let x = u.dot(&p);
            let y = Array2::from_shape_fn((n, d_out), |(i, k)| {
                let phase = k as f64 * std::f64::consts::PI / d_out as f64;
                (3.0 * u[[i, 0]] + phase).sin() * (2.0 * u[[i, 1]]).cos()
            });
            Batch { x, y }
        }
    };
    let split =
        |a: &Array2<f64>, lo: usize, hi: usize| a.slice(ndarray::s![lo..hi, ..]).mapv(F::of);
    Dataset {
        train: Batch {
            x: split(&all.x, 0, n_train),
            y: split(&all.y, 0, n_train),
        },
        test: Batch {
            x: split(&all.x, n_train, n),
            y: split(&all.y, n_train, n),
        },
    }
}

/// Shuffled mini-batches without replacement: each epoch is a fresh permutation drawn from the
/// `Shuffle` stream of the seed. Rows are copied into caller-owned buffers (no allocation per step).
#[derive(Clone, Debug)]
pub struct Sampler {
    order: Vec<usize>,
    pos: usize,
    rng: rand_chacha::ChaCha8Rng,
}

impl Sampler {
    pub fn new(n: usize, seed: u64) -> Self {
        let mut s = Sampler {
            order: (0..n).collect(),
            pos: n,
            rng: rng(seed, Stream::Shuffle),
        };
        s.reshuffle();
        s
    }

    fn reshuffle(&mut self) {
        self.order.shuffle(&mut self.rng);
        self.pos = 0;
    }

    /// Fill `x: (batch, d_in)` and `y: (batch, d_out)` with the next `batch` samples of `data`.
    /// A batch never straddles two epochs: the tail of an epoch smaller than a batch is skipped.
    pub fn next_into<F: Float>(
        &mut self,
        data: &Batch<F>,
        mut x: ArrayViewMut2<F>,
        mut y: ArrayViewMut2<F>,
    ) {
        let batch = x.nrows();
        if self.pos + batch > self.order.len() {
            self.reshuffle();
        }
        for (k, &i) in self.order[self.pos..self.pos + batch].iter().enumerate() {
            x.row_mut(k).assign(&data.x.index_axis(Axis(0), i));
            y.row_mut(k).assign(&data.y.index_axis(Axis(0), i));
        }
        self.pos += batch;
    }
}
