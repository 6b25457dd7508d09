//! The passes that let a pre-activation block skip a copy or a pass (issue 31, speed) give the
//! same bits as the passes they replace: reading `z` from its source instead of from a copy,
//! adding `dL/dz` to the stream's gradient instead of writing it and adding it after, and the
//! backward head against the per-element loop it replaced.

use bn_lab::config::Activation;
use bn_lab::ops::{self, Affine, BnCoeffs, BnGradCoeffs, HeadSums, NextHead, Residual, RowStats};
use ndarray::Array2;

const N: usize = 37;
const C: usize = 19;

fn values(seed: u64, rows: usize, cols: usize) -> Array2<f32> {
    crate::common::lcg_values(seed, rows, cols)
}

fn row(seed: u64) -> Vec<f32> {
    values(seed, 1, C).into_raw_vec_and_offset().0
}

#[test]
fn forward_passes_read_their_source_as_they_read_a_copy() {
    let (src, h_in, b, gamma, beta) = (values(1, N, C), values(2, N, C), row(3), row(4), row(5));
    let shift: Vec<f64> = row(6).iter().map(|&v| f64::from(v)).collect();
    let inv_std: Vec<f64> = row(7).iter().map(|&v| 1.0 + f64::from(v).abs()).collect();
    let affine = Affine {
        gamma: &gamma,
        beta: &beta,
    };
    for act in Activation::ALL {
        let (mut h0, mut h1) = (Array2::zeros((N, C)), Array2::zeros((N, C)));
        // a = act(z + b) with the stream sum
        let (mut a0, mut a1) = (src.clone(), Array2::zeros((N, C)));
        let res = |h| Residual {
            h_in: h_in.view(),
            h,
            scale: 0.5f32,
        };
        ops::bias_act_forward(act, a0.view_mut(), &b, None, Some(res(h0.view_mut())));
        ops::bias_act_forward_from(
            act,
            Some(src.view()),
            a1.view_mut(),
            &b,
            None,
            Some(res(h1.view_mut())),
        );
        assert_eq!((&a0, &h0), (&a1, &h1), "bias_act {act:?}");
        // BatchNorm before the activation
        let coeffs = BnCoeffs {
            shift: &shift,
            inv_std: &inv_std,
            affine,
        };
        let (mut x0, mut x1) = (src.clone(), Array2::zeros((N, C)));
        ops::bn_pre_forward(act, x0.view_mut(), a0.view_mut(), coeffs, None);
        ops::bn_pre_forward_from(
            act,
            Some(src.view()),
            x1.view_mut(),
            a1.view_mut(),
            coeffs,
            None,
        );
        assert_eq!((&x0, &a0), (&x1, &a1), "bn_pre {act:?}");
        // LayerNorm before the activation
        let (mut m0, mut s0, mut m1, mut s1) =
            (vec![0.0; N], vec![0.0; N], vec![0.0; N], vec![0.0; N]);
        let stats = |mean, inv_std| RowStats {
            eps: 1e-5,
            mean,
            inv_std,
        };
        let (mut x0, mut x1) = (src.clone(), Array2::zeros((N, C)));
        ops::ln_pre_forward(
            act,
            x0.view_mut(),
            a0.view_mut(),
            &b,
            affine,
            stats(&mut m0, &mut s0),
            None,
        );
        ops::ln_pre_forward_from(
            act,
            (Some(src.view()), &b),
            x1.view_mut(),
            a1.view_mut(),
            affine,
            stats(&mut m1, &mut s1),
            None,
        );
        assert_eq!((&x0, &a0, &m0, &s0), (&x1, &a1, &m1, &s1), "ln_pre {act:?}");
    }
}

