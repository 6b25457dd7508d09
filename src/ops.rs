//! Pure kernels: one forward/backward pair per operation, writing into buffers the
//! caller owns so that a training loop allocates nothing per step.
//!
//! Shapes are row-major `(batch, features)`. Reductions over the batch are
//! accumulated in `f64`.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Zip};

use crate::config::Activation;
use crate::float::Float;

// ---------------------------------------------------------------- linear

/// `z = x W + b`.
///
/// `x: (batch, fan_in)`, `w: (fan_in, fan_out)`, `b: (fan_out)`, `z: (batch, fan_out)`.
pub fn linear_forward<T: Float>(
    x: ArrayView2<T>,
    w: ArrayView2<T>,
    b: ArrayView1<T>,
    mut z: ArrayViewMut2<T>,
) {
    for mut row in z.rows_mut() {
        row.assign(&b);
    }
    general_mat_mul(T::one(), &x, &w, T::one(), &mut z);
}

/// Gradients of `z = x W + b` given `dz = dL/dz`:
/// `dW = x^T dz`, `db = sum_batch dz`, and, when `dx` is given, `dx = dz W^T + skip`
/// where `skip` is `dx`'s current content if `accumulate_dx` (a residual path) and 0 otherwise.
///
/// `x: (batch, fan_in)`, `w: (fan_in, fan_out)`, `dz: (batch, fan_out)`,
/// `dw: (fan_in, fan_out)`, `db: (fan_out)`, `dx: (batch, fan_in)`.
pub fn linear_backward<T: Float>(
    x: ArrayView2<T>,
    w: ArrayView2<T>,
    dz: ArrayView2<T>,
    mut dw: ArrayViewMut2<T>,
    db: ArrayViewMut1<T>,
    dx: Option<(ArrayViewMut2<T>, bool)>,
) {
    general_mat_mul(T::one(), &x.t(), &dz, T::zero(), &mut dw);
    sum_rows_into(dz, db);
    if let Some((mut dx, accumulate_dx)) = dx {
        let beta = if accumulate_dx { T::one() } else { T::zero() };
        general_mat_mul(T::one(), &dz, &w.t(), beta, &mut dx);
    }
}

/// `out[j] = sum_i m[i, j]`, accumulated in f64.
pub fn sum_rows_into<T: Float>(m: ArrayView2<T>, mut out: ArrayViewMut1<T>) {
    let mut acc = vec![0.0f64; m.ncols()];
    for row in m.rows() {
        for (a, &v) in acc.iter_mut().zip(row.iter()) {
            *a += v.f64();
        }
    }
    Zip::from(&mut out)
        .and(&ndarray::ArrayView1::from(&acc[..]))
        .for_each(|o, &a| *o = T::of(a));
}

// ----------------------------------------------------------- activations

/// Numerically stable logistic function.
#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// `act(x)` for one element.
#[inline(always)]
pub fn act_scalar<T: Float>(act: Activation, x: T) -> T {
    match act {
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Relu => {
            if x > T::zero() {
                x
            } else {
                T::zero()
            }
        }
        Activation::LeakyRelu => {
            if x > T::zero() {
                x
            } else {
                x * T::of(Activation::LEAKY_SLOPE)
            }
        }
        Activation::Linear => x,
    }
}

/// `act'(z)` written in terms of the output `a = act(z)`, so the forward pass need not keep `z`:
/// sigmoid' = a (1 - a), tanh' = 1 - a^2, (leaky) ReLU' = [a > 0] (or the slope), linear' = 1.
#[inline(always)]
pub fn act_grad_from_output<T: Float>(act: Activation, a: T) -> T {
    match act {
        Activation::Sigmoid => a * (T::one() - a),
        Activation::Tanh => T::one() - a * a,
        Activation::Relu => {
            if a > T::zero() {
                T::one()
            } else {
                T::zero()
            }
        }
        Activation::LeakyRelu => {
            if a > T::zero() {
                T::one()
            } else {
                T::of(Activation::LEAKY_SLOPE)
            }
        }
        Activation::Linear => T::one(),
    }
}

