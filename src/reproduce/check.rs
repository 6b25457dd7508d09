//! An experiment file's check: quantities read from a run's JSON by path, comparisons of them
//! with thresholds (or with each other), and the verdict those comparisons give.
//!
//! - A **path** walks the JSON: `arms[label=BN off].weight_grad.ratio` is the key `arms`, its
//!   first element whose `label` is `BN off`, then `weight_grad`, then `ratio`. A segment is a
//!   key, an index (`runs.0`, `-1` for the last), or a key followed by `[field=value,...]`
//!   (values compare as numbers when both sides are numbers, else as text). A path that
//!   reaches an explicit `null` before its end (the slice of a net that diverged) reads as
//!   null; a key that is not there at all is an error.
//! - A **quantity** is a path and an optional `reduce` (`max`, `min`, `mean`, `first`, `last`)
//!   for a path that ends at an array of numbers. Numbers written as `"inf"`, `"-inf"` and
//!   `"NaN"` (how bn-lab's JSON spells them) read as those numbers.
//! - A **check** is `NAME OP RHS`: OP one of `<`, `<=`, `>`, `>=`, `==`, `!=`; RHS a number,
//!   `true`, `false`, `null`, a `"string"`, another quantity's name, or `NUMBER * NAME`. NaN
//!   holds no comparison; `null` (nothing, as in "never diverged") is equal only to `null`.
//! - The **verdict**: `supported` when every check holds, `not supported` when none does,
//!   `mixed` otherwise.

use std::fmt;

use serde::Serialize;
use serde_json::Value as Json;

use crate::stats::fmt_rate;

/// A quantity's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Bool(bool),
    Str(String),
    Null,
}

impl Value {
    /// As a table shows it: numbers with four significant digits, `none` for null.
    pub fn display(&self) -> String {
        match self {
            // Counts (learning rates compared, runs that diverged) print as counts.
            Value::Num(v) if v.fract() == 0.0 && v.abs() < 1e6 => format!("{v:.0}"),
            Value::Num(v) => fmt_rate(*v),
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => s.clone(),
            Value::Null => "none".into(),
        }
    }

    /// As a JSON value (numbers that are not finite as bn-lab writes them: `"inf"`, `"NaN"`).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Num(v) => serde_json::to_value(crate::stats::Num(*v)).unwrap_or(Json::Null),
            Value::Bool(b) => Json::Bool(*b),
            Value::Str(s) => Json::String(s.clone()),
            Value::Null => Json::Null,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Num(_) => "a number",
            Value::Bool(_) => "true/false",
            Value::Str(_) => "text",
            Value::Null => "null",
        }
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Paths.

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(i64),
    /// The first element whose fields equal these values.
    Select(Vec<(String, String)>),
}

/// Where a quantity sits in a run's JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    text: String,
    segments: Vec<Segment>,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

