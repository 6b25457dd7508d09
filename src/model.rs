//! The MLP: `Linear -> [BN] -> act` blocks with optional skip connections, and an output layer.
//!
//! ```text
//! h_0 = X                                   X: (batch, d_in)
//! z_l = h_{l-1} W_l + b_l                   W_l: (fan_in, width)
//! a_l = act(BN(z_l))   (placement pre)      or BN(act(z_l)) (post), act(z_l) (no BN)
//! h_l = h_{l-1} + a_l  (skip, where shapes match)   else h_l = a_l
//! o   = h_depth W_out + b_out               o: (batch, d_out)
//! ```
//!
//! Each block owns its parameters, their gradients and the named buffers its forward pass
//! caches for the backward pass; the buffers are allocated on the first forward for a batch
//! size and reused afterwards, so a training loop allocates nothing per step.
//! [`Mlp::backward`] overwrites (does not accumulate) every gradient.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewD, ArrayViewMut2, ArrayViewMutD, Zip};
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::StandardNormal;
use rand::Rng;
use serde::Serialize;

use crate::config::{Activation, BnConfig, Init, NetConfig, Placement};
use crate::float::Float;
use crate::ops;

/// Whether BatchNorm normalises with the batch's statistics (and updates its running
/// statistics) or with the running statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
        let w = Array2::<f64>::random_using((fan_in, fan_out), StandardNormal, rng)
            .mapv(|v| T::of(v * std));
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

/// BatchNorm over the batch axis of `(batch, n)` inputs.
///
/// Train mode normalises with the batch mean and *biased* batch variance and updates
/// `running = (1 - momentum) running + momentum batch_stat`, where the running variance takes
/// the *unbiased* batch variance `var * N / (N - 1)` (PyTorch's convention). Eval mode
/// normalises with the running statistics.
#[derive(Clone, Debug)]
pub struct BatchNorm<T> {
    /// `None`: pure standardisation (`--no-affine`).
    pub affine: Option<ScaleShift<T>>,
    /// Buffers, not parameters: never touched by an optimiser.
    pub running_mean: Array1<T>,
    pub running_var: Array1<T>,
    pub eps: f64,
    pub momentum: f64,
    /// Statistics used by the last forward, in f64: mean and `1 / sqrt(var + eps)`.
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub inv_std: Vec<f64>,
    /// Whether the last forward used batch statistics (train mode).
    batch_stats: bool,
    scratch_a: Vec<f64>,
    scratch_b: Vec<f64>,
}

impl<T: Float> BatchNorm<T> {
    pub fn new(n: usize, cfg: &BnConfig) -> Self {
        let affine = cfg.affine.then(|| ScaleShift {
            gamma: Array1::ones(n),
            beta: Array1::zeros(n),
            dgamma: Array1::zeros(n),
            dbeta: Array1::zeros(n),
        });
        BatchNorm {
            affine,
            running_mean: Array1::zeros(n),
            running_var: Array1::ones(n),
            eps: cfg.eps,
            momentum: cfg.momentum,
            mean: vec![0.0; n],
            var: vec![0.0; n],
            inv_std: vec![0.0; n],
            batch_stats: false,
            scratch_a: vec![0.0; n],
            scratch_b: vec![0.0; n],
        }
    }

    /// Fill `mean`/`inv_std` for normalising `x: (N, n)` in `mode`, updating running statistics in train mode.
    fn prepare(&mut self, x: ArrayView2<T>, mode: Mode) {
        match mode {
            Mode::Train => {
                ops::batch_mean_var(x, &mut self.mean, &mut self.var);
                let n = x.nrows() as f64;
                let m = self.momentum;
                let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
                for j in 0..self.mean.len() {
                    self.inv_std[j] = 1.0 / (self.var[j] + self.eps).sqrt();
                    self.running_mean[j] =
                        T::of((1.0 - m) * self.running_mean[j].f64() + m * self.mean[j]);
                    self.running_var[j] =
                        T::of((1.0 - m) * self.running_var[j].f64() + m * self.var[j] * unbias);
                }
                self.batch_stats = true;
            }
            Mode::Eval => {
                for j in 0..self.mean.len() {
                    self.mean[j] = self.running_mean[j].f64();
                    self.var[j] = self.running_var[j].f64();
                    self.inv_std[j] = 1.0 / (self.var[j] + self.eps).sqrt();
                }
                self.batch_stats = false;
            }
        }
    }

