//! Experiment files: one claim each, in TOML (the format is in the README, "Experiment files").
//! [`Claim::load`] reads and checks a file without running anything; every error is one line
//! naming the file, the line and the field.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use toml::Spanned;

use super::check::{Check, Path, Piece, Reduce, parse_template};
use crate::cli::{Cli, Command};
use crate::text::{
    describe_char, first_unsafe_char, is_unsafe_char, shell_line, shell_quote, visible_except,
};

/// A problem with an experiment file: `FILE:LINE: FIELD: what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// One quantity of a claim, read from the run's JSON.
#[derive(Debug, Clone)]
pub struct Quantity {
    pub name: String,
    pub label: String,
    pub path: Path,
    pub reduce: Option<Reduce>,
    /// The line of its `path`, for errors.
    pub line: usize,
}

/// The explanations for each verdict, as templates.
#[derive(Debug, Clone)]
pub struct Explain {
    pub supported: Vec<Piece>,
    pub mixed: Vec<Piece>,
    pub not_supported: Vec<Piece>,
}

/// A parsed, checked experiment file.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The file as given.
    pub file: PathBuf,
    /// Its name: the file name without `.toml` and without a leading `NN-` (the order on the
    /// page); `--only` and the output directory use it.
    pub name: String,
    pub title: String,
    pub claim: String,
    pub source: String,
    /// The command's words after `bn-lab`.
    pub args: Vec<String>,
    pub figure: Option<String>,
    pub quantities: Vec<Quantity>,
    pub checks: Vec<Check>,
    pub explain: Explain,
    pub note: Option<String>,
    /// What kind of claim it is, which decides how the page shows the claim's words.
    pub kind: Kind,
    /// Whether `claim` is a quotation (else a paraphrase of the source).
    pub quote: bool,
    /// For a [`Kind::Correction`]: the corrected statement, which the checks test.
    pub corrected: Option<String>,
    /// The diary's argument the claim belongs to (the page groups claims by it).
    pub argument: String,
    /// How many seeds a run uses unless `--seeds` says otherwise.
    pub seeds: usize,
    /// The quantity shown on the summary row (an index into `quantities`).
    pub key: usize,
    /// A sentence saying what the figure shows.
    pub caption: Option<String>,
    /// The command changed the least that should make the verdict come out differently.
    pub control: Option<Control>,
    /// Lines of fields named by errors found later (the command, the figure, the checks).
    pub(crate) command_line: usize,
    pub(crate) figure_line: Option<usize>,
    pub(crate) checks_line: usize,
}

/// What a claim's words are, and so what its verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The diary's own words, quoted exactly.
    Diary,
    /// A cited paper's claim (a paraphrase unless `quote = true`).
    Paper,
    /// A claim the data refute: the verdict is about the claim as stated.
    Counterexample,
    /// The diary's algebra, corrected: the verdict is about the corrected statement.
    Correction,
}

impl Kind {
    pub const NAMES: &'static str = "diary, paper, counterexample or correction";

    pub fn text(self) -> &'static str {
        match self {
            Kind::Diary => "diary",
            Kind::Paper => "paper",
            Kind::Counterexample => "counterexample",
            Kind::Correction => "correction",
        }
    }
}

/// A claim's control: its command changed the least that should change the verdict.
#[derive(Debug, Clone)]
pub struct Control {
    /// The command's words after `bn-lab`.
    pub args: Vec<String>,
    /// Why this change should make the verdict come out differently.
    pub why: String,
    pub(crate) line: usize,
}

/// The most seeds a file may ask for (`--seeds` has the same bound).
pub const MAX_SEEDS: usize = 100;

