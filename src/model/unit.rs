//! One standard residual block ([`ResUnit`], [`StdBlock`]): the residual stream around two
//! hidden layers, its branch multiplier (`--residual-scale` beta, times SkipInit's learnable
//! `alpha`) and, for `preact`, its first normaliser and activation.
//!
//! ```text
//! basic    u = h + s y,  h' = act(u)          y = norm(W2 act(norm(W1 h)))   (layers first, first+1)
//! preact   h' = h + s y                       y = W2 act(norm(W1 p)),  p = act(norm(h))
//! s = beta alpha (SkipInit) or beta
//! ```
//!
//! The two layers are ordinary [`Block`]s in [`super::Mlp::blocks`] (the second one with the
//! identity activation, and for `preact` without a normaliser), so every per-matrix record
//! (gradient norms, update ratios, parameter names) covers them as it covers any layer. The
//! unit owns what is not a layer: `p`'s normaliser and activation (a [`Block`] whose linear is
//! [`super::Linear::identity`]), the gain and the stream `h'` (a pre-activation block without a
//! gain writes `h'` over its second layer's output instead, which nothing reads after the sum).
//!
//! Backward, given `dh' = dL/dh'`: `du = dh' act'(u)` (basic; `act'` from its output `h'`) or
//! `du = dh'` (preact); `dalpha = beta sum(du y)`; the branch receives `dy = s du`; and
//! `dL/dh = du + (the branch's input gradient)`: `du` overwrites `dh'` in place and the branch's
//! input gradient is added to it, so the stream's gradient needs no buffer of its own.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Zip};

use super::Mode;
use super::block::Block;
use super::passes::ColScratch;
use crate::config::Activation;
use crate::float::Float;
use crate::ops::{self, HeadSums, Residual};
use crate::parallel::par_cols;
use crate::spec::StdBlock;

/// SkipInit's learnable scalar on a residual branch (De & Smith 2020) and its gradient, as
/// one-element arrays so that optimisers see it as any other parameter.
#[derive(Clone, Debug)]
pub struct Gain<T> {
    pub alpha: Array1<T>,
    pub dalpha: Array1<T>,
}

/// One standard residual block: see the module docs.
#[derive(Clone, Debug)]
pub struct ResUnit<T> {
    pub kind: StdBlock,
    /// Index in [`super::Mlp::blocks`] of the block's first layer (`W1`); `W2` is the next.
    pub first: usize,
    /// `preact`: `p = act(norm(h))`, a block whose linear is the identity; `None` for `basic`.
    pub pre: Option<Block<T>>,
    /// `basic`: the activation after the sum.
    pub act: Activation,
    /// Balduzzi et al.'s beta (`--residual-scale`), fixed.
    pub beta: T,
    /// SkipInit's `alpha` (`--skip-init`), from 0; `None`: no gain.
    pub gain: Option<Gain<T>>,
    /// `h'`: the stream after this block, `(batch, width)`; empty where the stream lives in the
    /// second layer's buffer ([`ResUnit::stream_in_branch`]): read it with [`ResUnit::stream`].
    pub h: Array2<T>,
}

impl<T: Float> ResUnit<T> {
    /// Whether the stream `h'` lives in the second layer's buffer: a pre-activation block
    /// without a gain, where nothing reads the branch's `y` after the sum (SkipInit's and
    /// Fixup's `dalpha` does), so the sum overwrites it and [`ResUnit::h`] stays empty.
    pub fn stream_in_branch(&self) -> bool {
        self.kind == StdBlock::Preact && self.gain.is_none()
    }

    /// The stream after this block, `h'`, given its second layer `b2`.
    pub fn stream<'a>(&'a self, b2: &'a Block<T>) -> ArrayView2<'a, T> {
        if self.stream_in_branch() {
            b2.output()
        } else {
            self.h.view()
        }
    }

    /// Whether the branch's `dy = s du` is `du` itself (no gain and beta 1): then the backward
    /// writes no `dy` and the branch reads `du` where it is, in the stream's gradient.
    fn dy_is_du(&self) -> bool {
        self.gain.is_none() && self.beta == T::one()
    }

    /// Whether this block's head pass only takes sums (`sq` and W2's bias gradient) of the
    /// stream's gradient, with nothing to write: a pre-activation block with `dy = du = dh`. Then
    /// the block above takes them as it finishes that gradient ([`super::passes::NextSums`]).
    pub(super) fn head_is_sums_only(&self) -> bool {
        self.kind == StdBlock::Preact && self.dy_is_du()
    }

    /// The branch multiplier `s`.
    pub fn multiplier(&self) -> T {
        self.gain
            .as_ref()
            .map_or(self.beta, |g| self.beta * g.alpha[0])
    }

