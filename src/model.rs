//! The MLP: `Linear -> [BN] -> act` blocks with optional skip connections, and an output layer.
//!
//! ```text
//! h_0 = X                                   X: (batch, d_in)
//! z_l = h_{l-1} W_l + b_l                   W_l: (fan_in, width)
//! a_l = act(BN(z_l))   (placement pre)      or BN(act(z_l)) (post), act(z_l) (no BN)
//! h_l = h_{l-1} + beta a_l  (skip, where shapes match; beta = --residual-scale, 1 by default)
//!                                           else h_l = a_l
//! o   = h_depth W_out + b_out               o: (batch, d_out)
//! ```
//!
//! Each block owns its parameters, their gradients and the named buffers its forward pass
//! caches for the backward pass; the buffers are allocated on the first forward for a batch
//! size and reused afterwards, so a training loop allocates nothing per step.
//! [`Mlp::backward`] overwrites (does not accumulate) every gradient.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD, Zip};
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::{Activation, BnConfig, BnNoise, Init, NetConfig, NormKind, Placement};
use crate::float::Float;
use crate::ops::{self, Affine, BnCoeffs, BnGradCoeffs, BnSums, HiddenOut, Residual, RowStats};
use crate::parallel::{gemm, par_cols};

/// Whether BatchNorm normalises with the batch's statistics (and updates its running
/// statistics) or with the running statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Train,
    Eval,
}

/// Errors from using a model out of order or with the wrong shapes.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    #[error("backward called before forward")]
    BackwardBeforeForward,
    #[error("noisy BN needs BatchNorm before the activation in every block")]
    NoiseWithoutBatchNormPre,
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    Shape {
        what: &'static str,
        expected: (usize, usize),
        got: (usize, usize),
    },
}

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
    batch_stats: bool,
    /// What the forward subtracts from the matrix product before scaling by `inv_std`: `mean`
    /// minus the bias for BN before the activation (the bias is folded in, never added), `mean`
    /// after it.
    shift: Vec<f64>,
    /// Stand-ins for gamma and beta without scale/shift (`1 * x + 0 = x` exactly).
    ones: Vec<T>,
    zeros: Vec<T>,
}

impl<T: Float> NormLayer<T> {
    pub fn new(n: usize, cfg: &BnConfig) -> Self {
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
    fn coeffs(&self) -> BnCoeffs<'_, T> {
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
    fn batch_stats_of(&mut self, x: ArrayView2<T>, bias: Option<&[T]>) {
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
    fn running_stats(&mut self, bias: Option<&[T]>) {
        for j in 0..self.mean.len() {
            self.mean[j] = self.running_mean[j].f64();
            self.var[j] = self.running_var[j].f64();
            self.inv_std[j] = 1.0 / (self.var[j] + self.eps).sqrt();
            self.shift[j] = self.mean[j] - bias.map_or(0.0, |b| b[j].f64());
        }
        self.batch_stats = false;
    }
}

/// `(gamma, beta)` of `affine`, or `ones` and `zeros` without scale/shift (a free function, so
/// that a caller can borrow other fields of the layer mutably beside it).
fn scale_shift_of<'a, T>(
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

/// Forward of a block with LayerNorm: one matrix product, then before the activation one row
/// pass (statistics, standardise, scale/shift, activation, skip), or after it the column pass
/// `a = act(z + b)` and one row pass (statistics, standardise, scale/shift, skip). Row passes
/// are split over threads by rows: `par_cols` on transposed views.
#[allow(clippy::too_many_arguments)]
fn ln_forward<T: Float>(
    ln: &mut NormLayer<T>,
    placement: Placement,
    act: Activation,
    h_in: ArrayView2<T>,
    w: ArrayView2<T>,
    b: &[T],
    c: &mut BlockCache<T>,
    (skip, has_h): (bool, bool),
    scale: T,
) {
    let (rows, width) = (h_in.nrows(), w.ncols());
    ln.row_mean.resize(rows, 0.0);
    ln.row_inv_std.resize(rows, 0.0);
    ln.batch_stats = true;
    let (gamma, beta) = scale_shift_of(&ln.affine, &ln.ones, &ln.zeros);
    let affine = Affine { gamma, beta };
    let stats = RowStats {
        eps: ln.eps,
        mean: &mut ln.row_mean[..],
        inv_std: &mut ln.row_inv_std[..],
    };
    match placement {
        Placement::Pre => {
            gemm(T::one(), &h_in, &w, T::zero(), &mut c.x_hat.view_mut());
            let skip_io = skip.then(|| (h_in.reversed_axes(), c.h.view_mut().reversed_axes()));
            par_cols(
                (
                    c.x_hat.view_mut().reversed_axes(),
                    c.a.view_mut().reversed_axes(),
                    stats,
                    skip_io,
                ),
                width,
                &|(zx, a, stats, skip_io)| {
                    ops::ln_pre_forward(
                        act,
                        zx.reversed_axes(),
                        a.reversed_axes(),
                        b,
                        affine,
                        stats,
                        skip_io.map(|(x, h)| Residual {
                            h_in: x.reversed_axes(),
                            h: h.reversed_axes(),
                            scale,
                        }),
                    )
                },
            );
        }
        Placement::Post => {
            gemm(T::one(), &h_in, &w, T::zero(), &mut c.a.view_mut());
            par_cols((c.a.view_mut(), b), rows, &|(a, b)| {
                ops::bias_act_forward(act, a, b, None, None)
            });
            let h_out = has_h.then(|| {
                (
                    c.h.view_mut().reversed_axes(),
                    skip.then(|| h_in.reversed_axes()),
                )
            });
            par_cols(
                (
                    c.a.view().reversed_axes(),
                    c.x_hat.view_mut().reversed_axes(),
                    stats,
                    h_out,
                ),
                width,
                &|(a, x_hat, stats, h_out)| {
                    let h_out = h_out.map(|(h, h_in)| {
                        hidden_out(h.reversed_axes(), h_in.map(|x| x.reversed_axes()), scale)
                    });
                    ops::ln_post_forward(
                        a.reversed_axes(),
                        x_hat.reversed_axes(),
                        affine,
                        stats,
                        h_out,
                    )
                },
            );
        }
    }
}

/// Where a normaliser after the activation writes `y = gamma x_hat + beta`: `h = y`, or
/// `h = h_in + scale * y` with a skip connection (`h_in` given).
fn hidden_out<'a, T>(
    h: ArrayViewMut2<'a, T>,
    h_in: Option<ArrayView2<'a, T>>,
    scale: T,
) -> HiddenOut<'a, T> {
    match h_in {
        Some(h_in) => HiddenOut::Residual(Residual { h_in, h, scale }),
        None => HiddenOut::Plain(h),
    }
}

