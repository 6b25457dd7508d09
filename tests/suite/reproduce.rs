//! `bn-lab run FILE` and `bn-lab reproduce`: every shipped experiment file parses and its
//! quantities exist in its run's JSON (the whole suite, run once), verdicts flip where the
//! numbers cross their thresholds (checks on hand-made JSON), bad files are refused with one
//! line naming the file, the line and the field (nothing written), a user's own file (the
//! README's example) runs the same way, and `reproduce --only` writes a page whose every image
//! exists.

use crate::common;

use std::path::{Path, PathBuf};

use crate::common::{bn_lab, json, reproduce_only, scratch, scratch_dir};
use bn_lab::reproduce::Claim;
use bn_lab::reproduce::check::Verdict;
use serde_json::json;

/// The shipped experiment files, by name.
fn shipped() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("experiments")
        .expect("the tests run in the repository")
        .map(|e| e.expect("experiments/ is readable").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn load(path: &str) -> Claim {
    Claim::load(Path::new(path)).unwrap_or_else(|e| panic!("{e}"))
}

/// Every `src="..."` and `href="..."` of a page.
fn links(html: &str, attr: &str) -> Vec<String> {
    let key = format!("{attr}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').expect("attributes are closed")].to_string()
        })
        .collect()
}

/// The checks on a page and its summary: every claim has its verdict cell and section, every
/// image the page shows and every file the summary names exists, nothing is loaded from
/// anywhere but beside the page, and each verdict is the one its checks give.
fn assert_page(out: &Path, names: &[&str]) {
    let html = std::fs::read_to_string(out.join("index.html")).expect("index.html was written");
    let summary = json(&out.join("summary.json"));
    let claims = summary["claims"]
        .as_array()
        .expect("summary.json lists claims");
    let got: Vec<&str> = claims
        .iter()
        .map(|c| c["name"].as_str().expect("claims have names"))
        .collect();
    assert_eq!(got, names, "the claims in summary.json");
    for c in claims {
        assert_claim(c, &html, out);
    }
    assert_links(&html, out, names.len());
}

/// One claim of `summary.json`: its fields, its verdict (the rule applied to its checks), its
/// verdict cell, section and quantities on the page, and its files in its own directory.
fn assert_claim(c: &serde_json::Value, html: &str, out: &Path) {
    let name = c["name"].as_str().expect("claims have names");
    for field in ["file", "title", "claim", "command", "rerun", "explanation"] {
        let v = c[field].as_str().unwrap_or_default();
        assert!(!v.is_empty(), "{name}: summary.json lacks {field}");
    }
    assert!(
        !c["explanation"].as_str().unwrap_or_default().contains('{'),
        "{name}: an unfilled placeholder: {}",
        c["explanation"]
    );
    for field in ["kind", "argument", "key"] {
        assert!(
            c[field].as_str().is_some_and(|v| !v.is_empty()),
            "{name}: summary.json lacks {field}"
        );
    }
    let seeds = c["seeds"]
        .as_array()
        .expect("claims list their seeds")
        .len();
    let checks = c["checks"].as_array().expect("claims list their checks");
    // The rule over seeds: every check in every seed, none in any, or mixed.
    let holds: Vec<bool> = checks
        .iter()
        .flat_map(|o| {
            let h = o["holds"].as_array().expect("one boolean per seed");
            assert_eq!(h.len(), seeds.max(1), "{name}: {o}");
            h.iter().map(|b| b.as_bool().expect("true or false"))
        })
        .collect();
    let verdict = c["verdict"].as_str().expect("claims have a verdict");
    let expected = if holds.iter().all(|&h| h) {
        "supported"
    } else if holds.iter().all(|&h| !h) {
        "not supported"
    } else {
        "mixed"
    };
    assert_eq!(verdict, expected, "{name}: {holds:?}");
    for q in c["quantities"].as_array().expect("claims list quantities") {
        let values = q["values"].as_array().expect("one value per seed");
        assert_eq!(values.len(), seeds.max(1), "{name}: {q}");
        // The range and the median are those of the values listed beside them.
        if let (Some(lo), Some(mid), Some(hi)) =
            (q["min"].as_f64(), q["median"].as_f64(), q["max"].as_f64())
        {
            let mut v: Vec<f64> = values.iter().map(common::num).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            assert_eq!((lo, hi), (v[0], v[n - 1]), "{name}: {q}");
            assert!(v[(n - 1) / 2] <= mid && mid <= v[n / 2], "{name}: {q}");
        }
    }
    assert!(
        html.contains(&format!("data-claim=\"{name}\">{verdict}</td>")),
        "{name}: no verdict cell saying {verdict}"
    );
    assert!(html.contains(&format!("<section class=\"claim\" id=\"{name}\">")));
    for q in c["quantities"].as_array().expect("claims list quantities") {
        assert!(
            html.contains(&format!(
                "<code>{}</code>",
                q["name"].as_str().unwrap_or("?")
            )),
            "{name}: quantity {} not on the page",
            q["name"]
        );
    }
    let mut files = vec![c["figure"].clone(), c["json"].clone()];
    files.extend(c["figures"].as_array().expect("figures").iter().cloned());
    files.extend(
        c["jsons"]
            .as_array()
            .expect("a JSON per seed")
            .iter()
            .cloned(),
    );
    assert_eq!(
        c["jsons"].as_array().map(Vec::len),
        Some(seeds.max(1)),
        "{name}: a JSON per seed"
    );
    for f in files {
        let f = f.as_str().expect("paths are text");
        assert!(
            f.starts_with(&format!("{name}/")),
            "{name}: {f} is not in its directory"
        );
        assert!(out.join(f).is_file(), "{name}: {f} was not written");
    }
}

