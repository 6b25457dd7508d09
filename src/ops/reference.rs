//! Readable reference pairs: one plain, slow, obviously-right forward/backward per operation,
//! in f64 (the shape of CS231n's `layers.py`). They are the oracle the fused kernels of
//! [`crate::ops`] are tested against, and are themselves checked against central finite
//! differences (`tests/suite/reference_kernels.rs`). The model never calls them.
//!
//! Each `*_forward` returns its output and a named cache; the matching `*_backward` takes the
//! upstream gradient and that cache and returns the gradients of every input. They allocate
//! freely and use whole-array ndarray operations, so that each line reads as the math.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use crate::config::Activation;

// ---------------------------------------------------------------- linear

/// What [`linear_backward`] needs from [`linear_forward`].
#[derive(Clone, Debug)]
pub struct LinearCache {
    /// `x: (batch, fan_in)`.
    pub x: Array2<f64>,
    /// `w: (fan_in, fan_out)`.
    pub w: Array2<f64>,
}

/// Gradients of `z = x W + b`.
#[derive(Clone, Debug)]
pub struct LinearGrads {
    /// `dx: (batch, fan_in)`.
    pub dx: Array2<f64>,
    /// `dw: (fan_in, fan_out)`.
    pub dw: Array2<f64>,
    /// `db: (fan_out)`.
    pub db: Array1<f64>,
}

/// `z = x W + b`.
///
/// `x: (batch, fan_in)`, `w: (fan_in, fan_out)`, `b: (fan_out)`; returns `z: (batch, fan_out)`.
pub fn linear_forward(
    x: ArrayView2<f64>,
    w: ArrayView2<f64>,
    b: ArrayView1<f64>,
) -> (Array2<f64>, LinearCache) {
    let z = x.dot(&w) + b;
    let cache = LinearCache {
        x: x.to_owned(),
        w: w.to_owned(),
    };
    (z, cache)
}

/// `dx = dz W^T`, `dW = x^T dz`, `db = sum_i dz_i`.
///
/// `dz: (batch, fan_out)`.
pub fn linear_backward(dz: ArrayView2<f64>, cache: &LinearCache) -> LinearGrads {
    LinearGrads {
        dx: dz.dot(&cache.w.t()),
        dw: cache.x.t().dot(&dz),
        db: dz.sum_axis(Axis(0)),
    }
}

// ----------------------------------------------------------- activations

/// What [`activation_backward`] needs from [`activation_forward`].
#[derive(Clone, Debug)]
pub struct ActivationCache {
    pub act: Activation,
    /// The input, `z: (batch, n)`.
    pub z: Array2<f64>,
}

/// `act(z)` for one element, written as the textbook formula.
pub fn activation(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Tanh => z.tanh(),
        Activation::Relu => z.max(0.0),
        Activation::LeakyRelu if z > 0.0 => z,
        Activation::LeakyRelu => Activation::LEAKY_SLOPE * z,
        Activation::Linear => z,
    }
}

/// `act'(z)` for one element, from the input `z` (the fused kernels read it from the output
/// `act(z)` instead, so the two are computed independently).
pub fn activation_grad(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-z).exp());
            s * (1.0 - s)
        }
        Activation::Tanh => 1.0 - z.tanh().powi(2),
        Activation::Relu if z > 0.0 => 1.0,
        Activation::Relu => 0.0,
        Activation::LeakyRelu if z > 0.0 => 1.0,
        Activation::LeakyRelu => Activation::LEAKY_SLOPE,
        Activation::Linear => 1.0,
    }
}

/// `a = act(z)`, element-wise.
///
/// `z: (batch, n)`; returns `a: (batch, n)`.
pub fn activation_forward(act: Activation, z: ArrayView2<f64>) -> (Array2<f64>, ActivationCache) {
    let a = z.mapv(|v| activation(act, v));
    let cache = ActivationCache {
        act,
        z: z.to_owned(),
    };
    (a, cache)
}

/// `dz = da * act'(z)`.
///
/// `da: (batch, n)`; returns `dz: (batch, n)`.
pub fn activation_backward(da: ArrayView2<f64>, cache: &ActivationCache) -> Array2<f64> {
    &da * &cache.z.mapv(|v| activation_grad(cache.act, v))
}

// ------------------------------------------------------------- batchnorm

/// What [`batchnorm_backward`] needs from [`batchnorm_forward`].
#[derive(Clone, Debug)]
pub struct BatchNormCache {
    /// `x - mean_B(x)`, `(batch, n)`.
    pub x_centered: Array2<f64>,
    /// `1 / sqrt(var_B(x) + eps)`, `(n)`.
    pub inv_std: Array1<f64>,
    /// `x_hat = (x - mean_B(x)) * inv_std`, `(batch, n)`.
    pub x_hat: Array2<f64>,
    /// The scale, `(n)`; `None` without scale/shift.
    pub gamma: Option<Array1<f64>>,
}

