//! `bn-lab run FILE` and `bn-lab reproduce`: experiment files (one claim each) run as the
//! commands they name, their checks evaluated on the run's JSON, and the verdicts on a page.
//!
//! - [`spec`]: the file format ([`Claim::load`] checks a file without running it).
//! - [`check`]: quantities, checks and verdicts.
//! - [`page`]: `index.html` and `summary.json`.
//!
//! A claim runs through [`crate::cli::Command::run_in`] exactly as its command line would, with
//! [`RunOptions`] whose check reads the JSON before anything is written: a quantity that is not in the
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
use crate::commands::{RunOptions, RunRecord, print};
use crate::flags::usage;
use check::{Outcome, Value, Verdict, fill};
pub use spec::{Claim, FileError, Kind, Variant};

/// One quantity over the seeds a claim ran.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub name: String,
    pub label: String,
    pub path: String,
    /// One value per seed, in the order of the seeds.
    pub values: Vec<Value>,
    /// The median of the numbers; for text or true/false, the value most seeds gave.
    pub median: Value,
    /// The smallest and largest number (null for text or true/false).
    pub min: Value,
    pub max: Value,
}

impl Measured {
    fn new(name: &str, label: &str, path: &str, values: Vec<Value>) -> Measured {
        let (median, min, max) = spread(&values);
        Measured {
            name: name.to_string(),
            label: label.to_string(),
            path: path.to_string(),
            values,
            median,
            min,
            max,
        }
    }

    /// `3.1e-32 [1.2e-32, 8.0e-32]`: the median and the range over seeds (the value alone
    /// when every seed gave it).
    pub fn display(&self) -> String {
        if self.values.len() < 2 || self.min == self.max || self.min == Value::Null {
            self.median.display()
        } else {
            format!(
                "{} [{}, {}]",
                self.median.display(),
                self.min.display(),
                self.max.display()
            )
        }
    }
}

/// The median, min and max of `values` when they are numbers (NaN sorts last); else the value
/// most seeds gave (the first seed's on a tie) and nulls.
fn spread(values: &[Value]) -> (Value, Value, Value) {
    let mut nums: Vec<f64> = values
        .iter()
        .filter_map(|v| match v {
            Value::Num(x) => Some(*x),
            _ => None,
        })
        .collect();
    if nums.len() == values.len() && !nums.is_empty() {
        nums.sort_by(f64::total_cmp);
        let n = nums.len();
        let (lo, hi) = (nums[(n - 1) / 2], nums[n / 2]);
        let median = if (lo + hi).is_finite() {
            0.5 * (lo + hi)
        } else {
            lo
        };
        return (
            Value::Num(median),
            Value::Num(nums[0]),
            Value::Num(nums[n - 1]),
        );
    }
    let count = |v: &Value| values.iter().filter(|w| *w == v).count();
    let most = values
        .iter()
        .max_by(|a, b| count(a).cmp(&count(b)).then(std::cmp::Ordering::Greater))
        .cloned()
        .unwrap_or(Value::Null);
    (most, Value::Null, Value::Null)
}

/// One check over the seeds: whether it holds in each, with the values it compared.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOverSeeds {
    pub check: String,
    /// One per seed.
    pub holds: Vec<bool>,
    pub left: Vec<Value>,
    pub right: Vec<Value>,
}

impl CheckOverSeeds {
    /// In how many seeds the check holds.
    pub fn held(&self) -> usize {
        self.holds.iter().filter(|&&h| h).count()
    }

    /// `0.2353, 0.2336, 0.2356 vs 0.5000`: the values compared in each seed (a side that is the
    /// same in every seed, a threshold, once).
    pub fn values_text(&self) -> String {
        let vals = |v: &[Value]| {
            if v.windows(2).all(|w| w[0] == w[1]) {
                v.first().map(Value::display).unwrap_or_default()
            } else {
                v.iter().map(Value::display).collect::<Vec<_>>().join(", ")
            }
        };
        format!("{} vs {}", vals(&self.left), vals(&self.right))
    }

    /// `holds in 3/3 seeds`.
    pub fn tally(&self) -> String {
        let n = self.holds.len();
        let k = self.held();
        let word = if k == n {
            "holds"
        } else if k == 0 {
            "fails"
        } else {
            "flips"
        };
        if n == 1 {
            word.to_string()
        } else {
            format!("{word} in {}/{n} seeds", if k == 0 { n } else { k })
        }
    }
}

