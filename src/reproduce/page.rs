//! `bn-lab reproduce`'s page (`index.html`) and record (`summary.json`): one self-contained
//! HTML file, no scripts, no fonts or styles from anywhere, the figures beside it in the claims'
//! directories. It reads on a projector (large type, verdicts in words as well as colours), on
//! a phone (one column, images and tables that shrink or scroll) and on paper (a print style
//! without colours behind text, and sections that do not break across pages).

use serde::Serialize;

use super::check::Verdict;
use super::{ClaimResult, Kind, Plan, Tested};

/// What `summary.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub tool: crate::experiment::ToolInfo,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// `--seed`: the first seed of every claim.
    pub first_seed: u64,
    /// `--seeds`, when it overrode the files' counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<usize>,
    /// Whether the controls ran (`--controls`).
    pub controls: bool,
    pub supported: usize,
    pub mixed: usize,
    pub not_supported: usize,
    /// How the verdict over seeds is decided.
    pub rule: &'static str,
    pub claims: Vec<ClaimResult>,
}

/// The verdict rule, as the page and `summary.json` state it.
pub const RULE: &str = "supported when every check holds in every seed; not supported when no check holds in any seed; mixed otherwise";

impl Summary {
    pub fn new(claims: &[ClaimResult], seconds: f64, plan: &Plan) -> Summary {
        let count = |v: Verdict| claims.iter().filter(|c| c.verdict() == v).count();
        Summary {
            tool: crate::experiment::ToolInfo::current(),
            seconds,
            first_seed: plan.first_seed,
            seeds: plan.seeds,
            controls: plan.control,
            supported: count(Verdict::Supported),
            mixed: count(Verdict::Mixed),
            not_supported: count(Verdict::NotSupported),
            rule: RULE,
            claims: claims.to_vec(),
        }
    }

    /// The claims grouped by the diary's argument, groups in the order they first appear.
    pub fn groups(&self) -> Vec<(&str, Vec<(usize, &ClaimResult)>)> {
        let mut groups: Vec<(&str, Vec<(usize, &ClaimResult)>)> = Vec::new();
        for (i, c) in self.claims.iter().enumerate() {
            match groups.iter_mut().find(|(a, _)| *a == c.argument) {
                Some((_, g)) => g.push((i + 1, c)),
                None => groups.push((&c.argument, vec![(i + 1, c)])),
            }
        }
        groups
    }
}

/// The verdicts as a text table, for the terminal: each claim's kind, seeds, verdict, its
/// control's verdict when controls ran, and its key number.
pub fn table(claims: &[ClaimResult]) -> String {
    let width = claims
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let controls = claims.iter().any(|c| c.control.is_some());
    let mut s = format!(
        "{:width$}  {:14}  {:5}  {:13}{}  key number: median [range]\n",
        "claim",
        "kind",
        "seeds",
        "verdict",
        if controls { "  control      " } else { "" }
    );
    for c in claims {
        let key = c
            .key_quantity()
            .map(|q| format!("{} = {}", q.name, q.display()))
            .unwrap_or_default();
        let control = match &c.control {
            Some(k) => format!("  {:13}", k.tested.verdict.text()),
            None if controls => " ".repeat(15),
            None => String::new(),
        };
        s.push_str(&format!(
            "{:width$}  {:14}  {:5}  {:13}{control}  {key}\n",
            c.name,
            c.kind.text(),
            c.tested.seeds.len().max(1),
            c.verdict().text(),
        ));
    }
    s
}

/// Text made safe for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative link to a file beside the page, safe in an `href` or `src`: every byte outside
/// `A-Z a-z 0-9 _ - . /` percent-encoded, so it cannot carry a scheme (`javascript:`, `http:`)
/// or leave the attribute, and a leading `/` made `./` so it cannot name a host or the root.
pub fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('.');
    }
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"_-./".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Escaped text with `code` in backticks set as code.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", escape(part)));
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

