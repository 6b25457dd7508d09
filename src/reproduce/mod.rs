//! `bn-lab run FILE` and `bn-lab reproduce`: experiment files (one claim each) run as the
//! commands they name, their checks evaluated on the run's JSON, and the verdicts on a page.
//!
//! - [`spec`]: the file format ([`Claim::load`] checks a file without running it).
//! - [`check`]: quantities, checks and verdicts.
//! - [`page`]: `index.html` and `summary.json`.
//!
//! A claim runs through [`crate::commands::run_in`] exactly as its command line would, with a
//! [`Session`] that reads the JSON before anything is written: a quantity that is not in the
//! JSON stops the run with nothing written.

pub mod check;
pub mod page;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Result, anyhow};
use rayon::prelude::*;
use serde::Serialize;

use crate::cli::{ReproduceArgs, RunArgs};
use crate::commands::{Ran, Session, print, run_in, usage};
use check::{Outcome, Value, Verdict, fill};
pub use spec::{Claim, FileError};

/// One quantity's value in a run.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub name: String,
    pub label: String,
    pub path: String,
    pub value: Value,
}

/// A claim after its run: the verdict and the numbers that decided it, as `summary.json`
/// records them.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimResult {
    pub name: String,
    pub file: String,
    pub title: String,
    pub claim: String,
    pub source: String,
    pub command: String,
    pub rerun: String,
    pub verdict: Verdict,
    pub checks: Vec<Outcome>,
    pub quantities: Vec<Measured>,
    pub explanation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The picture on the page, relative to the output directory of `reproduce`
    /// (`vanishing-sigmoid/grad_norms.png`).
    pub figure: String,
    /// Every figure of the run, the same way.
    pub figures: Vec<String>,
    /// The run's JSON, the same way.
    pub json: String,
    pub seconds: f64,
}

impl ClaimResult {
    /// The verdict and the numbers, as `bn-lab run` prints them.
    pub fn text(&self) -> String {
        let mut s = format!("{}: {}\n", self.name, self.title);
        s.push_str(&format!("claim ({}): {}\n", self.source, self.claim));
        let width = self
            .quantities
            .iter()
            .map(|q| q.name.len())
            .max()
            .unwrap_or(0);
        for q in &self.quantities {
            s.push_str(&format!(
                "  {:width$}  {:>11}  {}\n",
                q.name,
                q.value.display(),
                q.label
            ));
        }
        for o in &self.checks {
            s.push_str(&format!(
                "  [{}] {}   ({} vs {})\n",
                if o.holds { "holds" } else { "fails" },
                o.check,
                o.left.display(),
                o.right.display()
            ));
        }
        s.push_str(&format!(
            "verdict: {} ({} of {} checks hold)\n",
            self.verdict,
            self.checks.iter().filter(|o| o.holds).count(),
            self.checks.len()
        ));
        s.push_str(&format!("{}\n", self.explanation));
        s
    }
}

/// What a claim's quantities and checks found in a run's JSON.
#[derive(Debug, Clone)]
pub struct Found {
    /// The quantities' values, in the file's order.
    pub values: Vec<Value>,
    /// Every check, in the file's order.
    pub outcomes: Vec<Outcome>,
}

impl Found {
    /// The verdict these checks give.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.outcomes)
    }
}

impl Claim {
    /// Check the command as `bn-lab` would before any work (its flags' values, the memory it
    /// needs) and the figure named, without running it or writing anything.
    pub fn dry_run(&self, out: &Path) -> Result<Ran, FileError> {
        let session = Session {
            dry_run: true,
            ..Session::default()
        };
        run_in(self.command(out)?, &session)
            .map_err(|e| self.error(Some(self.command_line), "command", format!("{e:#}")))?;
        let ran = session
            .take_ran()
            .ok_or_else(|| self.error(Some(self.command_line), "command", "ran nothing"))?;
        if let Some(f) = &self.figure
            && !ran.figures.contains(f)
        {
            return Err(self.error(
                self.figure_line,
                "figure",
                format!(
                    "`{}` draws no {f} (it draws {})",
                    self.command_text(),
                    ran.figures.join(", ")
                ),
            ));
        }
        Ok(ran)
    }

    /// The value of quantity `name` among `values` (in the file's order); null for a name the
    /// file does not have (`Claim::load` has checked that checks and templates name none).
    fn value_of(&self, values: &[Value], name: &str) -> Value {
        self.quantities
            .iter()
            .position(|q| q.name == name)
            .map_or(Value::Null, |i| values[i].clone())
    }