/// The page's pictures (one per claim) and links: each a file beside the page (a PNG where it
/// says so), and nothing that would load from anywhere else.
fn assert_links(html: &str, out: &Path, claims: usize) {
    let images = links(html, "src");
    assert_eq!(images.len(), claims, "one picture per claim: {images:?}");
    for src in images.iter().chain(links(html, "href").iter()) {
        if src.starts_with('#') {
            continue;
        }
        assert!(
            !src.contains(':') && !src.starts_with('/'),
            "{src} is not beside the page"
        );
        assert!(out.join(src).is_file(), "{src} does not exist");
        if src.ends_with(".png") {
            let bytes = std::fs::read(out.join(src)).expect("the image is readable");
            assert!(bytes.starts_with(b"\x89PNG"), "{src} is not a PNG");
        }
    }
    for forbidden in ["<script", "<link", "@import", "url(", "http://", "https://"] {
        assert!(!html.contains(forbidden), "the page holds {forbidden}");
    }
}

#[test]
fn every_shipped_file_parses_and_its_command_passes_a_dry_run() {
    let files = shipped();
    assert!(
        files.len() >= 14,
        "the issue's claims need at least 14 files"
    );
    for f in &files {
        let claim = Claim::load(f).unwrap_or_else(|e| panic!("{e}"));
        let ran = claim
            .dry_run(&scratch("dry"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!ran.figures.is_empty(), "{}: draws nothing", f.display());
        assert!(
            ["diary"].contains(&claim.source.as_str())
                || claim.source.starts_with("diary")
                || claim.source.chars().any(|c| c.is_ascii_digit()),
            "{}: the source names the diary or a paper with its year: {}",
            f.display(),
            claim.source
        );
        assert!(
            claim.seeds >= 3,
            "{}: a shipped claim runs at least 3 seeds",
            f.display()
        );
        assert!(
            claim.control.is_some(),
            "{}: a shipped claim has a control",
            f.display()
        );
        assert!(claim.caption.is_some(), "{}: a caption", f.display());
        if claim.kind == bn_lab::reproduce::Kind::Paper {
            assert!(
                claim.source.chars().any(|c| c.is_ascii_digit()),
                "{}: a paper's claim names the paper with its year",
                f.display()
            );
        }
    }
}

/// The whole suite once, with its controls, at one seed: every file's quantities are found in
/// its run's JSON (a missing one stops `reproduce` with an error), the page and summary agree,
/// and every claim's control gets another verdict than the claim (a check that cannot fail
/// would give both the same).
#[test]
fn the_whole_suite_runs_and_every_control_flips_its_verdict() {
    let out = scratch("reproduce-all");
    let o = bn_lab(&[
        "reproduce",
        "--out",
        out.to_str().expect("UTF-8"),
        "--seeds",
        "1",
        "--controls",
    ]);
    assert!(
        o.status.success(),
        "bn-lab reproduce failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let names: Vec<String> = shipped()
        .iter()
        .map(|f| bn_lab::reproduce::spec::claim_name(f))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_page(&out, &names);
    let stdout = String::from_utf8_lossy(&o.stdout);
    for n in &names {
        assert!(stdout.contains(n), "the table lacks {n}: {stdout}");
    }
    let summary = json(&out.join("summary.json"));
    let same: Vec<String> = summary["claims"]
        .as_array()
        .expect("claims")
        .iter()
        .filter(|c| c["control"]["verdict"] == c["verdict"])
        .map(|c| format!("{} ({})", c["name"], c["verdict"]))
        .collect();
    assert!(
        same.is_empty(),
        "controls with the claim's own verdict: {same:?}"
    );
    std::fs::remove_dir_all(out).expect("scratch dirs are removable");
}

#[test]
fn reproduce_only_two_cheap_claims_writes_a_page_whose_every_image_exists() {
    let out = scratch("reproduce-only");
    reproduce_only("small-batches-explode-more,vanishing-sigmoid", &out);
    // In the files' order, whatever the order given.
    assert_page(&out, &["vanishing-sigmoid", "small-batches-explode-more"]);
    let dirs: Vec<_> = std::fs::read_dir(&out)
        .expect("the output exists")
        .map(|e| e.expect("readable").file_name())
        .collect();
    assert_eq!(
        dirs.len(),
        5,
        "two claims, index.html, slides.html, summary.json: {dirs:?}"
    );
    std::fs::remove_dir_all(out).expect("scratch dirs are removable");
}

/// The hand-made JSON of a grad-norms run, with the BN-off arm's numbers given.
fn grad_norms_json(ratio_off: f64, growth_off: f64) -> serde_json::Value {
    json!({ "arms": [
        { "label": "BN off", "weight_grad": { "ratio": ratio_off, "growth_per_layer": growth_off,
                                               "verdict": "vanishing" } },
        { "label": "BN on", "weight_grad": { "ratio": 2.3, "growth_per_layer": 1.02,
                                              "verdict": "stable" } },
    ]})
}

#[test]
fn a_verdict_flips_when_a_number_crosses_its_threshold() {
    // experiments/01: "ratio_off < 1e-6" and "growth_off < 0.5".
    let claim = load("experiments/01-vanishing-sigmoid.toml");
    let verdict = |ratio: f64, growth: f64| {
        claim
            .evaluate(&grad_norms_json(ratio, growth), "hand-made.json")
            .unwrap_or_else(|e| panic!("{e}"))
            .verdict()
    };
    assert_eq!(verdict(0.99e-6, 0.49), Verdict::Supported);
    assert_eq!(verdict(1.01e-6, 0.49), Verdict::Mixed);
    assert_eq!(verdict(1e-6, 0.49), Verdict::Mixed, "`<` is strict");
    assert_eq!(verdict(0.99e-6, 0.51), Verdict::Mixed);
    assert_eq!(verdict(1.01e-6, 0.51), Verdict::NotSupported);
    // A gradient that overflowed is a number to judge, not a crash: inf fails `< 1e-6`, an
    // underflow to exactly 0 passes it.
    let inf = json!({ "arms": [
        { "label": "BN off", "weight_grad": { "ratio": "inf", "growth_per_layer": "NaN",
                                               "verdict": "exploding" } },
        { "label": "BN on", "weight_grad": { "ratio": 1.0, "growth_per_layer": 1.0,
                                              "verdict": "stable" } },
    ]});
    let found = claim
        .evaluate(&inf, "hand-made.json")
        .expect("inf and NaN are values");
    assert_eq!(found.verdict(), Verdict::NotSupported);
    assert_eq!(verdict(0.0, 0.3), Verdict::Supported);

    // experiments/05 compares two quantities: "ratio_b4 > 100 * ratio_b256".
    let claim = load("experiments/05-small-batches-explode-more.toml");
    let sweep = |ratio_b4: f64| {
        let point = |value: u32, ratio: f64, rate: f64, theory: f64| {
            json!({ "value": value, "arm": "on", "grad_ratio": ratio,
                    "growth_rate": rate, "theory_rate": theory })
        };
        json!({ "means": [
            point(4, ratio_b4, 1.9, 2.0),
            point(256, 50.0, 1.2, 1.2),
        ]})
    };
    let found = claim
        .evaluate(&sweep(5001.0), "sweep.json")
        .expect("the paths exist");
    assert_eq!(found.verdict(), Verdict::Supported);
    let found = claim
        .evaluate(&sweep(4999.0), "sweep.json")
        .expect("the paths exist");
    assert_eq!(found.verdict(), Verdict::Mixed);
    let failed: Vec<&str> = found
        .outcomes
        .iter()
        .filter(|o| !o.holds)
        .map(|o| o.check.as_str())
        .collect();
    assert_eq!(failed, ["ratio_b4 > 100 * ratio_b256"]);

    // A quantity the JSON lacks is an error naming the field, not a verdict.
    let e = claim
        .evaluate(&json!({ "means": [] }), "sweep.json")
        .expect_err("nothing to read");
    let e = e.to_string();
    assert!(
        e.contains("quantities.ratio_b4.path") && e.contains("sweep.json"),
        "{e}"
    );
}

/// The README's example experiment file (between its `toml` fence under "Experiment files").
fn readme_example() -> String {
    let readme = std::fs::read_to_string("README.md").expect("the README is there");
    let start = readme
        .find("<!-- example experiment file -->")
        .expect("the README marks its example experiment file");
    let body = &readme[start..];
    let body = &body[body.find("```toml\n").expect("a toml fence") + 8..];
    body[..body.find("```").expect("the fence closes")].to_string()
}

/// The README's example written to `my-claim.toml` in a fresh scratch dir `name`: the dir, the
/// file, and the output of `bn-lab run FILE --out DIR/out` with `more` flags.
fn run_example(name: &str, more: &[&str]) -> (PathBuf, PathBuf, std::process::Output) {
    let dir = scratch_dir(name);
    let file = dir.join("my-claim.toml");
    std::fs::write(&file, readme_example()).expect("the scratch dir is writable");
    let out = dir.join("out");
    let mut args = vec![
        "run",
        file.to_str().expect("UTF-8"),
        "--out",
        out.to_str().expect("UTF-8"),
    ];
    args.extend_from_slice(more);
    let o = bn_lab(&args);
    (dir, file, o)
}

#[test]
fn a_users_own_file_runs_like_a_shipped_one() {
    let (dir, file, o) = run_example("reproduce-own-file", &[]);
    let out = dir.join("out");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.starts_with("my-claim: A deep tanh net"), "{stdout}");
    assert!(stdout.contains("\nverdict: "), "{stdout}");
    let claim = Claim::load(&file).unwrap_or_else(|e| panic!("{e}"));
    for q in &claim.quantities {
        assert!(
            stdout.contains(&q.name),
            "{} is not printed: {stdout}",
            q.name
        );
    }
    let ran = claim.dry_run(&out).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.join(&ran.json_file).is_file());
    for f in &ran.figures {
        assert!(out.join(f).is_file(), "{f} was not drawn");
    }
    // The verdict printed is the one the checks give on the JSONs written, one per seed (the
    // first seed's beside the figures, the others' in seed-S/ with no figures).
    let dirs = [out.clone(), out.join("seed-1"), out.join("seed-2")];
    let mut holds = vec![Vec::new(); claim.checks.len()];
    for d in &dirs {
        let found = claim
            .evaluate(&json(&d.join(&ran.json_file)), &ran.json_file)
            .unwrap_or_else(|e| panic!("{e}"));
        for (h, o) in holds.iter_mut().zip(&found.outcomes) {
            h.push(o.holds);
        }
    }
    assert!(!out.join("seed-1").join(&ran.figures[0]).exists());
    assert!(!out.join("seed-3").exists(), "the file asks for 3 seeds");
    assert!(
        stdout.contains(&format!("verdict: {} (", Verdict::over(&holds).text())),
        "{stdout}"
    );
    assert!(stdout.contains("with seeds 0, 1, 2\n"), "{stdout}");
}

