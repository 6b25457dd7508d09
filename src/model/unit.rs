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
//! [`super::Linear::identity`]), the gain and the stream `h'`.
//!
//! Backward, given `dh' = dL/dh'`: `du = dh' act'(u)` (basic; `act'` from its output `h'`) or
//! `du = dh'` (preact); `dalpha = beta sum(du y)`; the branch receives `dy = s du`; and
//! `dL/dh = du + (the branch's input gradient)`, the identity path written first and the branch
//! added to it.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Zip};

use super::Mode;
use super::block::Block;
use super::passes::ColScratch;
use crate::config::Activation;
use crate::float::Float;
use crate::ops;
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
    /// `h'`: the stream after this block, `(batch, width)`.
    pub h: Array2<T>,
}

impl<T: Float> ResUnit<T> {
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
        if self.h.dim() != h_in.dim() {
            self.h = Array2::zeros(h_in.dim());
        }
        match &mut self.pre {
            Some(pre) => {
                pre.forward(h_in, mode);
                b1.forward(pre.output(), mode);
            }
            None => b1.forward(h_in, mode),
        }
        b2.forward(b1.output(), mode);
        let s = self.multiplier();
        let y = b2.output();
        match self.kind {
            StdBlock::Preact => Zip::from(&mut self.h)
                .and(&h_in)
                .and(&y)
                .for_each(|h, &x, &y| *h = x + s * y),
            StdBlock::Basic => {
                let act = self.act;
                Zip::from(&mut self.h)
                    .and(&h_in)
                    .and(&y)
                    .for_each(|h, &x, &y| *h = ops::act_scalar(act, x + s * y));
            }
        }
    }

    /// The first half of the backward: turn `dh = dL/dh'` into `du` in place (basic), write
    /// `dy = s du` into `dy` and the identity path `du` into `dh_in`, and set `dalpha`. Returns
    /// `sum dh^2` (before `act'`), for `||dL/dh'||`.
    pub(super) fn backward_head(
        &mut self,
        y: ArrayView2<T>,
        mut dh: ArrayViewMut2<T>,
        mut dy: ArrayViewMut2<T>,
        mut dh_in: ArrayViewMut2<T>,
    ) -> f64 {
        let mut sum_sq = 0.0;
        let act = self.act;
        let basic = self.kind == StdBlock::Basic;
        Zip::from(&mut dh).and(&self.h).for_each(|d, &h| {
            sum_sq += d.f64() * d.f64();
            if basic {
                *d *= ops::act_grad_from_output(act, h);
            }
        });
        let s = self.multiplier();
        let mut dot = 0.0;
        Zip::from(&mut dy)
            .and(&mut dh_in)
            .and(&dh)
            .and(&y)
            .for_each(|dy, dx, &du, &y| {
                dot += du.f64() * y.f64();
                *dy = s * du;
                *dx = du;
            });
        if let Some(g) = &mut self.gain {
            g.dalpha[0] = T::of(self.beta.f64() * dot);
        }
        sum_sq
    }

    /// The second half of the backward, given `dy` from [`ResUnit::backward_head`]: through
    /// `b2`, `b1` and (preact) the first normaliser and activation, adding the branch's input
    /// gradient to `dh_in`. `mid`, `dz`: `(batch, width)` scratch.
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
        b2.backward(
            b1.output(),
            dy.view(),
            dz.view_mut(),
            Some(mid.view_mut()),
            false,
            acc,
        );
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