    /// `h' = h + s y` or `act(h + s y)` from the stream `h_in` and the layers `b1`, `b2`
    /// (this block's, in order), filling their buffers.
    pub(super) fn forward(
        &mut self,
        h_in: ArrayView2<T>,
        b1: &mut Block<T>,
        b2: &mut Block<T>,
        mode: Mode,
    ) {
        if !self.stream_in_branch() && self.h.dim() != h_in.dim() {
            self.h = Array2::zeros(h_in.dim());
        }
        match &mut self.pre {
            Some(pre) => {
                pre.forward(h_in, mode);
                b1.forward(pre.output(), mode);
            }
            None => b1.forward(h_in, mode),
        }
        let (s, act, basic) = (self.multiplier(), self.act, self.kind == StdBlock::Basic);
        if self.stream_in_branch() {
            // preact without a gain: h' = h + s (z + b) over W2's own z, in one pass.
            b2.forward_stream_in_place(b1.output(), h_in, s);
            return;
        }
        if !basic && b2.bn.is_none() && !b2.skip {
            // preact: W2's bias and the sum in one pass, h' = h + s (z + b).
            let stream = Residual {
                h_in,
                h: self.h.view_mut(),
                scale: s,
            };
            b2.forward_stream(b1.output(), stream);
            return;
        }
        b2.forward(b1.output(), mode);
        let rows = h_in.nrows();
        par_cols((self.h.view_mut(), h_in, b2.output()), rows, &|(
            mut h,
            x,
            y,
        )| {
            Zip::from(&mut h).and(&x).and(&y).for_each(|h, &x, &y| {
                let u = x + s * y;
                *h = if basic { ops::act_scalar(act, u) } else { u };
            })
        });
    }

    /// The first half of the backward, one pass ([`ops::stream_backward_head`]): turn
    /// `dh = dL/dh'` into the identity path `du` in place (`dh act'(u)` for basic, `dh` for
    /// preact), write the branch's `dy = s du`, and set `dalpha = beta sum(du y)` (`y` is `b2`'s
    /// output); the branch's input gradient is then added to `dh`. Where `b2` is a linear layer
    /// (no normaliser, identity activation), `dy` is its `dL/dz` too, and its bias gradient's
    /// sums go into `acc.db` for [`ResUnit::backward_branch`]. Returns `sum dh^2` (before
    /// `act'`), for `||dL/dh'||`. `acc`'s `sq` and `s_dy` columns hold the sums on the way.
    pub(super) fn backward_head(
        &mut self,
        b2: &Block<T>,
        dh: ArrayViewMut2<T>,
        dy: ArrayViewMut2<T>,
        acc: &mut ColScratch,
    ) -> f64 {
        acc.reset();
        if self.head_is_sums_only()
            && let Some((sq, db)) = acc.next.take()
        {
            // The block above took this head's sums as it finished `dh` (same rows, same order).
            acc.sq.copy_from_slice(sq);
            if b2.is_linear_layer() {
                acc.db.copy_from_slice(db);
            }
            return acc.sq.iter().sum();
        }
        let (s, act, basic) = (self.multiplier(), self.act, self.kind == StdBlock::Basic);
        let rows = dh.nrows();
        let sums = HeadSums {
            sq: &mut acc.sq,
            dot: &mut acc.s_dy,
            db: b2.is_linear_layer().then_some(&mut acc.db[..]),
        };
        let h = basic.then(|| self.h.view());
        let y = self.gain.is_some().then(|| b2.output());
        let dy = (!self.dy_is_du()).then_some(dy);
        par_cols((dh, dy, h, y, sums), rows, &|(dh, dy, h, y, sums)| {
            ops::stream_backward_head(h.map(|h| (act, h)), dh, y, (dy, s), sums)
        });
        if let Some(g) = &mut self.gain {
            g.dalpha[0] = T::of(self.beta.f64() * acc.s_dy.iter().sum::<f64>());
        }
        acc.sq.iter().sum()
    }

    /// The second half of the backward, given `dy` from [`ResUnit::backward_head`]: through
    /// `b2`, `b1` and (preact) the first normaliser and activation, adding the branch's input
    /// gradient to `dh_in` (which holds the identity path `du`). `mid`, `dz`: `(batch, width)`
    /// scratch.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward_branch(
        &mut self,
        h_in: ArrayView2<T>,
        (b1, b2): (&mut Block<T>, &mut Block<T>),
        mut dy: ArrayViewMut2<T>,
        mut mid: ArrayViewMut2<T>,
        mut dz: ArrayViewMut2<T>,
        dh_in: ArrayViewMut2<T>,
        acc: &mut ColScratch,
    ) {
        // Without a gain and with beta 1, `dy` is `du`, which `dh_in` holds until the branch's
        // input gradient is added to it below.
        let dy_in = if self.dy_is_du() {
            dh_in.view()
        } else {
            dy.view()
        };
        if b2.is_linear_layer() {
            // `dy` is W2's dL/dz, and backward_head summed it for W2's bias.
            b2.backward_linear(b1.output(), dy_in, mid.view_mut(), acc);
        } else {
            b2.backward(
                b1.output(),
                dy_in,
                dz.view_mut(),
                Some(mid.view_mut()),
                false,
                acc,
            );
        }
        match &mut self.pre {
            Some(pre) => {
                // dL/dp into dy's buffer (dy is spent), then through p = act(norm(h)).
                b1.backward(
                    pre.output(),
                    mid.view(),
                    dz.view_mut(),
                    Some(dy.view_mut()),
                    false,
                    acc,
                );
                pre.backward(h_in, dy.view(), dz, Some(dh_in), true, acc);
            }
            None => {
                b1.backward(h_in, mid.view(), dz, Some(dh_in), true, acc);
            }
        }
    }
}
