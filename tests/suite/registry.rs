//! Every experiment in the registry (`bn_lab::cli::QUICK_RUNS`, one line each in `cli.rs`), on
//! its small run: the JSON it writes reruns to the same report, its progress adds up to its
//! declared units, its figures are laid out clear, and a bad `--out` is refused naming the flag
//! with nothing written. A new experiment is covered here by its registration line alone.

use bn_lab::experiment::Plan;

use crate::common::{self, bn_lab, bn_lab_ok, json, scratch_dir};
use bn_lab::commands::VisitConfig;
use bn_lab::experiment::{alive_at_once, load_config, total_units};
use bn_lab::flags::Renames;
use bn_lab::plot::Figures;
use serde_json::Value;

/// The command line of an experiment's small run.
fn quick_args(name: &'static str, quick: &'static str) -> Vec<&'static str> {
    let mut args = vec![name];
    args.extend(quick.split_whitespace());
    args
}

/// What the tests check of one experiment, given its type through the registry.
struct Checks<'a> {
    name: &'a str,
    args: &'a [&'a str],
}

impl VisitConfig for Checks<'_> {
    type Output = ();
    fn visit<E: Figures>(&mut self, cfg: E::Config, _: Renames) -> anyhow::Result<()> {
        // The JSON the CLI writes reruns to the same report (but for the wall-clock seconds).
        let dir = scratch_dir(&format!("registry-{}", self.name));
        bn_lab_ok(self.args, &dir);
        let mut written = json(&dir.join(format!("{}.json", E::STEM)));
        let recorded: E::Config =
            load_config(&written["config"]).expect("the recorded config loads");
        recorded.validate().expect("the recorded config is valid");
        // The progress callback adds up to the declared units, whatever the experiment.
        let report = common::assert_progress_adds_up::<E>(&recorded, u64::MAX, self.name);
        let mut again = serde_json::to_value(&report).unwrap();
        for v in [&mut written, &mut again] {
            if let Value::Object(m) = v {
                m.remove("seconds");
            }
        }
        assert_eq!(
            written, again,
            "{}: rerunning the recorded config differs",
            self.name
        );
        // The config the flags describe is the one recorded, but for what the run resolved.
        assert!(cfg.validate().is_ok(), "{}", self.name);
        common::assert_figures_clear::<E>(&cfg, self.name);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}

#[test]
fn every_experiment_reruns_from_its_json_and_draws_clear_figures() {
    assert_eq!(
        bn_lab::cli::QUICK_RUNS.len(),
        bn_lab::cli::EXPERIMENTS.len()
    );
    for &(name, quick) in bn_lab::cli::QUICK_RUNS {
        let args = quick_args(name, quick);
        common::parse(&args)
            .visit_config(&mut Checks { name, args: &args })
            .unwrap_or_else(|| panic!("`{name}` is registered but runs no experiment"))
            .unwrap();
    }
}

#[test]
fn every_experiment_refuses_an_out_that_is_a_file_and_an_unknown_flag() {
    let dir = scratch_dir("registry-refusals");
    let file = dir.join("a-file");
    std::fs::write(&file, "kept").unwrap();
    let file_s = file.to_str().unwrap();
    for &(name, quick) in bn_lab::cli::QUICK_RUNS {
        for (extra, flag) in [
            (vec!["--out", file_s], "--out"),
            (vec!["--no-such-flag", "1"], "--no-such-flag"),
        ] {
            let mut args = quick_args(name, quick);
            args.extend(&extra);
            let out = bn_lab(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
            assert!(
                stderr.contains(flag),
                "{args:?} does not name {flag}: {stderr}"
            );
            assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "kept", "{name}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "{name} wrote beside the file: {left:?}");
    }
}

/// The small runs are small: each config's declared footprint, figures aside, is under 64 MB.
#[test]
fn every_quick_run_declares_a_small_footprint() {
    struct Footprint<'a>(&'a str);
    impl VisitConfig for Footprint<'_> {
        type Output = f64;
        fn visit<E: Figures>(&mut self, cfg: E::Config, _: Renames) -> anyhow::Result<f64> {
            cfg.validate().unwrap_or_else(|e| panic!("{}: {e}", self.0));
            Ok(cfg.footprint().total() - bn_lab::limits::figures_bytes())
        }
    }
    for &(name, quick) in bn_lab::cli::QUICK_RUNS {
        let bytes = common::parse(&quick_args(name, quick))
            .visit_config(&mut Footprint(name))
            .unwrap()
            .unwrap();
        assert!(bytes < 64e6, "{name}: {bytes} bytes besides the figures");
    }
}

/// The plan is derived from the jobs `run` executes ([`Plan::costs`]): every job reports
/// progress, the work units hold every job's units (the QUICK run's progress adding up to them
/// is checked above, so a job `run` executes beyond its config's jobs is caught there), and the
/// footprint's networks hold at least the largest jobs that run side by side (in each pass), so
/// a footprint that misses a job (an arm, a seed) is caught here.
#[test]
fn every_plan_counts_and_sizes_every_job() {
    struct Jobs<'a>(&'a str);
    impl VisitConfig for Jobs<'_> {
        type Output = ();
        fn visit<E: Figures>(&mut self, cfg: E::Config, _: Renames) -> anyhow::Result<()> {
            let name = self.0;
            cfg.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            let costs = cfg.costs();
            assert!(!costs.is_empty(), "{name}: no jobs");
            assert!(
                costs.iter().all(|c| c.units > 0),
                "{name}: a job reports no progress: {costs:?}"
            );
            let units = total_units(costs.iter().map(|c| c.units));
            assert!(
                cfg.work_units() >= units,
                "{name}: {} work units for jobs of {units}",
                cfg.work_units()
            );
            let alive = alive_at_once(&costs);
            let networks: f64 = cfg
                .footprint()
                .parts
                .iter()
                .filter(|p| p.what == "networks")
                .map(|p| p.bytes)
                .sum();
            assert!(
                networks >= alive,
                "{name}: the footprint's networks ({networks} bytes) hold less than the jobs running side by side ({alive}): {costs:?}"
            );
            Ok(())
        }
    }
    for &(name, quick) in bn_lab::cli::QUICK_RUNS {
        common::parse(&quick_args(name, quick))
            .visit_config(&mut Jobs(name))
            .unwrap()
            .unwrap();
    }
}