/// The seeds of a file that does not say.
pub const DEFAULT_SEEDS: usize = 3;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    command: Spanned<String>,
    why: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    kind: Spanned<String>,
    #[serde(default)]
    quote: Option<Spanned<bool>>,
    #[serde(default)]
    corrected: Option<Spanned<String>>,
    argument: Spanned<String>,
    #[serde(default)]
    seeds: Option<Spanned<i64>>,
    #[serde(default)]
    key: Option<Spanned<String>>,
    #[serde(default)]
    caption: Option<Spanned<String>>,
    #[serde(default)]
    control: Option<Spanned<RawControl>>,
    title: Spanned<String>,
    claim: Spanned<String>,
    source: Spanned<String>,
    command: Spanned<String>,
    #[serde(default)]
    figure: Option<Spanned<String>>,
    checks: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    note: Option<Spanned<String>>,
    quantities: Spanned<Ordered<Spanned<RawQuantity>>>,
    explain: Spanned<RawExplain>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuantity {
    path: Spanned<String>,
    label: Spanned<String>,
    #[serde(default)]
    reduce: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExplain {
    supported: Spanned<String>,
    mixed: Spanned<String>,
    not_supported: Spanned<String>,
}

/// A TOML table in the order it was written.
struct Ordered<T>(Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of quantities")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<T>, A::Error> {
                let mut v = Vec::new();
                while let Some((k, t)) = map.next_entry::<String, T>()? {
                    v.push((k, t));
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Subcommands an experiment file may not name: they write no JSON to check, or run files
/// themselves.
const NOT_IN_FILES: &[&str] = &["bench", "gradcheck", "run", "reproduce", "serve", "help"];

/// Flags an experiment file may not give: `bn-lab run` and `reproduce` decide where the files
/// go and what stdout shows, and a sweep's scheduler modes are not one run.
const FLAGS_NOT_IN_FILES: &[&str] = &[
    "--out",
    "--json",
    "--save-net",
    "--plan",
    "--point",
    "--collect",
    "--help",
    "-h",
    "--version",
    "-V",
];

/// The 1-based line of byte `offset` in `src`.
fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

/// The dotted field a line sets: `quantities.ratio.path` for `path = ...` under
/// `[quantities.ratio]`.
fn field_at(src: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = src.lines().collect();
    let text = lines.get(line.checked_sub(1)?)?.trim();
    let header = |t: &str| {
        t.strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .map(|t| t.trim_matches(['[', ']']).trim().to_string())
    };
    if let Some(h) = header(text) {
        return Some(h);
    }
    let key = text.split_once('=')?.0.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c))
    {
        return None;
    }
    let table = lines[..line - 1]
        .iter()
        .rev()
        .find_map(|l| header(l.trim()));
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// The error for a check or template naming `name`, which is not among the file's `known`
/// quantities.
fn not_a_quantity(name: &str, known: &[&str]) -> String {
    format!(
        "`{name}` is not a quantity of this file (it has: {})",
        known.join(", ")
    )
}

impl Claim {
    /// Read and check `file`: the TOML, every field, the command (as `bn-lab` parses it), the
    /// checks and the explanations. Nothing is run.
    pub fn load(file: &FsPath) -> Result<Claim, FileError> {
        let shown = file.display().to_string();
        let err = |line: Option<usize>, field: Option<&str>, message: String| FileError {
            file: shown.clone(),
            line,
            field: field.map(str::to_string),
            message,
        };
        let src = read_regular(file, MAX_FILE_BYTES).map_err(|m| err(None, None, m))?;
        Claim::parse(file, &src)
    }

    /// [`Claim::load`] on text already read.
    pub fn parse(file: &FsPath, src: &str) -> Result<Claim, FileError> {
        let reader = Reader {
            src,
            shown: file.display().to_string(),
        };
        let err = |line, field, message| reader.err(line, field, message);
        let name = claim_name(file);
        check_name(&name).map_err(|m| err(None, None, m))?;
        let raw: Raw = toml::from_str(src).map_err(|e| {
            let line = e.span().map(|s| line_of(src, s.start));
            let field = line
                .and_then(|l| field_at(src, l))
                .filter(|f| !e.message().contains(&format!("`{f}`")));
            err(line, field, e.message().trim().replace('\n', " "))
        })?;
        let at = |s: &Spanned<String>| reader.at(s);
        let text =
            |s: &Spanned<String>, field: &str, one_line: bool| reader.text(s, field, one_line);
        let title = text(&raw.title, "title", true)?;
        let claim = text(&raw.claim, "claim", true)?;
        let source = text(&raw.source, "source", true)?;
        let command_text = text(&raw.command, "command", true)?;
        let command_line = at(&raw.command);
        let args = command_words(&command_text)
            .map_err(|m| err(Some(command_line), Some("command".into()), m))?;
        let quantities = Claim::parse_quantities(&reader, &raw)?;
        let known: Vec<&str> = quantities.iter().map(|q| q.name.as_str()).collect();
        let checks_line = line_of(src, raw.checks.span().start);
        let checks = Claim::parse_checks(&reader, &raw, &known)?;
        let explain = Claim::parse_explain(&reader, raw.explain.get_ref(), &known)?;
        let figure = match &raw.figure {
            None => None,
            Some(f) => {
                let v = text(f, "figure", true)?;
                if !v.ends_with(".png") || v.contains('/') {
                    return Err(err(
                        Some(at(f)),
                        Some("figure".into()),
                        format!("`{v}` is not the file name of a figure (`grad_norms.png`)"),
                    ));
                }
                Some(v)
            }
        };
        let note = match &raw.note {
            None => None,
            Some(n) => Some(text(n, "note", false)?),
        };
        let Framing {
            kind,
            quote,
            corrected,
            argument,
            seeds,
            key,
            caption,
            control,
        } = framing(&reader, &raw, &known)?;
        let claim = Claim {
            file: file.to_path_buf(),
            name,
            title,
            claim,
            source,
            args,
            figure,
            quantities,
            checks,
            explain,
            note,
            kind,
            quote,
            corrected,
            argument,
            seeds,
            key,
            caption,
            control,
            command_line,
            figure_line: raw.figure.as_ref().map(at),
            checks_line,
        };
        // The commands as bn-lab reads them (the directory is a stand-in: nothing is written).
        claim.command(FsPath::new("bn-lab-out"))?;
        if claim.control.is_some() {
            claim.parse_words(Variant::Control, FsPath::new("bn-lab-out"), None)?;
        }
        Ok(claim)
    }

    /// The `[quantities]` of `raw` in the order written, each name, path, label and reduction
    /// checked; at least one.
    fn parse_quantities(reader: &Reader<'_>, raw: &Raw) -> Result<Vec<Quantity>, FileError> {
        let err = |line, field, message| reader.err(line, field, message);
        let at = |s: &Spanned<String>| reader.at(s);
        if raw.quantities.get_ref().0.is_empty() {
            return Err(err(
                Some(line_of(reader.src, raw.quantities.span().start)),
                Some("quantities".into()),
                "needs at least one quantity".into(),
            ));
        }
        // The table as written (the TOML reader hands its keys over sorted).
        let mut written: Vec<&(String, Spanned<RawQuantity>)> =
            raw.quantities.get_ref().0.iter().collect();
        written.sort_by_key(|(_, q)| q.span().start);
        let mut quantities = Vec::new();
        for (name, q) in written {
            let q = q.get_ref();
            let field = |f: &str| Some(format!("quantities.{name}.{f}"));
            plain(name, "").map_err(|m| {
                err(
                    Some(at(&q.path)),
                    Some(format!("quantities.{}", visible_except(name, ""))),
                    m,
                )
            })?;
            for (f, v) in [("path", Some(&q.path)), ("reduce", q.reduce.as_ref())] {
                if let Some(v) = v {
                    plain(v.get_ref(), "").map_err(|m| err(Some(at(v)), field(f), m))?;
                }
            }
            if !super::check::Check::parse(&format!("{name} == 0")).is_ok_and(|c| c.left == *name) {
                return Err(err(
                    Some(at(&q.path)),
                    Some(format!("quantities.{name}")),
                    "a quantity's name is letters, digits and `_`, starting with a letter".into(),
                ));
            }
            let path = Path::parse(q.path.get_ref())
                .map_err(|m| err(Some(at(&q.path)), field("path"), m))?;
            let label = reader.text(&q.label, &format!("quantities.{name}.label"), true)?;
            let reduce = match &q.reduce {
                None => None,
                Some(r) => Some(Reduce::parse(r.get_ref().trim()).ok_or_else(|| {
                    err(
                        Some(at(r)),
                        field("reduce"),
                        format!("`{}` is not one of {}", r.get_ref(), Reduce::NAMES),
                    )
                })?),
            };
            quantities.push(Quantity {
                name: name.clone(),
                label,
                path,
                reduce,
                line: at(&q.path),
            });
        }
        Ok(quantities)
    }

    /// The `checks` of `raw`, each parsed and naming only the `known` quantities; at least one.
    fn parse_checks(
        reader: &Reader<'_>,
        raw: &Raw,
        known: &[&str],
    ) -> Result<Vec<Check>, FileError> {
        let err = |line, field, message| reader.err(line, field, message);
        if raw.checks.get_ref().is_empty() {
            return Err(err(
                Some(line_of(reader.src, raw.checks.span().start)),
                Some("checks".into()),
                "needs at least one check".into(),
            ));
        }
        let mut checks = Vec::new();
        for (i, c) in raw.checks.get_ref().iter().enumerate() {
            let field = Some(format!("checks[{i}]"));
            plain(c.get_ref(), "").map_err(|m| err(Some(reader.at(c)), field.clone(), m))?;
            let check =
                Check::parse(c.get_ref()).map_err(|m| err(Some(reader.at(c)), field.clone(), m))?;
            if let Some(n) = check.names().into_iter().find(|n| !known.contains(n)) {
                return Err(err(Some(reader.at(c)), field, not_a_quantity(n, known)));
            }
            checks.push(check);
        }
        Ok(checks)
    }

    /// The `[explain]` templates, each naming only the `known` quantities.
    fn parse_explain(
        reader: &Reader<'_>,
        e: &RawExplain,
        known: &[&str],
    ) -> Result<Explain, FileError> {
        let template = |s: &Spanned<String>, which: &str| {
            let field = Some(format!("explain.{which}"));
            let body = reader.text(s, &format!("explain.{which}"), false)?;
            let pieces = parse_template(&body)
                .map_err(|m| reader.err(Some(reader.at(s)), field.clone(), m))?;
            for p in &pieces {
                if let Piece::Quantity { name, .. } = p
                    && !known.contains(&name.as_str())
                {
                    return Err(reader.err(
                        Some(reader.at(s)),
                        field.clone(),
                        not_a_quantity(name, known),
                    ));
                }
            }
            Ok(pieces)
        };
        Ok(Explain {
            supported: template(&e.supported, "supported")?,
            mixed: template(&e.mixed, "mixed")?,
            not_supported: template(&e.not_supported, "not_supported")?,
        })
    }

    /// The command exactly as a user types it (each word quoted for a shell where it needs it).
    pub fn command_text(&self) -> String {
        format!("bn-lab {}", shell_line(&self.args))
    }

    /// `bn-lab run FILE`, the command that reruns this claim with its check, the file's path
    /// quoted for a shell.
    pub fn rerun_text(&self) -> String {
        format!("bn-lab run {}", shell_quote(&self.file.to_string_lossy()))
    }

    /// An error about this file.
    pub fn error(&self, line: Option<usize>, field: &str, message: impl Into<String>) -> FileError {
        FileError {
            file: self.file.display().to_string(),
            line,
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// The file's command, parsed as `bn-lab` parses its command line, writing into `out`.
    pub fn command(&self, out: &FsPath) -> Result<Command, FileError> {
        self.parse_words(Variant::Claim, out, None)
    }

    /// The words after `bn-lab` of the claim's command or its control's.
    pub fn args_of(&self, variant: Variant) -> &[String] {
        match (variant, &self.control) {
            (Variant::Control, Some(c)) => &c.args,
            _ => &self.args,
        }
    }

    /// `bn-lab ...` of the claim or its control, quoted for a shell.
    pub fn command_text_of(&self, variant: Variant) -> String {
        format!("bn-lab {}", shell_line(self.args_of(variant)))
    }

    /// The seeds of `n` runs from `first` (`--seed` stepped by [`seed_stride`]); `[None]`, one
    /// run, for a command that takes no `--seed` (its result does not depend on one).
    pub fn seeds_of(&self, variant: Variant, first: u64, n: usize) -> Vec<Option<u64>> {
        if !self.takes_seed(variant) {
            return vec![None];
        }
        let stride = seed_stride(self.args_of(variant));
        // Plan::check has refused seeds past u64::MAX.
        (0..n as u64)
            .map(|i| Some(first.saturating_add(i.saturating_mul(stride))))
            .collect()
    }

    /// Whether the command has a `--seed` flag.
    fn takes_seed(&self, variant: Variant) -> bool {
        self.parse_words(variant, FsPath::new("bn-lab-out"), Some(0))
            .is_ok()
    }

    /// The claim's or the control's command with `--seed SEED`, writing into `out`.
    pub fn parse_words(
        &self,
        variant: Variant,
        out: &FsPath,
        seed: Option<u64>,
    ) -> Result<Command, FileError> {
        let mut words: Vec<std::ffi::OsString> = vec!["bn-lab".into()];
        words.extend(self.args_of(variant).iter().map(Into::into));
        if let Some(seed) = seed {
            words.push(format!("--seed={seed}").into());
        }
        // One word, so that a directory whose name starts with `-` is read as the value.
        let mut flag = std::ffi::OsString::from("--out=");
        flag.push(out.as_os_str());
        words.push(flag);
        use clap::Parser;
        Cli::try_parse_from(words)
            .map(|cli| cli.command)
            .map_err(|e| {
                let message = crate::flags::clap_error_line(&e);
                match (variant, &self.control) {
                    (Variant::Control, Some(c)) => {
                        self.error(Some(c.line), "control.command", message)
                    }
                    _ => self.error(Some(self.command_line), "command", message),
                }
            })
    }
}

/// A claim's own command, or its control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Claim,
    Control,
}

/// What a claim's words are and how it runs, beyond its command and checks: the fields of
/// issue 28 (kind, quote, corrected, argument, seeds, key, caption, control).
struct Framing {
    kind: Kind,
    quote: bool,
    corrected: Option<String>,
    argument: String,
    seeds: usize,
    key: usize,
    caption: Option<String>,
    control: Option<Control>,
}

/// The text of a file being parsed, for errors naming it and for its fields' lines.
struct Reader<'a> {
    src: &'a str,
    shown: String,
}

impl Reader<'_> {
    fn err(&self, line: Option<usize>, field: Option<String>, message: String) -> FileError {
        FileError {
            file: self.shown.clone(),
            line,
            field,
            message,
        }
    }

    fn at<T>(&self, s: &Spanned<T>) -> usize {
        line_of(self.src, s.span().start)
    }

    /// A text field: plain text, not empty, trimmed, one line when `one_line`.
    fn text(&self, s: &Spanned<String>, field: &str, one_line: bool) -> Result<String, FileError> {
        // A file saved with CRLF line ends means newlines.
        let v = s.get_ref().replace("\r\n", "\n");
        // Before trimming, which would hide a leading `\r` or tab; newlines at either end
        // are trimmed, and a one-line field is refused one inside below.
        plain(&v, "\n").map_err(|m| self.err(Some(self.at(s)), Some(field.into()), m))?;
        let v = v.trim();
        if v.is_empty() {
            return Err(self.err(Some(self.at(s)), Some(field.into()), "is empty".into()));
        }
        if one_line && v.contains('\n') {
            return Err(self.err(
                Some(self.at(s)),
                Some(field.into()),
                "must be one line".into(),
            ));
        }
        Ok(v.to_string())
    }
}

/// The [`Framing`] fields of `raw`, checked (`known` are the file's quantities).
fn framing(reader: &Reader<'_>, raw: &Raw, known: &[&str]) -> Result<Framing, FileError> {
    let unknown = |name: &str| {
        format!(
            "`{name}` is not a quantity of this file (it has: {})",
            known.join(", ")
        )
    };
    let kind_text = reader.text(&raw.kind, "kind", true)?;
    let kind: Kind =
        serde_json::from_value(serde_json::Value::String(kind_text.clone())).map_err(|_| {
            reader.err(
                Some(reader.at(&raw.kind)),
                Some("kind".into()),
                format!("`{kind_text}` is not one of {}", Kind::NAMES),
            )
        })?;
    let quote = raw
        .quote
        .as_ref()
        .map_or(kind != Kind::Paper, |q| *q.get_ref());
    let corrected = match (&raw.corrected, kind) {
        (Some(c), Kind::Correction) => Some(reader.text(c, "corrected", false)?),
        (None, Kind::Correction) => {
            return Err(reader.err(
                Some(reader.at(&raw.kind)),
                Some("corrected".into()),
                "kind = \"correction\" needs `corrected`, the corrected statement its checks test"
                    .into(),
            ));
        }
        (Some(c), _) => {
            return Err(reader.err(
                Some(reader.at(c)),
                Some("corrected".into()),
                format!("only a claim of kind = \"correction\" has one (this is {kind_text})"),
            ));
        }
        (None, _) => None,
    };
    let argument = reader.text(&raw.argument, "argument", true)?;
    let seeds = match &raw.seeds {
        None => DEFAULT_SEEDS,
        Some(n) => {
            let v = *n.get_ref();
            if v < 1 || v as usize > MAX_SEEDS {
                return Err(reader.err(
                    Some(line_of(reader.src, n.span().start)),
                    Some("seeds".into()),
                    format!("must be 1 to {MAX_SEEDS} (got {v})"),
                ));
            }
            v as usize
        }
    };
    let key = match &raw.key {
        None => 0,
        Some(k) => {
            let name = reader.text(k, "key", true)?;
            known
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| reader.err(Some(reader.at(k)), Some("key".into()), unknown(&name)))?
        }
    };
    let caption = match &raw.caption {
        None => None,
        Some(c) => Some(reader.text(c, "caption", true)?),
    };
    let control = match &raw.control {
        None => None,
        Some(c) => {
            let c = c.get_ref();
            let line = reader.at(&c.command);
            let words = reader.text(&c.command, "control.command", true)?;
            let args = command_words(&words)
                .map_err(|m| reader.err(Some(line), Some("control.command".into()), m))?;
            Some(Control {
                args,
                why: reader.text(&c.why, "control.why", true)?,
                line,
            })
        }
    };
    Ok(Framing {
        kind,
        quote,
        corrected,
        argument,
        seeds,
        key,
        caption,
        control,
    })
}