/// `z <- act(z)`, `z: (batch, n)`.
pub fn act_forward_inplace<T: Float>(act: Activation, mut z: ArrayViewMut2<T>) {
    if act != Activation::Linear {
        z.mapv_inplace(|v| act_scalar(act, v));
    }
}

/// `dz = da * act'(z)`, with `act'` read from the output `a`. All `(batch, n)`.
pub fn act_backward<T: Float>(
    act: Activation,
    a: ArrayView2<T>,
    da: ArrayView2<T>,
    mut dz: ArrayViewMut2<T>,
) {
    Zip::from(&mut dz)
        .and(&a)
        .and(&da)
        .for_each(|dz, &a, &da| *dz = da * act_grad_from_output(act, a));
}

/// `d <- d * act'(z)`, with `act'` read from the output `a`. Both `(batch, n)`.
pub fn act_backward_inplace<T: Float>(act: Activation, a: ArrayView2<T>, mut d: ArrayViewMut2<T>) {
    if act != Activation::Linear {
        Zip::from(&mut d)
            .and(&a)
            .for_each(|d, &a| *d *= act_grad_from_output(act, a));
    }
}

// ------------------------------------------------------------- batchnorm

/// Per-feature batch mean and biased variance `mean_j = 1/N sum_i x_ij`,
/// `var_j = 1/N sum_i (x_ij - mean_j)^2` (two passes, in f64). `x: (N, n)`; `mean, var: (n)`.
pub fn batch_mean_var<T: Float>(x: ArrayView2<T>, mean: &mut [f64], var: &mut [f64]) {
    let n_rows = x.nrows() as f64;
    mean.iter_mut().for_each(|m| *m = 0.0);
    var.iter_mut().for_each(|v| *v = 0.0);
    for row in x.rows() {
        for (m, &v) in mean.iter_mut().zip(row.iter()) {
            *m += v.f64();
        }
    }
    mean.iter_mut().for_each(|m| *m /= n_rows);
    for row in x.rows() {
        for ((s, &m), &v) in var.iter_mut().zip(mean.iter()).zip(row.iter()) {
            let d = v.f64() - m;
            *s += d * d;
        }
    }
    var.iter_mut().for_each(|v| *v /= n_rows);
}

/// `x_hat = (x - mean) * inv_std`, in place. `x: (N, n)`; `mean, inv_std: (n)`.
pub fn normalize_inplace<T: Float>(mut x: ArrayViewMut2<T>, mean: &[f64], inv_std: &[f64]) {
    for mut row in x.rows_mut() {
        for ((v, &m), &s) in row.iter_mut().zip(mean).zip(inv_std) {
            *v = T::of((v.f64() - m) * s);
        }
    }
}

/// `x_hat = (x - mean) * inv_std` into `out`. `x, out: (N, n)`; `mean, inv_std: (n)`.
pub fn normalize_into<T: Float>(
    x: ArrayView2<T>,
    mean: &[f64],
    inv_std: &[f64],
    mut out: ArrayViewMut2<T>,
) {
    for (mut o, x) in out.rows_mut().into_iter().zip(x.rows()) {
        for (((o, &x), &m), &s) in o.iter_mut().zip(x.iter()).zip(mean).zip(inv_std) {
            *o = T::of((x.f64() - m) * s);
        }
    }
}

