//! The normaliser of a block, [`NormLayer`] (BatchNorm or LayerNorm): its parameters, the
//! statistics of a forward (batch or running) and the backward through it.

use ndarray::{Array1, ArrayView2};

use super::passes::{
    BackwardBufs, BlockCache, ColScratch, bn_apply_pass, bn_sums_pass, ln_apply_pass,
};
use crate::config::{Activation, NormConfig, NormKind, Placement};
use crate::float::Float;
use crate::ops::{self, Affine, BnCoeffs, XHat};
use crate::parallel::par_cols;

/// BatchNorm's learnable scale and shift, `y = gamma * x_hat + beta`, all `(n)`.
#[derive(Clone, Debug)]
pub struct ScaleShift<T> {
    pub gamma: Array1<T>,
    pub beta: Array1<T>,
    pub dgamma: Array1<T>,
    pub dbeta: Array1<T>,
}

/// A normalisation layer over `(batch, n)` inputs: BatchNorm or LayerNorm (`kind`).
///
/// **BatchNorm** (Ioffe & Szegedy 2015) standardises each unit over the batch. Train mode
/// normalises with the batch mean and *biased* batch variance and updates
/// `running = (1 - momentum) running + momentum batch_stat`, where the running variance takes
/// the *unbiased* batch variance `var * N / (N - 1)` (PyTorch's convention). Eval mode
/// normalises with the running statistics.
///
/// **LayerNorm** (Ba et al. 2016) standardises each sample over its `n` units with the row's
/// mean and biased variance, `x_hat_ij = (x_ij - mu_i) / sqrt(var_i + eps)`, the same in train
/// and eval mode; it keeps no running statistics (PyTorch's `nn.LayerNorm(n)`). Both then apply
/// the per-unit scale and shift `gamma_j x_hat_ij + beta_j` when `affine`.
#[derive(Clone, Debug)]
pub struct NormLayer<T> {
    pub kind: NormKind,
    /// `None`: pure standardisation (`--no-affine`).
    pub affine: Option<ScaleShift<T>>,
    /// Buffers, not parameters: never touched by an optimiser.
    pub running_mean: Array1<T>,
    pub running_var: Array1<T>,
    pub eps: f64,
    pub momentum: f64,
    /// BatchNorm's per-unit statistics used by the last forward, in f64: mean, variance and
    /// `1 / sqrt(var + eps)`, all `(n)`.
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub inv_std: Vec<f64>,
    /// LayerNorm's per-sample statistics of the last forward, in f64: `mu_i` and
    /// `1 / sqrt(var_i + eps)`, both `(batch)`.
    pub row_mean: Vec<f64>,
    pub row_inv_std: Vec<f64>,
    /// Whether the last forward normalised with statistics of its own input (BatchNorm in train
    /// mode, LayerNorm always), so the backward goes through them.
    pub(super) batch_stats: bool,
    /// What the forward subtracts from the matrix product before scaling by `inv_std`: `mean`
    /// minus the bias for BN before the activation (the bias is folded in, never added), `mean`
    /// after it.
    pub(super) shift: Vec<f64>,
    /// Stand-ins for gamma and beta without scale/shift (`1 * x + 0 = x` exactly).
    pub(super) ones: Vec<T>,
    pub(super) zeros: Vec<T>,
}

impl<T: Float> NormLayer<T> {
    pub fn new(n: usize, cfg: &NormConfig) -> Self {
        let affine = cfg.affine.then(|| ScaleShift {
            gamma: Array1::ones(n),
            beta: Array1::zeros(n),
            dgamma: Array1::zeros(n),
            dbeta: Array1::zeros(n),
        });
        NormLayer {
            kind: cfg.kind,
            affine,
            running_mean: Array1::zeros(n),
            running_var: Array1::ones(n),
            eps: cfg.eps,
            momentum: cfg.momentum,
            mean: vec![0.0; n],
            var: vec![0.0; n],
            inv_std: vec![0.0; n],
            row_mean: Vec::new(),
            row_inv_std: Vec::new(),
            batch_stats: false,
            shift: vec![0.0; n],
            ones: vec![T::one(); n],
            zeros: vec![T::zero(); n],
        }
    }