/// Buffers one block keeps between its forward and backward, all `(batch, width)`.
/// Which ones are live depends on the block's kind (see [`Block::output`]).
#[derive(Clone, Debug, Default)]
struct BlockCache<T> {
    batch: usize,
    /// `a_l`: the activation's output (act'(z) is computed from it).
    a: Array2<T>,
    /// `x_hat`: BN's standardised input (empty without BN).
    x_hat: Array2<T>,
    /// `h_l` where it is neither `a_l` nor `x_hat` (skip connections, post-BN with scale/shift).
    h: Array2<T>,
}

/// Noisy BN's noise in one block ([`BnNoise`]): the per-sample scale `s` and shift `m` of the
/// current training step, `(batch, width)` each, and the means eval mode applies instead.
#[derive(Clone, Debug)]
pub struct BlockNoise<T> {
    pub s: Array2<T>,
    pub m: Array2<T>,
    /// `E[s] = (1 + scale) / 2` and `E[m] = 0` per unit, `(width)`.
    mean_s: Array1<T>,
    mean_m: Array1<T>,
    /// Whether the last forward applied `s, m` (train mode) or their means (eval mode).
    sampled: bool,
}

impl<T: Float> BlockNoise<T> {
    /// The `(s, m)` of the last forward over `rows` samples.
    fn last(&self, rows: usize) -> (ArrayView2<'_, T>, ArrayView2<'_, T>) {
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
/// train-mode forward draws a new set ([`Mlp::resample_noise`]).
#[derive(Clone, Debug)]
struct NoiseSource {
    spec: BnNoise,
    rng: ChaCha8Rng,
    fresh: bool,
}

impl NoiseSource {
    /// One step's noise for one block, `s, m: (rows, width)`, in the order [`BnNoise`]
    /// documents: the per-unit shift and scale, then the per-sample jitter (none drawn when
    /// `jitter = 0`).
    fn draw<T: Float>(&mut self, s: &mut Array2<T>, m: &mut Array2<T>) {
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

/// One hidden block `Linear -> [BN] -> act` with an optional skip connection.
#[derive(Clone, Debug)]
pub struct Block<T> {
    pub linear: Linear<T>,
    pub bn: Option<NormLayer<T>>,
    pub act: Activation,
    pub placement: Placement,
    /// `h_l = h_{l-1} + skip_scale * a_l`.
    pub skip: bool,
    /// Balduzzi et al.'s beta (`--residual-scale`): 1 for a plain skip and for blocks without one.
    pub skip_scale: T,
    /// Noisy BN's noise between BN and the activation ([`Mlp::set_bn_noise`]); `None`: none.
    pub noise: Option<BlockNoise<T>>,
    cache: BlockCache<T>,
}

impl<T: Float> Block<T> {
    fn has_h_buffer(&self) -> bool {
        self.skip
            || (self.placement == Placement::Post
                && self.bn.as_ref().is_some_and(|bn| bn.affine.is_some()))
    }

    fn ensure_buffers(&mut self, batch: usize) {
        if self.cache.batch == batch {
            return;
        }
        let n = self.linear.w.ncols();
        let empty = || Array2::zeros((0, 0));
        self.cache = BlockCache {
            batch,
            a: Array2::zeros((batch, n)),
            x_hat: if self.bn.is_some() {
                Array2::zeros((batch, n))
            } else {
                empty()
            },
            h: if self.has_h_buffer() {
                Array2::zeros((batch, n))
            } else {
                empty()
            },
        };
    }

    /// `h_l` of the last forward, `(batch, width)`.
    pub fn output(&self) -> ArrayView2<'_, T> {
        if self.has_h_buffer() {
            self.cache.h.view()
        } else if self.bn.is_some() && self.placement == Placement::Post {
            self.cache.x_hat.view()
        } else {
            self.cache.a.view()
        }
    }

    /// `a_l = act(.)` of the last forward, `(batch, width)`.
    pub fn activation_output(&self) -> ArrayView2<'_, T> {
        self.cache.a.view()
    }

    /// Forward pass: fills this block's buffers from `h_in = h_{l-1}: (batch, fan_in)`.
    ///
    /// One matrix product, then (without BN) one pass `a = act(z + b)`, or (with BN) two
    /// read-only statistics passes and one pass that normalises and applies scale/shift and the
    /// activation; the skip connection is added in the last pass.
    fn forward(&mut self, h_in: ArrayView2<T>, mode: Mode) {
        self.ensure_buffers(h_in.nrows());
        let rows = h_in.nrows();
        let act = self.act;
        let has_h = self.has_h_buffer();
        let (skip, scale) = (self.skip, self.skip_scale);
        let c = &mut self.cache;
        let (w, b) = (
            self.linear.w.view(),
            self.linear
                .b
                .as_slice()
                .expect("owned arrays are contiguous"),
        );
        match (&mut self.bn, self.placement) {
            (Some(ln), placement) if ln.kind == NormKind::Layer => {
                ln_forward(ln, placement, act, h_in, w, b, c, (skip, has_h), scale);
            }
            (None, _) => {
                gemm(T::one(), &h_in, &w, T::zero(), &mut c.a.view_mut());
                let residual = skip.then(|| Residual {
                    h_in: h_in.view(),
                    h: c.h.view_mut(),
                    scale,
                });
                par_cols((c.a.view_mut(), b, residual), rows, &|(a, b, residual)| {
                    ops::bias_act_forward(act, a, b, None, residual)
                });
            }
            (Some(bn), Placement::Pre) => {
                // z = h W (without the bias) goes into x_hat's buffer and is standardised in
                // place; the bias only shifts the mean, so it is folded into `shift`.
                gemm(T::one(), &h_in, &w, T::zero(), &mut c.x_hat.view_mut());
                match mode {
                    Mode::Train => bn.batch_stats_of(c.x_hat.view(), Some(b)),
                    Mode::Eval => bn.running_stats(Some(b)),
                }
                let residual = skip.then(|| Residual {
                    h_in: h_in.view(),
                    h: c.h.view_mut(),
                    scale,
                });
                let bundle = (c.x_hat.view_mut(), c.a.view_mut(), bn.coeffs(), residual);
                if let Some(noise) = &mut self.noise {
                    noise.sampled = mode == Mode::Train;
                    par_cols((bundle, noise.last(rows)), rows, &|(
                        (zx, a, coeffs, residual),
                        noise,
                    )| {
                        ops::bn_noisy_pre_forward(act, zx, a, coeffs, noise, residual)
                    });
                    return;
                }
                par_cols(bundle, rows, &|(zx, a, coeffs, residual)| {
                    ops::bn_pre_forward(act, zx, a, coeffs, residual)
                });
            }
            (Some(bn), Placement::Post) => {
                gemm(T::one(), &h_in, &w, T::zero(), &mut c.a.view_mut());
                par_cols((c.a.view_mut(), b), rows, &|(a, b)| {
                    ops::bias_act_forward(act, a, b, None, None)
                });
                match mode {
                    Mode::Train => bn.batch_stats_of(c.a.view(), None),
                    Mode::Eval => bn.running_stats(None),
                }
                let h_out =
                    has_h.then(|| hidden_out(c.h.view_mut(), skip.then(|| h_in.view()), scale));
                par_cols(
                    (c.a.view(), c.x_hat.view_mut(), bn.coeffs(), h_out),
                    rows,
                    &|(a, x_hat, coeffs, h_out)| ops::bn_post_forward(a, x_hat, coeffs, h_out),
                );
            }
        }
    }

    /// Given `dh = dL/dh_l`, fill this block's gradients and write `dL/dh_{l-1}` into `dh_in`.
    /// `dz: (batch, width)` receives `dL/dz_l`. Returns `sum dh^2` (f64), for `||dL/dh_l||`.
    ///
    /// Without BN one pass `dz = dh * act'(a)`; with BN two passes (sums, then the closed-form
    /// gradient through the batch statistics); then the two matrix products.
    fn backward(
        &mut self,
        h_in: ArrayView2<T>,
        dh: ArrayView2<T>,
        mut dz: ArrayViewMut2<T>,
        mut dh_in: Option<ArrayViewMut2<T>>,
        acc: &mut ColScratch,
    ) -> f64 {
        acc.reset();
        // The identity path of h_l = h_{l-1} + a_l: dh_in = dh + (dz W^T, added below).
        let copy = if self.skip {
            dh_in.as_mut().map(|d| d.view_mut())
        } else {
            None
        };
        let (act, c) = (self.act, &self.cache);
        match &mut self.bn {
            None => act_backward_pass(act, c.a.view(), dh, dz.view_mut(), copy, acc),
            Some(bn) => {
                let noise_scale = self.noise.as_ref().map(|n| n.last(dh.nrows()).0);
                bn.backward(
                    act,
                    self.placement,
                    c,
                    dh,
                    noise_scale,
                    dz.view_mut(),
                    copy,
                    acc,
                );
                bn.scale_grads(self.skip_scale);
            }
        }
        // The branch receives `skip_scale * dh`; every step above is linear in it, so `dz` holds
        // `dL/dz_l / skip_scale` and the scale is applied in the products (exactly 1 by default).
        self.linear
            .backward(h_in, dz.view(), dh_in, self.skip, self.skip_scale, &acc.db);
        acc.sq.iter().sum()
    }
}

impl<T: Float> Linear<T> {
    /// Gradients of `z = h_in W + b` given `dz = dL/dz / scale`: `db = scale * db_sums` (the f64
    /// column sums of `dz` that the last backward pass accumulated), `dW = scale h_in^T dz`, and,
    /// when `dh_in` is given, `dh_in = scale dz W^T`, added to the identity path already written
    /// there if `skip`. `h_in, dh_in: (batch, fan_in)`, `dz: (batch, fan_out)`, `db_sums: (fan_out)`.
    fn backward(
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
        gemm(scale, &h_in.t(), &dz, T::zero(), &mut self.dw.view_mut());
        if let Some(mut d) = dh_in {
            let beta = if skip { T::one() } else { T::zero() };
            gemm(scale, &dz, &self.w.t(), beta, &mut d);
        }
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
    /// `dz` receives `dy`, then `dL/dz_l`; [`BatchNorm::affine`] `dgamma = sum_i dy x_hat` and
    /// `dbeta = sum_i dy`; `acc` the column sums `db = sum_i dz` and `sq = sum_i dh^2`; `copy`
    /// (when given) `dh`.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        act: Activation,
        placement: Placement,
        c: &BlockCache<T>,
        dh: ArrayView2<T>,
        noise_scale: Option<ArrayView2<T>>,
        mut dz: ArrayViewMut2<T>,
        copy: Option<ArrayViewMut2<T>>,
        acc: &mut ColScratch,
    ) {
        let (pre_act, post_act) = match placement {
            Placement::Pre => (Some(c.a.view()), None),
            Placement::Post => (None, Some(c.a.view())),
        };
        bn_sums_pass(
            act,
            pre_act,
            dh,
            c.x_hat.view(),
            noise_scale,
            dz.view_mut(),
            copy,
            acc,
        );
        self.scale_shift_grads(acc);
        match self.kind {
            NormKind::Batch => {
                self.backward_coefficients(dh.nrows(), acc);
                bn_apply_pass(act, post_act, c.x_hat.view(), self.batch_stats, dz, acc);
            }
            NormKind::Layer => {
                let (gamma, _) = scale_shift_of(&self.affine, &self.ones, &self.zeros);
                ln_apply_pass(
                    act,
                    post_act,
                    c.x_hat.view(),
                    gamma,
                    &self.row_inv_std,
                    dz,
                    acc,
                );
            }
        }
    }

    /// Multiply `dgamma` and `dbeta` by a residual branch's `scale` (nothing to do at 1).
    fn scale_grads(&mut self, scale: T) {
        if scale == T::one() {
            return;
        }
        if let Some(ss) = &mut self.affine {
            ss.dgamma.mapv_inplace(|g| g * scale);
            ss.dbeta.mapv_inplace(|g| g * scale);
        }
    }

    /// `dgamma = sum_i dy_i x_hat_i`, `dbeta = sum_i dy_i`: pass 1's sums, as they stand.
    fn scale_shift_grads(&mut self, acc: &ColScratch) {
        if let Some(ss) = &mut self.affine {
            for j in 0..acc.s_dy.len() {
                ss.dgamma[j] = T::of(acc.s_dyx[j]);
                ss.dbeta[j] = T::of(acc.s_dy[j]);
            }
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

// One pass each over a block's `(batch, width)` buffers, split over threads by columns.

/// Backward through `a = act(z)` without BN: `dz = dh * act'(a)`, adding `db = sum_i dz` and
/// `sq = sum_i dh^2` into `acc`, and `copy = dh` when given (a skip connection's identity path).
/// `a, dh, dz, copy: (batch, width)`.
fn act_backward_pass<T: Float>(
    act: Activation,
    a: ArrayView2<T>,
    dh: ArrayView2<T>,
    dz: ArrayViewMut2<T>,
    copy: Option<ArrayViewMut2<T>>,
    acc: &mut ColScratch,
) {
    par_cols(
        (dh, a, dz, &mut acc.db[..], &mut acc.sq[..], copy),
        dh.nrows(),
        &|(dh, a, dz, db, sq, copy)| ops::act_backward_fused(act, dh, a, dz, db, sq, copy),
    );
}

/// BN's pass 1 ([`ops::bn_backward_sums`]): `dy = dh * act'(a)` (`pre_act` given: BN before the
/// activation) or `dy = dh` into `dy`, adding `s_dy = sum_i dy`, `s_dyx = sum_i dy x_hat` and
/// `sq = sum_i dh^2` into `acc`; `copy = dh` when given. All views `(batch, width)`.
#[allow(clippy::too_many_arguments)]
fn bn_sums_pass<T: Float>(
    act: Activation,
    pre_act: Option<ArrayView2<T>>,
    dh: ArrayView2<T>,
    x_hat: ArrayView2<T>,
    noise_scale: Option<ArrayView2<T>>,
    dy: ArrayViewMut2<T>,
    copy: Option<ArrayViewMut2<T>>,
    acc: &mut ColScratch,
) {
    let sums = BnSums {
        s_dy: &mut acc.s_dy,
        s_dyx: &mut acc.s_dyx,
        sq: &mut acc.sq,
    };
    par_cols(
        ((dh, pre_act), x_hat, noise_scale, dy, sums, copy),
        dh.nrows(),
        &|((dh, a), x_hat, noise, dy, sums, copy)| {
            ops::bn_backward_sums_noisy(a.map(|a| (act, a)), dh, x_hat, dy, noise, sums, copy)
        },
    );
}

/// BN's pass 2 ([`ops::bn_backward_apply`]), in place on `d` (`dy` on entry, `dL/dz` on exit),
/// with the coefficients `k, s_dy, s_dyx` (means by now) in `acc`; `post_act` given: BN after the
/// activation, `act'(a)` applied last. Adds `db = sum_i dz` into `acc`. `d, x_hat, post_act:
/// (batch, width)`.
fn bn_apply_pass<T: Float>(
    act: Activation,
    post_act: Option<ArrayView2<T>>,
    x_hat: ArrayView2<T>,
    batch_stats: bool,
    d: ArrayViewMut2<T>,
    acc: &mut ColScratch,
) {
    let rows = d.nrows();
    let coeffs = BnGradCoeffs {
        k: &acc.k,
        m_dy: &acc.s_dy,
        m_dyx: &acc.s_dyx,
        batch_stats,
    };
    par_cols(
        (d, x_hat, coeffs, post_act, &mut acc.db[..]),
        rows,
        &|(d, x_hat, coeffs, a, db)| {
            ops::bn_backward_apply(d, x_hat, coeffs, a.map(|a| (act, a)), db)
        },
    );
}

/// LayerNorm's pass 2 ([`ops::ln_backward_apply`]), in place on `d` (`dy` on entry, `dL/dz` on
/// exit), split over threads by rows; then `db = sum_i dz` into `acc` (a column pass, so the sum
/// keeps one order whatever the thread count). `post_act` given: LayerNorm after the
/// activation. `d, x_hat, post_act: (batch, width)`; `gamma: (width)`; `inv_std: (batch)`.
fn ln_apply_pass<T: Float>(
    act: Activation,
    post_act: Option<ArrayView2<T>>,
    x_hat: ArrayView2<T>,
    gamma: &[T],
    inv_std: &[f64],
    mut d: ArrayViewMut2<T>,
    acc: &mut ColScratch,
) {
    let (rows, width) = d.dim();
    par_cols(
        (
            d.view_mut().reversed_axes(),
            x_hat.reversed_axes(),
            inv_std,
            post_act.map(|a| a.reversed_axes()),
        ),
        width,
        &|(d, x_hat, inv_std, a)| {
            ops::ln_backward_apply(
                d.reversed_axes(),
                x_hat.reversed_axes(),
                gamma,
                inv_std,
                a.map(|a| (act, a.reversed_axes())),
            )
        },
    );
    par_cols((d.view(), &mut acc.db[..]), rows, &|(d, db)| {
        ops::add_col_sums(d, db)
    });
}

/// Per-column f64 accumulators of the backward pass, all `(width)`, reused by every block.
#[derive(Clone, Debug, Default)]
struct ColScratch {
    s_dy: Vec<f64>,
    s_dyx: Vec<f64>,
    sq: Vec<f64>,
    db: Vec<f64>,
    k: Vec<f64>,
}

impl ColScratch {
    fn new(n: usize) -> Self {
        ColScratch {
            s_dy: vec![0.0; n],
            s_dyx: vec![0.0; n],
            sq: vec![0.0; n],
            db: vec![0.0; n],
            k: vec![0.0; n],
        }
    }

    fn reset(&mut self) {
        for v in [
            &mut self.s_dy,
            &mut self.s_dyx,
            &mut self.sq,
            &mut self.db,
            &mut self.k,
        ] {
            v.fill(0.0);
        }
    }
}

/// `sqrt(sum_sq)`, or the scaled [`crate::stats::frobenius_norm`] of `m` where squaring may
/// have overflowed or underflowed (only possible for f64 entries beyond about 1e±150).
fn norm_from_sum_sq<T: Float>(sum_sq: f64, m: &Array2<T>) -> f64 {
    if sum_sq.is_finite() && (sum_sq > 1e-280 || T::BYTES == 4) {
        sum_sq.sqrt()
    } else {
        crate::stats::frobenius_norm(m)
    }
}

/// Which layer a parameter belongs to: hidden block `l` (1-based, as `W_l` in the math) or the output layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerId {
    Hidden(usize),
    Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    Weight,
    Bias,
    Gamma,
    Beta,
}

/// Identifies one parameter tensor; displays as `layers.3.weight`, `out.bias`, `layers.1.gamma`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ParamId {
    pub layer: LayerId,
    pub kind: ParamKind,
}

impl std::fmt::Display for ParamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ParamKind::Weight => "weight",
            ParamKind::Bias => "bias",
            ParamKind::Gamma => "gamma",
            ParamKind::Beta => "beta",
        };
        match self.layer {
            LayerId::Hidden(l) => write!(f, "layers.{l}.{kind}"),
            LayerId::Output => write!(f, "out.{kind}"),
        }
    }
}

