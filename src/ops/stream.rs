//! A pre-activation block's stream in the second layer's own buffer ([`stream_sum_in_place`]),
//! and the first backward pass of a standard residual block ([`stream_backward_head`]): the
//! stream's gradient turned into the identity path and the branch's gradient in one pass.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::activation::mul_act_grad_row_inplace;
use super::{rows, rows_mut};
use crate::config::Activation;
use crate::float::Float;
use crate::parallel::Cols;

/// A pre-activation block's last forward pass, in place: `z` (the second layer's `h W2`) becomes
/// the stream after the block, `h' = s (z + b) + h`, with the arithmetic of
/// [`super::bias_act_forward`] (identity activation) and a [`super::Residual`] write, so the bits
/// are the same; only the buffer differs. `z, h: (N, c)`; `b: (c)`. Compiled for AVX2 where the
/// CPU has it.
pub fn stream_sum_in_place<T: Float>(mut z: ArrayViewMut2<T>, b: &[T], h: ArrayView2<T>, s: T) {
    with_avx2!({
        for (z, h) in rows_mut(&mut z).zip(rows(&h)) {
            for ((v, &b), &x) in z.iter_mut().zip(b).zip(h) {
                *v = s * (*v + b) + x;
            }
        }
    })
}

/// Per-column f64 sums of [`stream_backward_head`], all `(c)`: `sq = sum_i dh^2`,
/// `dot = sum_i du y` (when `y` is given) and `db = sum_i dy` (when given).
#[derive(Debug)]
pub struct HeadSums<'a> {
    pub sq: &'a mut [f64],
    pub dot: &'a mut [f64],
    pub db: Option<&'a mut [f64]>,
}

/// The first backward pass of a standard residual block `h' = h + s y` (preact) or
/// `h' = act(h + s y)` (basic), one pass over `dh = dL/dh'`: `sq += dh^2`; `du = dh act'(h')` in
/// place (`post_act = (act, h')`, basic) or `du = dh` (preact); `dot += du y` when `y` is given
/// (SkipInit's gradient); the branch's `dy = s du` (`dy` not given: `s` is 1 and the branch reads
/// `du` itself); and `db += dy` when asked (the bias gradient of a second layer without
/// normaliser or activation, whose `dL/dz` is `dy` itself).
/// `dh, h', y, dy: (N, c)`. Compiled for AVX2 where the CPU has it.
pub fn stream_backward_head<T: Float>(
    post_act: Option<(Activation, ArrayView2<T>)>,
    mut dh: ArrayViewMut2<T>,
    y: Option<ArrayView2<T>>,
    (mut dy, s): (Option<ArrayViewMut2<T>>, T),
    sums: HeadSums,
) {
    let HeadSums { sq, dot, mut db } = sums;
    with_avx2!({
        let mut act_rows = post_act.as_ref().map(|(act, h)| (*act, rows(h)));
        let mut y_rows = y.as_ref().map(|y| rows(y));
        let mut dy_rows = dy.as_mut().map(|dy| rows_mut(dy));
        for d in rows_mut(&mut dh) {
            for (q, &v) in sq.iter_mut().zip(d.iter()) {
                *q += v.f64() * v.f64();
            }
            if let Some((act, h)) = act_rows.as_mut() {
                mul_act_grad_row_inplace(*act, d, h.next().expect("same rows"));
            }
            if let Some(y) = y_rows.as_mut() {
                for ((t, &v), &y) in dot
                    .iter_mut()
                    .zip(d.iter())
                    .zip(y.next().expect("same rows"))
                {
                    *t += v.f64() * y.f64();
                }
            }
            let dy: &[T] = match dy_rows.as_mut() {
                Some(dy_rows) => {
                    let dy = dy_rows.next().expect("same rows");
                    for (o, &v) in dy.iter_mut().zip(d.iter()) {
                        *o = s * v;
                    }
                    dy
                }
                None => &*d,
            };
            if let Some(db) = db.as_deref_mut() {
                for (b, &o) in db.iter_mut().zip(dy) {
                    *b += o.f64();
                }
            }
        }
    })
}

impl Cols for HeadSums<'_> {
    fn ncols(&self) -> usize {
        self.sq.len()
    }
    fn split(self, at: usize) -> (Self, Self) {
        let ((sq0, dot0, db0), (sq1, dot1, db1)) = (self.sq, self.dot, self.db).split(at);
        (
            HeadSums {
                sq: sq0,
                dot: dot0,
                db: db0,
            },
            HeadSums {
                sq: sq1,
                dot: dot1,
                db: db1,
            },
        )
    }
}