/// Gradient of `x_hat = (x - mean_B(x)) / sqrt(var_B(x) + eps)` through the batch mean and
/// (biased) variance, in place: on entry `d = dL/dx_hat`, on exit `d = dL/dx`:
///
/// `dx = inv_std / N * (N dx_hat - sum_i dx_hat_i - x_hat * sum_i(dx_hat_i x_hat_i))`.
///
/// `x_hat, d: (N, n)`, `inv_std: (n)`; `sum_d, sum_dx: (n)` are scratch.
pub fn bn_backward_batch_stats_inplace<T: Float>(
    x_hat: ArrayView2<T>,
    inv_std: &[f64],
    mut d: ArrayViewMut2<T>,
    sum_d: &mut [f64],
    sum_d_xhat: &mut [f64],
) {
    let n_rows = x_hat.nrows() as f64;
    sum_d.iter_mut().for_each(|s| *s = 0.0);
    sum_d_xhat.iter_mut().for_each(|s| *s = 0.0);
    for (d, xh) in d.rows().into_iter().zip(x_hat.rows()) {
        for (((s, sx), &d), &xh) in sum_d
            .iter_mut()
            .zip(sum_d_xhat.iter_mut())
            .zip(d.iter())
            .zip(xh.iter())
        {
            *s += d.f64();
            *sx += d.f64() * xh.f64();
        }
    }
    for (mut d, xh) in d.rows_mut().into_iter().zip(x_hat.rows()) {
        for ((((d, &xh), &s), &sx), &is) in d
            .iter_mut()
            .zip(xh.iter())
            .zip(sum_d.iter())
            .zip(sum_d_xhat.iter())
            .zip(inv_std)
        {
            *d = T::of(is / n_rows * (n_rows * d.f64() - s - xh.f64() * sx));
        }
    }
}

/// Gradients of `y = gamma * x_hat + beta`: `dgamma = sum_i dy_i x_hat_i`, `dbeta = sum_i dy_i`
/// (accumulated in f64). `dy, x_hat: (N, n)`; `dgamma, dbeta: (n)`.
pub fn scale_shift_param_grads<T: Float>(
    dy: ArrayView2<T>,
    x_hat: ArrayView2<T>,
    mut dgamma: ArrayViewMut1<T>,
    mut dbeta: ArrayViewMut1<T>,
    acc_g: &mut [f64],
    acc_b: &mut [f64],
) {
    acc_g.iter_mut().for_each(|s| *s = 0.0);
    acc_b.iter_mut().for_each(|s| *s = 0.0);
    for (dy, xh) in dy.rows().into_iter().zip(x_hat.rows()) {
        for (((g, b), &dy), &xh) in acc_g
            .iter_mut()
            .zip(acc_b.iter_mut())
            .zip(dy.iter())
            .zip(xh.iter())
        {
            *g += dy.f64() * xh.f64();
            *b += dy.f64();
        }
    }
    for ((g, b), (&ag, &ab)) in dgamma
        .iter_mut()
        .zip(dbeta.iter_mut())
        .zip(acc_g.iter().zip(acc_b.iter()))
    {
        *g = T::of(ag);
        *b = T::of(ab);
    }
}

/// `d <- d * gamma` column-wise (`dL/dx_hat = gamma * dL/dy`). `d: (N, n)`, `gamma: (n)`.
pub fn scale_columns_inplace<T: Float>(mut d: ArrayViewMut2<T>, gamma: ArrayView1<T>) {
    for mut row in d.rows_mut() {
        row *= &gamma;
    }
}

/// `d <- d * s` column-wise with an f64 scale (BN backward in eval mode: `dx = dx_hat * inv_std`).
pub fn scale_columns_f64_inplace<T: Float>(mut d: ArrayViewMut2<T>, s: &[f64]) {
    for mut row in d.rows_mut() {
        for (v, &s) in row.iter_mut().zip(s) {
            *v = T::of(v.f64() * s);
        }
    }
}

// ------------------------------------------------------------------ loss

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

/// Column sums helper used by tests: `sum over axis 0` in f64.
pub fn column_sums_f64<T: Float>(m: ArrayView2<T>) -> Vec<f64> {
    m.map(|v| v.f64()).sum_axis(Axis(0)).to_vec()
}