    /// The quantities and checks on a run's JSON (`file` names it in errors): a quantity the
    /// JSON lacks, or a check that cannot compare its values, is an error naming the field.
    pub fn evaluate(&self, json: &serde_json::Value, file: &str) -> Result<Found, FileError> {
        let values = self
            .quantities
            .iter()
            .map(|q| {
                check::quantity(json, &q.path, q.reduce).map_err(|m| {
                    self.error(
                        Some(q.line),
                        &format!("quantities.{}.path", q.name),
                        format!("`{}` is not in {file}: {m}", q.path),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let get = |name: &str| self.value_of(&values, name);
        let outcomes = self
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                c.holds(&get)
                    .map_err(|m| self.error(Some(self.checks_line), &format!("checks[{i}]"), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Found { values, outcomes })
    }

    /// Run the claim's command into `out` (reporting to the terminal unless `quiet`, or to
    /// `progress`), evaluate its checks on the JSON before anything is written, and give the
    /// verdict. `prefix` is what the result's paths start with (`reproduce` puts each claim in
    /// a directory of its own).
    pub fn execute(
        &self,
        out: &Path,
        prefix: &str,
        quiet: bool,
        progress: Option<&(dyn Fn(u64, u64) + Sync)>,
    ) -> Result<ClaimResult> {
        let command = self.command(out)?;
        let found: Mutex<Option<Found>> = Mutex::new(None);
        let json_name = Mutex::new(String::new());
        let check = |json: &serde_json::Value| -> Result<()> {
            let file = json_name.lock().map(|n| n.clone()).unwrap_or_default();
            // Found after the run: a failure (exit 1), not a refusal of the command line.
            let f = self.evaluate(json, &file).map_err(|e| anyhow!("{e}"))?;
            *found
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(f);
            Ok(())
        };
        // The JSON's name, for errors about it (known before the run).
        *json_name
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            self.dry_run(out).map(|r| r.json_file)?;
        let session = Session {
            quiet,
            progress,
            check: Some(&check),
            ..Session::default()
        };
        let start = Instant::now();
        run_in(command, &session).map_err(|e| {
            let file = self.file.display().to_string();
            let text = format!("{e:#}");
            let text = if text.starts_with(&file) {
                text
            } else {
                format!("{file}: {text}")
            };
            // A refusal before the command's work (its --out, say) stays one (exit 2).
            if crate::commands::is_usage_error(&e) {
                usage(text)
            } else {
                anyhow!(text)
            }
        })?;
        let ran = session
            .take_ran()
            .ok_or_else(|| anyhow!("{}: the command ran nothing", self.file.display()))?;
        let found = found
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ok_or_else(|| anyhow!("{}: the command wrote no JSON", self.file.display()))?;
        let verdict = found.verdict();
        let get = |name: &str| self.value_of(&found.values, name);
        let template = match verdict {
            Verdict::Supported => &self.explain.supported,
            Verdict::Mixed => &self.explain.mixed,
            Verdict::NotSupported => &self.explain.not_supported,
        };
        let rel = |f: &str| {
            if prefix.is_empty() {
                f.to_string()
            } else {
                format!("{prefix}/{f}")
            }
        };
        let figure = self
            .figure
            .clone()
            .or_else(|| ran.figures.first().cloned())
            .unwrap_or_default();
        let explanation = fill(template, &get);
        Ok(ClaimResult {
            name: self.name.clone(),
            file: self.file.display().to_string(),
            title: self.title.clone(),
            claim: self.claim.clone(),
            source: self.source.clone(),
            command: self.command_text(),
            rerun: self.rerun_text(),
            verdict,
            checks: found.outcomes,
            quantities: self
                .quantities
                .iter()
                .zip(found.values)
                .map(|(q, value)| Measured {
                    name: q.name.clone(),
                    label: q.label.clone(),
                    path: q.path.to_string(),
                    value,
                })
                .collect(),
            explanation,
            note: self.note.clone(),
            figure: rel(&figure),
            figures: ran.figures.iter().map(|f| rel(f)).collect(),
            json: rel(&ran.json_file),
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}

fn file_error(e: FileError) -> anyhow::Error {
    usage(e.to_string())
}

/// `bn-lab run FILE [--out DIR]`.
pub fn run_file(args: &RunArgs) -> Result<()> {
    let claim = Claim::load(&args.file).map_err(file_error)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("bn-lab-out").join(&claim.name));
    claim.dry_run(&out).map_err(file_error)?;
    let result = claim.execute(&out, "", false, None)?;
    print(&result.text())
}

/// The experiment files in `dir`: every `*.toml`, by name.
pub fn experiment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        usage(format!(
            "--experiments: cannot read {}: {e} (run bn-lab reproduce in the repository, or give --experiments DIR)",
            dir.display()
        ))
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(usage(format!(
            "--experiments: no *.toml files in {}",
            dir.display()
        )));
    }
    Ok(files)
}

/// The claims of `files`, checked, and those `only` names (by name, in the files' order).
pub fn select(files: &[PathBuf], only: Option<&[String]>) -> Result<Vec<Claim>> {
    let claims: Vec<Claim> = files
        .iter()
        .map(|f| Claim::load(f).map_err(file_error))
        .collect::<Result<_>>()?;
    // Two files of one name would share a directory: refused wherever they sort.
    let mut seen: std::collections::HashMap<&str, &Claim> = std::collections::HashMap::new();
    for c in &claims {
        if let Some(first) = seen.insert(c.name.as_str(), c) {
            return Err(usage(format!(
                "{} and {} have the same claim name `{}`; rename one",
                first.file.display(),
                c.file.display(),
                c.name
            )));
        }
    }
    let Some(only) = only else {
        return Ok(claims);
    };
    if let Some((_, n)) = only
        .iter()
        .enumerate()
        .find(|(i, n)| only[..*i].contains(n))
    {
        return Err(usage(format!("--only: `{n}` is given twice")));
    }
    let names: Vec<&str> = claims.iter().map(|c| c.name.as_str()).collect();
    if let Some(bad) = only.iter().find(|n| !names.contains(&n.as_str())) {
        return Err(usage(format!(
            "--only: no claim `{bad}` (the claims: {})",
            names.join(", ")
        )));
    }
    Ok(claims
        .into_iter()
        .filter(|c| only.contains(&c.name))
        .collect())
}

/// Whether `dir` holds a page `bn-lab reproduce` wrote (its `summary.json`), which a new run
/// may replace.
fn is_reproduce_output(dir: &Path) -> bool {
    let Ok(text) = spec::read_regular(&dir.join("summary.json"), 1 << 28) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
        v["tool"]["name"] == "bn-lab" && v["claims"].is_array() && v["supported"].is_u64()
    })
}

/// `bn-lab reproduce [--out DIR] [--only NAME,...]`.
pub fn reproduce(args: &ReproduceArgs) -> Result<()> {
    let files = experiment_files(&args.experiments)?;
    let claims = select(&files, args.only.as_deref())?;
    // At least 1 (clap refuses 0), capped to the cores as --threads is.
    let jobs = crate::commands::threads(args.jobs)?;
    for c in &claims {
        c.dry_run(&args.out.join(&c.name)).map_err(file_error)?;
    }
    crate::output::install_signal_handler()?;
    // Everything is written into a directory beside --out that replaces it whole at the end:
    // a failed or interrupted run leaves --out as it was.
    let staged = crate::output::StagedDir::create(
        &args.out,
        "--out",
        "a page of bn-lab reproduce (no summary.json of it)",
        is_reproduce_output,
    )
    .map_err(|e| usage(format!("{e:#}")))?;
    let dir = staged.path().to_path_buf();
    let start = Instant::now();
    let pb = crate::commands::progress_bar(1000 * claims.len() as u64, "reproduce");
    // Per claim: units done and the run's total; the bar shows the mean fraction done.
    let done: Mutex<Vec<(u64, u64)>> = Mutex::new(vec![(0, 0); claims.len()]);
    let update = |i: usize, n: u64, total: u64| {
        let mut d = done
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        d[i] = ((d[i].0 + n).min(total), total);
        let pos: u64 = d
            .iter()
            .map(|&(k, t)| (1000 * k).checked_div(t).unwrap_or(0))
            .sum();
        let finished = d.iter().filter(|&&(k, t)| t > 0 && k >= t).count();
        pb.set_position(pos);
        pb.set_message(format!("reproduce ({finished}/{} claims)", d.len()));
    };
    let results: Vec<Result<ClaimResult>> = crate::parallel::with_threads(jobs, || {
        claims
            .par_iter()
            .enumerate()
            .map(|(i, c)| {
                let progress = |n: u64, total: u64| update(i, n, total);
                c.execute(&dir.join(&c.name), &c.name, true, Some(&progress))
            })
            .collect()
    })?;
    pb.finish_and_clear();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(r) => ok.push(r),
            Err(e) => failed.push(e),
        }
    }
    if let Some(first) = failed.into_iter().next() {
        // The work had started: a failure, not a refusal (exit 1), and nothing is kept.
        return Err(anyhow!("{first:#}"));
    }
    let seconds = start.elapsed().as_secs_f64();
    let summary = page::Summary::new(&ok, seconds);
    let json = serde_json::to_string_pretty(&summary)?;
    crate::output::write_atomic(&dir.join("summary.json"), format!("{json}\n").as_bytes())?;
    crate::output::write_atomic(&dir.join("index.html"), page::html(&summary).as_bytes())?;
    staged.commit()?;
    let index = args.out.join("index.html");
    let summary_path = args.out.join("summary.json");
    print(&format!(
        "{}wrote {} and {} ({} claims) in {seconds:.1} s\n",
        page::table(&ok),
        index.display(),
        summary_path.display(),
        ok.len()
    ))
}
