//! Helpers shared by the end-to-end tests: run the binary, scratch directories.

use bn_lab::experiment::Plan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A fresh scratch directory path (not created) unique to this test process and `name`.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bn-lab-test-{}-{name}", std::process::id()));
    claim(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Record that the running test owns the scratch directory `dir`; panic if another test of this
/// process has asked for it. All the tests share one process and run in parallel, so two
/// tests picking the same name would remove each other's files. libtest names each test's
/// thread after the test; threads a test starts itself (unnamed) are not checked.
fn claim(dir: &Path) {
    static OWNERS: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());
    let thread = std::thread::current();
    let Some(test) = thread.name().filter(|n| *n != "main") else {
        return;
    };
    let mut owners = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
    let owner = owners
        .entry(dir.to_path_buf())
        .or_insert_with(|| test.to_string());
    assert_eq!(
        owner,
        test,
        "the scratch directory {} is used by two tests: give one of them another name",
        dir.display()
    );
}

/// How long any one `bn-lab` run of a test may take before it counts as hung: far above the
/// longest (a whole `reproduce` in the test profile on a loaded machine).
pub const HANG_LIMIT: Duration = Duration::from_secs(600);

/// Run `bn-lab` with `args`; panic if it is still running after [`HANG_LIMIT`] (it is killed
/// first), so a hang fails the test instead of stalling CI.
pub fn bn_lab(args: &[&str]) -> Output {
    bn_lab_within(args, HANG_LIMIT)
        .unwrap_or_else(|| panic!("bn-lab {args:?} still running after {HANG_LIMIT:?}: killed"))
}

/// Run `bn-lab` with `args` as [`Command::output`] does (stdin closed, stdout and stderr
/// captured), but for at most `limit`: `None` when it had to be killed.
pub fn bn_lab_within(args: &[&str], limit: Duration) -> Option<Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bn-lab"));
    cmd.args(args);
    output_within(&mut cmd, limit)
}

/// [`Command::output`] with a deadline: the child is killed (and reaped) once `limit` has
/// passed, and `None` returned.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Option<Output> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bn-lab binary runs");
    // Read both pipes while waiting, so a child that writes a lot never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for bn-lab") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    Some(Output {
        status,
        stdout: stdout.join().expect("the stdout reader does not panic"),
        stderr: stderr.join().expect("the stderr reader does not panic"),
    })
}

/// Run `bn-lab` with `args` writing into `out`; panic with its stderr if it fails.
pub fn bn_lab_ok(args: &[&str], out: &Path) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    let out_s = out.to_str().expect("temp paths are UTF-8");
    all.extend(["--out", out_s]);
    let o = bn_lab(&all);
    assert!(
        o.status.success(),
        "bn-lab {all:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Read and parse a JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("the JSON file was written");
    serde_json::from_str(&text).expect("the JSON file parses")
}

/// Assert that `v` has every one of `fields`.
pub fn has_fields(v: &serde_json::Value, fields: &[&str], what: &str) {
    for f in fields {
        assert!(v.get(f).is_some(), "{what} lacks field '{f}': {v}");
    }
}

/// Run `bn-lab` with bad flags and check: non-zero exit, one `Error:` line on stderr that
/// names `flag`, and nothing written into `out`.
pub fn rejects(args: &[&str], flag: &str, out: &Path) {
    let mut all: Vec<&str> = args.to_vec();
    let out_s = out.to_str().expect("temp paths are UTF-8");
    all.extend(["--out", out_s]);
    let o = bn_lab(&all);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "bn-lab {all:?} should fail");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(err.starts_with("Error: "), "{err}");
    assert!(err.contains(flag), "error should name {flag}: {err}");
    assert!(
        o.stdout.is_empty(),
        "nothing on stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!out.exists(), "{} must not be created", out.display());
}

/// A fresh, empty, existing directory under the target dir, for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    claim(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the target dir is writable");
    dir
}

/// A JSON value written by `stats::Num`: a number, or "inf"/"-inf"/"NaN".
pub fn num(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::Number(n) => n.as_f64().expect("JSON numbers are f64"),
        serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
        serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        serde_json::Value::String(s) if s == "NaN" => f64::NAN,
        other => panic!("not a number: {other}"),
    }
}