/// `--seed K --seeds N` change the seeds run and recorded; `--control` runs the control over
/// the same count of seeds, and a file without a control is refused for it.
#[test]
fn seed_and_seeds_choose_the_runs_and_control_adds_the_controls() {
    let (dir, file, o) = run_example(
        "reproduce-seeds",
        &["--seed", "7", "--seeds", "2", "--control"],
    );
    let out = dir.join("out");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("with seeds 7, 8\n"), "{stdout}");
    assert!(stdout.contains("(seeds 7, 8)"), "the control: {stdout}");
    // Each run's JSON records its seed.
    for (d, seed) in [(out.clone(), 7), (out.join("seed-8"), 8)] {
        let j = json(&d.join("grad_norms.json"));
        assert_eq!(j["config"]["seed"], json!(seed), "{}", d.display());
    }
    assert!(out.join("control").join("grad_norms.json").is_file());
    assert!(out.join("control/seed-8/grad_norms.json").is_file());
    assert!(!out.join("seed-9").exists());

    // Bad values are refused naming the flag, before anything runs.
    for (args, words) in [
        (&["--seeds", "0"][..], &["--seeds", "1 to 100"][..]),
        (&["--seeds", "101"][..], &["--seeds"][..]),
        (
            &["--seed", "18446744073709551615"][..],
            &["--seed", "largest seed"][..],
        ),
        (&["--seed", "-1"][..], &["'-1'"][..]),
    ] {
        let fresh = dir.join("fresh");
        let mut full = vec![
            "run",
            file.to_str().expect("UTF-8"),
            "--out",
            fresh.to_str().expect("UTF-8"),
        ];
        full.extend_from_slice(args);
        let o = bn_lab(&full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{args:?}: {err}");
        }
        assert!(!fresh.exists(), "{args:?} wrote {}", fresh.display());
    }
    let plain = dir.join("plain.toml");
    let text = readme_example();
    let cut = text.find("[control]").expect("the example has a control");
    let end = text.find("[quantities]").expect("and quantities");
    std::fs::write(&plain, format!("{}{}", &text[..cut], &text[end..])).expect("writable");
    let o = bn_lab(&["run", plain.to_str().expect("UTF-8"), "--control"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--control") && err.contains("[control]"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).expect("scratch dirs are removable");
}

/// `bn-lab run` on `text` (written to `name` in a scratch dir): non-zero exit, not a panic, one
/// `Error:` line naming the file and each of `words`, and nothing written.
fn assert_rejected(name: &str, text: &str, words: &[&str]) {
    assert_rejected_with(2, name, text, words)
}

/// [`assert_rejected`] with exit code `code`: 2 for a refusal before any work, 1 for a failure
/// found once the run is done (a quantity its JSON lacks).
fn assert_rejected_with(code: i32, name: &str, text: &str, words: &[&str]) {
    let dir = scratch_dir(&format!("reproduce-bad-{name}"));
    let file = dir.join(name);
    std::fs::write(&file, text).expect("the scratch dir is writable");
    let out = dir.join("out");
    let o = bn_lab(&[
        "run",
        file.to_str().expect("UTF-8"),
        "--out",
        out.to_str().expect("UTF-8"),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{name} was accepted");
    assert_eq!(o.status.code(), Some(code), "{name}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{name}: not one line: {stderr}"
    );
    assert!(
        stderr.starts_with(&format!("Error: {}", file.display())),
        "{name}: the error does not start with the file: {stderr}"
    );
    for w in words {
        assert!(
            stderr.contains(w),
            "{name}: the error lacks `{w}`: {stderr}"
        );
    }
    assert!(
        o.stdout.is_empty(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!out.exists(), "{name}: {} was created", out.display());
}

#[test]
fn run_refuses_bad_files_with_one_line_naming_the_file_line_and_field() {
    let good = std::fs::read_to_string("experiments/01-vanishing-sigmoid.toml")
        .expect("the shipped file is there");
    let line_of = |needle: &str| {
        let i = good.find(needle).expect("the shipped file has it");
        format!(":{}:", good[..i].matches('\n').count() + 1)
    };
    let cmd = line_of("command = ");
    let path = line_of("ratio_off = {");
    let checks = line_of("\"ratio_off < 1e-6\"");
    let no_checks = line_of("checks = [");
    // (file, the edit of the shipped file, what the error names besides the file)
    let cases: &[(&str, (&str, &str), &[&str])] = &[
        (
            "malformed.toml",
            ("title = \"", "title = "),
            &[":2:", "title"],
        ),
        (
            "unknown-field.toml",
            ("title =", "titel ="),
            &[":2:", "unknown field `titel`"],
        ),
        (
            "unknown-subcommand.toml",
            ("bn-lab grad-norms", "bn-lab grad-normz"),
            &[&cmd, "command", "grad-normz"],
        ),
        (
            "rejected-flag.toml",
            ("--depth 50", "--depth 50 --epochs 3"),
            &[&cmd, "command", "--epochs"],
        ),
        (
            "rejected-value.toml",
            ("--depth 50", "--depth 0"),
            &[&cmd, "command", "--depth"],
        ),
        (
            "out-flag.toml",
            ("--depth 50", "--depth 50 --out elsewhere"),
            &[&cmd, "command", "--out"],
        ),
        (
            "not-an-experiment.toml",
            ("bn-lab grad-norms --depth 50", "bn-lab bench"),
            &[&cmd, "command", "bench"],
        ),
        (
            "unknown-quantity.toml",
            ("\"ratio_off < 1e-6\"", "\"ratio_of < 1e-6\""),
            &[&checks, "checks[0]", "ratio_of"],
        ),
        (
            "bad-check.toml",
            ("\"ratio_off < 1e-6\"", "\"ratio_off ~ 1e-6\""),
            &[&checks, "checks[0]"],
        ),
        // Found only once the run's JSON is there: still nothing written.
        (
            "missing-quantity.toml",
            (".weight_grad.ratio\"", ".weight_grad.ration\""),
            &[
                &path,
                "quantities.ratio_off.path",
                "grad_norms.json",
                "ration",
            ],
        ),
        (
            "missing-arm.toml",
            ("arms[label=BN off]", "arms[label=BN of]"),
            &[&path, "quantities.ratio_off.path", "BN of"],
        ),
        (
            "unknown-placeholder.toml",
            ("{ratio_off} of the last", "{ratio_of} of the last"),
            &["explain.supported", "ratio_of"],
        ),
        (
            "no-checks.toml",
            ("  \"ratio_off < 1e-6\",\n  \"growth_off < 0.5\",\n", ""),
            &[&no_checks, "checks: needs at least one check"],
        ),
    ];
    for (name, (from, to), words) in cases {
        assert!(
            good.contains(from),
            "{name}: the shipped file has no {from}"
        );
        // Found once the run is done: a failure while running (exit 1), still nothing written.
        let code = if name.starts_with("missing-") { 1 } else { 2 };
        assert_rejected_with(code, name, &good.replacen(from, to, 1), words);
    }
    assert_rejected("empty.toml", "", &["missing field"]);

    // A file that is not there, or not a file.
    let o = bn_lab(&["run", "experiments/no-such-file.toml"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-file.toml") && stderr.trim_end().lines().count() == 1);
}

#[test]
fn reproduce_refuses_unknown_claims_and_directories_without_files() {
    let out = scratch("reproduce-refused");
    let o = bn_lab(&[
        "reproduce",
        "--only",
        "vanishing",
        "--out",
        out.to_str().expect("UTF-8"),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--only: no claim `vanishing`") && stderr.contains("vanishing-sigmoid")
    );
    assert!(!out.exists());
    let empty = scratch_dir("reproduce-no-files");
    let o = bn_lab(&[
        "reproduce",
        "--experiments",
        empty.to_str().expect("UTF-8"),
        "--out",
        out.to_str().expect("UTF-8"),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--experiments: no *.toml files"),
        "{stderr}"
    );
    assert!(!out.exists());
    // A bad file among good ones stops the suite before anything runs.
    std::fs::copy(
        "experiments/01-vanishing-sigmoid.toml",
        empty.join("01-a.toml"),
    )
    .expect("copied");
    std::fs::write(empty.join("02-b.toml"), "title = 3\n").expect("written");
    let o = bn_lab(&[
        "reproduce",
        "--experiments",
        empty.to_str().expect("UTF-8"),
        "--out",
        out.to_str().expect("UTF-8"),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("02-b.toml:1") && stderr.contains("title"),
        "{stderr}"
    );
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------------
// Hostile files (issue 27): names that would become URLs, shell or paths outside --out,
// control characters in any field, files that never end, duplicate names, and a reproduce
// that fails or is interrupted.

/// Run `bn-lab` with `args` in `cwd`, killed (and the test failed) if it has not finished
/// within `secs` seconds: a hang is a failure, not a stuck suite.
fn bn_lab_within(secs: u64, cwd: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bn-lab"));
    cmd.args(args).current_dir(cwd);
    common::output_within(&mut cmd, std::time::Duration::from_secs(secs))
        .unwrap_or_else(|| panic!("bn-lab {args:?} did not finish within {secs} s"))
}

/// The shipped file every hostile variant starts from (its run takes a fraction of a second).
fn cheap_file() -> String {
    std::fs::read_to_string("experiments/03-diary-algebra.toml").expect("the shipped file")
}

/// Exit 2, one `Error:` line that starts with `file` and holds each of `words`, no control
/// character on stderr, nothing on stdout.
fn assert_one_line_refusal(o: &std::process::Output, file: &str, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{file}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{file}: {stderr}");
    assert!(
        stderr.starts_with(&format!("Error: {file}")),
        "{file}: {stderr}"
    );
    for w in words {
        assert!(stderr.contains(w), "{file}: lacks `{w}`: {stderr}");
    }
    assert!(
        !stderr.trim_end().chars().any(|c| c.is_control()),
        "{file}: a control character reached the terminal: {stderr:?}"
    );
    assert!(o.stdout.is_empty(), "{file}: wrote to stdout");
}

#[test]
fn claim_names_outside_the_safe_alphabet_are_refused_by_run_and_reproduce() {
    let dir = scratch_dir("reproduce-names");
    // Every ASCII character a file name can hold that is not in [A-Za-z0-9_-], in the middle
    // of a name, plus the issue's examples and names that would leave --out or look like flags.
    let mut names: Vec<String> = (1u8..0x7f)
        .map(char::from)
        .filter(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/'))
        .map(|c| format!("01-a{c}b"))
        .collect();
    names.extend(
        [
            "01-javascript:alert(1)",
            "02-http:127.0.0.1:9",
            "03-$(touch X)",
            "01-..",
            "01-.",
            "01-",
            "01--rf",
            "01-index.html",
            "01-caf\u{e9}",
            "01-\u{202e}lmth",
        ]
        .map(String::from),
    );
    let text = cheap_file();
    for name in &names {
        let sub = dir.join("files");
        let _ = std::fs::remove_dir_all(&sub);
        std::fs::create_dir_all(&sub).expect("scratch");
        let file = sub.join(format!("{name}.toml"));
        std::fs::write(&file, &text).expect("a file of that name can be written");
        let shown = file.display().to_string();
        let o = bn_lab_within(60, &dir, &["run", &shown, "--out", "out"]);
        assert_one_line_refusal(
            &o,
            &bn_lab::text::visible_except(&shown, ""),
            &["claim name"],
        );
        let o = bn_lab_within(
            60,
            &dir,
            &["reproduce", "--experiments", "files", "--out", "page"],
        );
        let rel = format!("files/{name}.toml");
        assert_one_line_refusal(&o, &bn_lab::text::visible_except(&rel, ""), &["claim name"]);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("scratch")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, ["files"], "{name}: something was written");
    }
    assert!(!dir.join("X").exists());
}

#[test]
fn control_characters_in_any_field_are_refused_naming_the_field() {
    let good = cheap_file();
    // Each field, and how to put `\uXXXX` (at X) into it.
    let edits: &[(&str, &str, &str)] = &[
        ("title", "title = \"", "title = \"X"),
        ("claim", "claim = \"", "claim = \"X"),
        ("source", "source = \"", "source = \"X"),
        ("command", "command = \"bn-lab", "command = \"bn-lab X"),
        ("checks[0]", "\"measured_off > ", "\"Xmeasured_off > "),
        (
            "label",
            "label = \"BN off: measured",
            "label = \"XBN off: measured",
        ),
        (
            "path",
            "path = \"arms[label=BN off].measured_rate",
            "path = \"Xarms[label=BN off].measured_rate",
        ),
        (
            "quantities",
            "\nmeasured_off = {",
            "\n\"measured_offX\" = {",
        ),
        ("explain.supported", "supported = \"", "supported = \"X"),
        ("note", "note = \"\"\"\n", "note = \"\"\"\nX"),
    ];
    let dir = scratch_dir("reproduce-control");
    for (field, from, to) in edits {
        assert!(good.contains(from), "{field}: no `{from}` in the file");
        for c in ["\\u001b", "\\u0007", "\\r", "\\u0085", "\\u202e", "\\t"] {
            let text = good.replacen(from, &to.replace('X', c), 1);
            let claim = Claim::parse(Path::new("x.toml"), &text);
            let err = match claim {
                Ok(_) => panic!("{field} with {c} was accepted"),
                Err(e) => e.to_string(),
            };
            let field_word = field.split('.').next_back().expect("a word");
            assert!(
                err.contains(field_word)
                    && (err.contains("control character") || err.contains("quantity's name")),
                "{field} with {c}: {err}"
            );
            if c == "\\u001b" {
                // The same file through the binary: one line, nothing raw on the terminal.
                let file = dir.join(format!("{}.toml", field.replace(['[', ']', '.'], "_")));
                std::fs::write(&file, &text).expect("scratch");
                let shown = file.display().to_string();
                let o = bn_lab_within(60, &dir, &["run", &shown, "--out", "out"]);
                assert_one_line_refusal(&o, &shown, &[field_word]);
            }
        }
    }
    assert!(!dir.join("out").exists());
}

#[test]
fn files_that_never_end_are_refused_at_once() {
    let dir = scratch_dir("reproduce-fifo");
    let fifo = dir.join("01-pipe.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let shown = fifo.display().to_string();
    let o = bn_lab_within(30, &dir, &["run", &shown]);
    assert_one_line_refusal(&o, &shown, &["not a regular file", "named pipe"]);
    let o = bn_lab_within(30, &dir, &["run", "/dev/urandom"]);
    assert_one_line_refusal(&o, "/dev/urandom", &["not a regular file"]);
    let o = bn_lab_within(30, &dir, &["run", "/dev/null"]);
    assert_one_line_refusal(&o, "/dev/null", &["not a regular file"]);
    // Too large: refused by its size, before it is read.
    let big = dir.join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 << 20]).expect("scratch");
    let shown = big.display().to_string();
    let o = bn_lab_within(30, &dir, &["run", &shown]);
    assert_one_line_refusal(&o, &shown, &["bytes"]);
}

#[test]
fn two_files_of_one_name_are_refused_wherever_they_sort() {
    let dir = scratch_dir("reproduce-dup");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).expect("scratch");
    for f in ["01-dup.toml", "02-mid.toml", "dup.toml"] {
        std::fs::write(files.join(f), cheap_file()).expect("scratch");
    }
    let o = bn_lab_within(
        60,
        &dir,
        &["reproduce", "--experiments", "files", "--out", "page"],
    );
    assert_one_line_refusal(&o, "files/01-dup.toml", &["files/dup.toml", "`dup`"]);
    assert!(!dir.join("page").exists());
    // --only takes each claim once, as other lists do.
    let o = bn_lab(&["reproduce", "--only", "diary-algebra,diary-algebra"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--only") && stderr.contains("twice"),
        "{stderr}"
    );
    // --jobs names itself and its range.
    let o = bn_lab(&["reproduce", "--jobs", "-1"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--jobs") && stderr.contains("at least 1"),
        "{stderr}"
    );
}

#[test]
fn run_reads_an_out_that_starts_with_a_dash_as_a_directory() {
    let dir = scratch_dir("reproduce-dash-out");
    let file = std::fs::canonicalize("experiments/03-diary-algebra.toml").expect("shipped");
    let o = bn_lab_within(
        120,
        &dir,
        &["run", file.to_str().expect("UTF-8"), "--out=-x"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.join("-x").join("grad_norms.json").is_file());
}

#[test]
fn the_page_links_only_to_relative_paths_and_shows_commands_shell_quoted() {
    use bn_lab::reproduce::page::href;
    for hostile in [
        "javascript:alert(1)",
        "http://127.0.0.1:9/x.png",
        "//evil/x.png",
        "/etc/passwd",
        "a\"onerror=\"x",
        "data:image/png;base64,AA",
        "a b/c.png",
    ] {
        let h = href(hostile);
        assert!(!has_scheme(&h) && !h.starts_with('/'), "{hostile} -> {h}");
        assert!(
            !h.contains(['"', '\'', '<', '>', ' ', ':']),
            "{hostile} -> {h}"
        );
    }
    assert_eq!(
        href("vanishing-sigmoid/grad_norms.png"),
        "vanishing-sigmoid/grad_norms.png"
    );

    // A real page: every href and src is a relative path (or a fragment) with no scheme.
    let out = scratch("reproduce-links");
    reproduce_only("diary-algebra", &out);
    let html = std::fs::read_to_string(out.join("index.html")).expect("written");
    for attr in ["href", "src"] {
        for link in links(&html, attr) {
            assert!(
                !has_scheme(&link) && !link.starts_with('/'),
                "{attr}=\"{link}\""
            );
        }
    }
    let _ = std::fs::remove_dir_all(&out);

    // The rerun line of a file whose path holds shell syntax reads back, in bash, as that path.
    let dir = scratch_dir("reproduce-quoted $(touch X) `x` 'q'");
    let file = dir.join("01-quoted.toml");
    std::fs::write(&file, cheap_file()).expect("scratch");
    let claim = Claim::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let rerun = claim.rerun_text();
    let words = rerun.strip_prefix("bn-lab run ").expect("the rerun line");
    let o = std::process::Command::new("bash")
        .args(["-c", &format!("printf '%s' {words}")])
        .current_dir(&dir)
        .output()
        .expect("bash runs");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        file.display().to_string()
    );
    assert!(!dir.join("X").exists(), "the rerun line ran a command");
    assert!(claim.command_text().starts_with("bn-lab grad-norms"));
}

/// Whether a link starts with a URL scheme (`javascript:`, `http:`).
fn has_scheme(link: &str) -> bool {
    link.split_once(':').is_some_and(|(head, _)| {
        !head.is_empty()
            && !head.contains(['/', '?', '#'])
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("below").to_path_buf();
                out.push((rel, std::fs::read(&p).expect("readable")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_reproduce_that_fails_or_is_interrupted_leaves_out_as_it_was() {
    let dir = scratch_dir("reproduce-all-or-nothing");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).expect("scratch");
    std::fs::write(files.join("01-good.toml"), cheap_file()).expect("scratch");
    let run = |extra: &[&str]| {
        let mut args = vec!["reproduce", "--experiments", "files", "--out", "page"];
        args.extend(extra);
        bn_lab_within(120, &dir, &args)
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = tree(&dir.join("page"));
    assert!(before.iter().any(|(p, _)| p == Path::new("index.html")));
    let siblings = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // A second claim whose check compares text with a number: found after the runs, exit 1.
    let bad = cheap_file().replacen(
        "path = \"arms[label=BN off].measured_rate\"",
        "path = \"config.act\"",
        1,
    );
    assert!(bad.contains("config.act"));
    std::fs::write(files.join("02-bad.toml"), &bad).expect("scratch");
    let o = run(&[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("02-bad.toml"), "{stderr}");
    assert_eq!(
        tree(&dir.join("page")),
        before,
        "a failed run changed --out"
    );
    assert_eq!(siblings(&dir), ["files", "page"], "a temporary was left");
    std::fs::remove_file(files.join("02-bad.toml")).expect("scratch");

    // Interrupted while writing its first claim's files: --out as it was, nothing left.
    for signal in ["TERM", "INT"] {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_bn-lab"))
            .args(["reproduce", "--experiments", "files", "--out", "page"])
            .current_dir(&dir)
            .env("BN_LAB_TEST_WRITE_PAUSE_MS", "20000")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("runs");
        // Wait until the pause: a staged directory beside --out holds a temporary file.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !std::fs::read_dir(&dir).expect("readable").any(|e| {
            let p = e.expect("entry").path();
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".partial"))
                && tree(&p)
                    .iter()
                    .any(|(f, _)| f.to_string_lossy().contains(".partial"))
        }) {
            assert!(
                std::time::Instant::now() < deadline,
                "never reached the pause"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let kill = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(kill.success());
        let o = child.wait_with_output().expect("ends");
        let code = if signal == "TERM" { 143 } else { 130 };
        assert_eq!(o.status.code(), Some(code), "SIG{signal}");
        assert_eq!(tree(&dir.join("page")), before, "SIG{signal} changed --out");
        assert_eq!(
            siblings(&dir),
            ["files", "page"],
            "SIG{signal} left a temporary"
        );
    }

    // A directory of someone else's files is not replaced.
    std::fs::create_dir_all(dir.join("thesis")).expect("scratch");
    std::fs::write(dir.join("thesis/chapter1.tex"), "x").expect("scratch");
    let o = bn_lab_within(
        60,
        &dir,
        &["reproduce", "--experiments", "files", "--out", "thesis"],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("Error: --out: 'thesis'"), "{stderr}");
    assert_eq!(siblings(&dir.join("thesis")), ["chapter1.tex"]);

    // A successful run replaces --out whole: a claim that is gone leaves no directory behind.
    std::fs::write(files.join("01-other.toml"), cheap_file()).expect("scratch");
    std::fs::remove_file(files.join("01-good.toml")).expect("scratch");
    let o = run(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        siblings(&dir.join("page")),
        ["index.html", "other", "slides.html", "summary.json"]
    );
    assert_eq!(siblings(&dir), ["files", "page", "thesis"]);
}
