//! Parameter names (`layers.3.weight`, `out.bias`) and [`Mlp::for_each_param_mut`], the one
//! accessor to every parameter and its gradient.

use ndarray::{ArrayViewD, ArrayViewMutD};
use serde::Serialize;

use super::{Mlp, ScaleShift};
use crate::float::Float;

/// Which layer a parameter belongs to: hidden layer `l` (1-based, as `W_l` in the math; for
/// standard blocks the stem is layer 1 and block `b`'s matrices are layers `2b` and `2b + 1`),
/// standard block `b` (1-based: a pre-activation block's first normaliser, SkipInit's gain), or
/// the output layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerId {
    Hidden(usize),
    Block(usize),
    Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    Weight,
    Bias,
    Gamma,
    Beta,
    /// SkipInit's `alpha`.
    Gain,
}

/// Identifies one parameter tensor; displays as `layers.3.weight`, `out.bias`, `layers.1.gamma`,
/// `blocks.2.gamma`, `blocks.2.alpha`.
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
            ParamKind::Gain => "alpha",
        };
        match self.layer {
            LayerId::Hidden(l) => write!(f, "layers.{l}.{kind}"),
            LayerId::Block(b) => write!(f, "blocks.{b}.{kind}"),
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

/// A normaliser's `gamma` and `beta` as parameters of `layer`, in that order.
fn scale_shift_params<'a, T>(
    layer: LayerId,
    ss: &'a mut ScaleShift<T>,
    f: &mut impl FnMut(Param<'a, T>),
) {
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

impl<T: Float> Mlp<T> {
    /// Call `f` on every parameter with its gradient, hidden layers first (weight, bias, gamma,
    /// beta), then each standard block's own (its first normaliser's gamma and beta, its gain),
    /// then the output layer. The one accessor optimisers, gradient checks and reports
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
                scale_shift_params(layer, ss, &mut f);
            }
        }
        for (i, unit) in self.units.iter_mut().enumerate() {
            let layer = LayerId::Block(i + 1);
            if let Some(ss) = unit
                .pre
                .as_mut()
                .and_then(|pre| pre.bn.as_mut())
                .and_then(|bn| bn.affine.as_mut())
            {
                scale_shift_params(layer, ss, &mut f);
            }
            if let Some(g) = &mut unit.gain {
                f(Param {
                    id: ParamId {
                        layer,
                        kind: ParamKind::Gain,
                    },
                    value: g.alpha.view_mut().into_dyn(),
                    grad: g.dalpha.view().into_dyn(),
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
        let mut ps = Vec::with_capacity(4 * self.blocks.len() + 3 * self.units.len() + 2);
        self.for_each_param_mut(|p| ps.push(p));
        ps
    }

    /// Number of scalar parameters.
    pub fn num_params(&mut self) -> usize {
        self.params_mut().iter().map(|p| p.value.len()).sum()
    }
}
