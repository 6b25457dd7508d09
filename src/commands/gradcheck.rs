//! `bn-lab gradcheck`.

use clap::Args;

use crate::config::Loss;
use crate::flags::{NetArgs, NormArgs, count, flag_error, usage};
use crate::limits::MAX_DEPTH;
use anyhow::{Result, bail};

use crate::config::finite_in;

use crate::commands::{print, progress_bar};
use crate::gradcheck;
use crate::model::Mode;

/// Largest check, in [`gradcheck::cost_ops`]: about half a minute here (the default network
/// needs about 1e8, width 140 at depth 3 about 1.2e11, 10 s).
pub const MAX_GRADCHECK_OPS: f64 = 3e11;

pub fn run(args: &GradcheckArgs) -> Result<()> {
    finite_in("step", "> 0", args.step, |v| v > 0.0)
        .and_then(|()| finite_in("tol", "> 0", args.tol, |v| v > 0.0))
        .map_err(|e| flag_error(&[], &e))?;
    let spec = args.net.spec();
    if args.loss == crate::config::Loss::Ce && spec.d_out < 2 {
        return Err(usage(format!(
            "--loss ce needs --d-out of at least 2 (a softmax over one output is always 1); got {}",
            spec.d_out
        )));
    }
    let norm = args.arms.single(&args.net, "gradcheck checks")?;
    let net = spec.net(args.depth, args.net.activation(), norm);
    let batch = spec.batch;
    spec.validate()
        .and_then(|()| net.validate(batch))
        .and_then(|()| net.check_memory(batch, 8))
        .map_err(|e| flag_error(&[], &e))?;
    let ops = gradcheck::cost_ops(&net, batch);
    if ops > MAX_GRADCHECK_OPS {
        return Err(usage(format!(
            "--width/--depth/--batch: this check perturbs {:.0} values with two forward passes each, about {ops:.1e} operations (at most {MAX_GRADCHECK_OPS:.0e}, half a minute); use a smaller network (the defaults are depth 3, width 6, batch 8)",
            gradcheck::perturbations(&net, batch)
        )));
    }
    let mode = if args.eval { Mode::Eval } else { Mode::Train };
    let pb = progress_bar(gradcheck::perturbations(&net, batch) as u64, "gradcheck");
    let r =
        gradcheck::check_with_progress(&net, batch, spec.seed, args.step, mode, args.loss, &|n| {
            pb.inc(n)
        });
    pb.finish_and_clear();
    let mut out = format!(
        "gradcheck: depth {}, width {}, {}, {} init, {}, residual {}{}, batch {}, {:?} mode, h = {:e}, {} loss {:.6}\n",
        net.depth,
        net.width,
        net.act,
        net.init,
        match &net.norm {
            None => "BN off".to_string(),
            Some(bn) => format!(
                "{} on ({}, {})",
                bn.kind.short(),
                if bn.affine { "affine" } else { "no affine" },
                bn.placement
            ),
        },
        net.residual,
        if net.residual_scale == 1.0 {
            String::new()
        } else {
            format!(" x {}", crate::stats::Short(net.residual_scale))
        },
        batch,
        mode,
        args.step,
        args.loss,
        r.loss
    );
    out.push_str(&format!(
        "{:<18} {:>6} {:>12} {:>12} {:>12}\n",
        "tensor", "size", "|analytic|", "rel error", "max abs err"
    ));
    for t in &r.tensors {
        out.push_str(&format!(
            "{:<18} {:>6} {:>12.4e} {:>12.3e} {:>12.3e}\n",
            t.name, t.len, t.analytic_norm.0, t.rel_error.0, t.max_abs_error.0
        ));
    }
    let worst = r.max_rel_error();
    let ok = worst <= args.tol;
    out.push_str(&format!(
        "largest relative error {worst:.3e}: {} (tolerance {:e})\n",
        if ok { "PASS" } else { "FAIL" },
        args.tol
    ));
    print(&out)?;
    if !ok {
        bail!(
            "gradient check failed: relative error {worst:.3e} above --tol {:e}",
            args.tol
        );
    }
    Ok(())
}

/// A tiny network by default: every parameter is perturbed twice.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
#[command(
    mut_arg("width", |a| a.default_value("6")),
    mut_arg("batch", |a| a.default_value("8")),
    mut_arg("d_out", |a| a.default_value("3")),
    mut_arg("dtype", |a| a.hide(true)),
    mut_arg("bn", |a| a.default_value("on"))
)]
pub struct GradcheckArgs {
    /// Number of hidden layers.
    #[arg(allow_hyphen_values = true, value_parser = count::<1, MAX_DEPTH>, long, default_value_t = 3)]
    pub depth: usize,
    /// The one network checked: `--bn on|off` or `--norm none|batch|layer`.
    #[command(flatten)]
    pub arms: NormArgs,
    /// Check BatchNorm in eval mode (running statistics) instead of train mode.
    #[arg(long)]
    pub eval: bool,
    /// Finite-difference step h in (L(p+h) - L(p-h)) / 2h.
    #[arg(
        allow_hyphen_values = true,
        long,
        default_value_t = 1e-5,
        allow_negative_numbers = true
    )]
    pub step: f64,
    /// Relative error above which the check fails (exit code 1).
    #[arg(allow_hyphen_values = true, long, default_value_t = 1e-6)]
    pub tol: f64,
    /// Loss to check through: mse, or ce (softmax cross-entropy on the teacher's argmax).
    #[arg(long, value_enum, default_value_t = Loss::Mse)]
    pub loss: Loss,
    /// Network flags (gradcheck always computes in f64).
    #[command(flatten)]
    pub net: NetArgs,
}
