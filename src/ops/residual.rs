//! Where a block's last pass writes its output `h_l`: the skip connection
//! `h = h_in + scale * branch` ([`Residual`]), written once here for every pass, and the
//! normaliser's scale and shift `y = gamma x_hat + beta` ([`Affine`]); and the sums of the
//! stream's gradient a pass that finishes it takes for the block below ([`NextHead`]).

use ndarray::{ArrayView2, ArrayViewMut2};

use super::{rows, rows_mut};
use crate::float::Float;
use crate::parallel::Cols;

/// A skip connection over a column block: `h = h_in + scale * branch`, `h_in, h: (N, c)`.
/// `scale` is 1 but for Balduzzi's beta-rescaled ResNets, and `1 * a` is `a` exactly.
#[derive(Debug)]
pub struct Residual<'a, T> {
    pub h_in: ArrayView2<'a, T>,
    pub h: ArrayViewMut2<'a, T>,
    pub scale: T,
}

/// Where a normaliser placed after the activation writes `y = gamma x_hat + beta`, `(N, c)`.
#[derive(Debug)]
pub enum HiddenOut<'a, T> {
    /// `h = y`.
    Plain(ArrayViewMut2<'a, T>),
    /// `h = h_in + scale * y`.
    Residual(Residual<'a, T>),
}

/// The sums a pre-activation block's head pass ([`super::stream_backward_head`] with `dy = du = dh`)
/// takes of the stream's gradient, taken instead by the pass that finishes that gradient (the
/// block above's first normaliser, adding its input gradient): per column, `sq += g^2` and
/// `db += g` (f64), row by row in the order the head pass takes them, so the sums are the same
/// bits and the head needs no pass of its own. Both `(c)`.
#[derive(Debug)]
pub struct NextHead<'a> {
    pub sq: &'a mut [f64],
    pub db: &'a mut [f64],
}

impl NextHead<'_> {
    /// Add one finished row of the stream's gradient.
    #[inline(always)]
    pub(super) fn add_row<T: Float>(&mut self, g: &[T]) {
        for ((q, b), &v) in self.sq.iter_mut().zip(self.db.iter_mut()).zip(g) {
            let v = v.f64();
            *q += v * v;
            *b += v;
        }
    }
}

impl Cols for NextHead<'_> {
    fn ncols(&self) -> usize {
        self.sq.len()
    }
    fn split(self, at: usize) -> (Self, Self) {
        let ((sq0, db0), (sq1, db1)) = (self.sq, self.db).split(at);
        (NextHead { sq: sq0, db: db0 }, NextHead { sq: sq1, db: db1 })
    }
}

/// The normaliser's per-unit scale and shift, `y = gamma * x_hat + beta`, both `(c)`.
#[derive(Clone, Copy, Debug)]
pub struct Affine<'a, T> {
    pub gamma: &'a [T],
    pub beta: &'a [T],
}

/// One row of a block's output: `h`, and `h_in` and `scale` with a skip connection.
pub(super) struct OutRow<'r, T> {
    h: &'r mut [T],
    h_in: Option<&'r [T]>,
    scale: T,
}

impl<T: Float> OutRow<'_, T> {
    /// `h = h_in + scale * branch` (the residual update), or `h = branch` without a skip.
    #[inline(always)]
    pub(super) fn write(self, branch: impl Iterator<Item = T>) {
        match self.h_in {
            Some(h_in) => {
                for ((h, &x), y) in self.h.iter_mut().zip(h_in).zip(branch) {
                    *h = self.scale * y + x;
                }
            }
            None => {
                for (h, y) in self.h.iter_mut().zip(branch) {
                    *h = y;
                }
            }
        }
    }
}

/// The rows of `h`, each with its row of `h_in` when given.
#[inline]
fn out_rows<'r, T: Float>(
    h: &'r mut ArrayViewMut2<'_, T>,
    h_in: Option<&'r ArrayView2<'_, T>>,
    scale: T,
) -> impl Iterator<Item = OutRow<'r, T>> + 'r {
    let mut h_in = h_in.map(|x| rows(x));
    rows_mut(h).map(move |h| OutRow {
        h,
        h_in: h_in.as_mut().map(|x| x.next().expect("same rows")),
        scale,
    })
}

impl<T: Float> Residual<'_, T> {
    /// Row by row, in step with the pass's other buffers.
    #[inline]
    pub(super) fn rows(&mut self) -> impl Iterator<Item = OutRow<'_, T>> + '_ {
        out_rows(&mut self.h, Some(&self.h_in), self.scale)
    }
}

impl<T: Float> HiddenOut<'_, T> {
    /// Row by row, in step with the pass's other buffers.
    #[inline]
    pub(super) fn rows(&mut self) -> impl Iterator<Item = OutRow<'_, T>> + '_ {
        match self {
            HiddenOut::Plain(h) => out_rows(h, None, T::one()),
            HiddenOut::Residual(r) => out_rows(&mut r.h, Some(&r.h_in), r.scale),
        }
    }
}

impl<T: Float> Cols for Residual<'_, T> {
    fn ncols(&self) -> usize {
        self.h.ncols()
    }
    fn split(self, at: usize) -> (Self, Self) {
        let scale = self.scale;
        let ((h_in0, h0), (h_in1, h1)) = (self.h_in, self.h).split(at);
        (
            Residual {
                h_in: h_in0,
                h: h0,
                scale,
            },
            Residual {
                h_in: h_in1,
                h: h1,
                scale,
            },
        )
    }
}

impl<T: Float> Cols for HiddenOut<'_, T> {
    fn ncols(&self) -> usize {
        match self {
            HiddenOut::Plain(h) => h.ncols(),
            HiddenOut::Residual(r) => r.ncols(),
        }
    }
    fn split(self, at: usize) -> (Self, Self) {
        match self {
            HiddenOut::Plain(h) => {
                let (l, r) = h.split(at);
                (HiddenOut::Plain(l), HiddenOut::Plain(r))
            }
            HiddenOut::Residual(res) => {
                let (l, r) = res.split(at);
                (HiddenOut::Residual(l), HiddenOut::Residual(r))
            }
        }
    }
}

impl<T: Sync> Cols for Affine<'_, T> {
    fn ncols(&self) -> usize {
        self.gamma.len()
    }
    fn split(self, at: usize) -> (Self, Self) {
        let ((g0, b0), (g1, b1)) = (self.gamma, self.beta).split(at);
        (
            Affine {
                gamma: g0,
                beta: b0,
            },
            Affine {
                gamma: g1,
                beta: b1,
            },
        )
    }
}