/// The largest experiment file read (the shipped ones are under 4 KiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// The text of `file`, which must be a regular file (a FIFO or a device could block or never
/// end) of at most `max` bytes, in UTF-8; the error is the message of a one-line refusal.
pub fn read_regular(file: &FsPath, max: u64) -> Result<String, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("cannot read the file: {e}");
    let f = match crate::files::open_regular(file).map_err(cannot)? {
        Ok(f) => f,
        Err(kind) => {
            return Err(format!(
                "is not a regular file ({kind}); give an experiment file (a named pipe or a device could block or never end)"
            ));
        }
    };
    let len = f.metadata().map_err(cannot)?.len();
    if len > max {
        return Err(format!(
            "is {len} bytes, more than the {max} an experiment file may have"
        ));
    }
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes).map_err(cannot)?;
    if bytes.len() as u64 > max {
        return Err(format!(
            "is more than the {max} bytes an experiment file may have"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Refuse text holding a control character (ESC, BEL, CR, ...) or a bidirectional override,
/// which would act on a terminal or reorder what the page shows; `allowed` lists those that
/// may stay (a newline in a multi-line field).
fn plain(s: &str, allowed: &str) -> Result<(), String> {
    match first_unsafe_char(s, allowed) {
        None => Ok(()),
        Some(c) => Err(format!(
            "holds the control character {}: plain text only (no terminal escapes, tabs, carriage returns or direction overrides)",
            describe_char(c)
        )),
    }
}

/// The characters a claim's name may have: it becomes a directory, a link on the page and a
/// word of `--only`.
pub const NAME_ALPHABET: &str = "letters A-Z and a-z, digits, `_` and `-`";

/// Refuse a claim name outside [`NAME_ALPHABET`] (or empty, or starting with `-`).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(
            "the file's name gives an empty claim name (name it NN-NAME.toml or NAME.toml)".into(),
        );
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(format!(
            "the claim name `{}` (from the file's name) holds {}; a claim name is {NAME_ALPHABET}",
            visible_except(name, ""),
            if is_unsafe_char(c) || c == ' ' {
                describe_char(c)
            } else {
                format!("`{c}`")
            }
        ));
    }
    if name.starts_with('-') {
        return Err(format!(
            "the claim name `{name}` (from the file's name) starts with `-`; a claim name is {NAME_ALPHABET}, starting with a letter, digit or `_`"
        ));
    }
    Ok(())
}

