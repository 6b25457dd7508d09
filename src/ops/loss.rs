//! The losses: MSE and softmax cross-entropy, each with its gradient `dL/do` into a buffer or
//! as a value alone, [`Loss`]'s dispatch to them, and classification accuracy.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use crate::config::Loss;
use crate::float::Float;

impl Loss {
    /// The loss of outputs `o` against targets `y` (both `(N, d_out)`), with `dL/do` in `d_o`.
    pub fn loss_and_grad<T: Float>(
        self,
        o: ArrayView2<T>,
        y: ArrayView2<T>,
        d_o: ArrayViewMut2<T>,
    ) -> f64 {
        match self {
            Loss::Mse => mse_loss(o, y, d_o),
            Loss::Ce => ce_loss(o, y, d_o),
        }
    }

    /// The loss alone.
    pub fn value<T: Float>(self, o: ArrayView2<T>, y: ArrayView2<T>) -> f64 {
        match self {
            Loss::Mse => mse_loss_value(o, y),
            Loss::Ce => ce_loss_value(o, y),
        }
    }
}

/// `L = 1/(2N) sum_{i,k} (o_ik - y_ik)^2` (the diary's 1/2 (O - Y)^2 averaged over the batch)
/// and `dL/do = (o - y) / N` written into `d_o`. `o, y, d_o: (N, d_out)`. The loss is summed in f64.
pub fn mse_loss<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>, mut d_o: ArrayViewMut2<T>) -> f64 {
    let n = o.nrows() as f64;
    let inv_n = T::of(1.0 / n);
    let mut sum = 0.0f64;
    Zip::from(&mut d_o).and(&o).and(&y).for_each(|d, &o, &y| {
        let r = o - y;
        sum += r.f64() * r.f64();
        *d = r * inv_n;
    });
    0.5 * sum / n
}

/// The loss alone, in f64, without a gradient buffer.
pub fn mse_loss_value<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>) -> f64 {
    let n = o.nrows() as f64;
    let mut sum = 0.0f64;
    Zip::from(&o).and(&y).for_each(|&o, &y| {
        let r = o.f64() - y.f64();
        sum += r * r;
    });
    0.5 * sum / n
}

/// Softmax cross-entropy, `L = -1/N sum_i sum_k y_ik log softmax(o_i)_k` with
/// `log softmax(o_i)_k = o_ik - m_i - log sum_j exp(o_ij - m_i)`, `m_i = max_j o_ij` (the
/// log-sum-exp shift: no `exp` overflows, and the largest term is exactly 1), and
/// `dL/do_ik = (softmax(o_i)_k sum_j y_ij - y_ik) / N` (`softmax - y` for one-hot rows) written
/// into `d_o`. `o, y, d_o: (N, classes)`; `y` holds target distributions (one-hot labels).
/// Computed per row in f64. A row with an inf or NaN logit has a NaN loss (a divergence).
pub fn ce_loss<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>, mut d_o: ArrayViewMut2<T>) -> f64 {
    let n = o.nrows() as f64;
    let mut sum = 0.0f64;
    for ((o, y), mut d) in o.rows().into_iter().zip(y.rows()).zip(d_o.rows_mut()) {
        let row = ce_row(o, y);
        sum += row.loss;
        let scale = row.y_sum / row.z;
        for ((d, &o), &y) in d.iter_mut().zip(o.iter()).zip(y.iter()) {
            *d = T::of(((o.f64() - row.max).exp() * scale - y.f64()) / n);
        }
    }
    sum / n
}

/// The cross-entropy alone, in f64, without a gradient buffer.
pub fn ce_loss_value<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>) -> f64 {
    let n = o.nrows() as f64;
    let sum: f64 = o
        .rows()
        .into_iter()
        .zip(y.rows())
        .map(|(o, y)| ce_row(o, y).loss)
        .sum();
    sum / n
}

/// One row's cross-entropy with the shift `max` and `z = sum_j exp(o_j - max)` its gradient reuses.
struct CeRow {
    loss: f64,
    max: f64,
    z: f64,
    y_sum: f64,
}

fn ce_row<T: Float>(o: ndarray::ArrayView1<T>, y: ndarray::ArrayView1<T>) -> CeRow {
    let max = o.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v.f64()));
    let z: f64 = o.iter().map(|&v| (v.f64() - max).exp()).sum();
    let log_z = max + z.ln();
    let (mut loss, mut y_sum) = (0.0, 0.0);
    for (&o, &y) in o.iter().zip(y.iter()) {
        let y = y.f64();
        if y != 0.0 {
            loss -= y * (o.f64() - log_z);
        }
        y_sum += y;
    }
    // f64::max ignores NaN: a NaN logit must still make the loss NaN.
    if o.iter().any(|v| v.f64().is_nan()) {
        loss = f64::NAN;
    }
    CeRow {
        loss,
        max,
        z,
        y_sum,
    }
}

/// Share of rows whose largest output is at the target's class (`y`'s largest entry, i.e. the
/// label of a one-hot row). A row with a NaN output counts as wrong; ties go to the first index.
pub fn accuracy<T: Float>(o: ArrayView2<T>, y: ArrayView2<T>) -> f64 {
    let n = o.nrows();
    if n == 0 {
        return f64::NAN;
    }
    let correct = o
        .rows()
        .into_iter()
        .zip(y.rows())
        .filter(|(o, y)| !o.iter().any(|v| v.f64().is_nan()) && argmax(*o) == argmax(*y))
        .count();
    correct as f64 / n as f64
}

/// Index of the first largest entry.
pub fn argmax<T: Float>(v: ndarray::ArrayView1<T>) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x.f64() > v[best].f64() {
            best = i;
        }
    }
    best
}
