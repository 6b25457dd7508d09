//! The memory footprint an experiment declares before it runs is an upper bound of what the
//! run really holds: a peak-tracking allocator measures the run with its JSON, then the
//! figures, for configurations where each part (networks, data and the linear fit, recorded
//! histories, the slice grid, a saved network) dominates in turn.
//!
//! One test in this file: the allocator counts the whole process.

#![warn(clippy::too_many_lines)] // as in src/: no test function over 100 lines either

use bn_lab::experiment::Plan;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bn_lab::cli::{Cli, Command, EXPERIMENTS};
use bn_lab::commands::VisitConfig;
use bn_lab::flags::Renames;
use bn_lab::limits::figures_bytes;
use bn_lab::plot::Figures;
use clap::Parser;

struct Peak;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as alloc-then-free: a moving realloc holds both blocks for a moment.
        grew(new_size);
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        p
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// Bytes allocated beyond what was live when `f` started, at `f`'s peak.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, (PEAK.load(Ordering::Relaxed) - base) as f64)
}

/// Run `E` on `cfg` as `commands::execute` does (run, JSON, figures) and check both phases
/// against the declared footprint.
fn check<E: Figures>(what: &str, cfg: &E::Config) {
    cfg.validate().unwrap_or_else(|e| panic!("{what}: {e}"));
    let fp = cfg.footprint();
    let total = fp.total();
    let ((report, json), run_peak) = peak_of(|| {
        let report = E::run(cfg, &|_| {});
        let json = serde_json::to_string_pretty(&report).unwrap();
        (report, json)
    });
    let (_, fig_peak) = peak_of(|| {
        for fig in E::figures_for(cfg) {
            (fig.draw)(&report).unwrap();
        }
    });
    drop(json);
    // Not wildly over either: the fixed allowances (packing buffers, block overheads) aside,
    // the estimate stays within a small factor of what the run holds.
    assert!(
        total - figures_bytes() <= 8.0 * run_peak + 32e6,
        "{what}: declared {total} bytes for a run that peaked at {run_peak} ({fp:?})"
    );
    let records: f64 = fp
        .parts
        .iter()
        .filter(|p| p.what == "records")
        .map(|p| p.bytes)
        .sum();
    eprintln!(
        "{what}: declared {:.1} MB (without figures {:.1} MB); run + JSON peak {:.1} MB, figures peak {:.1} MB",
        total / 1e6,
        (total - figures_bytes()) / 1e6,
        run_peak / 1e6,
        fig_peak / 1e6
    );
    assert!(
        run_peak <= total - figures_bytes(),
        "{what}: the run and its JSON peaked at {run_peak} bytes, above the {} declared for them ({fp:?})",
        total - figures_bytes()
    );
    assert!(
        fig_peak <= figures_bytes() + records,
        "{what}: drawing peaked at {fig_peak} bytes, above the figures' {} and the records' {records} ({fp:?})",
        figures_bytes()
    );
}

fn parse(args: &[&str]) -> Command {
    let mut all = vec!["bn-lab"];
    all.extend(args);
    Cli::try_parse_from(all).unwrap().command
}

#[test]
fn declared_footprints_bound_the_measured_peaks() {
    // Each line: what dominates, then the command line.
    let cases: &[(&str, &str)] = &[
        (
            "grad-norms, deep and narrow, many seeds, saved net",
            "grad-norms --depth 1500 --width 4 --batch 4 --seeds 20 --save-net x.json",
        ),
        (
            "grad-norms, wide",
            "grad-norms --depth 3 --width 512 --batch 256 --bn on",
        ),
        (
            "train, data and linear fit",
            "train --depth 2 --width 8 --batch 8 --d-in 96 --n-train 20000 --n-test 5000 --steps 20 --lr 0.01 --configs off,on",
        ),
        (
            "train, long histories",
            "train --depth 12 --width 4 --batch 4 --n-train 64 --n-test 16 --steps 3000 --diag-every 1 --eval-every 1 --lr 0.001,0.002",
        ),
        (
            "nonlinearity, many seeds",
            "nonlinearity --depth 3 --width 16 --batch 16 --n-train 256 --n-test 64 --steps 10 --seeds 40",
        ),
        (
            "ics, long",
            "ics --depth 4 --width 6 --batch 8 --n-train 64 --n-test 32 --steps 3000 --every 1",
        ),
        (
            "noisy-bn, long and wide probe",
            "noisy-bn --task nonlinear --depth 4 --width 64 --batch 64 --n-train 2048 --n-test 32 --steps 400 --every 1 --probe 2048",
        ),
        (
            "input-shift, long",
            "input-shift --task nonlinear --depth 3 --width 6 --batch 8 --n-train 64 --n-test 32 --steps 3000 --every 1 --probe 64",
        ),
        (
            "landscape, large slice",
            "landscape --depth 2 --width 6 --batch 8 --n-train 64 --n-test 32 --steps 100 --every 5 --slice-grid 121 --slice-samples 16",
        ),
        (
            "shattered, many seeds and points",
            "shattered --depth 1,3 --width 16 --points 4000 --seeds 30 --max-lag 500",
        ),
        ("theory, deep", "theory --depth 20000 --batch 4,8,1024"),
        (
            "grad-norms, histograms",
            "grad-norms --depth 3,60 --width 128 --batch 128 --histograms",
        ),
        (
            "train, histograms",
            "train --depth 12 --width 64 --batch 64 --n-train 256 --n-test 64 --steps 40 --histograms",
        ),
        (
            "sweep, many points, LayerNorm",
            "sweep --vary depth --values 1,40,80 --norm none,batch,layer --width 32 --batch 32 --seeds 6",
        ),
        (
            "sweep, training",
            "sweep --vary batch --values 2,64 --depth 3 --width 16 --steps 30 --n-train 4096 --n-test 512",
        ),
    ];
    // Every experiment in the registry has a case here: a new one cannot land unmeasured.
    let covered: std::collections::BTreeSet<&str> = cases
        .iter()
        .map(|(_, line)| line.split_whitespace().next().unwrap())
        .collect();
    for name in EXPERIMENTS {
        assert!(covered.contains(name), "no footprint case runs `{name}`");
    }
    for (what, line) in cases {
        let args: Vec<&str> = line.split_whitespace().collect();
        parse(&args)
            .visit_config(&mut Measure { what })
            .expect("only experiments are listed")
            .unwrap();
    }
}

/// [`check`] on any experiment's config, through the registry.
struct Measure<'a> {
    what: &'a str,
}

impl VisitConfig for Measure<'_> {
    type Output = ();
    fn visit<E: Figures>(&mut self, cfg: E::Config, _: Renames) -> anyhow::Result<()> {
        check::<E>(self.what, &cfg);
        Ok(())
    }
}