/// A command of a claim (its own, or its control) run over its seeds, with the verdict its
/// checks give.
#[derive(Debug, Clone, Serialize)]
pub struct Tested {
    pub command: String,
    /// The `--seed` of each run (empty for a command that takes none and ran once).
    pub seeds: Vec<u64>,
    pub verdict: Verdict,
    pub checks: Vec<CheckOverSeeds>,
    pub quantities: Vec<Measured>,
    /// The picture on the page (the first seed's), relative to the output directory.
    pub figure: String,
    /// Every figure of the first seed's run, the same way.
    pub figures: Vec<String>,
    /// The first seed's JSON, the same way.
    pub json: String,
    /// Every seed's JSON, in the order of `seeds`.
    pub jsons: Vec<String>,
    pub seconds: f64,
}

impl Tested {
    /// `supported (2 checks x 3 seeds all hold)`.
    pub fn verdict_line(&self) -> String {
        let runs = self.seeds.len().max(1);
        let held: usize = self.checks.iter().map(CheckOverSeeds::held).sum();
        let total = self.checks.len() * runs;
        format!(
            "{} ({held} of {total} check{} hold{})",
            self.verdict,
            if total == 1 { "" } else { "s" },
            if runs > 1 {
                format!(
                    " over {} check{} x {runs} seeds",
                    self.checks.len(),
                    if self.checks.len() == 1 { "" } else { "s" }
                )
            } else {
                String::new()
            }
        )
    }

    /// `seeds 0, 1, 2` or `no seed (deterministic)`.
    pub fn seeds_text(&self) -> String {
        if self.seeds.is_empty() {
            "no seed (the command is deterministic)".into()
        } else {
            let list: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
            format!(
                "seed{} {}",
                if list.len() == 1 { "" } else { "s" },
                list.join(", ")
            )
        }
    }
}

/// A claim's control after its run.
#[derive(Debug, Clone, Serialize)]
pub struct ControlResult {
    pub why: String,
    #[serde(flatten)]
    pub tested: Tested,
}

/// A claim after its runs: the verdict and the numbers that decided it, as `summary.json`
/// records them.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimResult {
    pub name: String,
    pub file: String,
    pub title: String,
    pub kind: Kind,
    pub claim: String,
    /// Whether `claim` is a quotation (else a paraphrase of the source).
    pub quote: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected: Option<String>,
    pub argument: String,
    pub source: String,
    pub rerun: String,
    #[serde(flatten)]
    pub tested: Tested,
    /// The quantity on the summary row.
    pub key: String,
    pub explanation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlResult>,
}

impl ClaimResult {
    pub fn verdict(&self) -> Verdict {
        self.tested.verdict
    }

    /// The key quantity: `ratio_off = 3.1e-32 [1.2e-32, 8.0e-32]`.
    pub fn key_quantity(&self) -> Option<&Measured> {
        self.tested.quantities.iter().find(|q| q.name == self.key)
    }

    /// How the claim's words are given: `the diary, quoted` or `paraphrase of Yang et al. ...`.
    pub fn words_source(&self) -> String {
        let how = if self.quote { "quoted" } else { "paraphrased" };
        if self.source == self.kind.text() {
            format!("{} ({how})", self.source)
        } else {
            format!("{} ({}, {how})", self.kind.text(), self.source)
        }
    }

    /// The verdict and the numbers, as `bn-lab run` prints them.
    pub fn text(&self) -> String {
        let t = &self.tested;
        let mut s = format!("{}: {}\n", self.name, self.title);
        s.push_str(&format!("claim, {}: {}\n", self.words_source(), self.claim));
        if let Some(c) = &self.corrected {
            s.push_str(&format!("corrected (what the checks test): {c}\n"));
        }
        s.push_str(&format!("ran `{}` with {}\n", t.command, t.seeds_text()));
        s.push_str(&quantity_lines(&t.quantities));
        s.push_str(&check_lines(&t.checks));
        s.push_str(&format!("verdict: {}\n", t.verdict_line()));
        s.push_str(&format!("{}\n", self.explanation));
        if let Some(c) = &self.control {
            s.push_str(&format!(
                "control: `{}` ({}): {}\n",
                c.tested.command,
                c.tested.seeds_text(),
                c.why
            ));
            s.push_str(&quantity_lines(&c.tested.quantities));
            s.push_str(&check_lines(&c.tested.checks));
            s.push_str(&format!(
                "control verdict: {}{}\n",
                c.tested.verdict_line(),
                if c.tested.verdict == t.verdict {
                    " -- the same as the claim's: these checks did not tell the two apart"
                } else {
                    " -- differs from the claim's, as a control should"
                }
            ));
        }
        s
    }
}