    /// `(gamma, beta)`, or ones and zeros without scale/shift.
    fn scale_shift(&self) -> (&[T], &[T]) {
        scale_shift_of(&self.affine, &self.ones, &self.zeros)
    }

    /// BatchNorm's per-unit coefficients once its statistics are known (`shift`, `inv_std`,
    /// `gamma`, `beta`).
    pub(super) fn coeffs(&self) -> BnCoeffs<'_, T> {
        let (gamma, beta) = self.scale_shift();
        BnCoeffs {
            shift: &self.shift,
            inv_std: &self.inv_std,
            affine: Affine { gamma, beta },
        }
    }

    /// Batch statistics of `x: (N, n)` plus a per-column `bias` not yet added to it (train
    /// mode): `mean = mean_i(x) + bias`, biased `var`, `inv_std`, `shift = mean_i(x)`; updates the
    /// running statistics. Two passes over `x`, in f64.
    pub(super) fn batch_stats_of(&mut self, x: ArrayView2<T>, bias: Option<&[T]>) {
        let rows = x.nrows();
        let n = rows as f64;
        self.shift.fill(0.0);
        par_cols((x.view(), &mut self.shift[..]), rows, &|(x, acc)| {
            ops::add_col_sums(x, acc)
        });
        self.shift.iter_mut().for_each(|s| *s /= n);
        self.var.fill(0.0);
        par_cols(
            (x.view(), &self.shift[..], &mut self.var[..]),
            rows,
            &|(x, shift, acc)| ops::add_col_sq_dev(x, shift, acc),
        );
        let m = self.momentum;
        let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
        for j in 0..self.mean.len() {
            self.var[j] /= n;
            self.mean[j] = self.shift[j] + bias.map_or(0.0, |b| b[j].f64());
            self.inv_std[j] = 1.0 / (self.var[j] + self.eps).sqrt();
            self.running_mean[j] = T::of((1.0 - m) * self.running_mean[j].f64() + m * self.mean[j]);
            self.running_var[j] =
                T::of((1.0 - m) * self.running_var[j].f64() + m * self.var[j] * unbias);
        }
        self.batch_stats = true;
    }

    /// Running statistics (eval mode); `shift = running_mean - bias`.
    pub(super) fn running_stats(&mut self, bias: Option<&[T]>) {
        for j in 0..self.mean.len() {
            self.mean[j] = self.running_mean[j].f64();
            self.var[j] = self.running_var[j].f64();
            self.inv_std[j] = 1.0 / (self.var[j] + self.eps).sqrt();
            self.shift[j] = self.mean[j] - bias.map_or(0.0, |b| b[j].f64());
        }
        self.batch_stats = false;
    }
}

/// `dgamma = sum_i dy_i x_hat_i`, `dbeta = sum_i dy_i`: pass 1's sums, as they stand (a free
/// function, so that the backward can keep its layer's statistics borrowed beside it).
fn scale_shift_grads<T: Float>(affine: &mut Option<ScaleShift<T>>, acc: &ColScratch) {
    if let Some(ss) = affine {
        for j in 0..acc.s_dy.len() {
            ss.dgamma[j] = T::of(acc.s_dyx[j]);
            ss.dbeta[j] = T::of(acc.s_dy[j]);
        }
    }
}

/// `(gamma, beta)` of `affine`, or `ones` and `zeros` without scale/shift (a free function, so
/// that a caller can borrow other fields of the layer mutably beside it).
pub(super) fn scale_shift_of<'a, T>(
    affine: &'a Option<ScaleShift<T>>,
    ones: &'a [T],
    zeros: &'a [T],
) -> (&'a [T], &'a [T]) {
    match affine {
        Some(ss) => (
            ss.gamma.as_slice().expect("owned arrays are contiguous"),
            ss.beta.as_slice().expect("owned arrays are contiguous"),
        ),
        None => (ones, zeros),
    }
}

