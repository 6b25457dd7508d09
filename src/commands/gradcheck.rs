//! `bn-lab gradcheck`.

use anyhow::{Result, bail};

use crate::cli::GradcheckArgs;
use crate::commands::{flag_error, print, progress_bar};
use crate::gradcheck;
use crate::model::Mode;

pub fn run(args: &GradcheckArgs) -> Result<()> {
    if !(args.step.is_finite() && args.step > 0.0) {
        bail!("--step must be a positive number (got {})", args.step);
    }
    if !(args.tol.is_finite() && args.tol > 0.0) {
        bail!("--tol must be a positive number (got {})", args.tol);
    }
    let spec = args.net.spec();
    let norm = args.bn.single(args.net.batch_norm(), "gradcheck checks")?;
    let net = spec.net(args.depth, args.net.activation(), norm);
    let batch = spec.batch;
    spec.validate()
        .and_then(|()| net.validate(batch))
        .map_err(|e| flag_error(&[], &e))?;
    let cost = gradcheck::cost(&net, batch);
    if cost.ops > gradcheck::MAX_OPS {
        bail!(
            "--width/--depth/--batch: this check needs about {:.2e} operations ({:.0} forward passes of {:.2e} each: two per parameter and input element), above the limit of {:.0e} (a few minutes); use a smaller network (the defaults are depth 3, width 6, batch 8)",
            cost.ops,
            cost.forward_passes,
            cost.ops_per_pass,
            gradcheck::MAX_OPS
        );
    }
    net.check_memory(batch, 8)
        .map_err(|e| flag_error(&[], &e))?;
    let mode = if args.eval { Mode::Eval } else { Mode::Train };
    let pb = progress_bar(cost.elements as u64, "gradcheck");
    let r = gradcheck::check_with_progress(&net, batch, spec.seed, args.step, mode, &|n| pb.inc(n));
    pb.finish_and_clear();
    let mut out = format!(
        "gradcheck: depth {}, width {}, {}, {} init, BN {}, residual {}, batch {}, {:?} mode, h = {:e}, loss {:.6}\n",
        net.depth,
        net.width,
        net.act,
        net.init,
        match &net.bn {
            None => "off".to_string(),
            Some(bn) => format!(
                "on ({}, {})",
                if bn.affine { "affine" } else { "no affine" },
                bn.placement
            ),
        },
        net.residual,
        batch,
        mode,
        args.step,
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
    print(&out);
    if !ok {
        bail!(
            "gradient check failed: relative error {worst:.3e} above --tol {:e}",
            args.tol
        );
    }
    Ok(())
}