fn quantity_lines(quantities: &[Measured]) -> String {
    let width = quantities.iter().map(|q| q.name.len()).max().unwrap_or(0);
    let shown: Vec<String> = quantities.iter().map(Measured::display).collect();
    let vw = shown.iter().map(String::len).max().unwrap_or(0).max(11);
    quantities
        .iter()
        .zip(&shown)
        .map(|(q, v)| format!("  {:width$}  {v:>vw$}  {}\n", q.name, q.label))
        .collect()
}

fn check_lines(checks: &[CheckOverSeeds]) -> String {
    checks
        .iter()
        .map(|c| format!("  [{}] {}   ({})\n", c.tally(), c.check, c.values_text()))
        .collect()
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

/// One run of a claim's command or its control at one seed.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub variant: Variant,
    pub seed: Option<u64>,
    /// The first run of its variant: it draws the figures; the others write JSON only.
    pub first: bool,
}

/// A [`Job`] done.
pub struct Done {
    pub found: Found,
    pub ran: RunRecord,
    pub seconds: f64,
}

/// How many seeds from which, and whether the control runs.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub first_seed: u64,
    /// Overrides every file's `seeds`.
    pub seeds: Option<usize>,
    pub control: bool,
}

impl Plan {
    /// The plan of `--seed`, `--seeds` and `--control(s)`, checked.
    pub fn new(first_seed: u64, seeds: Option<usize>, control: bool) -> Result<Plan> {
        if let Some(n) = seeds
            && !(1..=spec::MAX_SEEDS).contains(&n)
        {
            return Err(usage(format!(
                "--seeds must be 1 to {} (got {n})",
                spec::MAX_SEEDS
            )));
        }
        Ok(Plan {
            first_seed,
            seeds,
            control,
        })
    }

    /// Refuse seeds past 2^64 - 1 for `claim` (its last run's `--seed`).
    fn check(&self, claim: &Claim) -> Result<()> {
        let n = self.seeds.unwrap_or(claim.seeds) as u64;
        for args in [Some(&claim.args), claim.control.as_ref().map(|c| &c.args)]
            .into_iter()
            .flatten()
        {
            let stride = spec::seed_stride(args);
            if (n - 1)
                .checked_mul(stride)
                .and_then(|d| d.checked_add(self.first_seed))
                .is_none()
            {
                return Err(usage(format!(
                    "--seed {}: {n} runs of {} would pass the largest seed, {}",
                    self.first_seed,
                    claim.name,
                    u64::MAX
                )));
            }
        }
        Ok(())
    }
}

impl Claim {
    /// The runs `plan` asks of this claim: every seed of the claim, then of its control.
    pub fn jobs(&self, plan: &Plan) -> Vec<Job> {
        let n = plan.seeds.unwrap_or(self.seeds);
        let mut jobs = Vec::new();
        let variants: &[Variant] = if plan.control {
            &[Variant::Claim, Variant::Control]
        } else {
            &[Variant::Claim]
        };
        for &variant in variants {
            for (i, seed) in self
                .seeds_of(variant, plan.first_seed, n)
                .into_iter()
                .enumerate()
            {
                jobs.push(Job {
                    variant,
                    seed,
                    first: i == 0,
                });
            }
        }
        jobs
    }

    /// Where a job writes, under the claim's directory `out`: the first seed's run in `out`
    /// (the control's in `out/control`), each other seed's in `seed-S` below it.
    pub fn job_dir(out: &Path, job: &Job) -> PathBuf {
        let base = match job.variant {
            Variant::Claim => out.to_path_buf(),
            Variant::Control => out.join("control"),
        };
        match (job.first, job.seed) {
            (false, Some(s)) => base.join(format!("seed-{s}")),
            _ => base,
        }
    }