impl<T: Float> NormLayer<T> {
    /// Backward through BN and the activation of one block, given `dh = dL/dh_l`, in two passes:
    ///
    /// ```text
    /// pass 1  dy = dh * act'(a) (BN before the activation) or dy = dh (after it), and its sums
    /// pass 2  dx = gamma inv_std (dy - mean_i(dy) - x_hat mean_i(dy x_hat))  (batch statistics)
    ///         or dx = gamma inv_std dy (running statistics); dz = dx * act'(a) (BN after the
    ///         activation) or dz = dx (before it)
    /// ```
    ///
    /// `bufs.dz` receives `dy`, then `dL/dz_l`; [`NormLayer::affine`] `dgamma = sum_i dy x_hat`
    /// and `dbeta = sum_i dy`; `acc` the column sums `db = sum_i dz` and `sq = sum_i dh^2`;
    /// `bufs.copy` (when given) `dh`; with `bufs.into`, `dL/dz_l` is added there instead of
    /// left in `bufs.dz` (which then holds `dy`). `noise_scale`: noisy BN's `s` (see
    /// [`ops::bn_backward_sums_noisy`]).
    pub(super) fn backward(
        &mut self,
        act: Activation,
        placement: Placement,
        c: &BlockCache<T>,
        bufs: BackwardBufs<T>,
        noise_scale: Option<ArrayView2<T>>,
        acc: &mut ColScratch,
    ) {
        let BackwardBufs {
            dh,
            mut dz,
            copy,
            into,
            x_from,
        } = bufs;
        let (pre_act, post_act) = match placement {
            Placement::Pre => (Some(c.a.view()), None),
            Placement::Post => (None, Some(c.a.view())),
        };
        let x_hat = match x_from {
            Some(z) => XHat::From {
                z,
                shift: &self.shift,
                inv_std: &self.inv_std,
            },
            None => XHat::Stored(c.x_hat.view()),
        };
        let pass1 = BackwardBufs {
            dh,
            dz: dz.view_mut(),
            copy,
            into: None,
            x_from: None,
        };
        bn_sums_pass(act, pre_act, x_hat, noise_scale, pass1, acc);
        scale_shift_grads(&mut self.affine, acc);
        match self.kind {
            NormKind::Batch => {
                self.backward_coefficients(dh.nrows(), acc);
                bn_apply_pass(act, post_act, x_hat, self.batch_stats, dz, into, acc);
            }
            NormKind::Layer => {
                let (gamma, _) = scale_shift_of(&self.affine, &self.ones, &self.zeros);
                ln_apply_pass(
                    act,
                    post_act,
                    c.x_hat.view(),
                    gamma,
                    &self.row_inv_std,
                    (dz, into),
                    acc,
                );
            }
        }
    }

    /// Multiply `dgamma` and `dbeta` by a residual branch's `scale` (nothing to do at 1).
    pub(super) fn scale_grads(&mut self, scale: T) {
        if scale == T::one() {
            return;
        }
        if let Some(ss) = &mut self.affine {
            ss.dgamma.mapv_inplace(|g| g * scale);
            ss.dbeta.mapv_inplace(|g| g * scale);
        }
    }

    /// Pass 2's per-column coefficients, in `acc`: `k = gamma * inv_std`, and pass 1's sums
    /// turned into means over the `rows` of the batch (`s_dy / N`, `s_dyx / N`).
    fn backward_coefficients(&self, rows: usize, acc: &mut ColScratch) {
        let n = rows as f64;
        let (gamma, _) = self.scale_shift();
        for (((k, &g), &is), (m, mx)) in acc
            .k
            .iter_mut()
            .zip(gamma)
            .zip(&self.inv_std)
            .zip(acc.s_dy.iter_mut().zip(acc.s_dyx.iter_mut()))
        {
            *k = g.f64() * is;
            *m /= n;
            *mx /= n;
        }
    }
}
