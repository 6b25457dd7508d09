//! Noisy BN's noise ([`BnNoise`]): where it comes from and what one block applies.

use ndarray::{Array1, Array2, ArrayView2};
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::BnNoise;
use crate::float::Float;

/// Noisy BN's noise in one block ([`BnNoise`]): the per-sample scale `s` and shift `m` of the
/// current training step, `(batch, width)` each, and the means eval mode applies instead.
#[derive(Clone, Debug)]
pub struct BlockNoise<T> {
    pub s: Array2<T>,
    pub m: Array2<T>,
    /// `E[s] = (1 + scale) / 2` and `E[m] = 0` per unit, `(width)`.
    pub(super) mean_s: Array1<T>,
    pub(super) mean_m: Array1<T>,
    /// Whether the last forward applied `s, m` (train mode) or their means (eval mode).
    pub(super) sampled: bool,
}

impl<T: Float> BlockNoise<T> {
    /// The `(s, m)` of the last forward over `rows` samples.
    pub(super) fn last(&self, rows: usize) -> (ArrayView2<'_, T>, ArrayView2<'_, T>) {
        if self.sampled {
            (self.s.view(), self.m.view())
        } else {
            let w = self.mean_s.len();
            (
                self.mean_s.broadcast((rows, w)).expect("a row broadcasts"),
                self.mean_m.broadcast((rows, w)).expect("a row broadcasts"),
            )
        }
    }
}

/// Where noisy BN's noise comes from: its settings and generator, and whether the next
/// train-mode forward draws a new set ([`super::Mlp::resample_noise`]).
#[derive(Clone, Debug)]
pub(super) struct NoiseSource {
    pub(super) spec: BnNoise,
    pub(super) rng: ChaCha8Rng,
    pub(super) fresh: bool,
}

impl NoiseSource {
    /// One step's noise for one block, `s, m: (rows, width)`, in the order [`BnNoise`]
    /// documents: the per-unit shift and scale, then the per-sample jitter (none drawn when
    /// `jitter = 0`).
    pub(super) fn draw<T: Float>(&mut self, s: &mut Array2<T>, m: &mut Array2<T>) {
        let BnNoise {
            mean,
            scale,
            jitter,
        } = self.spec;
        let width = s.ncols();
        let mut mu = Vec::with_capacity(width);
        let mut sigma = Vec::with_capacity(width);
        for _ in 0..width {
            let u: f64 = self.rng.random();
            let v: f64 = self.rng.random();
            mu.push(mean * (2.0 * u - 1.0));
            sigma.push(1.0 + (scale - 1.0) * v);
        }
        for (mut s_row, mut m_row) in s.rows_mut().into_iter().zip(m.rows_mut()) {
            for ((s, m), (&sigma, &mu)) in s_row
                .iter_mut()
                .zip(m_row.iter_mut())
                .zip(sigma.iter().zip(&mu))
            {
                let (xi, zeta): (f64, f64) = if jitter == 0.0 {
                    (0.0, 0.0)
                } else {
                    (
                        StandardNormal.sample(&mut self.rng),
                        StandardNormal.sample(&mut self.rng),
                    )
                };
                *s = T::of(sigma * (1.0 + jitter * xi));
                *m = T::of(mu + jitter * zeta);
            }
        }
    }
}