#[test]
fn backward_passes_add_to_the_stream_as_write_then_add_did() {
    let (dh, x_hat, stream) = (values(8, N, C), values(9, N, C), values(10, N, C));
    let a = values(11, N, C).mapv(f32::abs);
    for act in Activation::ALL {
        // Without a normaliser.
        let (mut dz, mut want) = (Array2::zeros((N, C)), stream.clone());
        let (mut db0, mut sq0, mut db1, mut sq1) =
            (vec![0.0; C], vec![0.0; C], vec![0.0; C], vec![0.0; C]);
        ops::act_backward_fused(
            act,
            dh.view(),
            a.view(),
            dz.view_mut(),
            &mut db0,
            &mut sq0,
            None,
        );
        want += &dz;
        let mut got = stream.clone();
        let (mut nsq, mut ndb) = (vec![0.0; C], vec![0.0; C]);
        let next = Some(NextHead {
            sq: &mut nsq,
            db: &mut ndb,
        });
        ops::act_backward_add(
            act,
            dh.view(),
            a.view(),
            got.view_mut(),
            &mut db1,
            &mut sq1,
            next,
        );
        assert_eq!(
            (&got, &db0, &sq0),
            (&want, &db1, &sq1),
            "act_backward {act:?}"
        );
        assert_eq!((nsq, ndb), head_sums(&got), "act_backward {act:?}");
    }
    // BatchNorm's second pass, with batch and with running statistics.
    let k: Vec<f64> = row(12).iter().map(|&v| f64::from(v)).collect();
    let (m, mx): (Vec<f64>, Vec<f64>) = (
        row(13).iter().map(|&v| f64::from(v)).collect(),
        row(14).iter().map(|&v| f64::from(v)).collect(),
    );
    for batch_stats in [true, false] {
        let coeffs = BnGradCoeffs {
            k: &k,
            m_dy: &m,
            m_dyx: &mx,
            batch_stats,
        };
        let (mut d, mut want, mut got) = (dh.clone(), stream.clone(), stream.clone());
        let (mut db0, mut db1) = (vec![0.0; C], vec![0.0; C]);
        ops::bn_backward_apply(d.view_mut(), x_hat.view(), coeffs, None, &mut db0);
        want += &d;
        let (mut nsq, mut ndb) = (vec![0.0; C], vec![0.0; C]);
        let next = Some(NextHead {
            sq: &mut nsq,
            db: &mut ndb,
        });
        ops::bn_backward_apply_add(
            dh.view(),
            x_hat.view(),
            coeffs,
            got.view_mut(),
            &mut db1,
            next,
        );
        assert_eq!(
            (&got, &db0),
            (&want, &db1),
            "bn_backward_apply, batch stats {batch_stats}"
        );
        assert_eq!((nsq, ndb), head_sums(&got), "batch stats {batch_stats}");
    }
    // LayerNorm's column pass.
    let (mut want, mut got) = (stream.clone(), stream.clone());
    want += &dh;
    let (mut db0, mut db1, mut nsq, mut ndb) =
        (vec![0.0; C], vec![0.0; C], vec![0.0; C], vec![0.0; C]);
    ops::add_col_sums(dh.view(), &mut db0);
    let next = Some(NextHead {
        sq: &mut nsq,
        db: &mut ndb,
    });
    ops::add_col_sums_and_add(dh.view(), &mut db1, Some(got.view_mut()), next);
    assert_eq!((&got, &db0), (&want, &db1));
    assert_eq!((nsq, ndb), head_sums(&got));
}

/// The sums a pre-activation block's head pass takes of a finished stream gradient `g`
/// (`dy = du = g`, no gain): `(sum_i g^2, sum_i g)` per column.
fn head_sums(g: &Array2<f32>) -> (Vec<f64>, Vec<f64>) {
    let (mut sq, mut dot, mut db) = (vec![0.0; C], vec![0.0; C], vec![0.0; C]);
    let sums = HeadSums {
        sq: &mut sq,
        dot: &mut dot,
        db: Some(&mut db),
    };
    ops::stream_backward_head(None, g.clone().view_mut(), None, (None, 1.0), sums);
    assert!(db.iter().any(|&v| v != 0.0));
    (sq, db)
}

