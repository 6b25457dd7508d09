//! `bn-lab landscape`: the measures on cases with a closed-form answer, probes leaving the
//! training run untouched, and the command end to end.

use bn_lab::experiment::Plan;

use crate::common;

use crate::common::{
    TINY_LANDSCAPE, assert_deterministic, assert_schema, bn_lab_ok, json, rejects, scratch,
};
use bn_lab::config::{Activation, Dtype, Init, NormConfig, Normaliser};
use bn_lab::data::{self, Stream, Task};
use bn_lab::experiment::MeasuredTrainConfig;
use bn_lab::experiment::landscape::{
    self, LandscapeConfig, filter_normalized_direction, probe_path,
};
use bn_lab::model::{Mlp, Mode, ParamKind};
use bn_lab::ops;
use bn_lab::spec::{DataSpec, NetConfig, NetSpec};
use ndarray::{Array1, Array2, Axis, concatenate};
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::StandardNormal;

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

/// For `L = 1/2 t^T H t + b^T t` the gradient is `H t + b`, so moving by `-eta g` changes it by
/// exactly `-eta H g`: every ratio `||dg|| / (eta ||g||)` is `||H u||` with `u = g / ||g||`,
/// and `L(t - eta g) = L(t) - eta g^T g + eta^2 / 2 g^T H g`.
#[test]
fn effective_beta_on_a_quadratic_is_the_norm_of_h_times_the_gradient_direction() {
    let n = 7;
    let mut rng = data::rng(11, Stream::Data);
    let a = Array2::<f64>::random_using((n, n), StandardNormal, &mut rng);
    let h = a.t().dot(&a) + Array2::<f64>::eye(n); // symmetric positive definite
    let b = Array1::<f64>::random_using(n, StandardNormal, &mut rng);
    let theta = Array1::<f64>::random_using(n, StandardNormal, &mut rng);
    let loss = |t: &Array1<f64>| 0.5 * t.dot(&h.dot(t)) + b.dot(t);
    let g = h.dot(&theta) + &b;
    let step_sizes = [0.01, 0.05, 0.1, 0.4];
    let probe = probe_path(
        theta.as_slice().unwrap(),
        loss(&theta),
        g.as_slice().unwrap(),
        &step_sizes,
        |point, grad| {
            let t = Array1::from(point.to_vec());
            grad.clear();
            grad.extend((h.dot(&t) + &b).iter());
            loss(&t)
        },
    );
    let gn = g.dot(&g).sqrt();
    let hg = h.dot(&g);
    let h_u = hg.dot(&hg).sqrt() / gn;
    for (k, &eta) in step_sizes.iter().enumerate() {
        assert!(
            rel_err(probe.smoothness[k], h_u) < 1e-10,
            "{k}: {} vs {h_u}",
            probe.smoothness[k]
        );
        assert!(rel_err(probe.grad_dist[k], eta * hg.dot(&hg).sqrt()) < 1e-10);
        let expected = loss(&theta) - eta * g.dot(&g) + 0.5 * eta * eta * g.dot(&hg);
        assert!(rel_err(probe.losses[k], expected) < 1e-10);
    }
    assert!(rel_err(probe.beta(), h_u) < 1e-10);
    assert!(rel_err(probe.grad_norm, gn) < 1e-12);
    let (lo, hi) = probe.loss_range();
    let all: Vec<f64> = std::iter::once(probe.loss_start)
        .chain(probe.losses.iter().copied())
        .collect();
    assert_eq!(lo, all.iter().copied().fold(f64::INFINITY, f64::min));
    assert_eq!(hi, all.iter().copied().fold(f64::NEG_INFINITY, f64::max));
}

