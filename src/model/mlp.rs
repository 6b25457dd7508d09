//! [`Mlp`]: the blocks and the output layer, the forward and backward over them, noisy BN's
//! switch, and diagnostics recomputed from the cached buffers.

use ndarray::{Array1, Array2, ArrayView2, Zip};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::block::Block;
use super::linear::Linear;
use super::noise::{BlockNoise, NoiseSource};
use super::norm::NormLayer;
use super::passes::{BlockCache, ColScratch};
use super::unit::{Gain, ResUnit};
use super::{Mode, ModelError};
use crate::config::{Activation, BnNoise, Init, NormConfig, NormKind, Placement};
use crate::float::Float;
use crate::ops;
use crate::spec::{NetConfig, StdBlock};

/// `sqrt(sum_sq)`, or the scaled [`crate::stats::frobenius_norm`] of `m` where squaring may
/// have overflowed or underflowed (only possible for f64 entries beyond about 1e±150).
fn norm_from_sum_sq<T: Float>(sum_sq: f64, m: &Array2<T>) -> f64 {
    if sum_sq.is_finite() && (sum_sq > 1e-280 || T::BYTES == 4) {
        sum_sq.sqrt()
    } else {
        crate::stats::frobenius_norm(m)
    }
}

/// The multilayer perceptron. See the module docs for the equations.
#[derive(Clone, Debug)]
pub struct Mlp<T> {
    pub config: NetConfig,
    /// The hidden layers, each with a weight matrix: `depth` one-layer blocks, or for a
    /// standard block ([`NetConfig::block`]) the stem and then `W1`, `W2` of every block.
    pub blocks: Vec<Block<T>>,
    /// The standard residual blocks around `blocks[1..]` (empty for one-layer blocks).
    pub units: Vec<ResUnit<T>>,
    pub out: Linear<T>,
    /// `h_0`: a copy of the last forward's input, `(batch, d_in)`.
    x: Array2<T>,
    /// `o`: the last forward's output, `(batch, d_out)`.
    o: Array2<T>,
    /// Backward ping-pong buffers for `dL/dh_l`, and `dL/dz_l` scratch, all `(batch, width)`.
    dh: Array2<T>,
    dh_next: Array2<T>,
    dz: Array2<T>,
    /// A standard block's branch gradients: `dy` and the layer between its two matrices.
    dy: Array2<T>,
    mid: Array2<T>,
    /// `dL/dX`, `(batch, d_in)`.
    dx: Array2<T>,
    /// Per-column accumulators of the backward pass.
    cols: ColScratch,
    /// `||dL/dh_l||_F` for l = 1..depth (input side first), recorded by the last backward:
    /// the backprop signal reaching each block's output (for standard blocks, the stream's).
    pub grad_signal_norm: Vec<f64>,
    last_mode: Option<Mode>,
    /// Noisy BN's noise generator ([`Mlp::set_bn_noise`]); `None`: no noise.
    noise_source: Option<NoiseSource>,
}

/// Standard block `u`, the stream entering it (the stem's output or the block below's) and its
/// two layers, borrowed apart.
#[allow(clippy::type_complexity)]
fn unit_parts<'a, T: Float>(
    units: &'a mut [ResUnit<T>],
    blocks: &'a mut [Block<T>],
    u: usize,
) -> (
    &'a mut ResUnit<T>,
    ArrayView2<'a, T>,
    (&'a mut Block<T>, &'a mut Block<T>),
) {
    let (before, rest) = units.split_at_mut(u);
    let unit = &mut rest[0];
    let (lower, layers) = blocks.split_at_mut(unit.first);
    let h_in = match before.last() {
        Some(prev) => prev.stream(&lower[prev.first + 1]),
        None => lower[0].output(),
    };
    let (b1, b2) = layers.split_at_mut(1);
    (unit, h_in, (&mut b1[0], &mut b2[0]))
}

/// The stream after standard block `u` (0-based): its own buffer, or its second layer's.
fn unit_stream<'a, T: Float>(
    units: &'a [ResUnit<T>],
    blocks: &'a [Block<T>],
    u: usize,
) -> ArrayView2<'a, T> {
    let unit = &units[u];
    unit.stream(&blocks[unit.first + 1])
}

/// A hidden layer `Linear -> [norm] -> act` from `fan_in` units to the width, without a skip.
/// (`fan_in` 0: the identity linear of a pre-activation block's first normaliser.)
fn layer<T: Float, R: Rng>(
    config: &NetConfig,
    fan_in: usize,
    norm: Option<&NormConfig>,
    act: Activation,
    rng: &mut R,
) -> Block<T> {
    Block {
        linear: if fan_in == 0 {
            Linear::identity(config.width)
        } else {
            Linear::new(fan_in, config.width, config.init, rng)
        },
        bn: norm.map(|n| NormLayer::new(config.width, n)),
        act,
        placement: norm.map_or(Placement::Pre, |n| n.placement),
        skip: false,
        skip_scale: T::one(),
        noise: None,
        cache: BlockCache::default(),
    }
}