/// One parameter tensor and its gradient from the last backward.
pub struct Param<'a, T> {
    pub id: ParamId,
    pub value: ArrayViewMutD<'a, T>,
    pub grad: ArrayViewD<'a, T>,
}

/// The multilayer perceptron. See the module docs for the equations.
#[derive(Clone, Debug)]
pub struct Mlp<T> {
    pub config: NetConfig,
    pub blocks: Vec<Block<T>>,
    pub out: Linear<T>,
    /// `h_0`: a copy of the last forward's input, `(batch, d_in)`.
    x: Array2<T>,
    /// `o`: the last forward's output, `(batch, d_out)`.
    o: Array2<T>,
    /// Backward ping-pong buffers for `dL/dh_l`, and `dL/dz_l` scratch, all `(batch, width)`.
    dh: Array2<T>,
    dh_next: Array2<T>,
    dz: Array2<T>,
    /// `dL/dX`, `(batch, d_in)`.
    dx: Array2<T>,
    /// Per-column accumulators of the backward pass.
    cols: ColScratch,
    /// `||dL/dh_l||_F` for l = 1..depth (input side first), recorded by the last backward:
    /// the backprop signal reaching each block's output.
    pub grad_signal_norm: Vec<f64>,
    last_mode: Option<Mode>,
    /// Noisy BN's noise generator ([`Mlp::set_bn_noise`]); `None`: no noise.
    noise_source: Option<NoiseSource>,
}