/// Gradients of BatchNorm's input and, with scale/shift, of its parameters.
#[derive(Clone, Debug)]
pub struct BatchNormGrads {
    /// `dx: (batch, n)`.
    pub dx: Array2<f64>,
    /// `dgamma, dbeta: (n)`; `None` without scale/shift.
    pub dgamma: Option<Array1<f64>>,
    pub dbeta: Option<Array1<f64>>,
}

/// BatchNorm in train mode (batch statistics, biased variance for normalising):
/// `y = gamma * (x - mean_B(x)) / sqrt(var_B(x) + eps) + beta`, with
/// `var_B(x) = mean_B((x - mean_B(x))^2)`, and `y = x_hat` without scale/shift.
///
/// `x: (batch, n)`, `affine = Some((gamma, beta))` with `gamma, beta: (n)`, or `None`;
/// returns `y: (batch, n)`.
pub fn batchnorm_forward(
    x: ArrayView2<f64>,
    affine: Option<(ArrayView1<f64>, ArrayView1<f64>)>,
    eps: f64,
) -> (Array2<f64>, BatchNormCache) {
    let mean = x.mean_axis(Axis(0)).expect("a batch has at least one row");
    let x_centered = &x - &mean;
    let var = x_centered
        .mapv(|v| v * v)
        .mean_axis(Axis(0))
        .expect("a batch has at least one row");
    let inv_std = var.mapv(|v| 1.0 / (v + eps).sqrt());
    let x_hat = &x_centered * &inv_std;
    let y = match affine {
        Some((gamma, beta)) => &x_hat * &gamma + beta,
        None => x_hat.clone(),
    };
    let cache = BatchNormCache {
        x_centered,
        inv_std,
        x_hat,
        gamma: affine.map(|(gamma, _)| gamma.to_owned()),
    };
    (y, cache)
}

/// Backward of [`batchnorm_forward`], one step of the chain rule per node of
/// `x -> mean -> x_centered -> var -> inv_std -> x_hat -> y` (N = batch, sums over the batch):
///
/// ```text
/// dgamma = sum_i dy_i x_hat_i          dbeta = sum_i dy_i          dx_hat = gamma dy
/// dinv_std = sum_i dx_hat_i x_centered_i                           dvar = -1/2 inv_std^3 dinv_std
/// dx_centered = dx_hat inv_std + 2/N x_centered dvar               dmean = -sum_i dx_centered_i
/// dx = dx_centered + dmean / N
/// ```
///
/// `dy: (batch, n)`.
pub fn batchnorm_backward(dy: ArrayView2<f64>, cache: &BatchNormCache) -> BatchNormGrads {
    let n = dy.nrows() as f64;
    let BatchNormCache {
        x_centered,
        inv_std,
        x_hat,
        gamma,
    } = cache;
    let (dgamma, dbeta, dx_hat) = match gamma {
        Some(gamma) => (
            Some((&dy * x_hat).sum_axis(Axis(0))),
            Some(dy.sum_axis(Axis(0))),
            &dy * gamma,
        ),
        None => (None, None, dy.to_owned()),
    };
    let dinv_std = (&dx_hat * x_centered).sum_axis(Axis(0));
    let dvar = -0.5 * &inv_std.mapv(|s| s.powi(3)) * &dinv_std;
    let dx_centered = &dx_hat * inv_std + &(x_centered * &dvar) * (2.0 / n);
    let dmean = -dx_centered.sum_axis(Axis(0));
    let dx = dx_centered + &(dmean / n);
    BatchNormGrads { dx, dgamma, dbeta }
}

// ------------------------------------------------------------- layernorm

/// What [`layernorm_backward`] needs from [`layernorm_forward`].
#[derive(Clone, Debug)]
pub struct LayerNormCache {
    /// The standardisation of `x^T` (`(n, batch)`: each sample is a column), as BatchNorm
    /// without scale/shift computes it.
    pub standardise: BatchNormCache,
    /// `x_hat: (batch, n)`, each row standardised over its units.
    pub x_hat: Array2<f64>,
    /// The scale, `(n)`; `None` without scale/shift.
    pub gamma: Option<Array1<f64>>,
}