/// The words of `bn-lab SUBCOMMAND FLAGS...`, after `bn-lab`.
fn command_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = text.split_whitespace();
    if words.next() != Some("bn-lab") {
        return Err(format!("`{text}` does not start with `bn-lab`"));
    }
    let words: Vec<String> = words.map(str::to_string).collect();
    let Some(sub) = words.first() else {
        return Err("names no subcommand after `bn-lab`".into());
    };
    if NOT_IN_FILES.contains(&sub.as_str()) {
        return Err(format!(
            "`bn-lab {sub}` cannot be an experiment: it writes no JSON to check"
        ));
    }
    if let Some(w) = words
        .iter()
        .find(|w| w.contains(['"', '\'', '\\', '$', '`', ';', '|', '&', '<', '>', '*']))
    {
        return Err(format!(
            "`{w}`: the command is plain words separated by spaces (no quotes or shell syntax)"
        ));
    }
    if let Some(w) = words
        .iter()
        .find(|w| w.split_once('=').map_or(w.as_str(), |(f, _)| f) == "--seed")
    {
        return Err(format!(
            "`{w}` is not allowed here: the seeds are `seeds = N` in the file and --seed/--seeds of `bn-lab run` and `bn-lab reproduce`"
        ));
    }
    if let Some(w) = words.iter().find(|w| {
        let flag = w.split_once('=').map_or(w.as_str(), |(f, _)| f);
        FLAGS_NOT_IN_FILES.contains(&flag)
    }) {
        return Err(format!(
            "`{w}` is not allowed here: `bn-lab run` and `bn-lab reproduce` choose where the files go (--out DIR on them)"
        ));
    }
    Ok(words)
}

