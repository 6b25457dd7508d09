//! The linear layer `z = x W + b` and its gradients. The matrix products go through
//! [`crate::parallel::gemm`], that is ndarray's `general_mat_mul`, which runs on `matrixmultiply`'s
//! kernels; bn-lab lists that crate in Cargo.toml only to turn on its AVX-512 kernels.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::float::Float;
use crate::parallel::gemm;

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
    gemm(T::one(), &x, &w, T::one(), &mut z);
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
    gemm(T::one(), &x.t(), &dz, T::zero(), &mut dw);
    sum_rows_into(dz, db);
    if let Some((mut dx, accumulate_dx)) = dx {
        let beta = if accumulate_dx { T::one() } else { T::zero() };
        gemm(T::one(), &dz, &w.t(), beta, &mut dx);
    }
}

/// `out[j] = sum_i m[i, j]`, accumulated in f64 (in blocks of columns on the stack: no allocation).
fn sum_rows_into<T: Float>(m: ArrayView2<T>, mut out: ArrayViewMut1<T>) {
    const BLOCK: usize = 64;
    let n = m.ncols();
    let mut acc = [0.0f64; BLOCK];
    for c0 in (0..n).step_by(BLOCK) {
        let c1 = (c0 + BLOCK).min(n);
        let acc = &mut acc[..c1 - c0];
        acc.fill(0.0);
        for row in m.slice(ndarray::s![.., c0..c1]).rows() {
            for (a, &v) in acc.iter_mut().zip(row.iter()) {
                *a += v.f64();
            }
        }
        for (o, &a) in out
            .slice_mut(ndarray::s![c0..c1])
            .iter_mut()
            .zip(acc.iter())
        {
            *o = T::of(a);
        }
    }
}