/// Paragraphs (separated by blank lines) of `text`; a paragraph whose lines start with `- `
/// is a list.
fn paragraphs(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let lines: Vec<&str> = para.lines().map(str::trim).collect();
        if lines.iter().all(|l| l.starts_with("- ")) {
            out.push_str("<ul>");
            for l in lines {
                out.push_str(&format!("<li>{}</li>", inline(&l[2..])));
            }
            out.push_str("</ul>\n");
        } else {
            out.push_str(&format!("<p>{}</p>\n", inline(&lines.join(" "))));
        }
    }
    out
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Supported => "supported",
        Verdict::Mixed => "mixed",
        Verdict::NotSupported => "not-supported",
    }
}

const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 72rem; padding: 0.4rem 1.25rem 3rem; font: 1.1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #111; background: #fff; }
h1 { font-size: 1.45rem; line-height: 1.2; margin: 0.2rem 0; }
h2 { font-size: 1.6rem; line-height: 1.25; margin: 0 0 0.5rem; }
h3 { font-size: 1.15rem; margin: 1rem 0 0.3rem; }
a { color: #0b4f8a; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.95em; }
pre { background: #f3f4f6; padding: 0.6rem 0.8rem; border-radius: 4px; white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.3rem 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border-bottom: 1px solid #d1d5db; padding: 0.35rem 0.6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: 700; white-space: nowrap; border-radius: 4px; padding: 0.1rem 0.5rem; }
.supported { background: #d1fae5; color: #064e3b; }
.mixed { background: #fef3c7; color: #78350f; }
.not-supported { background: #fee2e2; color: #7f1d1d; }
.kind { font-size: 0.8em; font-weight: 600; text-transform: uppercase; letter-spacing: 0.04em; border: 1px solid #6b7280; border-radius: 4px; padding: 0 0.35rem; white-space: nowrap; color: #374151; }
.kind-counterexample { border-color: #b91c1c; color: #b91c1c; }
.kind-correction { border-color: #1d4ed8; color: #1d4ed8; }
.holds::before { content: "\2713  "; }
.fails::before { content: "\2717  "; }
.flips::before { content: "\00B1  "; }
.line { margin: 0.1rem 0 0.3rem; font-size: 1rem; }
table.summary { width: 100%; table-layout: fixed; font-size: 0.85rem; line-height: 1.2; margin: 0.2rem 0; }
table.summary th, table.summary td { padding: 0.12rem 0.4rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
table.summary tr.group th { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.05em; color: #374151; background: #f3f4f6; padding-top: 0.15rem; }
table.summary .key { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.78rem; }
table.summary col.c-n { width: 2.1rem; } table.summary col.c-kind { width: 6.6rem; } table.summary col.c-seeds { width: 2.9rem; }
table.summary col.c-verdict { width: 8.3rem; } table.summary col.c-key { width: 16.2rem; } table.summary col.c-control { width: 6.4rem; }
table.summary thead th { font-size: 0.75rem; }
table.summary .kind { font-size: 0.68rem; letter-spacing: 0; padding: 0 0.2rem; }
table.summary .ctl .verdict { font-size: 0.75rem; padding: 0 0.3rem; }
section.claim { border-top: 3px solid #111; padding-top: 1rem; margin-top: 2.5rem; }
blockquote { margin: 0.5rem 0; padding: 0.4rem 1rem; border-left: 5px solid #9ca3af; background: #f9fafb; font-size: 1.15rem; }
blockquote cite { display: block; font-size: 0.9rem; color: #4b5563; font-style: normal; margin-top: 0.2rem; }
.paraphrase { margin: 0.5rem 0; padding: 0.4rem 1rem; border-left: 5px dashed #9ca3af; font-size: 1.1rem; }
.paraphrase .who { display: block; font-size: 0.9rem; color: #4b5563; }
.corrected { border-left-color: #1d4ed8; background: #eff6ff; }
figure { margin: 0.8rem 0; }
figcaption { font-size: 1rem; color: #374151; }
img { max-width: 100%; height: auto; border: 1px solid #e5e7eb; }
.explanation { font-size: 1.2rem; }
.note { border: 1px solid #d1d5db; padding: 0.2rem 1rem; border-radius: 4px; }
.control { border: 2px solid #6b7280; padding: 0.3rem 1rem; border-radius: 6px; margin: 0.8rem 0; }
.more { font-size: 0.95rem; color: #374151; }
@media (max-width: 40rem) { body { font-size: 1rem; padding: 0.5rem; } h1 { font-size: 1.3rem; } h2 { font-size: 1.25rem; } th, td { padding: 0.3rem; } table.summary col.c-key, table.summary col.c-kind, table.summary col.c-control { width: 0; } table.summary .key, table.summary .kindcell, table.summary .ctl { display: none; } }
@media print {
  body { max-width: none; font-size: 11pt; }
  a { color: #000; text-decoration: none; }
  .verdict, .supported, .mixed, .not-supported { background: none; border: 1px solid #000; color: #000; }
  section.claim { break-before: page; border-top: none; margin-top: 0; }
  figure, table, blockquote, pre { break-inside: avoid; }
  pre, blockquote { background: none; }
}
"#;

fn verdict_span(v: Verdict) -> String {
    format!(
        "<span class=\"verdict {}\">{}</span>",
        verdict_class(v),
        v.text()
    )
}

fn kind_span(k: Kind) -> String {
    format!("<span class=\"kind kind-{0}\">{0}</span>", escape(k.text()))
}

/// A number in 2 or 3 significant digits, for the summary's one line.
fn compact_value(v: &super::Value) -> String {
    match v {
        super::Value::Num(x) if x.is_finite() && *x != 0.0 => {
            let a = x.abs();
            if x.fract() == 0.0 && a < 1e5 {
                format!("{x:.0}")
            } else if (0.01..1e4).contains(&a) {
                let digits = (2 - a.log10().floor() as i32).clamp(0, 4) as usize;
                format!("{x:.digits$}")
            } else {
                format!("{x:.1e}")
            }
        }
        v => v.display(),
    }
}

/// `4.4e-32 [3.6e-32, 4.9e-32]`: a quantity's median and range, short.
fn compact(q: &super::Measured) -> String {
    if q.values.len() < 2 || q.min == q.max || q.min == super::Value::Null {
        compact_value(&q.median)
    } else {
        format!(
            "{} [{}, {}]",
            compact_value(&q.median),
            compact_value(&q.min),
            compact_value(&q.max)
        )
    }
}

/// `3 seeds` or `3 seeds + control`, as the summary says it.
fn seeds_cell(t: &Tested) -> String {
    t.seeds.len().max(1).to_string()
}

/// The first screen's line under the title.
fn status_line(s: &Summary) -> String {
    let mut runs: Vec<usize> = s
        .claims
        .iter()
        .map(|c| c.tested.seeds.len().max(1))
        .collect();
    runs.sort_unstable();
    runs.dedup();
    let seeds = match (runs.first(), runs.last()) {
        (Some(a), Some(b)) if a == b => format!("{a} seeds each"),
        (Some(a), Some(b)) => format!("{a} to {b} seeds each"),
        _ => String::new(),
    };
    format!(
        "<p class=\"line\"><strong>{} claims: {} supported, {} mixed, {} not supported</strong> · {seeds} from seed {} · {} · ran in {:.0} s · <a href=\"slides.html\">slides</a> · <a href=\"#how\">how to read this page</a></p>\n",
        s.claims.len(),
        s.supported,
        s.mixed,
        s.not_supported,
        s.first_seed,
        if s.controls {
            "controls ran"
        } else {
            "controls not run (<code>--controls</code>)"
        },
        s.seconds
    )
}

/// The summary: one row per claim, grouped by the diary's argument, that fits the first screen
/// of a 1024x768 projector.
fn summary_table(s: &Summary) -> String {
    let controls = s.controls;
    let cols = if controls { 7 } else { 6 };
    let mut h =
        String::from("<nav aria-label=\"summary\">\n<table class=\"summary\" id=\"summary\">\n");
    h.push_str("<colgroup><col class=\"c-n\"><col class=\"c-title\"><col class=\"c-kind\"><col class=\"c-seeds\"><col class=\"c-verdict\"><col class=\"c-key\">");
    if controls {
        h.push_str("<col class=\"c-control\">");
    }
    h.push_str("</colgroup>\n<thead><tr><th>#</th><th>Claim</th><th class=\"kindcell\">Kind</th><th title=\"runs, one per seed\">Seeds</th><th>Verdict</th><th class=\"key\">Key number: median [range]</th>");
    if controls {
        h.push_str("<th class=\"ctl\">Control</th>");
    }
    h.push_str("</tr></thead>\n");
    for (argument, claims) in s.groups() {
        h.push_str(&format!(
            "<tbody><tr class=\"group\"><th colspan=\"{cols}\" scope=\"rowgroup\">{}</th></tr>\n",
            escape(argument)
        ));
        for (n, c) in claims {
            let key = c
                .key_quantity()
                .map(|q| {
                    format!(
                        "<span title=\"{}: {}\">{} {}</span>",
                        escape(&q.label),
                        escape(&q.display()),
                        escape(&q.name),
                        escape(&compact(q))
                    )
                })
                .unwrap_or_default();
            h.push_str(&format!(
                "<tr class=\"row\" data-claim=\"{name}\"><td>{n}</td><td title=\"{title}\"><a href=\"#{anchor}\">{title}</a></td><td class=\"kindcell\">{kind}</td><td>{seeds}</td><td class=\"verdict {class}\" data-claim=\"{name}\">{verdict}</td><td class=\"key\">{key}</td>",
                name = escape(&c.name),
                anchor = href(&c.name),
                title = escape(&c.title),
                kind = kind_span(c.kind),
                seeds = seeds_cell(&c.tested),
                class = verdict_class(c.verdict()),
                verdict = c.verdict().text(),
            ));
            if controls {
                h.push_str(&format!(
                    "<td class=\"ctl\">{}</td>",
                    c.control
                        .as_ref()
                        .map(|k| verdict_span(k.tested.verdict))
                        .unwrap_or_default()
                ));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody>\n");
    }
    h.push_str("</table>\n</nav>\n");
    h
}

/// The page.
pub fn html(s: &Summary) -> String {
    let mut h = head("bn-lab: the diary's claims, reproduced", STYLE);
    h.push_str("<header>\n<h1>ResNets and BatchNorm: the diary's claims, reproduced</h1>\n");
    h.push_str(&status_line(s));
    h.push_str("</header>\n");
    h.push_str(&summary_table(s));
    h.push_str(&format!(
        "<section id=\"how\"><h2>How to read this page</h2>\n<p>Every claim was run by <code>bn-lab reproduce</code> ({} {}) from the files in \
         <code>experiments/</code>, once per seed: the picture (the first seed's), the numbers and the verdict come from this run, \
         and each section shows the command that reruns it. The verdict over seeds is <strong>{}</strong> \
         (<span class=\"verdict supported\">supported</span>, <span class=\"verdict not-supported\">not supported</span>, \
         <span class=\"verdict mixed\">mixed</span>). Numbers are medians over the seeds with their range in brackets. \
         A claim's <em>control</em> is its command changed the least that should make the verdict come out differently: \
         a check that gives the control the claim's verdict could not fail, and is no evidence.</p>\n\
         <p>Kinds: {} the diary's own words, quoted; {} a cited paper's claim (paraphrased unless quoted); \
         {} a claim the data refute, and the verdict is about the claim as stated; {} the diary's algebra, \
         where the verdict is about the corrected statement shown beside the diary's.</p>\n</section>\n",
        escape(s.tool.name),
        escape(s.tool.version),
        RULE,
        kind_span(Kind::Diary),
        kind_span(Kind::Paper),
        kind_span(Kind::Counterexample),
        kind_span(Kind::Correction),
    ));
    for (i, c) in s.claims.iter().enumerate() {
        h.push_str(&section(i + 1, c));
    }
    h.push_str(&format!(
        "<footer><p class=\"more\">Written by {} {}; every number on this page is in \
         <a href=\"summary.json\">summary.json</a> and in each run's JSON, with the seed and the \
         configuration that reproduce it.</p></footer>\n</body>\n</html>\n",
        escape(s.tool.name),
        escape(s.tool.version)
    ));
    h
}

fn head(title: &str, style: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{style}</style>\n</head>\n<body>\n",
        escape(title)
    )
}

/// The claim's words as the page shows them: a quotation, or a paraphrase marked as one; for a
/// correction, the corrected statement beside the diary's; for a counterexample, what the
/// verdict is about.
fn words(c: &ClaimResult) -> String {
    let source = if c.source == "diary" {
        "the diary".to_string()
    } else {
        escape(&c.source)
    };
    let mut h = if c.quote {
        format!(
            "<blockquote>“{}”<cite>{source}{}</cite></blockquote>\n",
            escape(&c.claim),
            if c.kind == Kind::Correction {
                ", as written"
            } else {
                ""
            }
        )
    } else {
        format!(
            "<p class=\"paraphrase\"><span class=\"who\">Paraphrase of {source}:</span>{}</p>\n",
            escape(&c.claim)
        )
    };
    if let Some(corrected) = &c.corrected {
        h.push_str(&format!(
            "<blockquote class=\"corrected\">{}<cite>corrected: the verdict is about this statement, not the diary's</cite></blockquote>\n",
            inline(corrected)
        ));
    }
    if c.kind == Kind::Counterexample {
        h.push_str("<p class=\"more\"><strong>Counterexample:</strong> the claim is tested as stated where it is expected to fail; <em>not supported</em> means the data refute it here.</p>\n");
    }
    h
}

fn caption(c: &ClaimResult) -> String {
    match &c.caption {
        Some(text) => escape(text),
        None => format!(
            "The first figure of <code>{}</code> at seed {}.",
            escape(&c.tested.command),
            c.tested
                .seeds
                .first()
                .map_or("(none)".into(), u64::to_string)
        ),
    }
}

fn section(n: usize, c: &ClaimResult) -> String {
    let t = &c.tested;
    let mut h = format!(
        "<section class=\"claim\" id=\"{}\">\n<h2>{n}. {} {} {}</h2>\n",
        href(&c.name),
        escape(&c.title),
        verdict_span(c.verdict()),
        kind_span(c.kind)
    );
    h.push_str(&words(c));
    h.push_str(&format!(
        "<p class=\"explanation\">{}</p>\n",
        inline(&c.explanation)
    ));
    h.push_str(&format!(
        // The picture links to itself: full size on a phone.
        "<figure><a href=\"{0}\"><img src=\"{0}\" alt=\"{1}\"></a><figcaption>{2}</figcaption></figure>\n",
        href(&t.figure),
        escape(c.caption.as_deref().unwrap_or(&c.title)),
        caption(c)
    ));
    h.push_str(&format!(
        "<h3>The numbers that decided it ({})</h3>\n",
        escape(&t.seeds_text())
    ));
    h.push_str(&numbers(t));
    if let Some(k) = &c.control {
        let same = k.tested.verdict == t.verdict;
        h.push_str(&format!(
            "<div class=\"control\"><h3>Control: {} {}</h3>\n<p><code>{}</code>: {}</p>\n<p class=\"more\">{}</p>\n{}</div>\n",
            verdict_span(k.tested.verdict),
            if same {
                "<strong>the same verdict as the claim: these checks did not tell the two apart</strong>"
            } else {
                "(differs from the claim's, as a control should)"
            },
            escape(&k.tested.command),
            escape(&k.why),
            escape(&k.tested.verdict_line()),
            numbers(&k.tested)
        ));
    }
    if let Some(note) = &c.note {
        h.push_str(&format!(
            "<div class=\"note\">\n{}</div>\n",
            paragraphs(note)
        ));
    }
    let seeds = if t.seeds.is_empty() {
        String::new()
    } else {
        format!(
            " (add <code>--seed S</code> for the seeds above: {})",
            escape(&t.seeds_text())
        )
    };
    h.push_str(&format!(
        "<h3>Rerun it</h3>\n<pre><code>{}</code></pre>\n<p class=\"more\">one run{seeds}; or every seed with its checks: <code>{}</code>, and its control: <code>{} --control</code></p>\n",
        escape(&t.command),
        escape(&c.rerun),
        escape(&c.rerun)
    ));
    let others: Vec<String> = t
        .figures
        .iter()
        .filter(|f| **f != t.figure)
        .map(|f| format!("<a href=\"{}\">{}</a>", href(f), escape(f)))
        .collect();
    h.push_str(&format!(
        "<p class=\"more\">Files: <a href=\"{0}\">{3}</a>{1}; all seeds ran in {2:.1} s.</p>\n</section>\n",
        href(&t.json),
        if others.is_empty() {
            String::new()
        } else {
            format!(", {}", others.join(", "))
        },
        t.seconds,
        escape(&t.json)
    ));
    h
}

/// A run's quantities (median, range, each seed) and checks (per seed).
fn numbers(t: &Tested) -> String {
    let mut h = String::from(
        "<div class=\"scroll\"><table class=\"numbers\">\n<thead><tr><th>quantity</th><th>median [range]</th><th>each seed</th><th>what it is</th></tr></thead>\n<tbody>\n",
    );
    let list = |v: &[super::Value]| {
        v.iter()
            .map(super::Value::display)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for q in &t.quantities {
        h.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            escape(&q.name),
            escape(&q.display()),
            escape(&list(&q.values)),
            escape(&q.label)
        ));
    }
    h.push_str("</tbody>\n</table></div>\n<div class=\"scroll\"><table class=\"checks\">\n");
    h.push_str(
        "<thead><tr><th>check</th><th>each seed</th><th>result</th></tr></thead>\n<tbody>\n",
    );
    for o in &t.checks {
        let tally = o.tally();
        let class = tally.split(' ').next().unwrap_or("fails");
        h.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td class=\"{class}\">{}</td></tr>\n",
            escape(&o.check),
            escape(&o.values_text()),
            escape(&tally)
        ));
    }
    h.push_str("</tbody>\n</table></div>\n");
    h
}

const SLIDES_STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
html { scroll-snap-type: y mandatory; }
body { margin: 0; font: 1.25rem/1.35 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #111; background: #fff; }
section.slide { height: 100vh; max-width: 100vw; scroll-snap-align: start; display: flex; flex-direction: column; padding: 0.6rem 1.2rem; overflow: hidden; border-bottom: 1px solid #d1d5db; }
.top { font-size: 0.9rem; color: #4b5563; display: flex; justify-content: space-between; gap: 1rem; }
.top a { color: #0b4f8a; }
h1 { font-size: 1.8rem; line-height: 1.15; margin: 0.2rem 0; }
h2 { font-size: 1.7rem; line-height: 1.15; margin: 0.15rem 0 0.3rem; }
.words { font-size: 1.05rem; margin: 0 0 0.3rem; color: #1f2937; max-height: 5.3em; overflow: hidden; }
figure { flex: 1 1 auto; min-height: 0; margin: 0; display: flex; flex-direction: column; align-items: center; }
figure img { flex: 1 1 auto; min-height: 0; max-width: 100%; object-fit: contain; }
figcaption { font-size: 0.95rem; color: #374151; flex: none; }
details { flex: none; margin-top: 0.3rem; }
summary { cursor: pointer; font-weight: 700; font-size: 1.1rem; color: #0b4f8a; }
.reveal { display: flex; flex-wrap: wrap; gap: 0.4rem 1.5rem; align-items: baseline; font-size: 1.5rem; }
.big { font-size: 1.7rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.label { font-size: 0.95rem; color: #374151; }
.verdict { font-weight: 700; white-space: nowrap; border-radius: 4px; padding: 0.05rem 0.5rem; }
.supported { background: #d1fae5; color: #064e3b; }
.mixed { background: #fef3c7; color: #78350f; }
.not-supported { background: #fee2e2; color: #7f1d1d; }
.kind { font-size: 0.8em; font-weight: 600; text-transform: uppercase; letter-spacing: 0.04em; border: 1px solid #6b7280; border-radius: 4px; padding: 0 0.35rem; }
ol { font-size: 1.2rem; columns: 2; margin: 0.4rem 0; }
"#;

/// One claim per screen, for a projector: the figure at full width and, behind a click (so a
/// class can predict first), the verdict and the key numbers in large type. No scripts: the
/// reveal is a `<details>` element, and slides snap into place as the page scrolls.
pub fn slides(s: &Summary) -> String {
    let mut h = head("bn-lab: the diary's claims, one per screen", SLIDES_STYLE);
    h.push_str("<section class=\"slide\" id=\"start\">\n<h1>ResNets and BatchNorm: the diary's claims, one per screen</h1>\n");
    h.push_str(&format!(
        "<p class=\"words\">{} claims, each run over its seeds by <code>bn-lab reproduce</code>. Predict each verdict before you reveal it. Scroll or press Page Down for the next claim; <a href=\"index.html\">the full page</a> has every number.</p>\n<ol>",
        s.claims.len()
    ));
    for c in &s.claims {
        h.push_str(&format!(
            "<li><a href=\"#{}\">{}</a></li>",
            href(&format!("slide-{}", c.name)),
            escape(&c.title)
        ));
    }
    h.push_str("</ol>\n</section>\n");
    let n = s.claims.len();
    for (i, c) in s.claims.iter().enumerate() {
        h.push_str(&slide(i + 1, n, c));
    }
    h.push_str("</body>\n</html>\n");
    h
}

fn slide(i: usize, n: usize, c: &ClaimResult) -> String {
    let t = &c.tested;
    let words = if c.quote {
        format!("“{}”", escape(&c.claim))
    } else {
        format!("Paraphrase of {}: {}", escape(&c.source), escape(&c.claim))
    };
    let words = match &c.corrected {
        Some(corr) => format!("{words}<br><strong>Corrected:</strong> {}", inline(corr)),
        None => words,
    };
    let mut h = format!(
        "<section class=\"slide\" id=\"{}\">\n<div class=\"top\"><span>{i} / {n} · {} · {}</span><span><a href=\"index.html#{}\">details</a></span></div>\n<h2>{}</h2>\n<p class=\"words\">{words}</p>\n",
        href(&format!("slide-{}", c.name)),
        escape(&c.argument),
        kind_span(c.kind),
        href(&c.name),
        escape(&c.title),
    );
    h.push_str(&format!(
        "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
        href(&t.figure),
        escape(c.caption.as_deref().unwrap_or(&c.title)),
        caption(c)
    ));
    let key = c
        .key_quantity()
        .map(|q| {
            format!(
                "<span class=\"big\">{}</span> <span class=\"label\">{}</span>",
                escape(&q.display()),
                escape(&q.label)
            )
        })
        .unwrap_or_default();
    let held: usize = t.checks.iter().map(super::CheckOverSeeds::held).sum();
    let total = t.checks.len() * t.seeds.len().max(1);
    let control = c
        .control
        .as_ref()
        .map(|k| {
            format!(
                " <span class=\"label\">control:</span> {}",
                verdict_span(k.tested.verdict)
            )
        })
        .unwrap_or_default();
    h.push_str(&format!(
        "<details><summary>Reveal the verdict</summary><div class=\"reveal\">{} <span class=\"label\">{held} of {total} checks held over {}</span>{control}<br>{key}</div></details>\n</section>\n",
        verdict_span(c.verdict()),
        escape(&t.seeds_text()),
    ));
    h
}