    /// On entry `d = dL/dy` (`y` the BN output), on exit `d = dL/dx`; fills `dgamma`, `dbeta`.
    fn backward_inplace(&mut self, x_hat: ArrayView2<T>, mut d: ArrayViewMut2<T>) {
        if let Some(ss) = &mut self.affine {
            ops::scale_shift_param_grads(
                d.view(),
                x_hat,
                ss.dgamma.view_mut(),
                ss.dbeta.view_mut(),
                &mut self.scratch_a,
                &mut self.scratch_b,
            );
            ops::scale_columns_inplace(d.view_mut(), ss.gamma.view());
        }
        if self.batch_stats {
            ops::bn_backward_batch_stats_inplace(
                x_hat,
                &self.inv_std,
                d,
                &mut self.scratch_a,
                &mut self.scratch_b,
            );
        } else {
            ops::scale_columns_f64_inplace(d, &self.inv_std);
        }
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

/// One hidden block `Linear -> [BN] -> act` with an optional skip connection.
#[derive(Clone, Debug)]
pub struct Block<T> {
    pub linear: Linear<T>,
    pub bn: Option<BatchNorm<T>>,
    pub act: Activation,
    pub placement: Placement,
    /// `h_l = h_{l-1} + a_l`.
    pub skip: bool,
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

    fn forward(&mut self, h_in: ArrayView2<T>, mode: Mode) {
        self.ensure_buffers(h_in.nrows());
        let act = self.act;
        let c = &mut self.cache;
        match (&mut self.bn, self.placement) {
            (None, _) => {
                ops::linear_forward(
                    h_in,
                    self.linear.w.view(),
                    self.linear.b.view(),
                    c.a.view_mut(),
                );
                ops::act_forward_inplace(act, c.a.view_mut());
            }
            (Some(bn), Placement::Pre) => {
                // z is computed into x_hat's buffer and standardised in place.
                ops::linear_forward(
                    h_in,
                    self.linear.w.view(),
                    self.linear.b.view(),
                    c.x_hat.view_mut(),
                );
                bn.prepare(c.x_hat.view(), mode);
                ops::normalize_inplace(c.x_hat.view_mut(), &bn.mean, &bn.inv_std);
                match &bn.affine {
                    // a = act(gamma * x_hat + beta), fused in one pass
                    Some(ss) => {
                        for (mut a, xh) in c.a.rows_mut().into_iter().zip(c.x_hat.rows()) {
                            Zip::from(&mut a)
                                .and(&xh)
                                .and(&ss.gamma)
                                .and(&ss.beta)
                                .for_each(|a, &xh, &g, &b| {
                                    *a = ops::act_scalar(act, g * xh + b);
                                });
                        }
                    }
                    None => Zip::from(&mut c.a)
                        .and(&c.x_hat)
                        .for_each(|a, &xh| *a = ops::act_scalar(act, xh)),
                }
            }
            (Some(bn), Placement::Post) => {
                ops::linear_forward(
                    h_in,
                    self.linear.w.view(),
                    self.linear.b.view(),
                    c.a.view_mut(),
                );
                ops::act_forward_inplace(act, c.a.view_mut());
                bn.prepare(c.a.view(), mode);
                ops::normalize_into(c.a.view(), &bn.mean, &bn.inv_std, c.x_hat.view_mut());
                if let Some(ss) = &bn.affine {
                    for (mut h, xh) in c.h.rows_mut().into_iter().zip(c.x_hat.rows()) {
                        Zip::from(&mut h)
                            .and(&xh)
                            .and(&ss.gamma)
                            .and(&ss.beta)
                            .for_each(|h, &xh, &g, &b| {
                                *h = g * xh + b;
                            });
                    }
                    if self.skip {
                        c.h += &h_in;
                    }
                    return;
                }
            }
        }
        if self.skip {
            // Branch output: a_l, or x_hat for post-BN without scale/shift.
            let branch = if self.bn.is_some() && self.placement == Placement::Post {
                &c.x_hat
            } else {
                &c.a
            };
            Zip::from(&mut c.h)
                .and(branch)
                .and(&h_in)
                .for_each(|h, &r, &x| *h = r + x);
        }
    }

    /// Given `dh = dL/dh_l`, fill this block's gradients and write `dL/dh_{l-1}` into `dh_in`.
    /// `scratch: (batch, width)` receives `dL/dz_l`.
    fn backward(
        &mut self,
        h_in: ArrayView2<T>,
        dh: ArrayView2<T>,
        mut scratch: ArrayViewMut2<T>,
        dh_in: Option<ArrayViewMut2<T>>,
    ) {
        let act = self.act;
        let c = &self.cache;
        match (&mut self.bn, self.placement) {
            (None, _) => ops::act_backward(act, c.a.view(), dh, scratch.view_mut()),
            (Some(bn), Placement::Pre) => {
                ops::act_backward(act, c.a.view(), dh, scratch.view_mut()); // dL/dy
                bn.backward_inplace(c.x_hat.view(), scratch.view_mut()); // dL/dz
            }
            (Some(bn), Placement::Post) => {
                scratch.assign(&dh); // dL/dy
                bn.backward_inplace(c.x_hat.view(), scratch.view_mut()); // dL/da
                ops::act_backward_inplace(act, c.a.view(), scratch.view_mut()); // dL/dz
            }
        }
        let dx = dh_in.map(|mut d| {
            if self.skip {
                d.assign(&dh); // identity path of h_l = h_{l-1} + a_l
            }
            (d, self.skip)
        });
        let lin = &mut self.linear;
        ops::linear_backward(
            h_in,
            lin.w.view(),
            scratch.view(),
            lin.dw.view_mut(),
            lin.db.view_mut(),
            dx,
        );
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
    /// `||dL/dh_l||_F` for l = 1..depth (input side first), recorded by the last backward:
    /// the backprop signal reaching each block's output.
    pub grad_signal_norm: Vec<f64>,
    last_mode: Option<Mode>,
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
                        .map(|bn| BatchNorm::new(config.width, bn)),
                    act: config.act,
                    placement: config.bn.map_or(Placement::Pre, |bn| bn.placement),
                    skip: config.block_has_skip(l),
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
            grad_signal_norm: vec![0.0; config.depth],
            last_mode: None,
        }
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
        self.backward_impl(d_o, false)
    }

    /// [`Mlp::backward`] that also returns `dL/dX`, `(batch, d_in)`.
    pub fn backward_with_input_grad(
        &mut self,
        d_o: ArrayView2<T>,
    ) -> Result<ArrayView2<'_, T>, ModelError> {
        self.backward_impl(d_o, true)?;
        Ok(self.dx.view())
    }

