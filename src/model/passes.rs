//! One block's `(batch, width)` buffers ([`BlockCache`], kept from its forward for its backward),
//! the backward passes over them, each split over threads by [`par_cols`], and the per-column
//! accumulators those share.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::config::Activation;
use crate::float::Float;
use crate::ops::{self, BnGradCoeffs, BnSums, NextHead, XHat};
use crate::parallel::par_cols;

/// Backward through `a = act(z)` without BN: `dz = dh * act'(a)`, adding `db = sum_i dz` and
/// `sq = sum_i dh^2` into `acc`, and `copy = dh` when given (a skip connection's identity path).
/// `a, dh, dz, copy: (batch, width)`.
pub(super) fn act_backward_pass<T: Float>(
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

/// [`act_backward_pass`] adding `dL/dz = dh * act'(a)` to `out` instead of writing it (an
/// identity linear's input gradient onto a residual stream's, [`ops::act_backward_add`]).
pub(super) fn act_backward_add_pass<T: Float>(
    act: Activation,
    a: ArrayView2<T>,
    dh: ArrayView2<T>,
    out: ArrayViewMut2<T>,
    acc: &mut ColScratch,
) {
    let next = acc.next.open();
    par_cols(
        (dh, a, out, &mut acc.db[..], &mut acc.sq[..], next),
        dh.nrows(),
        &|(dh, a, out, db, sq, next)| ops::act_backward_add(act, dh, a, out, db, sq, next),
    );
}

/// Buffers one block keeps between its forward and backward, all `(batch, width)`.
/// Which ones are live depends on the block's kind (see [`super::Block::output`]).
#[derive(Clone, Debug, Default)]
pub(super) struct BlockCache<T> {
    pub(super) batch: usize,
    /// `a_l`: the activation's output (act'(z) is computed from it).
    pub(super) a: Array2<T>,
    /// `x_hat`: BN's standardised input (empty without BN).
    pub(super) x_hat: Array2<T>,
    /// `h_l` where it is neither `a_l` nor `x_hat` (skip connections, post-BN with scale/shift).
    pub(super) h: Array2<T>,
}

/// The gradient buffers of one block's backward, all `(batch, width)`: `dh = dL/dh_l` in, `dz`
/// receives the pass's result, and `copy` (a skip connection's identity path) `dh`. With `into`
/// (an identity linear's input gradient, added to a residual stream's), the last pass adds
/// `dL/dz` to `into` instead of leaving it in `dz`; `x_from`: see [`XHat::From`].
pub(super) struct BackwardBufs<'a, T> {
    pub dh: ArrayView2<'a, T>,
    pub dz: ArrayViewMut2<'a, T>,
    pub copy: Option<ArrayViewMut2<'a, T>>,
    pub into: Option<ArrayViewMut2<'a, T>>,
    /// The normaliser's input `z` where its forward kept no `x_hat` (recomputed from it).
    pub x_from: Option<ArrayView2<'a, T>>,
}

/// BN's pass 1 ([`ops::bn_backward_sums`]): `dy = dh * act'(a)` (`pre_act` given: BN before the
/// activation) or `dy = dh` into `bufs.dz`, adding `s_dy = sum_i dy`, `s_dyx = sum_i dy x_hat`
/// and `sq = sum_i dh^2` into `acc`; `copy = dh` when given. All views `(batch, width)`.
pub(super) fn bn_sums_pass<T: Float>(
    act: Activation,
    pre_act: Option<ArrayView2<T>>,
    x_hat: XHat<T>,
    noise_scale: Option<ArrayView2<T>>,
    bufs: BackwardBufs<T>,
    acc: &mut ColScratch,
) {
    let BackwardBufs {
        dh, dz: dy, copy, ..
    } = bufs;
    let sums = BnSums {
        s_dy: &mut acc.s_dy,
        s_dyx: &mut acc.s_dyx,
        sq: &mut acc.sq,
    };
    par_cols(
        ((dh, pre_act), x_hat, noise_scale, dy, sums, copy),
        dh.nrows(),
        &|((dh, a), x_hat, noise, dy, sums, copy)| {
            ops::bn_backward_sums_x(a.map(|a| (act, a)), dh, x_hat, dy, noise, sums, copy)
        },
    );
}