/// A failing invocation writing into the existing, empty `dir`: non-zero exit (not a panic's
/// 101), one `Error:` line on stderr naming `flag`, and `dir` left empty.
pub fn assert_refused(args: &[&str], flag: &str, dir: &Path) {
    let mut full: Vec<&str> = args.to_vec();
    let d = dir.to_str().expect("temp paths are UTF-8").to_string();
    full.extend(["--out", &d]);
    let out = bn_lab(&full);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_ne!(out.status.code(), Some(101), "{args:?} panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {stderr}"
    );
    assert!(stderr.starts_with("Error: "), "{args:?}: {stderr}");
    assert!(
        stderr.contains(flag),
        "{args:?}: error does not name {flag}: {stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir)
        .map(|r| r.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{args:?} left files behind: {left:?}");
}

/// Run `args` twice with the same seed and once with `--seed 1`: `json_file` must be identical
/// for the same seed and differ for the other one.
pub fn assert_deterministic(args: &[&str], json_file: &str, name: &str) {
    let dirs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|k| scratch(&format!("{name}-det-{k}")))
        .collect();
    bn_lab_ok(args, &dirs[0]);
    bn_lab_ok(args, &dirs[1]);
    let mut other_seed = args.to_vec();
    other_seed.extend(["--seed", "1"]);
    bn_lab_ok(&other_seed, &dirs[2]);
    let read =
        |d: &Path| std::fs::read_to_string(d.join(json_file)).expect("the JSON file was written");
    assert_eq!(
        read(&dirs[0]),
        read(&dirs[1]),
        "same seed, different {json_file}"
    );
    assert_ne!(
        read(&dirs[0]),
        read(&dirs[2]),
        "another seed, same {json_file}"
    );
    for d in dirs {
        std::fs::remove_dir_all(d).expect("scratch dirs are removable");
    }
}

/// The shape of a JSON value, one line per path: `arms[].seeds[].loss: number`. Arrays merge
/// their elements' shapes; a path seen with several types lists them (`null|number`).
pub fn schema(v: &serde_json::Value) -> String {
    use std::collections::BTreeMap;
    fn walk(v: &serde_json::Value, path: &str, out: &mut BTreeMap<String, Vec<&'static str>>) {
        let kind = match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "bool",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        };
        let kinds = out.entry(path.to_string()).or_default();
        if !kinds.contains(&kind) {
            kinds.push(kind);
            kinds.sort_unstable();
        }
        match v {
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{path}[]"), out);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(item, &p, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(v, "", &mut out);
    out.remove("");
    out.iter()
        .map(|(p, k)| format!("{p}: {}\n", k.join("|")))
        .collect()
}

/// Compare the schema of `v` with `tests/snapshots/<name>.schema`; with
/// `BN_LAB_UPDATE_SNAPSHOTS=1` in the environment, rewrite the snapshot instead. A changed
/// report shape fails here with the lines that differ.
pub fn assert_schema(v: &serde_json::Value, name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.schema"));
    let got = schema(v);
    if std::env::var_os("BN_LAB_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with BN_LAB_UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if got != want {
        let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
        let added: Vec<&&str> = g.iter().filter(|l| !w.contains(l)).collect();
        let removed: Vec<&&str> = w.iter().filter(|l| !g.contains(l)).collect();
        panic!(
            "{name}: the report's shape changed (rerun with BN_LAB_UPDATE_SNAPSHOTS=1 if intended)\nnew: {added:#?}\ngone: {removed:#?}"
        );
    }
}

/// `name`, its registered small run ([`bn_lab::experiment::ExperimentArgs::QUICK`], listed in
/// `bn_lab::cli::QUICK_RUNS`) and then `extra`: the tests' tiny runs are the registry's.
pub fn quick(name: &str, extra: &[&'static str]) -> Vec<&'static str> {
    let (name, flags) = bn_lab::cli::QUICK_RUNS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("`{name}` is not a registered experiment"));
    let mut args = vec![*name];
    args.extend(flags.split_whitespace());
    args.extend(extra);
    args
}

/// A tiny run of each experiment: its registered small run, with the unit the tests follow.
pub static TINY_SHATTERED: LazyLock<Vec<&str>> = LazyLock::new(|| quick("shattered", &[]));
pub static TINY_ICS: LazyLock<Vec<&str>> = LazyLock::new(|| quick("ics", &[]));
pub static TINY_NOISY: LazyLock<Vec<&str>> = LazyLock::new(|| {
    quick(
        "noisy-bn",
        &[
            "--layer",
            "2",
            "--unit",
            "1",
            "--noise-mean",
            "1",
            "--noise-scale",
            "2",
            "--noise-jitter",
            "0.1",
        ],
    )
});
pub static TINY_INPUT_SHIFT: LazyLock<Vec<&str>> =
    LazyLock::new(|| quick("input-shift", &["--layer", "2", "--unit", "1"]));
pub static TINY_LANDSCAPE: LazyLock<Vec<&str>> = LazyLock::new(|| quick("landscape", &[]));
/// Two learning rates, the second absurd, so it diverges.
pub static TINY_TRAIN: LazyLock<Vec<&str>> = LazyLock::new(|| quick("train", &[]));
/// Sigmoid and ReLU, every arm, two seeds.
pub static TINY_NONLINEARITY: LazyLock<Vec<&str>> = LazyLock::new(|| quick("nonlinearity", &[]));

/// The subcommand `args` (without the program name, as the `TINY_*` runs) parse to.
pub fn parse(args: &[&str]) -> bn_lab::cli::Command {
    use clap::Parser;
    let all = std::iter::once("bn-lab").chain(args.iter().copied());
    bn_lab::cli::Cli::try_parse_from(all)
        .expect("the test's flags parse")
        .command
}

/// `args` with the value after `flag` replaced by `value` (the flag must be present).
pub fn with_flag<'a>(args: &[&'a str], flag: &str, value: &'a str) -> Vec<&'a str> {
    let mut v = args.to_vec();
    let i = v
        .iter()
        .position(|a| *a == flag)
        .unwrap_or_else(|| panic!("{flag} is not among {args:?}"));
    v[i + 1] = value;
    v
}

/// Run `f` with a progress callback that records every increment; returns `f`'s result and
/// the increments in the order they came.
pub fn counting_progress<R>(f: impl FnOnce(bn_lab::train::Progress) -> R) -> (R, Vec<u64>) {
    let seen = std::sync::Mutex::new(Vec::new());
    let r = f(&|n| seen.lock().expect("no test thread panicked").push(n));
    (r, seen.into_inner().expect("no test thread panicked"))
}

/// Run experiment `E` on `cfg` through the library with a counting progress callback and check
/// that the increments add up to exactly `cfg.work_units()` (so a bar always completes and
/// never overshoots) and that no increment is larger than `max_step` (so the bar moves).
pub fn assert_progress_adds_up<E: bn_lab::experiment::Experiment>(
    cfg: &E::Config,
    max_step: u64,
    what: &str,
) -> E::Report {
    cfg.validate().unwrap_or_else(|e| panic!("{what}: {e}"));
    let total = cfg.work_units();
    let (report, seen) = counting_progress(|p| E::run(cfg, p));
    assert_eq!(seen.iter().sum::<u64>(), total, "{what}: {seen:?}");
    let largest = seen.iter().copied().max().unwrap_or(0);
    assert!(
        largest <= max_step,
        "{what}: an increment of {largest} of {total} units, above {max_step}"
    );
    report
}

/// Run experiment `E` on `cfg` through the library, draw every figure, and check the layout each figure reports: the first figure is the headline
/// (`<STEM>.png`, a 16:9 slide of 1 to 4 panels), and in no figure does a legend cover a data
/// point, a label or a plot area, or leave the figure. Returns the report and the layouts.
pub fn assert_figures_clear<E: bn_lab::plot::Figures>(
    cfg: &E::Config,
    what: &str,
) -> (E::Report, Vec<(String, bn_lab::plot::Layout)>) {
    cfg.validate().unwrap_or_else(|e| panic!("{what}: {e}"));
    let report = E::run(cfg, &|_| {});
    let mut layouts = Vec::new();
    for (i, fig) in E::figures_for(cfg).into_iter().enumerate() {
        let layout = (fig.draw)(&report)
            .unwrap_or_else(|e| panic!("{what}: drawing {}: {e:#}", fig.file))
            .layout;
        if i == 0 {
            assert_eq!(fig.file, format!("{}.png", E::STEM), "{what}: the headline");
            assert_eq!(
                layout.size,
                bn_lab::plot::SLIDE_SIZE,
                "{what}: {}",
                fig.file
            );
            assert!(
                (1..=4).contains(&layout.panels.len()),
                "{what}: {} has {} panels",
                fig.file,
                layout.panels.len()
            );
        }
        assert!(
            layout.panels.iter().any(|p| !p.points.is_empty()),
            "{what}: {} records no data point",
            fig.file
        );
        let found = layout.collisions();
        assert!(
            found.is_empty(),
            "{what}: {}: {}",
            fig.file,
            found.join("; ")
        );
        layouts.push((fig.file.to_string(), layout));
    }
    (report, layouts)
}

/// `bn-lab reproduce --only ONLY --out OUT`; panic with its stderr if it fails.
pub fn reproduce_only(only: &str, out: &Path) -> Output {
    let out_s = out.to_str().expect("temp paths are UTF-8");
    let o = bn_lab(&["reproduce", "--only", only, "--out", out_s]);
    assert!(
        o.status.success(),
        "bn-lab reproduce --only {only} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A small `grad-norms` configuration (width 16, batch 16, `depth` layers or blocks) with `args`
/// added, validated as the CLI validates it.
pub fn small_grad_norms(
    depth: &str,
    args: &[&str],
) -> bn_lab::experiment::grad_norms::GradNormsConfig {
    let all: Vec<&str> = [
        "grad-norms",
        "--width",
        "16",
        "--batch",
        "16",
        "--depth",
        depth,
    ]
    .into_iter()
    .chain(args.iter().copied())
    .collect();
    match parse(&all) {
        bn_lab::cli::Command::GradNorms(a) => {
            bn_lab::experiment::ExperimentArgs::config(&a).expect("a valid line")
        }
        _ => unreachable!("grad-norms parses to grad-norms"),
    }
}

/// Deterministic kernel inputs in about [-2, 2), some of them exactly 0 (an LCG, no RNG crate).
pub fn lcg_values(seed: u64, rows: usize, cols: usize) -> ndarray::Array2<f32> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    ndarray::Array2::from_shape_simple_fn((rows, cols), || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let v = ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0;
        if x % 11 == 0 { 0.0 } else { v }
    })
}