/// The stem and the layers and [`ResUnit`]s of `config.depth` standard blocks of `kind`
/// ([`StdBlock`]'s equations); every matrix drawn with the config's `init`.
fn std_blocks<T: Float, R: Rng>(
    config: &NetConfig,
    kind: StdBlock,
    rng: &mut R,
) -> (Vec<Block<T>>, Vec<ResUnit<T>>) {
    let norm = config.norm.as_ref();
    let (act, identity) = (config.act, Activation::Linear);
    let mut blocks = Vec::with_capacity(1 + 2 * config.depth);
    blocks.push(match kind {
        StdBlock::Basic => layer(config, config.d_in, norm, act, rng),
        StdBlock::Preact => layer(config, config.d_in, None, identity, rng),
    });
    let units = (0..config.depth)
        .map(|u| {
            blocks.push(layer(config, config.width, norm, act, rng));
            let second_norm = if kind == StdBlock::Basic { norm } else { None };
            blocks.push(layer(config, config.width, second_norm, identity, rng));
            ResUnit {
                kind,
                first: 1 + 2 * u,
                pre: (kind == StdBlock::Preact).then(|| layer(config, 0, norm, act, rng)),
                act,
                beta: T::of(config.residual_scale),
                gain: config.has_gain().then(|| Gain {
                    alpha: Array1::from_elem(1, T::of(config.initial_gain())),
                    dalpha: Array1::zeros(1),
                }),
                h: Array2::zeros((0, 0)),
            }
        })
        .collect();
    (blocks, units)
}

/// Fixup's rules 1 and 2 (Zhang et al. 2019, section 3) on He-drawn standard blocks
/// (`blocks`: the stem, then W1 and W2 of each of `depth` blocks): each branch's first matrix
/// scaled by `depth^(-1/2)` (`L^(-1/(2m-2))` with `m = 2` matrices per branch), each branch's
/// last matrix and the head `out` set to 0. Rule 3's multiplier is the units' gain, from 1.
fn fixup<T: Float>(blocks: &mut [Block<T>], depth: usize, out: &mut Linear<T>) {
    let scale = T::of((depth as f64).powf(-0.5));
    for pair in blocks[1..].chunks_exact_mut(2) {
        pair[0].linear.w.mapv_inplace(|w| w * scale);
        pair[1].linear.w.fill(T::zero());
    }
    out.w.fill(T::zero());
}

