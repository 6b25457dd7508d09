//! One hidden block `Linear -> [BN] -> act` with an optional skip connection: its buffers, its
//! forward (one matrix product and fused passes) and its backward.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::Mode;
use super::linear::Linear;
use super::noise::BlockNoise;
use super::norm::{NormLayer, scale_shift_of};
use super::passes::{
    BackwardBufs, BlockCache, ColScratch, act_backward_add_pass, act_backward_pass,
};
use crate::config::{Activation, NormKind, Placement};
use crate::float::Float;
use crate::ops::{self, Affine, HiddenOut, Residual, RowStats};
use crate::parallel::{gemm, par_cols};

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

/// `z = h_in W` into `z`, or `z = h_in` where `w` is empty (an identity [`Linear`]: the first
/// normaliser and activation of a pre-activation block, which has no matrix of its own).
fn project<T: Float>(h_in: &ArrayView2<T>, w: &ArrayView2<T>, z: &mut ArrayViewMut2<T>) {
    if w.is_empty() {
        z.assign(h_in);
    } else {
        gemm(T::one(), h_in, w, T::zero(), z);
    }
}

/// [`project`] for a pass that can read its input from elsewhere: `z = h_in W` into `z` and
/// `None`, or, where `w` is empty (an identity [`Linear`]), nothing written and `Some(h_in)`: the
/// pass reads `z = h_in` from the stream itself instead of from a copy.
fn project_or_source<'a, T: Float>(
    h_in: ArrayView2<'a, T>,
    w: &ArrayView2<T>,
    z: &mut ArrayViewMut2<T>,
) -> Option<ArrayView2<'a, T>> {
    if w.is_empty() {
        Some(h_in)
    } else {
        gemm(T::one(), &h_in, w, T::zero(), z);
        None
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
    /// Noisy BN's noise between BN and the activation ([`super::Mlp::set_bn_noise`]); `None`: none.
    pub noise: Option<BlockNoise<T>>,
    pub(super) cache: BlockCache<T>,
}

impl<T: Float> Block<T> {
    fn has_h_buffer(&self) -> bool {
        self.skip
            || (self.placement == Placement::Post
                && self.bn.as_ref().is_some_and(|bn| bn.affine.is_some()))
    }

    /// Whether the forward keeps BatchNorm's `x_hat` for the backward. A pre-activation block's
    /// first normaliser (BatchNorm before the activation on an identity linear, without noise)
    /// does not: its input is the residual stream, kept anyway, and the backward recomputes
    /// `x_hat` from it ([`ops::XHat::From`]).
    fn keeps_x_hat(&self) -> bool {
        match &self.bn {
            None => false,
            Some(bn) => {
                !(bn.kind == NormKind::Batch
                    && self.placement == Placement::Pre
                    && self.linear.is_identity()
                    && !self.skip
                    && self.noise.is_none())
            }
        }
    }

