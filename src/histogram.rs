//! Per-layer histograms of activations and of the backprop signal `dL/dh_l` (`--histograms` on
//! `grad-norms` and `train`), as in makemore part 3 and TensorBoard.
//!
//! A [`Histogram`] has [`BINS`] equal bins over a range fixed by the quantity: the activation's
//! own range where `h_l` is the activation's output (tanh `[-1, 1]`, sigmoid `[0, 1]`), else from
//! the data: `[0, max x]` when no value is negative (ReLU), `[-max|x|, max|x|]` otherwise. No
//! value falls outside, so the counts sum to `n - non_finite`; NaN and inf are counted apart.
//!
//! Saturation (makemore's rule of thumb): a tanh unit is saturated when `|a| > 0.97`, a sigmoid
//! unit when `a < 0.03` or `a > 0.97`; there its derivative is below 0.06 (tanh) or 0.03
//! (sigmoid) and the gradient through it nearly stops. ReLU and linear units have no such zone.

use ndarray::{Array2, ArrayView2};
use serde::Serialize;

use crate::config::{Activation, Placement};
use crate::float::Float;
use crate::model::{Mlp, Mode};
use crate::stats::Num;

/// Bins per histogram: odd, so 0 is a bin's centre on a symmetric range.
pub const BINS: usize = 41;
/// At most this many layers get histograms: evenly spaced, the first and last included.
pub const MAX_LAYERS: usize = 8;
/// `|tanh| > 0.97`: saturated.
pub const TANH_SATURATED: f64 = 0.97;
/// `sigmoid < 0.03` or `> 0.97`: saturated.
pub const SIGMOID_SATURATED: (f64, f64) = (0.03, 0.97);

/// The range a histogram's bins cover.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Range {
    /// Fixed bounds (an activation's range).
    Fixed(f64, f64),
    /// From the finite values: `[0, max]` if none is negative, else `[-max|x|, max|x|]`
    /// (`[-1, 1]` when every value is 0 or none is finite).
    Data,
}

/// Counts of values in [`BINS`] equal bins.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    /// `BINS + 1` bin edges, increasing; bin `i` is `[edges[i], edges[i + 1])`, the last bin
    /// closed.
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
    /// Values seen, the non-finite ones included.
    pub n: u64,
    /// Mean and standard deviation (population) of the finite values.
    pub mean: Num,
    pub std: Num,
    /// Share of units in the activation's saturated zone (see the module docs); `null` for
    /// activations without one.
    pub saturated_share: Option<Num>,
    /// NaN and inf values (in no bin).
    pub non_finite: u64,
}

impl Histogram {
    /// The histogram of `values` over `range` (no saturation share).
    pub fn of(values: impl Iterator<Item = f64> + Clone, range: Range) -> Self {
        let (lo, hi) = match range {
            Range::Fixed(lo, hi) => (lo, hi),
            Range::Data => data_range(values.clone()),
        };
        // A weighted mean of the bounds, so `hi - lo` near f64::MAX cannot overflow.
        let edges: Vec<f64> = (0..=BINS)
            .map(|i| {
                let t = i as f64 / BINS as f64;
                if i == BINS {
                    hi
                } else {
                    lo * (1.0 - t) + hi * t
                }
            })
            .collect();
        let mut counts = vec![0u64; BINS];
        let (mut n, mut non_finite, mut sum, mut finite) = (0u64, 0u64, 0.0f64, 0u64);
        for v in values.clone() {
            n += 1;
            if !v.is_finite() {
                non_finite += 1;
                continue;
            }
            finite += 1;
            sum += v;
            counts[bin(v, lo, hi)] += 1;
        }
        let mean = if finite > 0 {
            sum / finite as f64
        } else {
            f64::NAN
        };
        let sq: f64 = values
            .filter(|v| v.is_finite())
            .map(|v| (v - mean) * (v - mean))
            .sum();
        let std = if finite > 0 {
            (sq / finite as f64).sqrt()
        } else {
            f64::NAN
        };
        Histogram {
            edges,
            counts,
            n,
            mean: Num(mean),
            std: Num(std),
            saturated_share: None,
            non_finite,
        }
    }

    /// The centre of each bin.
    pub fn centres(&self) -> Vec<f64> {
        self.edges.windows(2).map(|e| 0.5 * (e[0] + e[1])).collect()
    }
}

/// The bin of a finite `v` in `[lo, hi]` (values on or beyond the edges go to the end bins,
/// which only rounding can produce).
fn bin(v: f64, lo: f64, hi: f64) -> usize {
    // Scaled before subtracting, so `hi - lo` near f64::MAX cannot overflow.
    let t = (v / hi - lo / hi) / (1.0 - lo / hi);
    let t = if hi > 0.0 { t } else { 0.5 };
    ((t * BINS as f64).floor().max(0.0) as usize).min(BINS - 1)
}