impl<T: Float> Mlp<T> {
    /// Build a network with weights drawn from `rng`. The config must have been validated.
    pub fn new<R: Rng>(config: &NetConfig, rng: &mut R) -> Self {
        let blocks = (0..config.depth)
            .map(|l| {
                let fan_in = if l == 0 { config.d_in } else { config.width };
                Block {
                    linear: Linear::new(fan_in, config.width, config.init, rng),
                    bn: config
                        .bn
                        .as_ref()
                        .map(|bn| NormLayer::new(config.width, bn)),
                    act: config.act,
                    placement: config.bn.map_or(Placement::Pre, |bn| bn.placement),
                    skip: config.block_has_skip(l),
                    skip_scale: if config.block_has_skip(l) {
                        T::of(config.residual_scale)
                    } else {
                        T::one()
                    },
                    noise: None,
                    cache: BlockCache::default(),
                }
            })
            .collect();
        let out = Linear::new(config.width, config.d_out, config.init, rng);
        let empty = || Array2::zeros((0, 0));
        Mlp {
            config: config.clone(),
            blocks,
            out,
            x: empty(),
            o: empty(),
            dh: empty(),
            dh_next: empty(),
            dz: empty(),
            dx: empty(),
            cols: ColScratch::new(config.width),
            grad_signal_norm: vec![0.0; config.depth],
            last_mode: None,
            noise_source: None,
        }
    }

