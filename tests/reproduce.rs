//! `bn-lab run FILE` and `bn-lab reproduce`: every shipped experiment file parses and its
//! quantities exist in its run's JSON (the whole suite, run once), verdicts flip where the
//! numbers cross their thresholds (checks on hand-made JSON), bad files are refused with one
//! line naming the file, the line and the field (nothing written), a user's own file (the
//! README's example) runs the same way, and `reproduce --only` writes a page whose every image
//! exists.

mod common;

use std::path::{Path, PathBuf};

use bn_lab::reproduce::Claim;
use bn_lab::reproduce::check::Verdict;
use common::{bn_lab, json, reproduce_only, scratch, scratch_dir};
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
    let checks = c["checks"].as_array().expect("claims list their checks");
    let held = checks.iter().filter(|o| o["holds"] == json!(true)).count();
    let verdict = c["verdict"].as_str().expect("claims have a verdict");
    let expected = if held == checks.len() {
        "supported"
    } else if held == 0 {
        "not supported"
    } else {
        "mixed"
    };
    assert_eq!(
        verdict,
        expected,
        "{name}: {held} of {} checks hold",
        checks.len()
    );
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
    }
}

/// The whole suite once, as a class runs it: every file's quantities are found in its run's
/// JSON (a missing one stops `reproduce` with an error), and the page and summary agree.
#[test]
fn the_whole_suite_runs_and_every_check_finds_its_quantities() {
    let out = scratch("reproduce-all");
    let o = bn_lab(&["reproduce", "--out", out.to_str().expect("UTF-8")]);
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
    let count = |k: &str| summary[k].as_u64().expect("counts are numbers");
    assert_eq!(
        count("supported") + count("mixed") + count("not_supported"),
        names.len() as u64
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
        4,
        "two claims, index.html, summary.json: {dirs:?}"
    );
    std::fs::remove_dir_all(out).expect("scratch dirs are removable");
}

/// The hand-made JSON of a grad-norms run, with the BN-off arm's numbers given.
fn grad_norms_json(ratio_off: f64, growth_off: f64) -> serde_json::Value {
    json!({ "arms": [
        { "label": "BN off", "weight_grad": { "ratio": ratio_off, "growth_per_layer": growth_off } },
        { "label": "BN on", "weight_grad": { "ratio": 2.3, "growth_per_layer": 1.02 } },
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
        { "label": "BN off", "weight_grad": { "ratio": "inf", "growth_per_layer": "NaN" } },
        { "label": "BN on", "weight_grad": { "ratio": 1.0, "growth_per_layer": 1.0 } },
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

#[test]
fn a_users_own_file_runs_like_a_shipped_one() {
    let dir = scratch_dir("reproduce-own-file");
    let file = dir.join("my-claim.toml");
    std::fs::write(&file, readme_example()).expect("the scratch dir is writable");
    let out = dir.join("out");
    let o = bn_lab(&[
        "run",
        file.to_str().expect("UTF-8"),
        "--out",
        out.to_str().expect("UTF-8"),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("\nmy-claim: A deep tanh net"), "{stdout}");
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
    // The verdict printed is the one the checks give on the JSON written.
    let found = claim
        .evaluate(&json(&out.join(&ran.json_file)), &ran.json_file)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        stdout.contains(&format!("verdict: {} (", found.verdict().text())),
        "{stdout}"
    );
}

/// `bn-lab run` on `text` (written to `name` in a scratch dir): non-zero exit, not a panic, one
/// `Error:` line naming the file and each of `words`, and nothing written.
fn assert_rejected(name: &str, text: &str, words: &[&str]) {
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
    assert_eq!(o.status.code(), Some(2), "{name}: {stderr}");
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
        assert_rejected(name, &good.replacen(from, to, 1), words);
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