impl Path {
    /// Parse `arms[label=BN off].weight_grad.ratio`.
    pub fn parse(text: &str) -> Result<Path, String> {
        let mut segments = Vec::new();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err("the path is empty".into());
        }
        loop {
            let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
            let word = &rest[..end];
            if word.is_empty() && !rest.starts_with('[') {
                return Err(format!(
                    "expected a key or an index at `{rest}` (keys are letters, digits, `_` and `-`)"
                ));
            }
            if !word.is_empty() {
                segments.push(match word.parse::<i64>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Key(word.to_string()),
                });
            }
            rest = &rest[end..];
            while let Some(inner) = rest.strip_prefix('[') {
                let close = inner
                    .find(']')
                    .ok_or_else(|| format!("`[` without `]` in `{text}`"))?;
                let body = &inner[..close];
                segments.push(match body.trim().parse::<i64>() {
                    Ok(i) => Segment::Index(i),
                    Err(_) => Segment::Select(parse_conditions(body)?),
                });
                rest = &inner[close + 1..];
            }
            if rest.is_empty() {
                break;
            }
            rest = rest
                .strip_prefix('.')
                .ok_or_else(|| format!("expected `.` or `[` at `{rest}` in `{text}`"))?;
        }
        Ok(Path {
            text: text.trim().to_string(),
            segments,
        })
    }

    /// The JSON value at this path, or what is missing.
    pub fn lookup<'j>(&self, json: &'j Json) -> Result<&'j Json, String> {
        let mut at = json;
        let mut walked = String::new();
        for seg in &self.segments {
            let here = if walked.is_empty() {
                "the top level".to_string()
            } else {
                format!("`{walked}`")
            };
            // A path through an explicit null (something the run did not compute, such as
            // the slice of a net that diverged) reads as null, not as a missing field.
            if at.is_null() {
                return Ok(at);
            }
            at = match seg {
                Segment::Key(k) => match at {
                    Json::Object(map) => map.get(k).ok_or_else(|| {
                        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                        format!("{here} has no `{k}` (it has: {})", keys.join(", "))
                    })?,
                    other => return Err(format!("{here} is {}, not an object", json_kind(other))),
                },
                Segment::Index(i) => match at {
                    Json::Array(items) => {
                        let n = items.len() as i64;
                        let idx = if *i < 0 { n + i } else { *i };
                        if idx < 0 || idx >= n {
                            return Err(format!(
                                "index {i} is outside {here}, which has {n} elements"
                            ));
                        }
                        &items[idx as usize]
                    }
                    other => return Err(format!("{here} is {}, not an array", json_kind(other))),
                },
                Segment::Select(conds) => match at {
                    Json::Array(items) => items
                        .iter()
                        .find(|item| conds.iter().all(|(k, v)| field_matches(item, k, v)))
                        .ok_or_else(|| no_match(&here, items, conds))?,
                    other => return Err(format!("{here} is {}, not an array", json_kind(other))),
                },
            };
            match seg {
                Segment::Key(k) if walked.is_empty() => walked.push_str(k),
                Segment::Key(k) => walked.push_str(&format!(".{k}")),
                Segment::Index(i) => walked.push_str(&format!("[{i}]")),
                Segment::Select(c) => {
                    let c: Vec<String> = c.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    walked.push_str(&format!("[{}]", c.join(",")));
                }
            }
        }
        Ok(at)
    }
}