    /// Turn this BatchNorm net into noisy BN ([`BnNoise`]): noise between every BN layer and
    /// its activation, drawn from `rng` at the first train-mode forward after each
    /// [`Mlp::resample_noise`] (and the first one overall) and reused by later train-mode
    /// forwards until the next. Needs BatchNorm (not LayerNorm) before the activation.
    pub fn set_bn_noise(&mut self, spec: BnNoise, rng: ChaCha8Rng) -> Result<(), ModelError> {
        let bn_pre = self
            .config
            .bn
            .is_some_and(|bn| bn.kind == NormKind::Batch && bn.placement == Placement::Pre);
        if !bn_pre {
            return Err(ModelError::NoiseWithoutBatchNormPre);
        }
        let width = self.config.width;
        let mean_s = T::of(spec.mean_scale());
        for block in &mut self.blocks {
            block.noise = Some(BlockNoise {
                s: Array2::zeros((0, width)),
                m: Array2::zeros((0, width)),
                mean_s: Array1::from_elem(width, mean_s),
                mean_m: Array1::zeros(width),
                sampled: false,
            });
        }
        self.noise_source = Some(NoiseSource {
            spec,
            rng,
            fresh: true,
        });
        Ok(())
    }

    /// Start a new training step: the next train-mode forward draws new noise (noisy BN only;
    /// nothing to do otherwise). [`crate::train::fit`] calls it before every step.
    pub fn resample_noise(&mut self) {
        if let Some(src) = &mut self.noise_source {
            src.fresh = true;
        }
    }