/// A one-hidden-layer linear net `o = (x W1 + b1) W_out + b_out`: with the hidden layer held,
/// the MSE `1/(2N) ||Z V - Y||^2` (`Z = [h_1, 1]`, `V = [W_out; b_out]`) is quadratic in the
/// output layer with Hessian `(1/N) Z^T Z` acting on each output column. The probe, fed by the
/// network's own forward and backward, must find `beta = ||H u||` for that Hessian.
#[test]
fn effective_beta_of_a_linear_nets_output_layer_matches_its_closed_form_hessian() {
    let (batch, d_in, width, d_out) = (9, 3, 5, 2);
    let cfg = NetConfig {
        d_in,
        width,
        d_out,
        depth: 1,
        act: Activation::Linear,
        init: Init::Xavier,
        norm: None,
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    };
    let mut net = Mlp::<f64>::new(&cfg, &mut data::rng(3, Stream::Weights));
    let d = data::linear_teacher::<f64>(3, batch, d_in, d_out);
    // Targets away from anything the net fits, so the gradient is large.
    let y = d.y.mapv(|v| 3.0 * v + 1.0);
    let mut d_o = Array2::zeros((batch, d_out));
    let mut loss_grad = |net: &mut Mlp<f64>, v: &[f64], grad: &mut Vec<f64>| {
        let (w, b) = v.split_at(width * d_out);
        net.out
            .w
            .assign(&Array2::from_shape_vec((width, d_out), w.to_vec()).unwrap());
        net.out.b.assign(&Array1::from(b.to_vec()));
        let l = {
            let o = net.forward(d.x.view(), Mode::Train).unwrap();
            ops::mse_loss(o, y.view(), d_o.view_mut())
        };
        net.backward(d_o.view()).unwrap();
        grad.clear();
        grad.extend(net.out.dw.iter());
        grad.extend(net.out.db.iter());
        l
    };
    let v0: Vec<f64> = net.out.w.iter().chain(net.out.b.iter()).copied().collect();
    let mut g = Vec::new();
    let l0 = loss_grad(&mut net, &v0, &mut g);
    let h1 = net.hidden(1).to_owned();
    let step_sizes = [0.02, 0.1, 0.3];
    let probe = probe_path(&v0, l0, &g, &step_sizes, |v, grad| {
        loss_grad(&mut net, v, grad)
    });

    // H u in closed form: rows r of V (width weights, then the bias), columns k (outputs).
    let z = concatenate(Axis(1), &[h1.view(), Array2::ones((batch, 1)).view()]).unwrap();
    let zz = z.t().dot(&z) / batch as f64;
    let gm = Array2::from_shape_vec((width + 1, d_out), g.clone()).unwrap(); // same layout as V
    let hg = zz.dot(&gm);
    let h_u =
        hg.iter().map(|v| v * v).sum::<f64>().sqrt() / gm.iter().map(|v| v * v).sum::<f64>().sqrt();
    for (k, s) in probe.smoothness.iter().enumerate() {
        assert!(rel_err(*s, h_u) < 1e-9, "step {k}: {s} vs {h_u}");
    }
    assert!(rel_err(probe.beta(), h_u) < 1e-9);
}