/// See [`Range::Data`].
fn data_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut min, mut max_abs) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite()) {
        min = min.min(v);
        max_abs = max_abs.max(v.abs());
    }
    if max_abs == 0.0 {
        (-1.0, 1.0)
    } else if min >= 0.0 {
        (0.0, max_abs)
    } else {
        (-max_abs, max_abs)
    }
}

/// The share of `a` (an activation's outputs) in `act`'s saturated zone; `None` for ReLU,
/// leaky ReLU and linear units. NaN counts as not saturated; an empty slice gives NaN.
pub fn saturated_share(act: Activation, a: impl Iterator<Item = f64>) -> Option<f64> {
    let saturated: fn(f64) -> bool = match act {
        Activation::Tanh => |v| v.abs() > TANH_SATURATED,
        Activation::Sigmoid => |v| v < SIGMOID_SATURATED.0 || v > SIGMOID_SATURATED.1,
        Activation::Relu | Activation::LeakyRelu | Activation::Linear => return None,
    };
    let (mut n, mut k) = (0u64, 0u64);
    for v in a {
        n += 1;
        k += saturated(v) as u64;
    }
    Some(k as f64 / n as f64)
}

/// The range of an activation's output, where it has one.
pub fn activation_range(act: Activation) -> Option<(f64, f64)> {
    match act {
        Activation::Tanh => Some((-1.0, 1.0)),
        Activation::Sigmoid => Some((0.0, 1.0)),
        Activation::Relu | Activation::LeakyRelu | Activation::Linear => None,
    }
}

/// Up to [`MAX_LAYERS`] layers of `1..=depth`, evenly spaced, the first and the last included.
///
/// ```
/// assert_eq!(bn_lab::histogram::layers(3), vec![1, 2, 3]);
/// assert_eq!(bn_lab::histogram::layers(50), vec![1, 8, 15, 22, 29, 36, 43, 50]);
/// ```
pub fn layers(depth: usize) -> Vec<usize> {
    if depth <= MAX_LAYERS {
        return (1..=depth).collect();
    }
    let k = MAX_LAYERS - 1;
    let mut v: Vec<usize> = (0..=k)
        .map(|i| 1 + ((i * (depth - 1)) as f64 / k as f64).round() as usize)
        .collect();
    v.dedup();
    v
}

/// The histograms of one hidden layer.
#[derive(Clone, Debug, Serialize)]
pub struct LayerHistograms {
    /// 1-based, input side first.
    pub layer: usize,
    /// `h_l`, the block's output; `saturated_share` is that of the activation's output `a_l`
    /// (the same values unless the block has a skip connection or BN after the activation).
    pub activation: Histogram,
    /// `dL/dh_l`, the backprop signal reaching `h_l`.
    pub grad: Histogram,
}

/// Histograms of the network at one moment.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// Updates made before this forward (0: at initialisation).
    pub step: usize,
    pub loss: Num,
    pub layers: Vec<LayerHistograms>,
}

/// `dL/dh_l` for layer `l` (1-based) of `net` after a forward on a batch whose loss gradient is
/// `d_o: (batch, d_out)`; `(batch, width)`. The net's own backward keeps only the norms, so
/// this backpropagates through a copy of blocks `l+1..L` and the output layer, run forward
/// again (in train mode, the mode of the forward it repeats) from `h_l`: the same numbers, and
/// the net itself is untouched.
pub fn grad_at<T: Float>(net: &Mlp<T>, l: usize, d_o: ArrayView2<T>) -> Array2<T> {
    let depth = net.depth();
    if l == depth {
        // dL/dh_L = d_o W_out^T.
        return d_o.dot(&net.out.w.t());
    }
    let mut cfg = net.config.clone();
    cfg.d_in = cfg.width;
    cfg.depth = 1;
    // Built with one block (its weights are replaced), then given copies of the net's.
    let mut tail = Mlp::<T>::new(&cfg, &mut crate::data::rng(0, crate::data::Stream::Weights));
    tail.blocks = net.blocks[l..].to_vec();
    tail.out = net.out.clone();
    tail.config.depth = depth - l;
    tail.grad_signal_norm = vec![0.0; depth - l];
    tail.forward(net.hidden(l), Mode::Train)
        .expect("h_l has the tail's input width");
    tail.backward_with_input_grad(d_o)
        .expect("forward ran just before")
        .to_owned()
}