    /// Draw the noise of a train-mode forward over `rows` samples when a new step began or
    /// the batch size changed.
    fn prepare_noise(&mut self, rows: usize) {
        let Some(src) = &mut self.noise_source else {
            return;
        };
        let width = self.config.width;
        let stale = self
            .blocks
            .iter()
            .any(|b| b.noise.as_ref().is_some_and(|n| n.s.dim() != (rows, width)));
        if !(src.fresh || stale) {
            return;
        }
        for block in &mut self.blocks {
            if let Some(noise) = &mut block.noise {
                if noise.s.dim() != (rows, width) {
                    noise.s = Array2::zeros((rows, width));
                    noise.m = Array2::zeros((rows, width));
                }
                src.draw(&mut noise.s, &mut noise.m);
            }
        }
        src.fresh = false;
    }

    pub fn depth(&self) -> usize {
        self.blocks.len()
    }

    /// `h_0`: the input of the last forward.
    pub fn input(&self) -> ArrayView2<'_, T> {
        self.x.view()
    }

    /// `h_l` for l = 0..=depth from the last forward (`h_0` is the input).
    pub fn hidden(&self, l: usize) -> ArrayView2<'_, T> {
        if l == 0 {
            self.x.view()
        } else {
            self.blocks[l - 1].output()
        }
    }

    /// `o` of the last forward, `(batch, d_out)`.
    pub fn output(&self) -> ArrayView2<'_, T> {
        self.o.view()
    }

    /// `x: (batch, d_in)` -> `o: (batch, d_out)`. Train mode uses batch statistics in BN and
    /// updates the running statistics; eval mode uses the running statistics.
    pub fn forward(
        &mut self,
        x: ArrayView2<T>,
        mode: Mode,
    ) -> Result<ArrayView2<'_, T>, ModelError> {
        let (batch, d_in) = x.dim();
        if d_in != self.config.d_in {
            return Err(ModelError::Shape {
                what: "input",
                expected: (batch, self.config.d_in),
                got: x.dim(),
            });
        }
        if self.x.dim() != x.dim() {
            self.x = Array2::zeros(x.dim());
            self.o = Array2::zeros((batch, self.config.d_out));
        }
        self.x.assign(&x);
        if mode == Mode::Train {
            self.prepare_noise(batch);
        }
        for l in 0..self.blocks.len() {
            let (before, rest) = self.blocks.split_at_mut(l);
            let h_in = if l == 0 {
                self.x.view()
            } else {
                before[l - 1].output()
            };
            rest[0].forward(h_in, mode);
        }
        let h_last = self.blocks.last().map_or(self.x.view(), |b| b.output());
        ops::linear_forward(
            h_last,
            self.out.w.view(),
            self.out.b.view(),
            self.o.view_mut(),
        );
        self.last_mode = Some(mode);
        Ok(self.o.view())
    }

    /// Backpropagate `d_o = dL/do`, `(batch, d_out)`, through the last forward, overwriting every
    /// parameter gradient and [`Mlp::grad_signal_norm`].
    pub fn backward(&mut self, d_o: ArrayView2<T>) -> Result<(), ModelError> {
        self.backward_impl(d_o, false, 0)
    }

    /// [`Mlp::backward`] that stops at block `first` (0-based): the output layer's and blocks
    /// `first..depth`'s gradients are those of a full backward, the blocks below keep their
    /// previous gradients (what `ics` needs of one layer, at about half the cost).
    pub fn backward_to(&mut self, d_o: ArrayView2<T>, first: usize) -> Result<(), ModelError> {
        self.backward_impl(d_o, false, first.min(self.blocks.len().saturating_sub(1)))
    }

    /// [`Mlp::backward`] that also returns `dL/dX`, `(batch, d_in)`.
    pub fn backward_with_input_grad(
        &mut self,
        d_o: ArrayView2<T>,
    ) -> Result<ArrayView2<'_, T>, ModelError> {
        self.backward_impl(d_o, true, 0)?;
        Ok(self.dx.view())
    }

    fn backward_impl(
        &mut self,
        d_o: ArrayView2<T>,
        want_dx: bool,
        first: usize,
    ) -> Result<(), ModelError> {
        if self.last_mode.is_none() {
            return Err(ModelError::BackwardBeforeForward);
        }
        if d_o.dim() != self.o.dim() {
            return Err(ModelError::Shape {
                what: "dL/do",
                expected: self.o.dim(),
                got: d_o.dim(),
            });
        }
        let batch = d_o.nrows();
        let width = self.config.width;
        if self.dh.dim() != (batch, width) {
            self.dh = Array2::zeros((batch, width));
            self.dh_next = Array2::zeros((batch, width));
            self.dz = Array2::zeros((batch, width));
        }
        if want_dx && self.dx.dim() != self.x.dim() {
            self.dx = Array2::zeros(self.x.dim());
        }
        let depth = self.blocks.len();
        // Output layer: dW_out = h_depth^T d_o, dL/dh_depth = d_o W_out^T.
        {
            let h_last = self.blocks[depth - 1].output();
            let out = &mut self.out;
            ops::linear_backward(
                h_last,
                out.w.view(),
                d_o,
                out.dw.view_mut(),
                out.db.view_mut(),
                Some((self.dh.view_mut(), false)),
            );
        }
        for l in (first..depth).rev() {
            let (before, rest) = self.blocks.split_at_mut(l);
            let h_in = if l == 0 {
                self.x.view()
            } else {
                before[l - 1].output()
            };
            let dh_in = if l > first {
                Some(self.dh_next.view_mut())
            } else if want_dx {
                Some(self.dx.view_mut())
            } else {
                None
            };
            let sum_sq = rest[0].backward(
                h_in,
                self.dh.view(),
                self.dz.view_mut(),
                dh_in,
                &mut self.cols,
            );
            self.grad_signal_norm[l] = norm_from_sum_sq(sum_sq, &self.dh);
            std::mem::swap(&mut self.dh, &mut self.dh_next);
        }
        Ok(())
    }

    /// Call `f` on every parameter with its gradient, hidden blocks first (weight, bias, gamma,
    /// beta), then the output layer. The one accessor optimisers, gradient checks and reports
    /// share; [`Mlp::params_mut`] collects the same sequence. Allocates nothing.
    pub fn for_each_param_mut<'a>(&'a mut self, mut f: impl FnMut(Param<'a, T>)) {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let layer = LayerId::Hidden(i + 1);
            let lin = &mut block.linear;
            f(Param {
                id: ParamId {
                    layer,
                    kind: ParamKind::Weight,
                },
                value: lin.w.view_mut().into_dyn(),
                grad: lin.dw.view().into_dyn(),
            });
            f(Param {
                id: ParamId {
                    layer,
                    kind: ParamKind::Bias,
                },
                value: lin.b.view_mut().into_dyn(),
                grad: lin.db.view().into_dyn(),
            });
            if let Some(ss) = block.bn.as_mut().and_then(|bn| bn.affine.as_mut()) {
                f(Param {
                    id: ParamId {
                        layer,
                        kind: ParamKind::Gamma,
                    },
                    value: ss.gamma.view_mut().into_dyn(),
                    grad: ss.dgamma.view().into_dyn(),
                });
                f(Param {
                    id: ParamId {
                        layer,
                        kind: ParamKind::Beta,
                    },
                    value: ss.beta.view_mut().into_dyn(),
                    grad: ss.dbeta.view().into_dyn(),
                });
            }
        }
        let layer = LayerId::Output;
        f(Param {
            id: ParamId {
                layer,
                kind: ParamKind::Weight,
            },
            value: self.out.w.view_mut().into_dyn(),
            grad: self.out.dw.view().into_dyn(),
        });
        f(Param {
            id: ParamId {
                layer,
                kind: ParamKind::Bias,
            },
            value: self.out.b.view_mut().into_dyn(),
            grad: self.out.db.view().into_dyn(),
        });
    }

    /// Every parameter with its gradient, in [`Mlp::for_each_param_mut`] order.
    pub fn params_mut(&mut self) -> Vec<Param<'_, T>> {
        let mut ps = Vec::with_capacity(4 * self.blocks.len() + 2);
        self.for_each_param_mut(|p| ps.push(p));
        ps
    }

    /// Number of scalar parameters.
    pub fn num_params(&mut self) -> usize {
        self.params_mut().iter().map(|p| p.value.len()).sum()
    }

    /// The input of block `l`'s activation (1-based) in the last forward, recomputed from the
    /// cached buffers: `z_l` without BN or with BN placed after the activation,
    /// `gamma * x_hat + beta` with BN before it (`s (gamma x_hat + beta) + m` in noisy BN). For
    /// diagnostics (saturation, histograms, distribution shift).
    pub fn activation_input(&self, l: usize) -> Array2<T> {
        let block = &self.blocks[l - 1];
        match (&block.bn, block.placement) {
            (Some(bn), Placement::Pre) => {
                let mut y = block.cache.x_hat.clone();
                if let Some(ss) = &bn.affine {
                    for mut row in y.rows_mut() {
                        Zip::from(&mut row)
                            .and(&ss.gamma)
                            .and(&ss.beta)
                            .for_each(|v, &g, &b| *v = g * *v + b);
                    }
                }
                if let Some(noise) = &block.noise {
                    let (s, m) = noise.last(y.nrows());
                    Zip::from(&mut y)
                        .and(s)
                        .and(m)
                        .for_each(|v, &s, &m| *v = s * *v + m);
                }
                y
            }
            _ => {
                let h_in = self.hidden(l - 1);
                let mut z = Array2::zeros((h_in.nrows(), block.linear.w.ncols()));
                ops::linear_forward(
                    h_in,
                    block.linear.w.view(),
                    block.linear.b.view(),
                    z.view_mut(),
                );
                z
            }
        }
    }
}
