//! Parameter names (`layers.3.weight`, `out.bias`) and [`Mlp::for_each_param_mut`], the one
//! accessor to every parameter and its gradient.

use ndarray::{ArrayViewD, ArrayViewMutD};
use serde::Serialize;

use super::Mlp;
use crate::float::Float;

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

impl<T: Float> Mlp<T> {
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
}