/// Histograms of `layers` (1-based) of `net` after a train-mode forward whose loss gradient is
/// `d_o` (before its backward).
pub fn snapshot<T: Float>(
    net: &Mlp<T>,
    d_o: ArrayView2<T>,
    layers: &[usize],
    step: usize,
    loss: f64,
) -> Snapshot {
    let act = net.config.act;
    let layers = layers
        .iter()
        .map(|&l| {
            let block = &net.blocks[l - 1];
            let h = net.hidden(l);
            // h_l is a_l unless a skip or BN after the activation follows it.
            let post_bn = block.bn.is_some() && block.placement == Placement::Post;
            let is_a = !(block.skip || post_bn);
            let range = match activation_range(act) {
                Some((lo, hi)) if is_a => Range::Fixed(lo, hi),
                _ => Range::Data,
            };
            let mut activation = Histogram::of(h.iter().map(|v| v.f64()), range);
            activation.saturated_share =
                saturated_share(act, block.activation_output().iter().map(|v| v.f64())).map(Num);
            let g = grad_at(net, l, d_o);
            LayerHistograms {
                layer: l,
                activation,
                grad: Histogram::of(g.iter().map(|v| v.f64()), Range::Data),
            }
        })
        .collect();
    Snapshot {
        step,
        loss: Num(loss),
        layers,
    }
}

/// Work units of one [`snapshot`] of a depth-`depth` net, in layers forward and backward (as
/// `grad-norms` counts): the copied tail of every histogram layer.
pub fn snapshot_units(depth: usize) -> u64 {
    layers(depth).iter().map(|&l| (depth - l) as u64 + 1).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_vector_lands_in_known_bins() {
        // Over [-1, 1] in 41 bins of width 2/41: -1 is bin 0, 0 bin 20 (the centre), 0.99 and
        // 1 the last bin.
        let v = [-1.0, 0.0, 0.0, 0.99, 1.0, f64::NAN, f64::INFINITY];
        let h = Histogram::of(v.iter().copied(), Range::Fixed(-1.0, 1.0));
        assert_eq!(h.edges.len(), BINS + 1);
        assert_eq!((h.edges[0], h.edges[BINS]), (-1.0, 1.0));
        assert!((h.edges[20] - (-1.0 + 40.0 / 41.0)).abs() < 1e-15);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[20], 2);
        assert_eq!(h.counts[40], 2);
        assert_eq!(h.counts.iter().sum::<u64>(), 5);
        assert_eq!((h.n, h.non_finite), (7, 2));
        assert!((h.mean.0 - 0.198).abs() < 1e-12);
    }

    #[test]
    fn data_ranges_follow_the_sign_of_the_values() {
        let relu = Histogram::of([0.0, 1.0, 4.0].into_iter(), Range::Data);
        assert_eq!((relu.edges[0], relu.edges[BINS]), (0.0, 4.0));
        let g = Histogram::of([-3.0, 1.0].into_iter(), Range::Data);
        assert_eq!((g.edges[0], g.edges[BINS]), (-3.0, 3.0));
        assert_eq!((g.counts[0], g.counts[27]), (1, 1));
        let zeros = Histogram::of([0.0; 4].into_iter(), Range::Data);
        assert_eq!((zeros.edges[0], zeros.counts[20]), (-1.0, 4));
        let none = Histogram::of([f64::NAN].into_iter(), Range::Data);
        assert_eq!((none.non_finite, none.counts.iter().sum::<u64>()), (1, 0));
        assert!(none.mean.0.is_nan());
        let huge = Histogram::of([-f64::MAX, f64::MAX].into_iter(), Range::Data);
        assert_eq!((huge.counts[0], huge.counts[40]), (1, 1));
        assert!(huge.edges.iter().all(|e| e.is_finite()));
    }

    #[test]
    fn saturation_follows_the_rule_of_thumb() {
        let a = [0.98, -0.99, 0.5, 0.0];
        assert_eq!(saturated_share(Activation::Tanh, a.into_iter()), Some(0.5));
        let s = [0.01, 0.5, 0.98, 0.96];
        assert_eq!(
            saturated_share(Activation::Sigmoid, s.into_iter()),
            Some(0.5)
        );
        assert_eq!(saturated_share(Activation::Relu, s.into_iter()), None);
    }

    #[test]
    fn layers_are_evenly_spaced_with_both_ends() {
        assert_eq!(layers(1), vec![1]);
        assert_eq!(layers(8), (1..=8).collect::<Vec<_>>());
        assert_eq!(layers(9), vec![1, 2, 3, 4, 6, 7, 8, 9]);
        let deep = layers(200);
        assert_eq!((deep.len(), deep[0], deep[7]), (8, 1, 200));
    }
}
