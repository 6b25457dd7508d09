//! `bn-lab reproduce`'s page (`index.html`) and record (`summary.json`): one self-contained
//! HTML file, no scripts, no fonts or styles from anywhere, the figures beside it in the claims'
//! directories. It reads on a projector (large type, verdicts in words as well as colours), on
//! a phone (one column, images and tables that shrink or scroll) and on paper (a print style
//! without colours behind text, and sections that do not break across pages).

use serde::Serialize;

use super::ClaimResult;
use super::check::Verdict;

/// What `summary.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub tool: crate::experiment::ToolInfo,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    pub supported: usize,
    pub mixed: usize,
    pub not_supported: usize,
    pub claims: Vec<ClaimResult>,
}

impl Summary {
    pub fn new(claims: &[ClaimResult], seconds: f64) -> Summary {
        let count = |v: Verdict| claims.iter().filter(|c| c.verdict == v).count();
        Summary {
            tool: crate::experiment::ToolInfo::current(),
            seconds,
            supported: count(Verdict::Supported),
            mixed: count(Verdict::Mixed),
            not_supported: count(Verdict::NotSupported),
            claims: claims.to_vec(),
        }
    }
}

/// The verdicts as a text table, for the terminal.
pub fn table(claims: &[ClaimResult]) -> String {
    let width = claims
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut s = format!("{:width$}  {:13}  title\n", "claim", "verdict");
    for c in claims {
        s.push_str(&format!(
            "{:width$}  {:13}  {}\n",
            c.name,
            c.verdict.text(),
            c.title
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
body { margin: 0 auto; max-width: 72rem; padding: 1rem 1.25rem 3rem; font: 1.1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #111; background: #fff; }
h1 { font-size: 2.1rem; line-height: 1.2; margin: 0.5rem 0; }
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
.holds::before { content: "\2713  "; }
.fails::before { content: "\2717  "; }
section.claim { border-top: 3px solid #111; padding-top: 1rem; margin-top: 2.5rem; }
blockquote { margin: 0.5rem 0; padding: 0.4rem 1rem; border-left: 5px solid #9ca3af; background: #f9fafb; font-size: 1.15rem; }
blockquote cite { display: block; font-size: 0.9rem; color: #4b5563; font-style: normal; margin-top: 0.2rem; }
figure { margin: 0.8rem 0; }
img { max-width: 100%; height: auto; border: 1px solid #e5e7eb; }
.explanation { font-size: 1.2rem; }
.note { border: 1px solid #d1d5db; padding: 0.2rem 1rem; border-radius: 4px; }
.more { font-size: 0.95rem; color: #374151; }
@media (max-width: 40rem) { body { font-size: 1rem; padding: 0.5rem; } h1 { font-size: 1.5rem; } h2 { font-size: 1.25rem; } th, td { padding: 0.3rem; } .summary .from { display: none; } }
@media print {
  body { max-width: none; font-size: 11pt; }
  a { color: #000; text-decoration: none; }
  .verdict, .supported, .mixed, .not-supported { background: none; border: 1px solid #000; color: #000; }
  section.claim { break-before: page; border-top: none; margin-top: 0; }
  figure, table, blockquote, pre { break-inside: avoid; }
  pre, blockquote { background: none; }
}
"#;

/// The page.
pub fn html(s: &Summary) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>bn-lab: the diary's claims, reproduced</title>\n");
    h.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    h.push_str("<header>\n<h1>ResNets and BatchNorm: the diary's claims, reproduced</h1>\n");
    h.push_str(&format!(
        "<p>Every claim below was run by <code>bn-lab reproduce</code> ({} {}) from the files in \
         <code>experiments/</code>: the picture, the numbers and the verdict come from this run, \
         and each section shows the command that reruns it. A verdict is computed from the \
         checks in the claim's file: <span class=\"verdict supported\">supported</span> when \
         every check holds, <span class=\"verdict not-supported\">not supported</span> when none \
         does, <span class=\"verdict mixed\">mixed</span> otherwise.</p>\n",
        escape(s.tool.name),
        escape(s.tool.version)
    ));
    h.push_str(&format!(
        "<p><strong>{} claims: {} supported, {} mixed, {} not supported</strong> (ran in {:.0} s).</p>\n</header>\n",
        s.claims.len(),
        s.supported,
        s.mixed,
        s.not_supported,
        s.seconds
    ));
    h.push_str("<nav aria-label=\"summary\">\n<div class=\"scroll\"><table class=\"summary\">\n");
    h.push_str(
        "<thead><tr><th>#</th><th>Claim</th><th class=\"from\">From</th><th>Verdict</th></tr></thead>\n<tbody>\n",
    );
    for (i, c) in s.claims.iter().enumerate() {
        h.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"#{}\">{}</a></td><td class=\"from\">{}</td><td class=\"verdict {}\" data-claim=\"{}\">{}</td></tr>\n",
            i + 1,
            href(&c.name),
            escape(&c.title),
            escape(&c.source),
            verdict_class(c.verdict),
            escape(&c.name),
            c.verdict.text()
        ));
    }
    h.push_str("</tbody>\n</table></div>\n</nav>\n");
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

fn section(n: usize, c: &ClaimResult) -> String {
    let mut h = format!(
        "<section class=\"claim\" id=\"{}\">\n<h2>{n}. {} <span class=\"verdict {}\">{}</span></h2>\n",
        href(&c.name),
        escape(&c.title),
        verdict_class(c.verdict),
        c.verdict.text()
    );
    h.push_str(&format!(
        "<blockquote>{}<cite>{}</cite></blockquote>\n",
        escape(&c.claim),
        if c.source == "diary" {
            "the diary (shared/diary.md)".to_string()
        } else {
            escape(&c.source)
        }
    ));
    h.push_str(&format!(
        "<p class=\"explanation\">{}</p>\n",
        inline(&c.explanation)
    ));
    h.push_str(&format!(
        // The picture links to itself: full size on a phone.
        "<figure><a href=\"{0}\"><img src=\"{0}\" alt=\"{1}\"></a><figcaption class=\"more\">{2}</figcaption></figure>\n",
        href(&c.figure),
        escape(&c.title),
        inline(&format!("`{}`", c.figure))
    ));
    h.push_str(
        "<h3>The numbers that decided it</h3>\n<div class=\"scroll\"><table class=\"numbers\">\n",
    );
    h.push_str(
        "<thead><tr><th>quantity</th><th>value</th><th>what it is</th></tr></thead>\n<tbody>\n",
    );
    for q in &c.quantities {
        h.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            escape(&q.name),
            escape(&q.value.display()),
            escape(&q.label)
        ));
    }
    h.push_str("</tbody>\n</table></div>\n<div class=\"scroll\"><table class=\"checks\">\n");
    h.push_str("<thead><tr><th>check</th><th>values</th><th>result</th></tr></thead>\n<tbody>\n");
    for o in &c.checks {
        let (class, word) = if o.holds {
            ("holds", "holds")
        } else {
            ("fails", "fails")
        };
        h.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"num\">{} vs {}</td><td class=\"{class}\">{word}</td></tr>\n",
            escape(&o.check),
            escape(&o.left.display()),
            escape(&o.right.display())
        ));
    }
    h.push_str("</tbody>\n</table></div>\n");
    if let Some(note) = &c.note {
        h.push_str(&format!(
            "<div class=\"note\">\n{}</div>\n",
            paragraphs(note)
        ));
    }
    h.push_str(&format!(
        "<h3>Rerun it</h3>\n<pre><code>{}</code></pre>\n<p class=\"more\">or, with its check: <code>{}</code></p>\n",
        escape(&c.command),
        escape(&c.rerun)
    ));
    let others: Vec<String> = c
        .figures
        .iter()
        .filter(|f| **f != c.figure)
        .map(|f| format!("<a href=\"{}\">{}</a>", href(f), escape(f)))
        .collect();
    h.push_str(&format!(
        "<p class=\"more\">Files: <a href=\"{0}\">{3}</a>{1}; ran in {2:.1} s.</p>\n</section>\n",
        href(&c.json),
        if others.is_empty() {
            String::new()
        } else {
            format!(", {}", others.join(", "))
        },
        c.seconds,
        escape(&c.json)
    ));
    h
}