    /// Check the command as `bn-lab` would before any work (its flags' values, the memory it
    /// needs) and the figure named, without running it or writing anything.
    pub fn dry_run(&self, out: &Path) -> Result<RunRecord, FileError> {
        let ran = self.dry_run_of(Variant::Claim, out)?;
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
        if self.control.is_some() {
            self.dry_run_of(Variant::Control, &out.join("control"))?;
        }
        Ok(ran)
    }

    fn dry_run_of(&self, variant: Variant, out: &Path) -> Result<RunRecord, FileError> {
        let options = RunOptions {
            dry_run: true,
            ..RunOptions::default()
        };
        let field = match variant {
            Variant::Claim => "command",
            Variant::Control => "control.command",
        };
        let seed = self.seeds_of(variant, 0, 1)[0];
        self.parse_words(variant, out, seed)?
            .run_in(&options)
            .map_err(|e| {
                let line = match (variant, &self.control) {
                    (Variant::Control, Some(c)) => Some(c.line),
                    _ => Some(self.command_line),
                };
                self.error(line, field, format!("{e:#}"))
            })?
            .ok_or_else(|| self.error(Some(self.command_line), field, "ran nothing"))
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

    /// Run one job into the claim's directory `out` (reporting to `progress`), evaluating the
    /// checks on the JSON before anything is written.
    pub fn run_job(
        &self,
        out: &Path,
        job: &Job,
        progress: Option<&(dyn Fn(u64, u64) + Sync)>,
    ) -> Result<Done> {
        let dir = Claim::job_dir(out, job);
        let command = self.parse_words(job.variant, &dir, job.seed)?;
        let found: Mutex<Option<Found>> = Mutex::new(None);
        let json_name = self.dry_run_of(job.variant, &dir)?.json_file;
        let check = |json: &serde_json::Value| -> Result<()> {
            // Found after the run: a failure (exit 1), not a refusal of the command line.
            let f = self
                .evaluate(json, &json_name)
                .map_err(|e| anyhow!("{e}"))?;
            *found
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(f);
            Ok(())
        };
        let options = RunOptions {
            quiet: true,
            progress,
            check: Some(&check),
            json_only: !job.first,
            ..RunOptions::default()
        };
        let start = Instant::now();
        let ran = command.run_in(&options).map_err(|e| {
            let file = self.file.display().to_string();
            let text = format!("{e:#}");
            let text = if text.starts_with(&file) {
                text
            } else {
                format!("{file}: {text}")
            };
            // A refusal before the command's work (its --out, say) stays one (exit 2).
            if crate::flags::is_usage_error(&e) {
                usage(text)
            } else {
                anyhow!(text)
            }
        })?;
        let ran = ran.ok_or_else(|| anyhow!("{}: the command ran nothing", self.file.display()))?;
        let found = found
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ok_or_else(|| anyhow!("{}: the command wrote no JSON", self.file.display()))?;
        Ok(Done {
            found,
            ran,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// The runs of one variant, in seed order, as one [`Tested`]; `rel` makes a path inside
    /// the claim's directory the result's path.
    fn tested(
        &self,
        variant: Variant,
        runs: &[(Job, Done)],
        rel: &dyn Fn(&str) -> String,
    ) -> Tested {
        let runs: Vec<&(Job, Done)> = runs.iter().filter(|(j, _)| j.variant == variant).collect();
        let first = runs.iter().find(|(j, _)| j.first).map(|(_, d)| d);
        let figures = first.map(|d| d.ran.figures.clone()).unwrap_or_default();
        let dir_rel = |job: &Job, file: &str| {
            let dir = Claim::job_dir(Path::new(""), job);
            rel(&dir.join(file).to_string_lossy())
        };
        let figure = self
            .figure
            .clone()
            .filter(|f| figures.contains(f))
            .or_else(|| figures.first().cloned())
            .unwrap_or_default();
        let first_job = runs.iter().find(|(j, _)| j.first).map(|(j, _)| *j);
        let quantities = self
            .quantities
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let values = runs
                    .iter()
                    .map(|(_, d)| d.found.values[i].clone())
                    .collect();
                Measured::new(&q.name, &q.label, &q.path.to_string(), values)
            })
            .collect();
        let checks: Vec<CheckOverSeeds> = self
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| CheckOverSeeds {
                check: c.text.clone(),
                holds: runs
                    .iter()
                    .map(|(_, d)| d.found.outcomes[i].holds)
                    .collect(),
                left: runs
                    .iter()
                    .map(|(_, d)| d.found.outcomes[i].left.clone())
                    .collect(),
                right: runs
                    .iter()
                    .map(|(_, d)| d.found.outcomes[i].right.clone())
                    .collect(),
            })
            .collect();
        let holds: Vec<Vec<bool>> = checks.iter().map(|c| c.holds.clone()).collect();
        Tested {
            command: self.command_text_of(variant),
            seeds: runs.iter().filter_map(|(j, _)| j.seed).collect(),
            verdict: Verdict::over(&holds),
            checks,
            quantities,
            figure: first_job.map_or_else(String::new, |j| dir_rel(&j, &figure)),
            figures: first_job.map_or_else(Vec::new, |j| {
                figures.iter().map(|f| dir_rel(&j, f)).collect()
            }),
            json: first_job.map_or_else(String::new, |j| {
                dir_rel(
                    &j,
                    &first.map(|d| d.ran.json_file.clone()).unwrap_or_default(),
                )
            }),
            jsons: runs
                .iter()
                .map(|(j, d)| dir_rel(j, &d.ran.json_file))
                .collect(),
            seconds: runs.iter().map(|(_, d)| d.seconds).sum(),
        }
    }

    /// The claim's result from its jobs' runs (in the order of [`Claim::jobs`]). `prefix` is
    /// what the result's paths start with (`reproduce` puts each claim in a directory of its
    /// own).
    pub fn result(&self, runs: &[(Job, Done)], prefix: &str) -> ClaimResult {
        let rel = |f: &str| {
            let f = f.trim_start_matches('/');
            if prefix.is_empty() {
                f.to_string()
            } else {
                format!("{prefix}/{f}")
            }
        };
        let tested = self.tested(Variant::Claim, runs, &rel);
        let control = self
            .control
            .as_ref()
            .filter(|_| runs.iter().any(|(j, _)| j.variant == Variant::Control))
            .map(|c| ControlResult {
                why: c.why.clone(),
                tested: self.tested(Variant::Control, runs, &rel),
            });
        let template = match tested.verdict {
            Verdict::Supported => &self.explain.supported,
            Verdict::Mixed => &self.explain.mixed,
            Verdict::NotSupported => &self.explain.not_supported,
        };
        let medians: Vec<Value> = tested.quantities.iter().map(|q| q.median.clone()).collect();
        let get = |name: &str| self.value_of(&medians, name);
        ClaimResult {
            name: self.name.clone(),
            file: self.file.display().to_string(),
            title: self.title.clone(),
            kind: self.kind,
            claim: self.claim.clone(),
            quote: self.quote,
            corrected: self.corrected.clone(),
            argument: self.argument.clone(),
            source: self.source.clone(),
            rerun: self.rerun_text(),
            explanation: fill(template, &get),
            key: self.quantities[self.key].name.clone(),
            note: self.note.clone(),
            caption: self.caption.clone(),
            tested,
            control,
        }
    }
}

/// Every job of every claim run on `jobs` threads (all seeds and controls at once, so that a
/// long claim does not leave a core idle), with one progress bar; the results by claim, in
/// the order of [`Claim::jobs`]. `dir_of` is a claim's directory.
fn run_all(
    claims: &[Claim],
    plan: &Plan,
    jobs: usize,
    dir_of: &(dyn Fn(&Claim) -> PathBuf + Sync),
    label: &str,
) -> Result<Vec<Vec<(Job, Done)>>> {
    let work: Vec<(usize, Job)> = claims
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.jobs(plan).into_iter().map(move |j| (i, j)))
        .collect();
    let existed: Vec<bool> = claims.iter().map(|c| dir_of(c).exists()).collect();
    let pb = crate::commands::progress_bar(1000 * work.len() as u64, label);
    // Per job: units done and the run's total; the bar shows the mean fraction done.
    let done: Mutex<Vec<(u64, u64)>> = Mutex::new(vec![(0, 0); work.len()]);
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
        pb.set_message(format!("{label} ({finished}/{} runs)", d.len()));
    };
    let results: Vec<Result<Done>> = crate::parallel::with_threads(jobs, || {
        work.par_iter()
            .enumerate()
            .map(|(k, (i, job))| {
                let progress = |n: u64, total: u64| update(k, n, total);
                claims[*i].run_job(&dir_of(&claims[*i]), job, Some(&progress))
            })
            .collect()
    })?;
    pb.finish_and_clear();
    if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
        // All or nothing: what the finished runs wrote goes, and the directories of seeds and
        // controls they created when nothing else is in them.
        for r in results.iter().flatten() {
            for p in &r.ran.written {
                let _ = std::fs::remove_file(p);
            }
        }
        // Innermost first: a control's seeds before the control's directory.
        for (i, job) in work.iter().rev() {
            let base = dir_of(&claims[*i]);
            let dir = Claim::job_dir(&base, job);
            if dir != base {
                let _ = std::fs::remove_dir(&dir);
            }
        }
        for (c, existed) in claims.iter().zip(&existed) {
            if !existed {
                let _ = std::fs::remove_dir(dir_of(c));
            }
        }
        // The work had started: a failure, not a refusal (exit 1).
        return Err(anyhow!("{e:#}"));
    }
    let mut by_claim: Vec<Vec<(Job, Done)>> = claims.iter().map(|_| Vec::new()).collect();
    for ((i, job), r) in work.into_iter().zip(results) {
        if let Ok(d) = r {
            by_claim[i].push((job, d));
        }
    }
    Ok(by_claim)
}

