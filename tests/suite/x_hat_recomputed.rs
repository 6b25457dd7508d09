//! A pre-activation block's first BatchNorm keeps no `x_hat` (issue 31, speed): its forward
//! computes `x_hat = (z - shift) * inv_std` on the way, and its backward recomputes it from the
//! stream `z` ([`ops::XHat::From`]). Every pass must give the bits of the pass that reads a stored
//! `x_hat`.

use bn_lab::config::Activation;
use bn_lab::ops::{self, Affine, BnCoeffs, BnGradCoeffs, BnSums, XHat};
use ndarray::Array2;

const N: usize = 29;
const C: usize = 21;

fn values(seed: u64, rows: usize, cols: usize) -> Array2<f32> {
    crate::common::lcg_values(seed + 100, rows, cols)
}

fn col(seed: u64) -> Vec<f64> {
    values(seed, 1, C).iter().map(|&v| f64::from(v)).collect()
}

/// `z`, the forward's `shift` and `inv_std`, and the `x_hat` a kept forward stores.
fn forward_stats() -> (Array2<f32>, Vec<f64>, Vec<f64>, Array2<f32>) {
    let z = values(1, N, C);
    let shift = col(2);
    let inv_std: Vec<f64> = col(3).iter().map(|v| 0.5 + v.abs()).collect();
    let (gamma, beta) = (vec![1.0f32; C], vec![0.0f32; C]);
    let coeffs = BnCoeffs {
        shift: &shift,
        inv_std: &inv_std,
        affine: Affine {
            gamma: &gamma,
            beta: &beta,
        },
    };
    let (mut x_hat, mut a) = (Array2::zeros((N, C)), Array2::zeros((N, C)));
    ops::bn_pre_forward_from(
        Activation::Linear,
        Some(z.view()),
        x_hat.view_mut(),
        a.view_mut(),
        coeffs,
        None,
    );
    (z, shift, inv_std, x_hat)
}

#[test]
fn the_forward_that_keeps_no_x_hat_writes_the_same_activations() {
    let z = values(4, N, C);
    let (shift, inv_std): (Vec<f64>, Vec<f64>) =
        (col(5), col(6).iter().map(|v| 0.5 + v.abs()).collect());
    let gamma: Vec<f32> = values(7, 1, C).iter().map(|v| 1.0 + v).collect();
    let beta: Vec<f32> = values(8, 1, C).iter().copied().collect();
    let coeffs = BnCoeffs {
        shift: &shift,
        inv_std: &inv_std,
        affine: Affine {
            gamma: &gamma,
            beta: &beta,
        },
    };
    for act in Activation::ALL {
        let (mut x_hat, mut a0, mut a1) = (
            Array2::zeros((N, C)),
            Array2::zeros((N, C)),
            Array2::zeros((N, C)),
        );
        ops::bn_pre_forward_from(
            act,
            Some(z.view()),
            x_hat.view_mut(),
            a0.view_mut(),
            coeffs,
            None,
        );
        ops::bn_pre_forward_unkept(act, z.view(), a1.view_mut(), coeffs);
        assert_eq!(a0, a1, "{act:?}");
        assert!(a1.iter().any(|&v| v != 0.0));
    }
}

#[test]
fn backward_passes_recompute_x_hat_bit_for_bit() {
    let (z, shift, inv_std, x_hat) = forward_stats();
    let from = || XHat::From {
        z: z.view(),
        shift: &shift,
        inv_std: &inv_std,
    };
    let (dh, a) = (values(9, N, C), values(10, N, C).mapv(f32::abs));
    // Pass 1: dy and its sums, through ReLU.
    let sums = |x: XHat<f32>| {
        let mut dy = Array2::zeros((N, C));
        let (mut s, mut sx, mut q) = (vec![0.0; C], vec![0.0; C], vec![0.0; C]);
        let bn_sums = BnSums {
            s_dy: &mut s,
            s_dyx: &mut sx,
            sq: &mut q,
        };
        let act = Some((Activation::Relu, a.view()));
        ops::bn_backward_sums_x(act, dh.view(), x, dy.view_mut(), None, bn_sums, None);
        (dy, s, sx, q)
    };
    let kept = sums(XHat::Stored(x_hat.view()));
    assert_eq!(kept, sums(from()));
    assert!(kept.2.iter().any(|&v| v != 0.0));
    // Pass 2, written and added, with batch and with running statistics.
    let (k, m, mx) = (col(11), col(12), col(13));
    let stream = values(14, N, C);
    for batch_stats in [true, false] {
        let coeffs = BnGradCoeffs {
            k: &k,
            m_dy: &m,
            m_dyx: &mx,
            batch_stats,
        };
        let apply = |x: XHat<f32>| {
            let (mut d, mut db) = (dh.clone(), vec![0.0; C]);
            ops::bn_backward_apply_x(d.view_mut(), x, coeffs, None, &mut db);
            let (mut out, mut db_add) = (stream.clone(), vec![0.0; C]);
            ops::bn_backward_apply_add_x(dh.view(), x, coeffs, out.view_mut(), &mut db_add, None);
            (d, db, out, db_add)
        };
        let kept = apply(XHat::Stored(x_hat.view()));
        assert_eq!(kept, apply(from()), "batch stats {batch_stats}");
        assert_ne!(kept.0, dh);
    }
}
