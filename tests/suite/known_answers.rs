//! Known answers: BatchNorm's output statistics, closed forms of the gamma/beta gradients, and a
//! one-layer net computed by hand.

use bn_lab::config::{Activation, Init, NormConfig, Placement};
use bn_lab::model::{Mlp, Mode};
use bn_lab::spec::NetConfig;
use bn_lab::{data, ops, stats};
use ndarray::{Array2, Axis, array};

fn bn_net(affine: bool) -> NetConfig {
    NetConfig {
        d_in: 5,
        width: 7,
        d_out: 3,
        depth: 1,
        act: Activation::Linear,
        init: Init::Normal(2.0),
        norm: Some(NormConfig {
            kind: bn_lab::config::NormKind::Batch,
            affine,
            placement: Placement::Pre,
            eps: 1e-5,
            momentum: 0.1,
        }),
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    }
}

#[test]
fn bn_output_has_zero_mean_and_unit_biased_variance_per_feature() {
    let cfg = bn_net(false);
    let d = data::linear_teacher::<f64>(1, 32, 5, 3);
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(1, data::Stream::Weights));
    net.forward(d.x.view(), Mode::Train).unwrap();
    // With a linear activation and no affine, h_1 is BN's output x_hat.
    let h = net.hidden(1).to_owned();
    let z = d.x.dot(&net.blocks[0].linear.w) + &net.blocks[0].linear.b;
    for j in 0..7 {
        let col = h.column(j);
        let mean = col.mean().unwrap();
        let var = col.mapv(|v| (v - mean).powi(2)).mean().unwrap(); // biased, 1/N
        let zc = z.column(j);
        let zm = zc.mean().unwrap();
        let zvar = zc.mapv(|v| (v - zm).powi(2)).mean().unwrap();
        assert!(mean.abs() < 1e-12, "feature {j}: mean {mean}");
        // Exactly var / (var + eps) because of eps.
        assert!(
            (var - zvar / (zvar + 1e-5)).abs() < 1e-12,
            "feature {j}: variance {var}"
        );
        assert!((var - 1.0).abs() < 1e-5);
    }
}

#[test]
fn running_statistics_follow_pytorch_momentum_with_unbiased_variance() {
    let cfg = bn_net(true);
    let d = data::linear_teacher::<f64>(2, 16, 5, 3);
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(2, data::Stream::Weights));
    net.forward(d.x.view(), Mode::Train).unwrap();
    let z = d.x.dot(&net.blocks[0].linear.w);
    let bn = net.blocks[0].bn.as_ref().unwrap();
    for j in 0..7 {
        let zc = z.column(j);
        let m = zc.mean().unwrap();
        let unbiased = zc.mapv(|v| (v - m).powi(2)).sum() / 15.0;
        assert!((bn.running_mean[j] - 0.1 * m).abs() < 1e-12);
        assert!((bn.running_var[j] - (0.9 + 0.1 * unbiased)).abs() < 1e-12);
    }
    // Eval mode normalises with the running statistics, and leaves them unchanged.
    let before = bn.running_var.clone();
    let o_eval = net.forward(d.x.view(), Mode::Eval).unwrap().to_owned();
    assert_eq!(net.blocks[0].bn.as_ref().unwrap().running_var, before);
    let bn = net.blocks[0].bn.as_ref().unwrap();
    let ss = bn.affine.as_ref().unwrap();
    let xhat = (&z - &bn.running_mean) / bn.running_var.mapv(|v| (v + 1e-5).sqrt());
    let h = &xhat * &ss.gamma + &ss.beta;
    let o = h.dot(&net.out.w) + &net.out.b;
    assert!((&o - &o_eval).iter().all(|e| e.abs() < 1e-10));
}

#[test]
fn gamma_and_beta_gradients_equal_their_closed_forms() {
    // dL/dgamma_j = sum_i dL/dy_ij * x_hat_ij and dL/dbeta_j = sum_i dL/dy_ij, where y = gamma x_hat + beta
    // is h_1 here (linear activation), so dL/dy = dL/do W_out^T.
    let cfg = bn_net(true);
    let d = data::linear_teacher::<f64>(3, 16, 5, 3);
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(3, data::Stream::Weights));
    // Non-trivial gamma and beta.
    {
        let ss = net.blocks[0].bn.as_mut().unwrap().affine.as_mut().unwrap();
        ss.gamma = array![0.5, 1.5, -1.0, 2.0, 0.1, 1.0, 3.0];
        ss.beta = array![0.1, -0.2, 0.3, 0.0, 1.0, -1.0, 0.5];
    }
    let o = net.forward(d.x.view(), Mode::Train).unwrap().to_owned();
    let mut d_o = Array2::zeros(o.dim());
    ops::mse_loss(o.view(), d.y.view(), d_o.view_mut());
    net.backward(d_o.view()).unwrap();

    let z = d.x.dot(&net.blocks[0].linear.w);
    let mean = z.mean_axis(Axis(0)).unwrap();
    let var = z.var_axis(Axis(0), 0.0);
    let xhat = (&z - &mean) / var.mapv(|v| (v + 1e-5).sqrt());
    let dy = d_o.dot(&net.out.w.t());
    let dgamma = (&dy * &xhat).sum_axis(Axis(0));
    let dbeta = dy.sum_axis(Axis(0));
    let ss = net.blocks[0].bn.as_ref().unwrap().affine.as_ref().unwrap();
    for j in 0..7 {
        assert!((ss.dgamma[j] - dgamma[j]).abs() < 1e-12, "dgamma[{j}]");
        assert!((ss.dbeta[j] - dbeta[j]).abs() < 1e-12, "dbeta[{j}]");
    }
    // A bias before BN cannot change the loss: its gradient is 0 up to rounding.
    assert!(stats::frobenius_norm(&net.blocks[0].linear.db) < 1e-12);
}