fn parse_conditions(body: &str) -> Result<Vec<(String, String)>, String> {
    body.split(',')
        .map(|cond| {
            let (k, v) = cond
                .split_once('=')
                .ok_or_else(|| format!("`[{body}]`: expected `field=value` or an index"))?;
            let k = k.trim();
            if k.is_empty() || !k.chars().all(is_name_char) {
                return Err(format!("`[{body}]`: `{k}` is not a field name"));
            }
            Ok((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "true/false",
        Json::Number(_) => "a number",
        Json::String(_) => "text",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Whether `item.field` equals `want`: as numbers when both are numbers, else as text.
fn field_matches(item: &Json, field: &str, want: &str) -> bool {
    let Some(v) = item.get(field) else {
        return false;
    };
    match (v, want.parse::<f64>()) {
        (Json::Number(n), Ok(w)) => n.as_f64() == Some(w),
        (Json::String(s), _) => s == want,
        (Json::Bool(b), _) => b.to_string() == want,
        (Json::Null, _) => want == "null",
        _ => false,
    }
}

fn no_match(here: &str, items: &[Json], conds: &[(String, String)]) -> String {
    let (k, v) = &conds[0];
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        let shown = match item.get(k) {
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => continue,
        };
        if !seen.contains(&shown) {
            seen.push(shown);
        }
    }
    let wanted: Vec<String> = conds.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    if seen.is_empty() {
        format!("no element of {here} has a field `{k}`")
    } else {
        format!(
            "no element of {here} has {} (its `{k}` values: {}; wanted {v})",
            wanted.join(" and "),
            seen.join(", ")
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Quantities.

/// How an array of numbers becomes one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    Max,
    Min,
    Mean,
    First,
    Last,
}

impl Reduce {
    pub const NAMES: &'static str = "max, min, mean, first or last";

    pub fn parse(s: &str) -> Option<Reduce> {
        Some(match s {
            "max" => Reduce::Max,
            "min" => Reduce::Min,
            "mean" => Reduce::Mean,
            "first" => Reduce::First,
            "last" => Reduce::Last,
            _ => return None,
        })
    }

    fn apply(self, v: &[f64]) -> f64 {
        match self {
            // NaN wins: a NaN in the array is not hidden by the others.
            Reduce::Max => v.iter().copied().fold(f64::NEG_INFINITY, |a, b| {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.max(b)
                }
            }),
            Reduce::Min => v.iter().copied().fold(f64::INFINITY, |a, b| {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.min(b)
                }
            }),
            Reduce::Mean => v.iter().sum::<f64>() / v.len() as f64,
            Reduce::First => v[0],
            Reduce::Last => v[v.len() - 1],
        }
    }
}

/// A JSON number, or bn-lab's spelling of a number that is not finite.
fn as_number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => None,
        },
        _ => None,
    }
}

/// The value of quantity `path` (reduced by `reduce`) in `json`.
pub fn quantity(json: &Json, path: &Path, reduce: Option<Reduce>) -> Result<Value, String> {
    let v = path.lookup(json)?;
    match (v, reduce) {
        (Json::Array(items), Some(r)) => {
            let nums: Option<Vec<f64>> = items.iter().map(as_number).collect();
            match nums {
                Some(nums) if !nums.is_empty() => Ok(Value::Num(r.apply(&nums))),
                Some(_) => Err(format!("`{path}` is an empty array")),
                None => Err(format!("`{path}` is an array, but not of numbers")),
            }
        }
        (_, Some(_)) => Err(format!(
            "`{path}` is {}; `reduce` needs an array of numbers",
            json_kind(v)
        )),
        (Json::Array(items), None) => Err(format!(
            "`{path}` is an array of {}; pick one element (`.0`, `.-1`, `[field=value]`) or give reduce = {}",
            items.len(),
            Reduce::NAMES
        )),
        (Json::Object(_), None) => Err(format!(
            "`{path}` is an object; the path must end at a number, text, true/false or null"
        )),
        (Json::Null, None) => Ok(Value::Null),
        (Json::Bool(b), None) => Ok(Value::Bool(*b)),
        (v, None) => Ok(match as_number(v) {
            Some(n) => Value::Num(n),
            None => Value::Str(v.as_str().unwrap_or_default().to_string()),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    fn ordering(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

/// The right-hand side of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Rhs {
    Literal(Value),
    /// `factor * name` (factor 1 for a bare name).
    Scaled(f64, String),
}

/// One comparison: `NAME OP RHS`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub text: String,
    pub left: String,
    pub op: Op,
    pub right: Rhs,
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn number(s: &str) -> Option<f64> {
    match s {
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .ok()
            .filter(|_| s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')),
    }
}

impl Check {
    /// Parse `ratio_off < 1e-6`, `loss_bn <= 0.5 * loss_off`, `verdict == "agrees"`.
    pub fn parse(text: &str) -> Result<Check, String> {
        let t = text.trim();
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, len, op) = ops
            .iter()
            .filter_map(|(s, op)| t.find(s).map(|i| (i, s.len(), *op)))
            .min_by_key(|(i, len, _)| (*i, usize::MAX - len))
            .ok_or_else(|| {
                format!("`{t}`: expected `NAME OP VALUE` with OP one of <, <=, >, >=, ==, !=")
            })?;
        let left = t[..at].trim();
        let right = t[at + len..].trim();
        if !is_name(left) {
            return Err(format!(
                "`{t}`: the left side `{left}` is not a quantity name (letters, digits and `_`)"
            ));
        }
        let right = parse_rhs(right).map_err(|e| format!("`{t}`: {e}"))?;
        Ok(Check {
            text: t.to_string(),
            left: left.to_string(),
            op,
            right,
        })
    }

    /// The quantity names this check reads.
    pub fn names(&self) -> Vec<&str> {
        let mut v = vec![self.left.as_str()];
        if let Rhs::Scaled(_, n) = &self.right {
            v.push(n);
        }
        v
    }

    /// Whether the check holds for these values (`get` gives a quantity's value). A value of
    /// the wrong kind (text compared with `<`) is an error.
    pub fn holds(&self, get: &dyn Fn(&str) -> Value) -> Result<Outcome, String> {
        let left = get(&self.left);
        let right = match &self.right {
            Rhs::Literal(v) => v.clone(),
            Rhs::Scaled(f, name) => match get(name) {
                Value::Num(v) => Value::Num(f * v),
                other if *f == 1.0 => other,
                other => {
                    return Err(format!(
                        "`{}`: `{name}` is {} ({}), which cannot be multiplied",
                        self.text,
                        other.kind(),
                        other.display()
                    ));
                }
            },
        };
        let holds = compare(&left, self.op, &right).map_err(|e| format!("`{}`: {e}", self.text))?;
        Ok(Outcome {
            check: self.text.clone(),
            left: left.clone(),
            right,
            holds,
        })
    }
}

fn parse_rhs(s: &str) -> Result<Rhs, String> {
    if let Some(inner) = s.strip_prefix('"') {
        let body = inner
            .strip_suffix('"')
            .ok_or_else(|| format!("`{s}`: a string needs a closing `\"`"))?;
        return Ok(Rhs::Literal(Value::Str(body.to_string())));
    }
    match s {
        "true" => return Ok(Rhs::Literal(Value::Bool(true))),
        "false" => return Ok(Rhs::Literal(Value::Bool(false))),
        "null" => return Ok(Rhs::Literal(Value::Null)),
        _ => {}
    }
    if let Some((f, name)) = s.split_once('*') {
        let (f, name) = (f.trim(), name.trim());
        let factor = number(f).ok_or_else(|| format!("`{f}` is not a number"))?;
        if !is_name(name) {
            return Err(format!("`{name}` is not a quantity name"));
        }
        return Ok(Rhs::Scaled(factor, name.to_string()));
    }
    if let Some(v) = number(s) {
        return Ok(Rhs::Literal(Value::Num(v)));
    }
    if is_name(s) {
        return Ok(Rhs::Scaled(1.0, s.to_string()));
    }
    Err(format!(
        "the right side `{s}` is not a number, true, false, null, a \"string\", a quantity name or NUMBER * NAME"
    ))
}

fn compare(l: &Value, op: Op, r: &Value) -> Result<bool, String> {
    Ok(match (l, r) {
        (Value::Num(a), Value::Num(b)) => {
            if a.is_nan() || b.is_nan() {
                false
            } else {
                match op {
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    Op::Ge => a >= b,
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                }
            }
        }
        // Nothing (null) is not a number: no ordering holds for it, and it equals only null.
        (Value::Null, _) | (_, Value::Null) => match op {
            Op::Eq => l == r,
            Op::Ne => l != r,
            _ => false,
        },
        (a, b) if op.ordering() => {
            return Err(format!(
                "{} cannot be compared with {} by {}",
                a.kind(),
                b.kind(),
                op.text()
            ));
        }
        (a, b) if std::mem::discriminant(a) != std::mem::discriminant(b) => {
            return Err(format!(
                "{} ({}) cannot equal {} ({})",
                a.kind(),
                a.display(),
                b.kind(),
                b.display()
            ));
        }
        (a, b) => (op == Op::Eq) == (a == b),
    })
}

/// One check's result, with the values it compared.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub check: String,
    pub left: Value,
    pub right: Value,
    pub holds: bool,
}

/// What the checks of a claim say about it; `summary.json` spells it as the page does
/// (`supported`, `mixed`, `not supported`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "supported")]
    Supported,
    #[serde(rename = "mixed")]
    Mixed,
    #[serde(rename = "not supported")]
    NotSupported,
}

impl Verdict {
    /// Every check holds: supported; none: not supported; some: mixed.
    pub fn of(outcomes: &[Outcome]) -> Verdict {
        let held = outcomes.iter().filter(|o| o.holds).count();
        if held == outcomes.len() {
            Verdict::Supported
        } else if held == 0 {
            Verdict::NotSupported
        } else {
            Verdict::Mixed
        }
    }

    /// The verdict over seeds, from `holds[check][seed]`: *supported* when every check holds
    /// in every seed, *not supported* when no check holds in any seed, *mixed* otherwise. A
    /// claim whose checks flip with the seed is mixed, so rerunning with other seeds changes
    /// the verdict only where the claim really is fragile.
    pub fn over(holds: &[Vec<bool>]) -> Verdict {
        let all = holds.iter().flatten().all(|&h| h);
        let none = holds.iter().flatten().all(|&h| !h);
        if all {
            Verdict::Supported
        } else if none {
            Verdict::NotSupported
        } else {
            Verdict::Mixed
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Mixed => "mixed",
            Verdict::NotSupported => "not supported",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

// ---------------------------------------------------------------------------------------------
// Explanations.

/// A piece of an explanation template: text, or a quantity to fill in (`{name}`, or
/// `{name:%}` for a share as a percentage).
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Quantity { name: String, percent: bool },
}

/// Parse `"BN off keeps {ratio_off} of ..."`; `{{` and `}}` are literal braces.
pub fn parse_template(s: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => return Err(format!("`{{{inner}` has no closing `}}`")),
                    }
                }
                let (name, percent) = match inner.split_once(':') {
                    Some((n, "%")) => (n.trim(), true),
                    Some((_, f)) => {
                        return Err(format!(
                            "`{{{inner}}}`: the only format is `:%` (a share as a percentage), not `:{f}`"
                        ));
                    }
                    None => (inner.trim(), false),
                };
                if !is_name(name) {
                    return Err(format!("`{{{inner}}}` does not name a quantity"));
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Quantity {
                    name: name.to_string(),
                    percent,
                });
            }
            '}' => return Err("a `}` without `{` (write `}}` for a brace)".into()),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The template with every quantity filled in.
pub fn fill(pieces: &[Piece], get: &dyn Fn(&str) -> Value) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.clone(),
            Piece::Quantity { name, percent } => match (get(name), percent) {
                (Value::Num(v), true) if v.is_finite() => format!("{:.1}%", 100.0 * v),
                (v, _) => v.display(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_over_seeds_needs_every_check_in_every_seed() {
        let v = |h: &[&[bool]]| Verdict::over(&h.iter().map(|s| s.to_vec()).collect::<Vec<_>>());
        assert_eq!(
            v(&[&[true, true, true], &[true, true, true]]),
            Verdict::Supported
        );
        assert_eq!(
            v(&[&[false, false, false], &[false, false, false]]),
            Verdict::NotSupported
        );
        // One seed fails one check: the claim is fragile, and says so.
        assert_eq!(
            v(&[&[true, true, false], &[true, true, true]]),
            Verdict::Mixed
        );
        // One check never holds, the other always: mixed, as with one seed.
        assert_eq!(
            v(&[&[true, true, true], &[false, false, false]]),
            Verdict::Mixed
        );
        // One seed only: the rule of one run.
        assert_eq!(v(&[&[true], &[false]]), Verdict::Mixed);
        assert_eq!(v(&[&[true], &[true]]), Verdict::Supported);
    }

    #[test]
    fn paths_select_index_and_reduce() {
        let j: Json = serde_json::json!({
            "arms": [{"label": "BN off", "v": [1.0, "inf", 3.0]}, {"label": "BN on", "v": [2.0], "x": 0.5}],
            "means": [{"value": 4.0, "arm": "on", "r": 7}],
            "slice": null,
        });
        let q = |p: &str, r| quantity(&j, &Path::parse(p).unwrap(), r);
        // Through an explicit null (a slice a diverged net never drew): null, not an error.
        assert_eq!(q("slice.max_ratio", None), Ok(Value::Null));
        assert!(
            q("nothing.max_ratio", None)
                .unwrap_err()
                .contains("has no `nothing`")
        );
        assert_eq!(q("arms[label=BN on].x", None), Ok(Value::Num(0.5)));
        assert_eq!(q("arms.-1.x", None), Ok(Value::Num(0.5)));
        assert_eq!(q("arms[1].x", None), Ok(Value::Num(0.5)));
        assert_eq!(q("means[value=4,arm=on].r", None), Ok(Value::Num(7.0)));
        assert_eq!(
            q("arms[label=BN off].v", Some(Reduce::Max)),
            Ok(Value::Num(f64::INFINITY))
        );
        assert_eq!(
            q("arms[label=BN off].v", Some(Reduce::Mean)),
            Ok(Value::Num(f64::INFINITY))
        );
        assert_eq!(q("arms.0.label", None), Ok(Value::Str("BN off".into())));
        let e = q("arms[label=BN of].x", None).unwrap_err();
        assert!(e.contains("BN off, BN on"), "{e}");
        let e = q("arms.0.y", None).unwrap_err();
        assert!(e.contains("has no `y`") && e.contains("label, v"), "{e}");
        assert!(q("arms.5.x", None).unwrap_err().contains("2 elements"));
        assert!(q("arms.0.v", None).unwrap_err().contains("reduce"));
        assert!(Path::parse("arms[label=x").is_err());
        assert!(Path::parse("a..b").is_err());
    }

    #[test]
    fn checks_parse_and_compare() {
        let get = |n: &str| match n {
            "a" => Value::Num(2.0),
            "b" => Value::Num(10.0),
            "nan" => Value::Num(f64::NAN),
            "s" => Value::Str("agrees".into()),
            _ => Value::Null,
        };
        let holds = |t: &str| Check::parse(t).unwrap().holds(&get).unwrap().holds;
        assert!(holds("a < 3"));
        assert!(!holds("a < 2"));
        assert!(holds("a <= 2"));
        assert!(holds("a < 0.5 * b"));
        assert!(!holds("a > 0.5 * b"));
        assert!(holds("b >= a"));
        assert!(holds("s == \"agrees\""));
        assert!(holds("s != \"disagrees\""));
        assert!(holds("n == null"));
        assert!(!holds("n < 3"));
        assert!(!holds("nan < 3") && !holds("nan > 3") && !holds("nan != 3"));
        assert!(holds("a < inf"));
        assert!(holds("a > -1e3"));
        assert!(Check::parse("s < 3").unwrap().holds(&get).is_err());
        assert!(Check::parse("a 3").is_err());
        assert!(Check::parse("3 < a").is_err());
        assert!(Check::parse("a < b c").is_err());
        assert_eq!(Check::parse("a<=0.5*b").unwrap().names(), vec!["a", "b"]);
    }

    #[test]
    fn verdicts_and_templates() {
        let o = |holds| Outcome {
            check: String::new(),
            left: Value::Null,
            right: Value::Null,
            holds,
        };
        assert_eq!(Verdict::of(&[o(true), o(true)]), Verdict::Supported);
        assert_eq!(Verdict::of(&[o(true), o(false)]), Verdict::Mixed);
        assert_eq!(Verdict::of(&[o(false), o(false)]), Verdict::NotSupported);
        let t = parse_template("x is {a}, {{literal}}, {s:%}.").unwrap();
        let get = |n: &str| match n {
            "a" => Value::Num(0.05571),
            _ => Value::Num(0.975),
        };
        assert_eq!(fill(&t, &get), "x is 0.05571, {literal}, 97.5%.");
        assert!(parse_template("{a").is_err());
        assert!(parse_template("{a:x}").is_err());
        assert!(parse_template("a}").is_err());
    }
}
