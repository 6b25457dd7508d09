//! `bn-lab sweep`: a local run, `--plan` (one command per point), `--point` (one point) and
//! `--collect` (the points' files back into one sweep).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::ValueEnum;

use crate::commands::{Registered, RunOptions, RunRecord, VisitConfig, execute, print};
use crate::config::{Normaliser, Placement};
use crate::experiment::sweep::SweepArgs;
use crate::experiment::sweep::{
    CollectError, PointFile, Sweep, SweepConfig, SweepPoint, Vary, collect,
};
use crate::experiment::{Experiment, Plan, load_config};
use crate::flags::{OutputArgs, flag_error, threads, usage};
use crate::parallel;
use crate::plot::Figures;

/// `sweep` in the registry: a local run or one point (an experiment each), a plan, or a
/// collection of points.
impl Registered for SweepArgs {
    const NAME: &'static str = <Sweep as Experiment>::NAME;
    const QUICK: &'static str = "--vary batch --values 4,16 --norm none,batch,layer --depth 5 --width 16 --seeds 2 --steps 8 --n-train 64 --n-test 32";

    fn run(&self, options: &RunOptions<'_>) -> Result<Option<RunRecord>> {
        let threads = threads(self.threads)?;
        if let Some(dir) = &self.collect {
            return parallel::with_threads(threads, || run_collect(dir, &self.output))?
                .map(|()| None);
        }
        let cfg = self.config(self.vary())?;
        if let Some(plan) = &self.plan {
            return parallel::with_threads(threads, || write_plan(&cfg, plan, &self.output.out))?
                .map(|()| None);
        }
        let renames = SweepArgs::RENAMES;
        parallel::with_threads(threads, || {
            if cfg.point.is_some() {
                execute::<SweepPoint>(&cfg, renames, &self.output, &[], options)
            } else {
                execute::<Sweep>(&cfg, renames, &self.output, &[], options)
            }
        })?
        .map(Some)
    }

    fn visit<V: VisitConfig>(&self, visitor: &mut V) -> Result<V::Output> {
        let cfg = self.config(self.vary())?;
        if cfg.point.is_some() {
            visitor.visit::<SweepPoint>(cfg, SweepArgs::RENAMES)
        } else {
            visitor.visit::<Sweep>(cfg, SweepArgs::RENAMES)
        }
    }
}

impl SweepArgs {
    /// `--vary`, which clap requires unless `--collect` is given (and a collection has no
    /// config of its own).
    fn vary(&self) -> Vary {
        self.vary
            .expect("clap requires --vary unless --collect is given")
    }
}

pub use crate::text::shell_quote;

fn enum_name<E: ValueEnum>(v: &E) -> String {
    v.to_possible_value()
        .expect("no variant is skipped")
        .get_name()
        .to_string()
}

/// `v` in the shortest form that reads back as the same `f64` (`1e-300`, not 300 digits).
fn short_float(v: f64) -> String {
    crate::stats::Short(v).to_string()
}

/// The flags that rerun `cfg` (without `--point` and `--out`), every resolved value spelled out.
pub fn flags(cfg: &SweepConfig) -> Vec<String> {
    let join = |v: Vec<String>| v.join(",");
    let mut f: Vec<String> = vec![
        "--vary".into(),
        enum_name(&cfg.vary),
        "--values".into(),
        join(cfg.values.iter().map(|&v| short_float(v)).collect()),
        "--norm".into(),
        join(
            cfg.norms
                .iter()
                .map(|n| match n {
                    Normaliser::Off => "none".to_string(),
                    Normaliser::Batch { .. } => "batch".to_string(),
                    Normaliser::Layer { .. } => "layer".to_string(),
                })
                .collect(),
        ),
    ];
    // Every normalised arm shares one affine setting and placement (the flags set them).
    let on = cfg.norms.iter().find(|n| n.is_on());
    let (affine, placement) = on.map_or((true, Placement::Pre), |n| {
        let (_, a, p) = n.parts().expect("an arm that is on has parts");
        (a, p)
    });
    f.push(if affine { "--affine" } else { "--no-affine" }.into());
    f.extend(["--placement".into(), enum_name(&placement)]);
    f.extend(["--seeds".into(), cfg.seeds.to_string()]);
    if let Some(d) = cfg.depth {
        f.extend(["--depth".into(), d.to_string()]);
    }
    let n = &cfg.net;
    f.extend([
        "--act".into(),
        enum_name(&cfg.act),
        "--init".into(),
        n.init.to_string(),
        "--width".into(),
        n.width.to_string(),
        "--batch".into(),
        n.batch.to_string(),
        "--d-in".into(),
        n.d_in.to_string(),
        "--d-out".into(),
        n.d_out.to_string(),
    ]);
    if n.residual {
        f.extend([
            "--residual".into(),
            "--residual-scale".into(),
            short_float(n.residual_scale),
        ]);
    }
    f.extend([
        "--eps".into(),
        short_float(n.eps),
        "--momentum".into(),
        short_float(n.momentum),
        "--seed".into(),
        n.seed.to_string(),
        "--dtype".into(),
        enum_name(&n.dtype),
        "--steps".into(),
        cfg.sgd.steps.to_string(),
        "--lr".into(),
        short_float(cfg.sgd.lr),
        "--task".into(),
        cfg.data.task.spelling(),
        "--loss".into(),
        enum_name(&cfg.data.loss),
        "--n-train".into(),
        cfg.data.n_train.to_string(),
        "--n-test".into(),
        cfg.data.n_test.to_string(),
    ]);
    if cfg.sgd.warmup_steps > 0 {
        f.extend(["--warmup-steps".into(), cfg.sgd.warmup_steps.to_string()]);
    }
    f
}

