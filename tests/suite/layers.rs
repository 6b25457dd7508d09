//! The layers of `src/` hold: no file names, through a `crate::` or `super::` path, a module
//! that names it back, directly or around a circle. A module's `mod.rs` counts as its folder
//! (a folder declaring its files is not a use of them). This reads the source as text, the way
//! a reader follows the imports; a circle fails with the files on it and what each one uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path, e.g. `["experiment", "landscape"]`; the crate root is empty.
type Module = Vec<String>;

/// Every module file under `src/`, by module path.
fn modules(dir: &Path, prefix: &Module, out: &mut BTreeMap<Module, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let mut m = prefix.clone();
            m.push(name);
            modules(&path, &m, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut m = prefix.clone();
            if name != "mod" && !(prefix.is_empty() && (name == "lib" || name == "main")) {
                m.push(name);
            } else if prefix.is_empty() && name == "main" {
                continue;
            }
            out.insert(m, std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The text without comments and without a trailing `#[cfg(test)]` module.
fn code(src: &str) -> String {
    let src = match src.find("#[cfg(test)]\nmod tests") {
        Some(i) => &src[..i],
        None => src,
    };
    src.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal (a URL) is rare in paths' lines; cut anyway.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths a `use` tree names, each as segments (`crate::{a, b::{c, d}}`).
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Module>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let mut base = prefix.to_vec();
        base.extend(head);
        let inner = &tree[open + 1..tree.rfind('}').unwrap()];
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&base, &inner[start..], out);
    } else if !tree.is_empty() {
        let mut p = prefix.to_vec();
        let tree = tree.split(" as ").next().unwrap();
        p.extend(tree.split("::").map(|s| s.trim().to_string()));
        out.push(p);
    }
}

/// The module files `m`'s code names (the longest module prefix of each path).
fn uses(m: &Module, text: &str, all: &BTreeMap<Module, String>) -> BTreeSet<Module> {
    let text = code(text);
    let mut paths: Vec<Module> = Vec::new();
    // `use crate::...;` and `use super::...;` trees.
    for (i, _) in text.match_indices("use ") {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + 4..];
        let Some(end) = rest.find(';') else { continue };
        let tree = rest[..end].trim();
        let (root, tail) = if let Some(t) = tree.strip_prefix("crate::") {
            (Vec::new(), t)
        } else if let Some(t) = tree.strip_prefix("super::") {
            (m[..m.len().saturating_sub(1)].to_vec(), t)
        } else {
            continue;
        };
        expand(&root, tail, &mut paths);
    }
    // Inline `crate::a::b` paths.
    for (i, _) in text.match_indices("crate::") {
        let seg: String = text[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(
            seg.split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        );
    }
    let mut found = BTreeSet::new();
    for mut p in paths {
        while !p.is_empty() && !all.contains_key(&p) {
            p.pop();
        }
        // Not itself, not the crate root, and not a module inside its own folder (declarations).
        if !p.is_empty() && &p != m && !(p.len() > m.len() && p[..m.len()] == m[..]) {
            found.insert(p);
        }
    }
    found
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        on: BTreeSet<&'g Module>,
        out: Vec<Vec<Module>>,
    }
    fn strong<'g>(s: &mut State<'g>, v: &'g Module) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in &s.graph[v] {
            if !s.index.contains_key(w) {
                strong(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            strong(&mut s, v);
        }
    }
    s.out
}

fn graph_of(all: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    all.iter()
        .map(|(m, text)| (m.clone(), uses(m, text, all)))
        .collect()
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_file_in_src_is_on_an_import_circle() {
    let mut all = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &Vec::new(),
        &mut all,
    );
    assert!(all.len() > 30, "read {} modules", all.len());
    let graph = graph_of(&all);
    let found = circles(&graph);
    let report: Vec<String> = found
        .iter()
        .map(|comp| {
            let on: BTreeSet<&Module> = comp.iter().collect();
            let lines: Vec<String> = comp
                .iter()
                .map(|m| {
                    let to: Vec<String> = graph[m]
                        .iter()
                        .filter(|t| on.contains(t))
                        .map(name)
                        .collect();
                    format!("  {} uses {}", name(m), to.join(", "))
                })
                .collect();
            format!("circle:\n{}", lines.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "{}", report.join("\n"));
}

#[test]
fn the_circle_finder_finds_a_circle_and_reads_use_trees() {
    // A made-up crate: a uses b (grouped), b uses c (nested), c uses a (inline path); d is
    // outside the circle; e's folder file is not a use of e's own files.
    let files = [
        ("a", "use crate::{x, b::{Thing, other}};"),
        ("b", "use crate::c::{self, inner::{Deep}};\nfn f() {}"),
        (
            "c",
            "fn g() { crate::a::run(); }\n// crate::d in a comment is not a use\n",
        ),
        ("d", "use crate::a::run;"),
        ("e", "pub mod f;\nuse crate::e::f::Item;"),
        ("e::f", "use super::Parent;"),
        ("x", ""),
    ];
    let all: BTreeMap<Module, String> = files
        .iter()
        .map(|(m, t)| (m.split("::").map(String::from).collect(), t.to_string()))
        .collect();
    let graph = graph_of(&all);
    assert_eq!(
        graph[&vec!["a".to_string()]],
        [vec!["b".to_string()], vec!["x".to_string()]]
            .into_iter()
            .collect()
    );
    let found = circles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    let mut names: Vec<String> = found[0].iter().map(name).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(
        graph[&vec!["e".to_string()]].is_empty(),
        "a folder using its own file"
    );
}