/// LayerNorm (Ba et al. 2016): each *row* standardised over its `n` units with its own mean
/// and biased variance, then the per-unit `gamma * x_hat + beta`. Written as what it is:
/// BatchNorm's standardisation of the transpose (samples as columns), scale/shift per unit.
///
/// `x: (batch, n)`, `affine = Some((gamma, beta))` with `gamma, beta: (n)`, or `None`;
/// returns `y: (batch, n)`.
pub fn layernorm_forward(
    x: ArrayView2<f64>,
    affine: Option<(ArrayView1<f64>, ArrayView1<f64>)>,
    eps: f64,
) -> (Array2<f64>, LayerNormCache) {
    let (x_hat_t, standardise) = batchnorm_forward(x.t(), None, eps);
    let x_hat = x_hat_t.t().to_owned();
    let y = match affine {
        Some((gamma, beta)) => &x_hat * &gamma + beta,
        None => x_hat.clone(),
    };
    let cache = LayerNormCache {
        standardise,
        x_hat,
        gamma: affine.map(|(gamma, _)| gamma.to_owned()),
    };
    (y, cache)
}

/// Backward of [`layernorm_forward`]: `dgamma = sum_i dy_i x_hat_i`, `dbeta = sum_i dy_i`,
/// `dx_hat = gamma dy`, then [`batchnorm_backward`] of the transposed standardisation.
///
/// `dy: (batch, n)`.
pub fn layernorm_backward(dy: ArrayView2<f64>, cache: &LayerNormCache) -> BatchNormGrads {
    let (dgamma, dbeta, dx_hat) = match &cache.gamma {
        Some(gamma) => (
            Some((&dy * &cache.x_hat).sum_axis(Axis(0))),
            Some(dy.sum_axis(Axis(0))),
            &dy * gamma,
        ),
        None => (None, None, dy.to_owned()),
    };
    let dx_t = batchnorm_backward(dx_hat.t(), &cache.standardise).dx;
    BatchNormGrads {
        dx: dx_t.t().to_owned(),
        dgamma,
        dbeta,
    }
}

// ------------------------------------------------------------------ loss

/// What [`mse_backward`] needs from [`mse_forward`].
#[derive(Clone, Debug)]
pub struct MseCache {
    /// `o - y`, `(batch, d_out)`.
    pub residual: Array2<f64>,
}

/// `L = 1/(2N) sum_{i,k} (o_ik - y_ik)^2`, N = batch.
///
/// `o, y: (batch, d_out)`.
pub fn mse_forward(o: ArrayView2<f64>, y: ArrayView2<f64>) -> (f64, MseCache) {
    let n = o.nrows() as f64;
    let residual = &o - &y;
    let loss = residual.mapv(|r| r * r).sum() / (2.0 * n);
    (loss, MseCache { residual })
}

/// `dL/do = (o - y) / N`: the loss is the end of the graph, so there is no upstream gradient.
///
/// Returns `do: (batch, d_out)`.
pub fn mse_backward(cache: &MseCache) -> Array2<f64> {
    let n = cache.residual.nrows() as f64;
    &cache.residual / n
}

/// What [`ce_backward`] needs from [`ce_forward`].
#[derive(Clone, Debug)]
pub struct CeCache {
    /// `softmax(o)` per row, `(batch, classes)`.
    pub p: Array2<f64>,
    /// The targets, `(batch, classes)`.
    pub y: Array2<f64>,
}

/// Softmax cross-entropy `L = -1/N sum_{i,k} y_ik log p_ik`, `p_i = softmax(o_i)`, written the
/// long way: `p_ik = exp(o_ik - m_i) / sum_j exp(o_ij - m_i)` with `m_i = max_j o_ij` (the shift
/// cancels in the ratio and keeps every `exp` at most 1).
///
/// `o, y: (batch, classes)`; each row of `y` a distribution (one-hot for labels).
pub fn ce_forward(o: ArrayView2<f64>, y: ArrayView2<f64>) -> (f64, CeCache) {
    let n = o.nrows() as f64;
    let mut p = o.to_owned();
    for mut row in p.rows_mut() {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - m).exp());
        let z = row.sum();
        row /= z;
    }
    let loss = -(&y * &p.mapv(f64::ln))
        .iter()
        .filter(|v| !v.is_nan())
        .sum::<f64>()
        / n;
    (loss, CeCache { p, y: y.to_owned() })
}

/// `dL/do_ik = (p_ik sum_j y_ij - y_ik) / N` (`(p - y) / N` for one-hot rows): the softmax
/// Jacobian `diag(p) - p p^T` applied to `-y / p`.
///
/// Returns `do: (batch, classes)`.
pub fn ce_backward(cache: &CeCache) -> Array2<f64> {
    let n = cache.p.nrows() as f64;
    let y_sum = cache.y.sum_axis(Axis(1)).insert_axis(Axis(1));
    (&cache.p * &y_sum - &cache.y) / n
}
