//! The layering rule of `docs/architecture.md`, checked on the source: a module may use its
//! own layer and the layers below it, never one above, and no two modules may use each other
//! (directly or round a longer loop).
//!
//! A test rather than one crate per layer: the layers share one crate's private helpers and
//! its one compilation unit, and Lambda binaries already link only what they call.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom first. A name is a module path under `shared/src`; a file belongs to the longest
/// name its module path starts with.
const LAYERS: &[(&str, &[&str])] = &[
    ("domain types", &["domain", "rfc3339", "jsonb"]),
    ("outbound", &["net", "aws_sign", "secrets"]),
    ("database", &["db", "migrate"]),
    (
        "observability",
        &[
            "ratelimit",
            "rollup",
            "metrics",
            "observer",
            "telemetry",
            "perfstats",
        ],
    ),
    (
        "stores",
        &[
            "apikeys",
            "contacts",
            "groups",
            "templates",
            "campaigns",
            "messages",
            "tenants",
            "webhooks",
            "providers::store",
            "providers::config",
            "providers::credential",
            "providers::input",
            "events",
            "idempotency::store",
            "stats",
            "realtime::connections",
            "realtime::stats",
            "realtime::frames",
        ],
    ),
    (
        "services",
        &[
            "engine",
            "realtime",
            "webhooks::delivery",
            "providers",
            "kick",
            "aws",
            "auth",
        ],
    ),
    ("http api", &["http", "api", "idempotency"]),
    ("app", &["app", "config"]),
];

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    let mut best: Option<(usize, &'static str)> = None;
    for (index, (_, names)) in LAYERS.iter().enumerate() {
        for name in names.iter() {
            let covers = module == *name || module.starts_with(&format!("{name}::"));
            if covers && best.is_none_or(|(_, b)| name.len() > b.len()) {
                best = Some((index, name));
            }
        }
    }
    best
}

/// `a/b/mod.rs` and `a/b.rs` are both `a::b`.
fn module_path(src: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code without comments and without its `#[cfg(test)]` tail (tests may reach anywhere).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path the code names from `crate::` or `super::`, made absolute, e.g. `db::Pool`.
fn named_paths(module: &str, code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let at_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &code[i..];
        if at_word && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let (paths, used) = tree(rest);
            for path in paths {
                if let Some(absolute) = absolute(module, &path) {
                    found.push(absolute);
                }
            }
            i += used.max(1);
        } else {
            i += 1;
        }
    }
    found
}

/// Expands a use-tree (`a::{b, c::d}`) into its paths; answers how many bytes it read.
fn tree(s: &str) -> (Vec<String>, usize) {
    let mut prefix = String::new();
    let mut i = 0;
    let b = s.as_bytes();
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        prefix.push_str(&s[start..i]);
        if !s[i..].starts_with("::") {
            return (vec![prefix], i);
        }
        prefix.push_str("::");
        i += 2;
        if s[i..].starts_with('{') {
            i += 1;
            let mut paths = Vec::new();
            loop {
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return (paths, i + 1);
                }
                let (inner, used) = tree(&s[i..]);
                paths.extend(inner.into_iter().map(|p| format!("{prefix}{p}")));
                i += used.max(1);
            }
        }
    }
}

fn absolute(module: &str, path: &str) -> Option<String> {
    let mut base: Vec<&str> = module.split("::").collect();
    let mut rest = path;
    if let Some(r) = rest.strip_prefix("crate::") {
        return Some(r.to_owned());
    }
    while let Some(r) = rest.strip_prefix("super::") {
        base.pop()?;
        rest = r;
    }
    base.push(rest);
    Some(base.join("::"))
}

struct Source {
    module: String,
    code: String,
}

fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable src") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("src/lib.rs") {
                let text = std::fs::read_to_string(&path).expect("readable source");
                files.push(Source {
                    module: module_path(&src, &path),
                    code: code(&text),
                });
            }
        }
    }
    files
}

/// Unit → the units it uses, for every file; and the upward uses found on the way.
fn graph(sources: &[Source]) -> (BTreeMap<&'static str, BTreeSet<&'static str>>, Vec<String>) {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut upward = Vec::new();
    for source in sources {
        let Some((from_layer, from)) = layer_of(&source.module) else {
            upward.push(format!(
                "{} is in no layer: add it to LAYERS",
                source.module
            ));
            continue;
        };
        for path in named_paths(&source.module, &source.code) {
            let Some((to_layer, to)) = layer_of(&path) else {
                continue;
            };
            if to == from {
                continue;
            }
            edges.entry(from).or_default().insert(to);
            if to_layer > from_layer {
                upward.push(format!(
                    "{} ({}) uses {path} ({})",
                    source.module, LAYERS[from_layer].0, LAYERS[to_layer].0
                ));
            }
        }
    }
    (edges, upward)
}

/// The import loops, each as the modules on it (Tarjan's strongly connected components of
/// more than one module).
fn cycles(edges: &BTreeMap<&'static str, BTreeSet<&'static str>>) -> Vec<Vec<&'static str>> {
    struct Tarjan<'g> {
        edges: &'g BTreeMap<&'static str, BTreeSet<&'static str>>,
        index: BTreeMap<&'static str, usize>,
        low: BTreeMap<&'static str, usize>,
        stack: Vec<&'static str>,
        loops: Vec<Vec<&'static str>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: &'static str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for &w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    self.low.insert(v, self.low[v].min(self.low[w]));
                } else if self.stack.contains(&w) {
                    self.low.insert(v, self.low[v].min(self.index[w]));
                }
            }
            if self.low[v] == self.index[v] {
                let at = self
                    .stack
                    .iter()
                    .position(|&x| x == v)
                    .expect("on the stack");
                let component = self.stack.split_off(at);
                if component.len() > 1 {
                    self.loops.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        loops: Vec::new(),
    };
    for &v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.loops
}

#[test]
fn layers_only_point_down() {
    let (_, upward) = graph(&sources());
    assert!(
        upward.is_empty(),
        "upward uses (see docs/architecture.md):\n  {}",
        upward.join("\n  ")
    );
}

#[test]
fn no_two_modules_use_each_other() {
    let (edges, _) = graph(&sources());
    let loops = cycles(&edges);
    assert!(loops.is_empty(), "modules that use each other: {loops:?}");
}

#[test]
fn the_check_reads_use_trees_and_relative_paths() {
    let text = "use crate::{db::{Pool, Tx}, http::Problem};\nlet x = super::super::api::x();";
    let paths = named_paths("engine::sender", text);
    assert_eq!(
        paths,
        ["db::Pool", "db::Tx", "http::Problem", "api::x"].map(String::from)
    );
    assert_eq!(
        layer_of("webhooks::delivery::worker"),
        Some((5, "webhooks::delivery"))
    );
    assert_eq!(layer_of("webhooks::store"), Some((4, "webhooks")));
    assert_eq!(
        code("let a = 1; // crate::api\n#[cfg(test)]\nuse crate::app;"),
        "let a = 1; "
    );
}