#[test]
fn filter_normalized_directions_scale_each_neuron_to_its_weights_and_leave_biases_and_bn_alone() {
    let cfg = NetConfig {
        d_in: 4,
        width: 6,
        d_out: 3,
        depth: 3,
        act: Activation::Relu,
        init: Init::He,
        norm: Some(NormConfig::default()),
        residual: false,
        residual_scale: 1.0,
        block: None,
        skip_init: false,
    };
    let mut net = Mlp::<f32>::new(&cfg, &mut data::rng(5, Stream::Weights));
    let dir = filter_normalized_direction(&mut net, &mut data::rng(5, Stream::Directions));
    let mut i = 0;
    let mut weights = 0;
    for p in net.params_mut() {
        let n = p.value.len();
        let d = &dir[i..i + n];
        i += n;
        if p.id.kind != ParamKind::Weight {
            assert!(d.iter().all(|&v| v == 0.0), "{} must not move", p.id);
            continue;
        }
        weights += 1;
        let (rows, cols) = (p.value.shape()[0], p.value.shape()[1]);
        for j in 0..cols {
            let dn: f64 = (0..rows)
                .map(|r| d[r * cols + j].powi(2))
                .sum::<f64>()
                .sqrt();
            let wn: f64 = (0..rows)
                .map(|r| (p.value[[r, j]] as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(rel_err(dn, wn) < 1e-12, "{} column {j}: {dn} vs {wn}", p.id);
        }
    }
    assert_eq!(i, dir.len());
    assert_eq!(
        weights, 4,
        "three hidden weight matrices and the output layer"
    );
}

fn tiny(every: usize, norms: &[Normaliser]) -> LandscapeConfig {
    LandscapeConfig {
        run: MeasuredTrainConfig {
            depth: 3,
            act: Activation::Relu,
            norms: norms.to_vec(),
            net: NetSpec {
                width: 8,
                batch: 8,
                d_in: 8,
                d_out: 2,
                init: Init::He,
                residual: false,
                residual_scale: 1.0,
                block: None,
                skip_init: false,
                eps: 1e-5,
                momentum: 0.1,
                seed: 7,
                dtype: Dtype::F32,
            },
            data: DataSpec {
                task: Task::Nonlinear,
                n_train: 64,
                n_test: 16,
                loss: bn_lab::config::Loss::Mse,
            },
            sgd: bn_lab::optim::PlainSgdSpec {
                steps: 25,
                lr: 0.05,
                warmup_steps: 0,
            },
            every,
        },
        probe_multipliers: vec![0.5, 1.0, 4.0],
        probe_bn_mode: Mode::Train,
        slice_grid: 3,
        slice_span: 0.5,
        slice_samples: 16,
    }
}

/// Probing runs on a copy: the loss of every step, the final test loss (which reads BN's
/// running statistics) and the slice around the final weights are bit-identical whether the
/// run is probed at every step or only at step 0.
#[test]
fn probes_do_not_change_the_training_trajectory() {
    let every_step = landscape::run(&tiny(1, &[Normaliser::Off, Normaliser::BN]), &|_| {});
    let once = landscape::run(&tiny(1000, &[Normaliser::Off, Normaliser::BN]), &|_| {});
    for (a, b) in every_step.arms.iter().zip(&once.arms) {
        assert_eq!(a.probes.len(), 25);
        assert_eq!(b.probes.len(), 1);
        let bits = |v: &[bn_lab::stats::Num]| v.iter().map(|n| n.0.to_bits()).collect::<Vec<_>>();
        let (a_run, b_run) = (&a.run, &b.run);
        assert_eq!(
            bits(&a_run.train_loss),
            bits(&b_run.train_loss),
            "{}",
            a_run.label
        );
        assert_eq!(
            a_run.final_test_loss.0.to_bits(),
            b_run.final_test_loss.0.to_bits()
        );
        let (sa, sb) = (a.slice.as_ref().unwrap(), b.slice.as_ref().unwrap());
        assert_eq!(
            sa.loss
                .iter()
                .flatten()
                .map(|n| n.0.to_bits())
                .collect::<Vec<_>>(),
            sb.loss
                .iter()
                .flatten()
                .map(|n| n.0.to_bits())
                .collect::<Vec<_>>()
        );
    }
}

/// The probe at 1x lr reaches exactly the weights the next SGD step goes to, so in plain SGD
/// with the step's batch its loss is that batch's loss after the step (recomputed here).
#[test]
fn the_probe_at_one_learning_rate_lands_where_training_goes_next() {
    let base = tiny(1, &[Normaliser::Off]);
    let cfg = LandscapeConfig {
        run: MeasuredTrainConfig {
            net: NetSpec {
                dtype: Dtype::F64,
                ..base.run.net.clone()
            },
            ..base.run.clone()
        },
        probe_multipliers: vec![1.0],
        ..base
    };
    let report = landscape::run(&cfg, &|_| {});
    let arm = &report.arms[0];
    // Rebuild the run by hand: same seed streams, same batches.
    let data = cfg.run.dataset::<f64>();
    let mut net = cfg.run.initial_net::<f64>(Normaliser::Off);
    let sgd = bn_lab::optim::SgdConfig {
        lr: cfg.run.sgd.lr,
        momentum: 0.0,
        weight_decay: 0.0,
        warmup_steps: 0,
    };
    let mut tr = bn_lab::train::Trainer::new(
        &mut net,
        &data,
        sgd,
        cfg.run.net.batch,
        7,
        cfg.run.data.loss,
    );
    for p in arm.probes.iter().take(5) {
        let loss = tr.forward();
        tr.backward();
        assert_eq!(loss.to_bits(), p.loss.0.to_bits());
        let (x, y) = (tr.x.clone(), tr.y.clone());
        tr.step();
        let after = {
            let o = tr.net.forward(x.view(), Mode::Train).unwrap();
            ops::mse_loss_value(o, y.view())
        };
        assert!(
            rel_err(after, p.losses[0].0) < 1e-12,
            "{after} vs {}",
            p.losses[0].0
        );
    }
}

#[test]
fn landscape_writes_the_documented_json_and_both_pictures() {
    let out = scratch("landscape-e2e");
    let o = bn_lab_ok(&TINY_LANDSCAPE[..], &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("effective beta-smoothness"), "{stdout}");
    assert!(stdout.contains(" s\n"), "prints the time taken: {stdout}");
    for f in ["landscape.png", "landscape_slice.png", "landscape.json"] {
        assert!(out.join(f).metadata().unwrap().len() > 1000, "{f}");
    }
    let v = json(&out.join("landscape.json"));
    assert_schema(&v, "landscape");
    assert_eq!(v["config"]["probe_bn_mode"], "train");
    assert_eq!(v["step_sizes"].as_array().unwrap().len(), 8);
    let arms = v["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 2);
    assert_eq!(
        (arms[0]["norm"].as_str(), arms[1]["norm"].as_str()),
        (Some("off"), Some("on"))
    );
    for a in arms {
        assert_eq!(a["train_loss"].as_array().unwrap().len(), 12);
        let probes = a["probes"].as_array().unwrap();
        assert_eq!(
            probes
                .iter()
                .map(|p| p["step"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [0, 4, 8]
        );
        for p in probes {
            assert_eq!(p["losses"].as_array().unwrap().len(), 8);
            let beta = p["beta"].as_f64().unwrap();
            let max_s = p["smoothness"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_f64().unwrap())
                .fold(0.0, f64::max);
            assert_eq!(beta, max_s);
        }
        let s = &a["slice"];
        assert_eq!(s["coords"].as_array().unwrap().len(), 5);
        let rows = s["loss"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|r| r.as_array().unwrap().len() == 5));
        // The grid's centre is the trained weights themselves.
        assert_eq!(rows[2][2].as_f64(), s["center_loss"].as_f64());
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn landscape_is_deterministic_for_a_seed() {
    assert_deterministic(&TINY_LANDSCAPE[..], "landscape.json", "landscape");
}

#[test]
fn a_diverging_run_is_reported_not_crashed() {
    let out = scratch("landscape-diverge");
    let mut args: Vec<&str> = TINY_LANDSCAPE
        .iter()
        .map(|&a| if a == "0.05" { "1000" } else { a })
        .collect();
    args.extend(["--bn", "off"]);
    let o = bn_lab_ok(&args, &out);
    assert!(String::from_utf8_lossy(&o.stdout).contains("diverged at step"));
    let v = json(&out.join("landscape.json"));
    let arm = &v["arms"][0];
    assert!(arm["diverged_at"].as_u64().is_some(), "{arm}");
    assert!(arm["slice"].is_null());
    assert!(out.join("landscape_slice.png").exists());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn bad_landscape_flags_give_one_line_naming_the_flag_and_write_nothing() {
    let out = scratch("landscape-bad");
    for (extra, flag) in [
        (&["--steps", "0"][..], "--steps"),
        (&["--every", "0"], "--every"),
        (&["--lr", "-1"], "--lr"),
        (&["--lr", "nan"], "--lr"),
        (&["--probe-steps", "1,0"], "--probe-steps"),
        (&["--slice-grid", "2"], "--slice-grid"),
        (&["--slice-span", "0"], "--slice-span"),
        (&["--slice-span", "-1"], "--slice-span"),
        (&["--probe-steps", "-1"], "--probe-steps"),
        (&["--slice-samples", "1"], "--slice-samples"),
        (&["--slice-samples", "100"], "--slice-samples"),
        (&["--n-train", "4"], "--n-train"),
        (&["--n-test", "0"], "--n-test"),
        (&["--batch", "1"], "--batch"),
        (&["--depth", "0"], "--depth"),
        (&["--act", "swish"], "--act"),
        (&["--bn", "maybe"], "--bn"),
    ] {
        let mut args = TINY_LANDSCAPE.to_vec();
        args.extend(extra);
        rejects(&args, flag, &out);
    }
}

fn landscape_config(args: &[&str]) -> LandscapeConfig {
    match common::parse(args) {
        bn_lab::cli::Command::Landscape(a) => {
            bn_lab::experiment::ExperimentArgs::config(&a).unwrap()
        }
        _ => unreachable!("a landscape command line"),
    }
}

/// The bar's total weighs every part by its forward passes over one sample: training steps
/// (3 units per sample), probes (one forward and backward per step size), the final test loss,
/// and the slice (slice_grid^2 forward passes on slice_samples samples, and its centre), which
/// is reported row by row so the bar moves during it. A diverged arm counts the slice it skips.
#[test]
fn landscape_progress_adds_up_to_its_work_units_and_moves_during_the_slice() {
    use bn_lab::experiment::landscape::{Landscape, probe_units, slice_row_units, slice_units};
    let cfg = landscape_config(&TINY_LANDSCAPE[..]);
    assert_eq!(probe_units(&cfg), 8 * 3 * 8);
    assert_eq!(slice_row_units(&cfg), 5 * 16);
    assert_eq!(slice_units(&cfg), 25 * 16 + 16);
    assert_eq!(
        cfg.work_units(),
        2 * (12 * 24 + 3 * probe_units(&cfg) + 16 + slice_units(&cfg))
    );
    let (report, seen) = common::counting_progress(|p| landscape::run(&cfg, p));
    assert_eq!(seen.iter().sum::<u64>(), cfg.work_units());
    assert!(report.arms.iter().all(|a| a.slice.is_some()));
    let rows = seen.iter().filter(|&&n| n == slice_row_units(&cfg)).count();
    assert_eq!(rows, 2 * 5, "one increment per slice row and arm: {seen:?}");
    assert!(seen.iter().all(|&n| n <= probe_units(&cfg)), "{seen:?}");

    // The grid that ran ten minutes behind an "eta 4s" bar: the slice is now nearly all of it.
    let big = landscape_config(&["landscape", "--slice-grid", "401", "--steps", "400"]);
    let slice_share = (2 * slice_units(&big)) as f64 / big.work_units() as f64;
    assert!(slice_share > 0.99, "{slice_share}");

    let cfg = landscape_config(&common::with_flag(&TINY_LANDSCAPE[..], "--lr", "1e10"));
    let r = common::assert_progress_adds_up::<Landscape>(&cfg, u64::MAX, "landscape --lr 1e10");
    assert!(r.arms.iter().any(|a| a.slice.is_none()));
}

/// BN against BN off is in the JSON, measure by measure: a NaN median (a probe blown up to
/// NaN) makes that comparison "undetermined" with the reason, while an inf median (the loss
/// overflowed along the path) is a result and decides against a finite one. Nothing is
/// dropped from the medians. A normal run decides every comparison.
#[test]
fn comparisons_need_a_non_nan_median_in_both_arms() {
    let out = scratch("landscape-undetermined");
    bn_lab_ok(&TINY_LANDSCAPE[..], &out);
    let v = json(&out.join("landscape.json"));
    let measures = [
        "loss_variation",
        "relative_loss_variation",
        "grad_dist",
        "relative_grad_dist",
        "beta",
    ];
    for m in measures {
        let c = &v["comparison"][m];
        assert!(
            ["smaller", "larger"].contains(&c["verdict"].as_str().unwrap()),
            "{m}: {c}"
        );
        assert!(c["reason"].is_null(), "{m}: {c}");
    }

    let o = bn_lab_ok(
        &common::with_flag(&TINY_LANDSCAPE[..], "--lr", "1e10"),
        &out,
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v = json(&out.join("landscape.json"));
    let off = &v["arms"][0]["summary"];
    let summary_key = |m: &str| format!("median_{m}");
    let mut undetermined = 0;
    for m in measures {
        let c = &v["comparison"][m];
        let (o, n) = (common::num(&c["off"]), common::num(&c["on"]));
        assert_eq!(
            o.to_bits(),
            common::num(&off[summary_key(m)]).to_bits(),
            "{m}"
        );
        if o.is_nan() || n.is_nan() {
            undetermined += 1;
            assert_eq!(c["verdict"], "undetermined", "{m}: {c}");
            let reason = c["reason"].as_str().unwrap();
            assert!(reason.contains("median is NaN"), "{m}: {reason}");
            assert!(
                stdout.contains(&format!("undetermined: {reason}")),
                "{stdout}"
            );
        } else {
            assert_ne!(c["verdict"], "undetermined", "{m}: {c}");
        }
        if o == f64::INFINITY && n.is_finite() {
            assert_eq!(
                c["verdict"], "smaller",
                "an overflow without BN is a result: {c}"
            );
        }
    }
    assert!(
        undetermined > 0,
        "lr 1e10 makes some probe NaN: {}",
        v["comparison"]
    );
    assert!(!stdout.contains("not comparable"), "{stdout}");
    std::fs::remove_dir_all(&out).unwrap();
}

/// Every figure of the tiny run: no legend over data, the headline a slide of four panels,
/// the slice's layout recording each map's cell centres and the colour bar.
#[test]
fn landscape_figures_keep_their_legends_clear() {
    use bn_lab::experiment::landscape::Landscape;
    let (_, layouts) =
        common::assert_figures_clear::<Landscape>(&landscape_config(&TINY_LANDSCAPE[..]), "tiny");
    let names: Vec<&str> = layouts.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(names, ["landscape.png", "landscape_slice.png"]);
    assert_eq!(layouts[0].1.panels.len(), 4);
    let slice = &layouts[1].1;
    assert_eq!(slice.panels.len(), 2);
    assert!(
        slice.panels.iter().all(|p| p.points.len() == 25),
        "5 x 5 cells"
    );
    assert_eq!(slice.legends.len(), 1, "the colour bar");
}

/// `--lr 0.02` on the default network (shortened to 40 steps and a 7 x 7 slice): BN off
/// diverges at step 3. Its ✕ is drawn at the divergence step in every panel over training
/// (one recorded point more than the same report drawn as if it had not diverged), the
/// legend says where, and its slice panel says why it is empty and has no legend.
#[test]
fn a_diverged_arm_is_marked_in_every_landscape_figure() {
    use bn_lab::experiment::landscape::{Landscape, run};
    use bn_lab::plot::Figures;
    let args = [
        "landscape",
        "--lr",
        "0.02",
        "--steps",
        "40",
        "--slice-grid",
        "7",
    ];
    let cfg = landscape_config(&args);
    let (report, layouts) = common::assert_figures_clear::<Landscape>(&cfg, "lr 0.02");
    assert_eq!(report.arms[0].run.diverged_at, Some(3), "BN off diverges");
    assert_eq!(report.arms[1].run.diverged_at, None, "BN on trains");
    let mut undiverged = run(&cfg, &|_| {});
    undiverged.arms[0].run.diverged_at = None;
    for (fig, (file, layout)) in Landscape::figures().into_iter().zip(&layouts).take(1) {
        let plain = (fig.draw)(&undiverged).unwrap().layout;
        for (p, q) in layout.panels.iter().zip(&plain.panels) {
            assert_eq!(
                p.points.len(),
                q.points.len() + 1,
                "{file}, {}: the divergence mark",
                p.caption
            );
        }
    }
    let slice = &layouts[1].1;
    assert!(
        slice.panels[0]
            .caption
            .contains("diverged at step 3: no slice")
    );
    assert!(slice.panels[0].points.is_empty());
    assert_eq!(slice.panels[1].points.len(), 49);
    assert_eq!(
        slice.legends.len(),
        1,
        "only the colour bar, no empty legend box"
    );
}

/// A step-0 probe decades above the rest does not set the range: the range ends at the
/// decade above the later values, the step-0 point is drawn there, and a note gives its value.
#[test]
fn the_step_zero_probe_is_clipped_with_its_value_written() {
    use bn_lab::plot::landscape::clip_step0;
    use bn_lab::plot::{Panel, Series, okabe_ito};
    let mut p = Panel::new("p", "step", "loss", true);
    let mut s = Series::new(
        "BN off",
        okabe_ito::VERMILLION,
        vec![(0.0, 2.5e4), (10.0, 0.8), (20.0, 3.0)],
    );
    s.band = vec![(0.0, 1e3, 1e5), (10.0, 0.5, 1.0), (20.0, 2.0, 4.0)];
    p.series.push(s);
    let clipped = clip_step0(&mut p);
    assert_eq!(clipped, [("BN off".to_string(), 2.5e4)]);
    assert_eq!(p.y_range, Some((0.5, 10.0)));
    assert_eq!(p.series[0].points[0], (0.0, 10.0));
    assert_eq!(p.series[0].band[0], (0.0, 10.0, 10.0));
    assert_eq!(p.notes.len(), 1);
    assert!(p.notes[0].text.contains("2.50e4"), "{}", p.notes[0].text);
}