impl<T: Float> Mlp<T> {
    /// Build a network with weights drawn from `rng` (layer by layer from the input, then the
    /// output layer). The config must have been validated.
    pub fn new<R: Rng>(config: &NetConfig, rng: &mut R) -> Self {
        let (mut blocks, units) = match config.block {
            None => (
                (0..config.depth)
                    .map(|l| {
                        let fan_in = if l == 0 { config.d_in } else { config.width };
                        let mut block =
                            layer(config, fan_in, config.norm.as_ref(), config.act, rng);
                        if config.block_has_skip(l) {
                            block.skip = true;
                            block.skip_scale = T::of(config.residual_scale);
                        }
                        block
                    })
                    .collect(),
                Vec::new(),
            ),
            Some(kind) => std_blocks(config, kind, rng),
        };
        let mut out = Linear::new(config.width, config.d_out, config.init, rng);
        if config.init == Init::Fixup {
            fixup(&mut blocks, config.depth, &mut out);
        }
        let empty = || Array2::zeros((0, 0));
        Mlp {
            config: config.clone(),
            blocks,
            units,
            out,
            x: empty(),
            o: empty(),
            dh: empty(),
            dh_next: empty(),
            dz: empty(),
            dy: empty(),
            mid: empty(),
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
            .norm
            .is_some_and(|bn| bn.kind == NormKind::Batch && bn.placement == Placement::Pre);
        if !bn_pre || self.config.block.is_some() {
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

    /// Call `f` on every normaliser: each layer's, then each pre-activation block's first.
    pub fn for_each_norm_mut(&mut self, mut f: impl FnMut(&mut NormLayer<T>)) {
        let pre = self.units.iter_mut().filter_map(|u| u.pre.as_mut());
        for block in self.blocks.iter_mut().chain(pre) {
            if let Some(norm) = block.bn.as_mut() {
                f(norm);
            }
        }
    }

    /// Hidden blocks: layers, or standard blocks (each two layers, after the stem).
    pub fn depth(&self) -> usize {
        self.config.depth
    }

    /// `h_0`: the input of the last forward.
    pub fn input(&self) -> ArrayView2<'_, T> {
        self.x.view()
    }

    /// `h_l` for l = 0..=depth from the last forward (`h_0` is the input); for standard
    /// blocks `h_l` (l >= 1) is the residual stream after block `l`.
    pub fn hidden(&self, l: usize) -> ArrayView2<'_, T> {
        match (l, self.units.is_empty()) {
            (0, _) => self.x.view(),
            (_, true) => self.blocks[l - 1].output(),
            (_, false) => unit_stream(&self.units, &self.blocks, l - 1),
        }
    }

    /// The residual stream entering standard block `l + 1` (l = 0..=depth): the stem's output
    /// for `l = 0`, then [`Mlp::hidden`]. For one-layer blocks the same as [`Mlp::hidden`].
    pub fn stream(&self, l: usize) -> ArrayView2<'_, T> {
        if l == 0 && !self.units.is_empty() {
            self.blocks[0].output()
        } else {
            self.hidden(l)
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
        if self.units.is_empty() {
            for l in 0..self.blocks.len() {
                let (before, rest) = self.blocks.split_at_mut(l);
                let h_in = if l == 0 {
                    self.x.view()
                } else {
                    before[l - 1].output()
                };
                rest[0].forward(h_in, mode);
            }
        } else {
            self.forward_units(mode);
        }
        let h_last = if self.units.is_empty() {
            self.blocks.last().map_or(self.x.view(), |b| b.output())
        } else {
            unit_stream(&self.units, &self.blocks, self.units.len() - 1)
        };
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
            if !self.units.is_empty() {
                self.dy = Array2::zeros((batch, width));
                self.mid = Array2::zeros((batch, width));
            }
        }
        if want_dx && self.dx.dim() != self.x.dim() {
            self.dx = Array2::zeros(self.x.dim());
        }
        let depth = self.blocks.len();
        // Output layer: dW_out = h_depth^T d_o, dL/dh_depth = d_o W_out^T.
        {
            let h_last = if self.units.is_empty() {
                self.blocks[depth - 1].output()
            } else {
                unit_stream(&self.units, &self.blocks, self.units.len() - 1)
            };
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
        if !self.units.is_empty() {
            self.backward_units(want_dx);
            return Ok(());
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
                false,
                &mut self.cols,
            );
            self.grad_signal_norm[l] = norm_from_sum_sq(sum_sq, &self.dh);
            std::mem::swap(&mut self.dh, &mut self.dh_next);
        }
        Ok(())
    }

    /// The standard blocks' forward: the stem on the input, then every [`ResUnit`] on the
    /// stream the one before it left.
    fn forward_units(&mut self, mode: Mode) {
        self.blocks[0].forward(self.x.view(), mode);
        for u in 0..self.units.len() {
            let (unit, h_in, (b1, b2)) = unit_parts(&mut self.units, &mut self.blocks, u);
            unit.forward(h_in, b1, b2, mode);
        }
    }

    /// The standard blocks' backward from `dL/dh_depth` in `dh`: every [`ResUnit`] from the
    /// top (identity path, then its branch added), then the stem; `dL/dX` into `dx` if asked.
    fn backward_units(&mut self, want_dx: bool) {
        for u in (0..self.units.len()).rev() {
            // The block below's head sums, taken by this block's last pass onto the stream.
            let below_takes_sums = u > 0 && self.units[u - 1].head_is_sums_only();
            let (unit, h_in, (b1, b2)) = unit_parts(&mut self.units, &mut self.blocks, u);
            let sum_sq =
                unit.backward_head(b2, self.dh.view_mut(), self.dy.view_mut(), &mut self.cols);
            // (Where the sum over- or underflowed, the norm is recomputed from `du`, which for a
            // basic block is `dh act'(u)`: the f64 sum covers every finite case there is.)
            self.grad_signal_norm[u] = norm_from_sum_sq(sum_sq, &self.dh);
            self.cols.next.wanted = below_takes_sums;
            unit.backward_branch(
                h_in,
                (b1, b2),
                self.dy.view_mut(),
                self.mid.view_mut(),
                self.dz.view_mut(),
                self.dh.view_mut(),
                &mut self.cols,
            );
            self.cols.next.wanted = false;
        }
        let dx = want_dx.then(|| self.dx.view_mut());
        self.blocks[0].backward(
            self.x.view(),
            self.dh.view(),
            self.dz.view_mut(),
            dx,
            false,
            &mut self.cols,
        );
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