/// One shell line per point: `bn-lab sweep <flags> --point I --out <dir>/point-I`.
pub fn plan_lines(cfg: &SweepConfig, dir: &Path) -> Vec<String> {
    let common: Vec<String> = flags(cfg).iter().map(|w| shell_quote(w)).collect();
    let common = common.join(" ");
    (0..cfg.point_count())
        .map(|i| {
            let out = dir.join(format!("point-{i}"));
            format!(
                "bn-lab sweep {common} --point {i} --out {}",
                shell_quote(&out.to_string_lossy())
            )
        })
        .collect()
}

/// `--plan FILE`: validate, then write the lines (nothing else).
fn write_plan(cfg: &SweepConfig, plan: &Path, out: &Path) -> Result<()> {
    cfg.validate()
        .and_then(|()| cfg.footprint().check())
        .map_err(|e| flag_error(SweepArgs::RENAMES, &e))?;
    // Every path in a line is absolute (a line runs from any directory: a cluster job's) and
    // spelled exactly (a path that is not UTF-8 cannot be).
    let dir = std::path::absolute(out).map_err(|e| usage(format!("--out: {e}")))?;
    if dir.to_str().is_none() {
        return Err(usage(format!(
            "--out: '{}' is not valid UTF-8, which a plan line cannot spell; choose another --out",
            dir.display()
        )));
    }
    let mut cfg = cfg.clone();
    cfg.data.task = cfg
        .data
        .task
        .absolute()
        .map_err(|e| usage(format!("--task: {e}")))?;
    let cfg = &cfg;
    let mut text = plan_lines(cfg, &dir).join("\n");
    text.push('\n');
    crate::output::write_file(plan, text.as_bytes())
        .map_err(|e| usage(format!("--plan: cannot write '{}': {e}", plan.display())))?;
    print(&format!(
        "wrote {} commands (one per point) to {}; run them, then: bn-lab sweep --collect {}\n",
        cfg.point_count(),
        plan.display(),
        shell_quote(&dir.to_string_lossy())
    ))
}

/// Read one `--point` run's `sweep.json`.
fn read_point_file(path: &Path) -> Result<PointFile, CollectError> {
    let bad = |what: String| CollectError(format!("{}: {what}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let config: SweepConfig =
        load_config(&v["config"]).map_err(|e| bad(format!("not a sweep's config: {e}")))?;
    // Validated like a config typed on the command line, its fields named as in the file.
    config
        .validate()
        .map_err(|e| bad(e.render(&|f| format!("config.{f}"))))?;
    let point = v["point"]
        .as_u64()
        .ok_or_else(|| bad("not written by a --point run (no 'point')".into()))?
        as usize;
    let points = v["points"]
        .as_array()
        .filter(|a| a.len() == 1)
        .ok_or_else(|| bad("a --point run's file holds exactly one entry in 'points'".into()))?;
    let result =
        serde_json::from_value(points[0].clone()).map_err(|e| bad(format!("points[0]: {e}")))?;
    Ok(PointFile {
        path: path.to_path_buf(),
        config,
        point,
        result,
    })
}

/// The `sweep.json` files one level below `dir`, in name order.
fn point_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| usage(format!("--collect: cannot read '{}': {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("sweep.json"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// `--collect DIR`: the points' files into one sweep, written as a local run writes it.
fn run_collect(dir: &Path, out: &OutputArgs) -> Result<()> {
    let files = point_files(dir)?;
    if files.is_empty() {
        return Err(usage(format!(
            "--collect: no {}/*/sweep.json (written by --point runs)",
            dir.display()
        )));
    }
    let read: Vec<PointFile> = files
        .iter()
        .map(|p| read_point_file(p))
        .collect::<Result<_, _>>()
        .map_err(|e| usage(format!("--collect: {e}")))?;
    // --out must not be one of the points' directories: its sweep.json is an input.
    if let Ok(target) = std::fs::canonicalize(&out.out)
        && let Some(input) = files.iter().find(|f| {
            f.parent()
                .and_then(|p| std::fs::canonicalize(p).ok())
                .is_some_and(|p| p == target)
        })
    {
        return Err(usage(format!(
            "--out: '{}' holds {}, an input of --collect; choose a directory outside the points'",
            out.out.display(),
            input.display()
        )));
    }
    let report = collect(read).map_err(|e| usage(format!("--collect: {e}")))?;
    report
        .config
        .validate()
        .map_err(|e| usage(format!("--collect: {e}")))?;
    crate::output::install_signal_handler()?;
    let outputs = crate::output::Outputs::prepare::<Sweep>(&out.out, &Sweep::figures(), &[])
        .map_err(|e| usage(format!("{e:#}")))?;
    let start = std::time::Instant::now();
    let json = serde_json::to_string_pretty(&report)?;
    let written = crate::output::export::<Sweep>(&report, &json, &out.out, &Sweep::figures(), &[])?;
    outputs.keep();
    if out.json {
        print(&format!("{json}\n"))
    } else {
        let mut text = Sweep::summary(&report);
        text.push_str(&format!(
            "collected {} points from {}; wrote {} in {:.2} s\n",
            report.points.len(),
            dir.display(),
            crate::output::join_paths(&written),
            start.elapsed().as_secs_f64()
        ));
        print(&text)
    }
}