#[test]
fn the_backward_head_is_the_per_element_loop() {
    let (dh, y, h) = (
        values(15, N, C),
        values(16, N, C),
        values(17, N, C).mapv(f32::abs),
    );
    for (post_act, s) in [
        (None, 1.0f32),
        (None, 0.3),
        (Some(Activation::Tanh), 0.7),
        (Some(Activation::Relu), 1.0),
    ] {
        let (mut d0, mut dy0) = (dh.clone(), Array2::<f32>::zeros((N, C)));
        let (mut sq0, mut dot0, mut db0) = (vec![0.0; C], vec![0.0; C], vec![0.0; C]);
        for i in 0..N {
            for j in 0..C {
                let d = &mut d0[(i, j)];
                sq0[j] += f64::from(*d) * f64::from(*d);
                if let Some(act) = post_act {
                    *d *= ops::act_grad_from_output(act, h[(i, j)]);
                }
                dot0[j] += f64::from(*d) * f64::from(y[(i, j)]);
                dy0[(i, j)] = s * *d;
                db0[j] += f64::from(dy0[(i, j)]);
            }
        }
        let (mut d1, mut dy1) = (dh.clone(), Array2::<f32>::zeros((N, C)));
        let (mut sq1, mut dot1, mut db1) = (vec![0.0; C], vec![0.0; C], vec![0.0; C]);
        let sums = HeadSums {
            sq: &mut sq1,
            dot: &mut dot1,
            db: Some(&mut db1),
        };
        ops::stream_backward_head(
            post_act.map(|act| (act, h.view())),
            d1.view_mut(),
            Some(y.view()),
            (Some(dy1.view_mut()), s),
            sums,
        );
        assert_eq!(
            (&d0, &dy0, &sq0, &dot0, &db0),
            (&d1, &dy1, &sq1, &dot1, &db1),
            "{post_act:?}, s = {s}"
        );
    }
}

#[test]
fn the_backward_head_without_dy_leaves_du_where_dy_would_be_it() {
    let (dh, h) = (values(18, N, C), values(19, N, C).mapv(f32::abs));
    for post_act in [None, Some(Activation::Relu), Some(Activation::Sigmoid)] {
        let run = |write_dy: bool| {
            let (mut d, mut dy) = (dh.clone(), Array2::<f32>::zeros((N, C)));
            let (mut sq, mut dot, mut db) = (vec![0.0; C], vec![0.0; C], vec![0.0; C]);
            let sums = HeadSums {
                sq: &mut sq,
                dot: &mut dot,
                db: Some(&mut db),
            };
            let dy_out = write_dy.then(|| dy.view_mut());
            ops::stream_backward_head(
                post_act.map(|act| (act, h.view())),
                d.view_mut(),
                None,
                (dy_out, 1.0),
                sums,
            );
            (d, if write_dy { dy } else { Array2::zeros((0, 0)) }, sq, db)
        };
        let ((d0, dy0, sq0, db0), (d1, _, sq1, db1)) = (run(true), run(false));
        // s = 1: dy is du bit for bit, and the sums are the same without it.
        assert_eq!(dy0, d0, "{post_act:?}");
        assert_eq!((&d0, &sq0, &db0), (&d1, &sq1, &db1), "{post_act:?}");
        assert!(db1.iter().any(|&v| v != 0.0));
    }
}

#[test]
fn the_stream_sum_in_place_gives_the_bits_of_the_pass_with_a_stream_buffer() {
    let (z, h_in, b) = (values(20, N, C), values(21, N, C), row(22));
    for s in [1.0f32, 0.5, 0.1] {
        // Before: y = z + b in place (identity activation) and h' = h + s y into a buffer.
        let (mut y, mut h0) = (z.clone(), Array2::zeros((N, C)));
        let stream = Residual {
            h_in: h_in.view(),
            h: h0.view_mut(),
            scale: s,
        };
        ops::bias_act_forward(Activation::Linear, y.view_mut(), &b, None, Some(stream));
        // After: h' over z itself.
        let mut h1 = z.clone();
        ops::stream_sum_in_place(h1.view_mut(), &b, h_in.view(), s);
        assert_eq!(h0, h1, "s = {s}");
        assert_ne!(h1, z);
    }
}