fn file_error(e: FileError) -> anyhow::Error {
    usage(e.to_string())
}

/// `bn-lab run FILE [--out DIR] [--seeds N] [--seed K] [--control]`. Every seed's run goes
/// into `--out` (the first seed's with its figures, the others' JSON in `seed-S/`, the
/// control's in `control/`); a run that fails removes what the others wrote.
pub fn run_file(args: &RunArgs) -> Result<()> {
    let claim = Claim::load(&args.file).map_err(file_error)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("bn-lab-out").join(&claim.name));
    if args.control && claim.control.is_none() {
        return Err(usage(format!(
            "--control: {} has no [control] (add one: command and why)",
            args.file.display()
        )));
    }
    let plan = Plan::new(args.seed, args.seeds, args.control)?;
    plan.check(&claim)?;
    claim.dry_run(&out).map_err(file_error)?;
    let jobs = crate::flags::threads(None)?;
    let claims = [claim];
    let dir_of = |_: &Claim| out.clone();
    let runs = run_all(&claims, &plan, jobs, &dir_of, &claims[0].name)?;
    let result = claims[0].result(&runs[0], "");
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

/// `bn-lab reproduce [--out DIR] [--only NAME,...] [--seeds N] [--seed K] [--controls]`.
pub fn reproduce(args: &ReproduceArgs) -> Result<()> {
    let files = experiment_files(&args.experiments)?;
    let claims = select(&files, args.only.as_deref())?;
    // At least 1 (clap refuses 0), capped to the cores as --threads is.
    let jobs = crate::flags::threads(args.jobs)?;
    if args.controls
        && let Some(c) = claims.iter().find(|c| c.control.is_none())
    {
        return Err(usage(format!(
            "--controls: {} has no [control] (add one: command and why)",
            c.file.display()
        )));
    }
    let plan = Plan::new(args.seed, args.seeds, args.controls)?;
    for c in &claims {
        plan.check(c)?;
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
    let dir_of = |c: &Claim| dir.join(&c.name);
    let runs = run_all(&claims, &plan, jobs, &dir_of, "reproduce")?;
    let ok: Vec<ClaimResult> = claims
        .iter()
        .zip(&runs)
        .map(|(c, r)| c.result(r, &c.name))
        .collect();
    let seconds = start.elapsed().as_secs_f64();
    let summary = page::Summary::new(&ok, seconds, &plan);
    let json = serde_json::to_string_pretty(&summary)?;
    crate::output::write_atomic(&dir.join("summary.json"), format!("{json}\n").as_bytes())?;
    crate::output::write_atomic(&dir.join("index.html"), page::html(&summary).as_bytes())?;
    crate::output::write_atomic(&dir.join("slides.html"), page::slides(&summary).as_bytes())?;
    staged.commit()?;
    let index = args.out.join("index.html");
    let summary_path = args.out.join("summary.json");
    print(&format!(
        "{}wrote {}, {} and slides.html ({} claims) in {seconds:.1} s\n",
        page::table(&ok),
        index.display(),
        summary_path.display(),
        ok.len()
    ))
}