/// The seeds one command of its own uses per run: its `--seeds K` (an average over `K` seeds
/// from `--seed`), else 1. Runs of a claim step their `--seed` by this, so that no two runs
/// share a seed.
pub fn seed_stride(args: &[String]) -> u64 {
    let mut words = args.iter();
    while let Some(w) = words.next() {
        let value = match w.split_once('=') {
            Some(("--seeds", v)) => Some(v.to_string()),
            None if w == "--seeds" => words.next().cloned(),
            _ => None,
        };
        if let Some(k) = value.and_then(|v| v.parse::<u64>().ok()) {
            return k.max(1);
        }
    }
    1
}

/// The file name without `.toml` and without a leading `NN-`.
pub fn claim_name(file: &FsPath) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match stem.split_once('-') {
        Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            rest.to_string()
        }
        _ => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_the_order_prefix() {
        assert_eq!(
            claim_name(FsPath::new("experiments/01-vanishing.toml")),
            "vanishing"
        );
        assert_eq!(claim_name(FsPath::new("mine.toml")), "mine");
        assert_eq!(claim_name(FsPath::new("x-y.toml")), "x-y");
    }

    #[test]
    fn fields_are_named_from_the_line() {
        let src = "title = 1\n[quantities.a]\npath = 3\n";
        assert_eq!(field_at(src, 1).as_deref(), Some("title"));
        assert_eq!(field_at(src, 3).as_deref(), Some("quantities.a.path"));
        assert_eq!(field_at(src, 2).as_deref(), Some("quantities.a"));
    }
}