    fn backward_impl(&mut self, d_o: ArrayView2<T>, want_dx: bool) -> Result<(), ModelError> {
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
        for l in (0..depth).rev() {
            self.grad_signal_norm[l] = crate::stats::frobenius_norm(&self.dh);
            let (before, rest) = self.blocks.split_at_mut(l);
            let h_in = if l == 0 {
                self.x.view()
            } else {
                before[l - 1].output()
            };
            let dh_in = if l > 0 {
                Some(self.dh_next.view_mut())
            } else if want_dx {
                Some(self.dx.view_mut())
            } else {
                None
            };
            rest[0].backward(h_in, self.dh.view(), self.dz.view_mut(), dh_in);
            std::mem::swap(&mut self.dh, &mut self.dh_next);
        }
        Ok(())
    }

    /// Every parameter with its gradient, hidden blocks first (weight, bias, gamma, beta), then
    /// the output layer. The one accessor optimisers, gradient checks and reports share.
    pub fn params_mut(&mut self) -> Vec<Param<'_, T>> {
        let mut ps = Vec::with_capacity(4 * self.blocks.len() + 2);
        for (i, block) in self.blocks.iter_mut().enumerate() {
            let layer = LayerId::Hidden(i + 1);
            let lin = &mut block.linear;
            ps.push(Param {
                id: ParamId {
                    layer,
                    kind: ParamKind::Weight,
                },
                value: lin.w.view_mut().into_dyn(),
                grad: lin.dw.view().into_dyn(),
            });
            ps.push(Param {
                id: ParamId {
                    layer,
                    kind: ParamKind::Bias,
                },
                value: lin.b.view_mut().into_dyn(),
                grad: lin.db.view().into_dyn(),
            });
            if let Some(ss) = block.bn.as_mut().and_then(|bn| bn.affine.as_mut()) {
                ps.push(Param {
                    id: ParamId {
                        layer,
                        kind: ParamKind::Gamma,
                    },
                    value: ss.gamma.view_mut().into_dyn(),
                    grad: ss.dgamma.view().into_dyn(),
                });
                ps.push(Param {
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
        ps.push(Param {
            id: ParamId {
                layer,
                kind: ParamKind::Weight,
            },
            value: self.out.w.view_mut().into_dyn(),
            grad: self.out.dw.view().into_dyn(),
        });
        ps.push(Param {
            id: ParamId {
                layer,
                kind: ParamKind::Bias,
            },
            value: self.out.b.view_mut().into_dyn(),
            grad: self.out.db.view().into_dyn(),
        });
        ps
    }

    /// Number of scalar parameters.
    pub fn num_params(&mut self) -> usize {
        self.params_mut().iter().map(|p| p.value.len()).sum()
    }

    /// The input of block `l`'s activation (1-based) in the last forward, recomputed from the
    /// cached buffers: `z_l` without BN or with BN placed after the activation,
    /// `gamma * x_hat + beta` with BN before it. For diagnostics (saturation, histograms).
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