    fn ensure_buffers(&mut self, batch: usize) {
        let x_hat_rows = if self.keeps_x_hat() { batch } else { 0 };
        if self.cache.batch == batch && self.cache.x_hat.nrows() == x_hat_rows {
            return;
        }
        let n = self.linear.fan_out();
        let empty = || Array2::zeros((0, 0));
        self.cache = BlockCache {
            batch,
            a: Array2::zeros((batch, n)),
            x_hat: if self.keeps_x_hat() {
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
    pub(super) fn forward(&mut self, h_in: ArrayView2<T>, mode: Mode) {
        self.ensure_buffers(h_in.nrows());
        if self.bn.as_ref().is_some_and(|n| n.kind == NormKind::Layer) {
            self.ln_forward(h_in);
            return;
        }
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
            (None, _) => {
                let src = project_or_source(h_in.view(), &w, &mut c.a.view_mut());
                let residual = skip.then(|| Residual {
                    h_in: h_in.view(),
                    h: c.h.view_mut(),
                    scale,
                });
                par_cols(
                    (c.a.view_mut(), src, b, residual),
                    rows,
                    &|(a, src, b, residual)| {
                        ops::bias_act_forward_from(act, src, a, b, None, residual)
                    },
                );
            }
            (Some(_), Placement::Pre) => self.bn_pre_forward(h_in, mode),
            (Some(bn), Placement::Post) => {
                project(&h_in, &w, &mut c.a.view_mut());
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

    /// [`Block::forward`] with BatchNorm before the activation: `z = h W` (without the bias) into
    /// `x_hat`'s buffer, its statistics, then one pass that standardises it in place, applies
    /// scale/shift and the activation (and noisy BN's noise, and the skip). An identity linear's
    /// `z` is `h_in` itself, read from there, and its `x_hat` is not kept (see `keeps_x_hat`).
    fn bn_pre_forward(&mut self, h_in: ArrayView2<T>, mode: Mode) {
        let (rows, act) = (h_in.nrows(), self.act);
        let (skip, scale) = (self.skip, self.skip_scale);
        let c = &mut self.cache;
        let (w, b) = (
            self.linear.w.view(),
            self.linear
                .b
                .as_slice()
                .expect("owned arrays are contiguous"),
        );
        let bn = self.bn.as_mut().expect("called for blocks with BatchNorm");
        // z = h W (without the bias) goes into x_hat's buffer and is standardised in
        // place; the bias only shifts the mean, so it is folded into `shift`. An
        // identity linear's z is h_in itself: read from there, not copied.
        let src = project_or_source(h_in.view(), &w, &mut c.x_hat.view_mut());
        match mode {
            Mode::Train => {
                bn.batch_stats_of(src.unwrap_or(c.x_hat.view()), Some(b));
            }
            Mode::Eval => bn.running_stats(Some(b)),
        }
        let residual = skip.then(|| Residual {
            h_in: h_in.view(),
            h: c.h.view_mut(),
            scale,
        });
        if let Some(noise) = &mut self.noise {
            if let Some(src) = &src {
                c.x_hat.assign(src);
            }
            let bundle = (c.x_hat.view_mut(), c.a.view_mut(), bn.coeffs(), residual);
            noise.sampled = mode == Mode::Train;
            par_cols((bundle, noise.last(rows)), rows, &|(
                (zx, a, coeffs, residual),
                noise,
            )| {
                ops::bn_noisy_pre_forward(act, zx, a, coeffs, noise, residual)
            });
            return;
        }
        if let (Some(src), None) = (src, &residual) {
            // An identity linear's normaliser: x_hat is not kept (see `keeps_x_hat`).
            par_cols((src, c.a.view_mut(), bn.coeffs()), rows, &|(
                src,
                a,
                coeffs,
            )| {
                ops::bn_pre_forward_unkept(act, src, a, coeffs)
            });
            return;
        }
        par_cols(
            (
                c.x_hat.view_mut(),
                src,
                c.a.view_mut(),
                bn.coeffs(),
                residual,
            ),
            rows,
            &|(zx, src, a, coeffs, residual)| {
                ops::bn_pre_forward_from(act, src, zx, a, coeffs, residual)
            },
        );
    }

    /// Forward of a layer without normaliser or skip connection that also writes a residual
    /// stream in its one pass: `a = act(h_in W + b)` and `stream.h = stream.h_in + stream.scale *
    /// a` (a pre-activation block's second layer and sum, `h' = h + s (z + b)`).
    pub(super) fn forward_stream(&mut self, h_in: ArrayView2<T>, stream: Residual<T>) {
        assert!(
            self.bn.is_none() && !self.skip,
            "a layer without normaliser or skip"
        );
        let (rows, act) = (h_in.nrows(), self.act);
        let (z, b) = self.product_into_a(h_in);
        par_cols((z, b, stream), rows, &|(a, b, stream)| {
            ops::bias_act_forward(act, a, b, None, Some(stream))
        });
    }

    /// `z = h_in W` into this layer's `a` buffer: that buffer and the bias, for the pass after.
    fn product_into_a(&mut self, h_in: ArrayView2<T>) -> (ArrayViewMut2<'_, T>, &[T]) {
        self.ensure_buffers(h_in.nrows());
        let mut z = self.cache.a.view_mut();
        project(&h_in, &self.linear.w.view(), &mut z);
        let b = self
            .linear
            .b
            .as_slice()
            .expect("owned arrays are contiguous");
        (z, b)
    }

    /// [`Block::forward_stream`] that writes the stream over this layer's own buffer:
    /// `a = s (h_in W + b) + h` (a pre-activation block without a gain, whose second layer's
    /// output `y` nothing reads after the sum), so [`Block::output`] is then the stream `h'`.
    pub(super) fn forward_stream_in_place(&mut self, h_in: ArrayView2<T>, h: ArrayView2<T>, s: T) {
        assert!(self.is_linear_layer(), "a linear layer");
        let rows = h_in.nrows();
        let (z, b) = self.product_into_a(h_in);
        par_cols((z, b, h), rows, &|(a, b, h)| {
            ops::stream_sum_in_place(a, b, h, s)
        });
    }

    /// Forward of a block with LayerNorm: one matrix product, then before the activation one row
    /// pass (statistics, standardise, scale/shift, activation, skip), or after it the column pass
    /// `a = act(z + b)` and one row pass (statistics, standardise, scale/shift, skip). Row passes
    /// are split over threads by rows: `par_cols` on transposed views.
    fn ln_forward(&mut self, h_in: ArrayView2<T>) {
        let has_h = self.has_h_buffer();
        let Block {
            linear,
            bn,
            act,
            placement,
            skip,
            skip_scale: scale,
            cache: c,
            ..
        } = self;
        let (act, placement, skip, scale) = (*act, *placement, *skip, *scale);
        let ln = bn.as_mut().expect("called for blocks with LayerNorm");
        let (w, b) = (
            linear.w.view(),
            linear.b.as_slice().expect("owned arrays are contiguous"),
        );
        let (rows, width) = (h_in.nrows(), linear.fan_out());
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
                let src = project_or_source(h_in.view(), &w, &mut c.x_hat.view_mut());
                let skip_io = skip.then(|| (h_in.reversed_axes(), c.h.view_mut().reversed_axes()));
                par_cols(
                    (
                        c.x_hat.view_mut().reversed_axes(),
                        c.a.view_mut().reversed_axes(),
                        stats,
                        (skip_io, src.map(|s| s.reversed_axes())),
                    ),
                    width,
                    &|(zx, a, stats, (skip_io, src))| {
                        ops::ln_pre_forward_from(
                            act,
                            (src.map(|s| s.reversed_axes()), b),
                            zx.reversed_axes(),
                            a.reversed_axes(),
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
                project(&h_in, &w, &mut c.a.view_mut());
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

    /// Given `dh = dL/dh_l`, fill this block's gradients and write `dL/dh_{l-1}` into `dh_in`
    /// (add it to what `dh_in` holds when `add`: a standard block's identity path, written
    /// there first). `dz: (batch, width)` receives `dL/dz_l`. Returns `sum dh^2` (f64), for
    /// `||dL/dh_l||`.
    ///
    /// Without BN one pass `dz = dh * act'(a)`; with BN two passes (sums, then the closed-form
    /// gradient through the batch statistics); then the two matrix products.
    pub(super) fn backward(
        &mut self,
        h_in: ArrayView2<T>,
        dh: ArrayView2<T>,
        mut dz: ArrayViewMut2<T>,
        mut dh_in: Option<ArrayViewMut2<T>>,
        add: bool,
        acc: &mut ColScratch,
    ) -> f64 {
        acc.reset();
        // An identity linear whose input gradient is added to `dh_in` (a pre-activation block's
        // first normaliser and activation, onto the stream's gradient): the last pass adds
        // `dL/dz` there itself instead of writing `dz`.
        let fold = add
            && !self.skip
            && self.linear.is_identity()
            && self.skip_scale == T::one()
            && (self.bn.is_none() || self.placement == Placement::Pre);
        let into = if fold { dh_in.take() } else { None };
        // The identity path of h_l = h_{l-1} + a_l: dh_in = dh + (dz W^T, added below).
        let copy = if self.skip {
            dh_in.as_mut().map(|d| d.view_mut())
        } else {
            None
        };
        let x_from = (!self.keeps_x_hat()).then(|| h_in.view());
        let (act, c) = (self.act, &self.cache);
        match &mut self.bn {
            None => match into {
                Some(into) => act_backward_add_pass(act, c.a.view(), dh, into, acc),
                None => act_backward_pass(act, c.a.view(), dh, dz.view_mut(), copy, acc),
            },
            Some(bn) => {
                let noise_scale = self.noise.as_ref().map(|n| n.last(dh.nrows()).0);
                let bufs = BackwardBufs {
                    dh,
                    dz: dz.view_mut(),
                    copy,
                    into,
                    x_from,
                };
                bn.backward(act, self.placement, c, bufs, noise_scale, acc);
                bn.scale_grads(self.skip_scale);
            }
        }
        // The branch receives `skip_scale * dh`; every step above is linear in it, so `dz` holds
        // `dL/dz_l / skip_scale` and the scale is applied in the products (exactly 1 by default).
        self.linear.backward(
            h_in,
            dz.view(),
            dh_in,
            self.skip || add,
            self.skip_scale,
            &acc.db,
        );
        acc.sq.iter().sum()
    }

    /// The backward of a layer without normaliser or skip connection whose activation is the
    /// identity, given `dz = dL/dz` itself and its column sums in `acc.db` (a standard block's
    /// second layer: [`super::ResUnit::backward_head`] writes both): the two matrix products,
    /// `dL/dh_in` into `dh_in`.
    pub(super) fn backward_linear(
        &mut self,
        h_in: ArrayView2<T>,
        dz: ArrayView2<T>,
        dh_in: ArrayViewMut2<T>,
        acc: &ColScratch,
    ) {
        debug_assert!(self.is_linear_layer());
        self.linear
            .backward(h_in, dz, Some(dh_in), false, self.skip_scale, &acc.db);
    }

    /// No normaliser, no skip connection and the identity activation: `dL/dz = dL/dh_l`.
    pub(super) fn is_linear_layer(&self) -> bool {
        self.bn.is_none() && !self.skip && self.act == Activation::Linear
    }
}