/// BN's pass 2 ([`ops::bn_backward_apply`]), in place on `d` (`dy` on entry, `dL/dz` on exit),
/// with the coefficients `k, s_dy, s_dyx` (means by now) in `acc`; `post_act` given: BN after the
/// activation, `act'(a)` applied last. Adds `db = sum_i dz` into `acc`. With `into` (BN before
/// the activation only), `dL/dz` is added to `into` instead ([`ops::bn_backward_apply_add`]) and
/// `d` is left as it was. `d, x_hat, post_act, into: (batch, width)`.
pub(super) fn bn_apply_pass<T: Float>(
    act: Activation,
    post_act: Option<ArrayView2<T>>,
    x_hat: XHat<T>,
    batch_stats: bool,
    d: ArrayViewMut2<T>,
    into: Option<ArrayViewMut2<T>>,
    acc: &mut ColScratch,
) {
    let rows = d.nrows();
    let coeffs = BnGradCoeffs {
        k: &acc.k,
        m_dy: &acc.s_dy,
        m_dyx: &acc.s_dyx,
        batch_stats,
    };
    if let Some(into) = into {
        assert!(post_act.is_none(), "BN before the activation");
        let next = acc.next.open();
        par_cols(
            (d.view(), x_hat, coeffs, into, &mut acc.db[..], next),
            rows,
            &|(d, x_hat, coeffs, into, db, next)| {
                ops::bn_backward_apply_add_x(d, x_hat, coeffs, into, db, next)
            },
        );
        return;
    }
    par_cols(
        (d, x_hat, coeffs, post_act, &mut acc.db[..]),
        rows,
        &|(d, x_hat, coeffs, a, db)| {
            ops::bn_backward_apply_x(d, x_hat, coeffs, a.map(|a| (act, a)), db)
        },
    );
}

/// LayerNorm's pass 2 ([`ops::ln_backward_apply`]), in place on `d` (`dy` on entry, `dL/dz` on
/// exit), split over threads by rows; then `db = sum_i dz` into `acc` (a column pass, so the sum
/// keeps one order whatever the thread count), and `into += dz` in the same pass when `into` is
/// given. `post_act` given: LayerNorm after the activation. `d, x_hat, post_act, into:
/// (batch, width)`; `gamma: (width)`; `inv_std: (batch)`.
pub(super) fn ln_apply_pass<T: Float>(
    act: Activation,
    post_act: Option<ArrayView2<T>>,
    x_hat: ArrayView2<T>,
    gamma: &[T],
    inv_std: &[f64],
    (mut d, into): (ArrayViewMut2<T>, Option<ArrayViewMut2<T>>),
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
    let next = into.is_some().then(|| acc.next.open()).flatten();
    par_cols((d.view(), &mut acc.db[..], into, next), rows, &|(
        d,
        db,
        into,
        next,
    )| {
        ops::add_col_sums_and_add(d, db, into, next)
    });
}

/// The head sums ([`NextHead`]) a pre-activation block below asks the block above to take of
/// the stream's gradient as it finishes it, so that its own head pass need not run.
#[derive(Clone, Debug, Default)]
pub(super) struct NextSums {
    /// Set by the caller before the block above's backward, for its one adding pass.
    pub(super) wanted: bool,
    ready: bool,
    sq: Vec<f64>,
    db: Vec<f64>,
}

impl NextSums {
    /// For the pass that finishes the stream's gradient: the sums, zeroed, when they are wanted
    /// (once: the pass that takes them marks them ready).
    pub(super) fn open(&mut self) -> Option<NextHead<'_>> {
        if !self.wanted {
            return None;
        }
        self.wanted = false;
        self.ready = true;
        self.sq.fill(0.0);
        self.db.fill(0.0);
        Some(NextHead {
            sq: &mut self.sq,
            db: &mut self.db,
        })
    }

    /// For the block below's head: `(sq, db)` if a pass took them since the last call.
    pub(super) fn take(&mut self) -> Option<(&[f64], &[f64])> {
        if !std::mem::take(&mut self.ready) {
            return None;
        }
        Some((&self.sq, &self.db))
    }
}

/// Per-column f64 accumulators of the backward pass, all `(width)`, reused by every block.
#[derive(Clone, Debug, Default)]
pub(super) struct ColScratch {
    pub(super) s_dy: Vec<f64>,
    pub(super) s_dyx: Vec<f64>,
    pub(super) sq: Vec<f64>,
    pub(super) db: Vec<f64>,
    pub(super) k: Vec<f64>,
    /// Not cleared by [`ColScratch::reset`]: it carries sums from one block to the next.
    pub(super) next: NextSums,
}

impl ColScratch {
    pub(super) fn new(n: usize) -> Self {
        ColScratch {
            s_dy: vec![0.0; n],
            s_dyx: vec![0.0; n],
            sq: vec![0.0; n],
            db: vec![0.0; n],
            k: vec![0.0; n],
            next: NextSums {
                wanted: false,
                ready: false,
                sq: vec![0.0; n],
                db: vec![0.0; n],
            },
        }
    }

    pub(super) fn reset(&mut self) {
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