fn hand_net(act: Activation) -> Mlp<f64> {
    let cfg = NetConfig {
        d_in: 2,
        width: 2,
        d_out: 1,
        depth: 1,
        act,
        init: Init::Xavier,
        norm: None,
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    };
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(0, data::Stream::Weights));
    net.blocks[0].linear.w = array![[1.0, 0.0], [0.0, 1.0]];
    net.blocks[0].linear.b = array![0.0, 0.0];
    net.out.w = array![[1.0], [1.0]];
    net.out.b = array![0.5];
    net
}

#[test]
fn one_layer_linear_net_loss_and_gradients_match_a_hand_computation() {
    // x = [[1, 2], [3, -1]], W_1 = I, b_1 = 0, linear act => h_1 = x.
    // o = h_1 [1, 1]^T + 0.5 = [3.5, 2.5]; y = [3, 2]; r = o - y = [0.5, 0.5].
    // L = 1/(2*2) * (0.25 + 0.25) = 0.125; dL/do = r / 2 = [0.25, 0.25].
    // dW_out = h_1^T dL/do = [[1*.25 + 3*.25], [2*.25 - 1*.25]] = [[1.0], [0.25]]; db_out = 0.5.
    // dL/dh_1 = dL/do W_out^T = 0.25 everywhere; dW_1 = x^T dL/dh_1 = [[1, 1], [0.25, 0.25]]; db_1 = [0.5, 0.5].
    let mut net = hand_net(Activation::Linear);
    let x = array![[1.0, 2.0], [3.0, -1.0]];
    let y = array![[3.0], [2.0]];
    let o = net.forward(x.view(), Mode::Train).unwrap().to_owned();
    assert_eq!(o, array![[3.5], [2.5]]);
    let mut d_o = Array2::zeros((2, 1));
    let loss = ops::mse_loss(o.view(), y.view(), d_o.view_mut());
    assert_eq!(loss, 0.125);
    let dx = net.backward_with_input_grad(d_o.view()).unwrap().to_owned();
    assert_eq!(net.out.dw, array![[1.0], [0.25]]);
    assert_eq!(net.out.db, array![0.5]);
    assert_eq!(net.blocks[0].linear.dw, array![[1.0, 1.0], [0.25, 0.25]]);
    assert_eq!(net.blocks[0].linear.db, array![0.5, 0.5]);
    // dL/dx = dL/dh_1 W_1^T = 0.25 everywhere.
    assert_eq!(dx, array![[0.25, 0.25], [0.25, 0.25]]);
}

#[test]
fn one_layer_sigmoid_net_matches_a_hand_computation() {
    // Same net with sigmoid: h = sigma(x); for x = [[0, 0]]: h = [0.5, 0.5], o = 1.5, y = 1:
    // L = 0.5 * 0.25 = 0.125, dL/do = 0.5, dL/dh = [0.5, 0.5], sigma'(0) = 0.25, dL/dz = [0.125, 0.125],
    // dW_1 = x^T dL/dz = 0 (x = 0), db_1 = [0.125, 0.125], dW_out = h^T dL/do = [[0.25], [0.25]].
    let mut net = hand_net(Activation::Sigmoid);
    let x = array![[0.0, 0.0]];
    let y = array![[1.0]];
    let o = net.forward(x.view(), Mode::Train).unwrap().to_owned();
    assert_eq!(o, array![[1.5]]);
    let mut d_o = Array2::zeros((1, 1));
    assert_eq!(ops::mse_loss(o.view(), y.view(), d_o.view_mut()), 0.125);
    net.backward(d_o.view()).unwrap();
    assert_eq!(net.blocks[0].linear.db, array![0.125, 0.125]);
    assert_eq!(net.blocks[0].linear.dw, array![[0.0, 0.0], [0.0, 0.0]]);
    assert_eq!(net.out.dw, array![[0.25], [0.25]]);
    assert_eq!(net.grad_signal_norm[0], (2.0f64 * 0.25).sqrt());
}

#[test]
fn backward_before_forward_is_an_error_not_a_panic() {
    let mut net = hand_net(Activation::Tanh);
    let d_o = Array2::<f64>::zeros((2, 1));
    assert_eq!(
        net.backward(d_o.view()),
        Err(bn_lab::model::ModelError::BackwardBeforeForward)
    );
}

#[test]
fn norms_of_tiny_f32_values_do_not_underflow() {
    // 1e-30^2 = 1e-60 underflows in f32; the norm is accumulated in f64.
    let a = Array2::<f32>::from_elem((4, 4), 1e-30);
    let n = stats::frobenius_norm(&a);
    assert!((n / 4e-30 - 1.0).abs() < 1e-6, "{n}");
    // And huge finite values do not overflow to inf.
    let b = Array2::<f64>::from_elem((2, 2), 1e300);
    assert!(stats::frobenius_norm(&b).is_finite());
}
