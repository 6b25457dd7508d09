//! `bn-lab gradcheck`.

use anyhow::{Result, bail};

use crate::config::finite_in;

use crate::cli::GradcheckArgs;
use crate::commands::{flag_error, print, progress_bar, usage};
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
        match &net.bn {
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
