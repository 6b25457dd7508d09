//! Seeded synthetic data and the random streams every experiment draws from.
//!
//! All randomness comes from ChaCha8 (rand_chacha), whose output stream is specified by the
//! algorithm and documented as portable, so a seed gives the same numbers on every platform and
//! crate version. Each use gets its own stream of the same seed, so changing one (say the data)
//! never shifts another (the weights).

use ndarray::Array2;
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::StandardNormal;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::float::Float;

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
