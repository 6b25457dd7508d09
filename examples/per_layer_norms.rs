//! Use the library directly: build a deep sigmoid MLP with and without BatchNorm, run one
//! forward and one backward pass, and print per-layer gradient norms.
//!
//! Run with `cargo run --release --example per_layer_norms`.

use bn_lab::config::{Activation, Init, NormConfig};
use bn_lab::data::{self, Stream};
use bn_lab::model::{Mlp, Mode};
use bn_lab::spec::NetConfig;
use bn_lab::{ops, stats};
use ndarray::Array2;

fn main() {
    let (depth, width, batch, seed) = (20, 128, 64, 0);
    for bn in [None, Some(NormConfig::default())] {
        let cfg = NetConfig {
            d_in: width,
            width,
            d_out: 10,
            depth,
            act: Activation::Sigmoid,
            init: Init::Xavier,
            norm: bn,
            residual: false,
            residual_scale: 1.0,
            block: None,
            skip_init: false,
        };
        cfg.validate(batch).expect("a valid configuration");
        let batch_data = data::linear_teacher::<f32>(seed, batch, cfg.d_in, cfg.d_out);
        let mut net = Mlp::<f32>::new(&cfg, &mut data::rng(seed, Stream::Weights));

        let mut d_o = Array2::zeros((batch, cfg.d_out));
        let loss = {
            let o = net
                .forward(batch_data.x.view(), Mode::Train)
                .expect("input has d_in columns");
            ops::mse_loss(o, batch_data.y.view(), d_o.view_mut())
        };
        net.backward(d_o.view()).expect("forward ran first");

        println!(
            "BatchNorm {}: loss {loss:.4}",
            if bn.is_some() { "on" } else { "off" }
        );
        println!(
            "{:>5}  {:>12}  {:>12}  {:>10}",
            "layer", "|dL/dW_l|", "|dL/dh_l|", "std(h_l)"
        );
        for l in 1..=depth {
            println!(
                "{l:>5}  {:>12.3e}  {:>12.3e}  {:>10.4}",
                stats::frobenius_norm(&net.blocks[l - 1].linear.dw),
                net.grad_signal_norm[l - 1],
                stats::std_dev(&net.hidden(l)),
            );
        }
        // Every parameter and its gradient through the one accessor.
        let total: f64 = net
            .params_mut()
            .iter()
            .map(|p| stats::frobenius_norm(&p.grad).powi(2))
            .sum();
        println!(
            "total gradient norm over {} parameters: {:.3e}\n",
            net.num_params(),
            total.sqrt()
        );
    }
}
