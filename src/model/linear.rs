//! The linear layer `z = h_in W + b`: its parameters, their initialisation and its gradients.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2};
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use rand::Rng;

use crate::config::Init;
use crate::float::Float;
use crate::parallel::gemm;

/// `z = x W + b` with its gradients. `w, dw: (fan_in, fan_out)`; `b, db: (fan_out)`.
#[derive(Clone, Debug)]
pub struct Linear<T> {
    pub w: Array2<T>,
    pub b: Array1<T>,
    pub dw: Array2<T>,
    pub db: Array1<T>,
}

impl<T: Float> Linear<T> {
    /// Weights `N(0, init.std(fan_in, fan_out)^2)` drawn in f64 (so an f32 and an f64 net from
    /// the same seed hold the same numbers up to rounding), biases 0.
    pub fn new<R: Rng>(fan_in: usize, fan_out: usize, init: Init, rng: &mut R) -> Self {
        let std = init.std(fan_in, fan_out);
        // Row-major draws, as `Array2::<f64>::random_using(..).mapv(..)` would make them.
        let w = Array2::from_shape_simple_fn((fan_in, fan_out), || {
            let v: f64 = StandardNormal.sample(rng);
            T::of(v * std)
        });
        Linear {
            w,
            b: Array1::zeros(fan_out),
            dw: Array2::zeros((fan_in, fan_out)),
            db: Array1::zeros(fan_out),
        }
    }
}

impl<T: Float> Linear<T> {
    /// The identity `z = h_in` on `n` units: no matrix (`w` and `dw` are empty) and a bias of
    /// zeros that no optimiser sees. It stands where a block has a normaliser and activation but
    /// no matrix of its own (the first half of a pre-activation block).
    pub fn identity(n: usize) -> Self {
        Linear {
            w: Array2::zeros((0, 0)),
            b: Array1::zeros(n),
            dw: Array2::zeros((0, 0)),
            db: Array1::zeros(n),
        }
    }

    /// Whether this is [`Linear::identity`].
    pub fn is_identity(&self) -> bool {
        self.w.is_empty()
    }

    /// Output units.
    pub fn fan_out(&self) -> usize {
        self.b.len()
    }

    /// Gradients of `z = h_in W + b` given `dz = dL/dz / scale`: `db = scale * db_sums` (the f64
    /// column sums of `dz` that the last backward pass accumulated), `dW = scale h_in^T dz`, and,
    /// when `dh_in` is given, `dh_in = scale dz W^T`, added to the identity path already written
    /// there if `skip`. `h_in, dh_in: (batch, fan_in)`, `dz: (batch, fan_out)`, `db_sums: (fan_out)`.
    pub(super) fn backward(
        &mut self,
        h_in: ArrayView2<T>,
        dz: ArrayView2<T>,
        dh_in: Option<ArrayViewMut2<T>>,
        skip: bool,
        scale: T,
        db_sums: &[f64],
    ) {
        let k = scale.f64();
        for (db, &s) in self.db.iter_mut().zip(db_sums) {
            *db = T::of(k * s);
        }
        if self.is_identity() {
            if let Some(mut d) = dh_in {
                if skip {
                    d.zip_mut_with(&dz, |d, &g| *d += scale * g);
                } else {
                    d.zip_mut_with(&dz, |d, &g| *d = scale * g);
                }
            }
            return;
        }
        gemm(scale, &h_in.t(), &dz, T::zero(), &mut self.dw.view_mut());
        if let Some(mut d) = dh_in {
            let beta = if skip { T::one() } else { T::zero() };
            gemm(scale, &dz, &self.w.t(), beta, &mut d);
        }
    }
}
