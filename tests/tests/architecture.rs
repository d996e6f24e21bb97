//! The shape of the house: within each crate, modules depend on each other one way only, and no
//! file under a crate's `src/` is longer than a reader can hold in their head.
//!
//! The module check reads every crate's sources with `syn` (no build needed): each `use` and
//! each `crate::`/`super::`/`self::` path in code is an edge from the file it is written in to
//! the file that defines what it names, found by following `mod` declarations and re-exports.
//! Two graphs must be free of cycles:
//! - files: no file depends, through others, on a file that depends on it (a `mod.rs` and its
//!   children included; a parent's `mod x;` and its `pub use x::Y` re-exports are not edges);
//! - at every level, the sibling modules of one parent, each taken with everything under it
//!   (so `kernel/` → `process/` → `kernel/` is a cycle even when no two files form one).
//!
//! Code under `#[cfg(test)]` is left out: a test module may look at anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The crates whose module graphs are checked, as (crate folder, root file).
const ROOTS: &[(&str, &str)] = &[
    ("es-core", "src/lib.rs"),
    ("es-macros", "src/lib.rs"),
    ("es-stores", "src/lib.rs"),
    ("es-cli", "src/lib.rs"),
    ("es-cli", "src/main.rs"),
    ("es-bench", "src/main.rs"),
    ("examples", "src/lib.rs"),
];

/// The longest a file under a crate's `src/` may be, in lines.
const MAX_LINES: usize = 700;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// One module of a crate: a file, or an inline `mod x { .. }` inside one.
#[derive(Default)]
struct Module {
    /// Its path from the crate root (`["kernel", "actor"]`).
    path: Vec<String>,
    /// The file it is written in, relative to the workspace.
    file: String,
    /// Child modules by name, as indexes.
    children: BTreeMap<String, usize>,
    /// Names of items declared in it (types, functions, traits, constants, macros).
    items: BTreeSet<String>,
    /// Names brought in by `use`, with the absolute path each stands for.
    imports: BTreeMap<String, Vec<String>>,
    /// Modules glob-imported (`use x::*`), as absolute paths.
    globs: Vec<Vec<String>>,
    /// Paths this module depends on: (absolute path, whether it is a re-export).
    refs: Vec<(Vec<String>, bool)>,
}

struct Crate {
    name: String,
    modules: Vec<Module>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .map(|l| {
                    let text = l.tokens.to_string();
                    text == "test" || text.starts_with("test ") || text.contains("any (test")
                })
                .unwrap_or(false)
    })
}

/// Flattens a `use` tree into (alias, path, is_glob) triples, paths as written.
fn flatten_use(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(String, Vec<String>, bool)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last() {
                    out.push((last.clone(), prefix.clone(), false));
                }
            } else {
                let mut path = prefix.clone();
                path.push(name.clone());
                out.push((name, path, false));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            let name = r.ident.to_string();
            if name != "self" {
                path.push(name);
            }
            out.push((r.rename.to_string(), path, false));
        }
        syn::UseTree::Glob(_) => out.push((String::new(), prefix.clone(), true)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, out);
            }
        }
    }
}

/// Collects `crate::`/`super::`/`self::` paths used in code (not in `use` items).
struct PathRefs {
    paths: Vec<Vec<String>>,
}

impl<'ast> Visit<'ast> for PathRefs {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if matches!(
            segments.first().map(String::as_str),
            Some("crate" | "super" | "self")
        ) && segments.len() > 1
        {
            self.paths.push(segments);
        }
        syn::visit::visit_path(self, path);
    }
    fn visit_item_use(&mut self, _: &'ast syn::ItemUse) {}
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            _ => {
                syn::visit::visit_item(self, item);
                return;
            }
        };
        if !is_cfg_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }
}

impl Crate {
    fn load(dir: &str, root: &str) -> Result<Self, String> {
        let mut krate = Crate {
            name: format!("{dir}/{root}"),
            modules: Vec::new(),
        };
        let root_file = workspace().join(dir).join(root);
        let source_dir = root_file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let file = parse(&root_file)?;
        krate.add_module(Vec::new(), &root_file, source_dir, &file.items)?;
        Ok(krate)
    }

    /// Adds a module and, recursively, its children; returns its index.
    fn add_module(
        &mut self,
        path: Vec<String>,
        file: &Path,
        child_dir: PathBuf,
        items: &[syn::Item],
    ) -> Result<usize, String> {
        let index = self.modules.len();
        let relative = file
            .strip_prefix(workspace())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| file.display().to_string());
        self.modules.push(Module {
            path: path.clone(),
            file: relative,
            ..Module::default()
        });
        let mut refs = PathRefs { paths: Vec::new() };
        for item in items {
            match item {
                syn::Item::Mod(m) => {
                    if is_cfg_test(&m.attrs) {
                        continue;
                    }
                    let name = m.ident.to_string();
                    let mut child_path = path.clone();
                    child_path.push(name.clone());
                    let child = if let Some((_, inline)) = &m.content {
                        self.add_module(child_path, file, child_dir.join(&name), inline)?
                    } else {
                        let flat = child_dir.join(format!("{name}.rs"));
                        let nested = child_dir.join(&name).join("mod.rs");
                        let (child_file, grandchildren) = if flat.exists() {
                            (flat, child_dir.join(&name))
                        } else if nested.exists() {
                            (nested, child_dir.join(&name))
                        } else {
                            return Err(format!("module {name} of {} not found", file.display()));
                        };
                        let parsed = parse(&child_file)?;
                        self.add_module(child_path, &child_file, grandchildren, &parsed.items)?
                    };
                    self.modules[index].children.insert(name, child);
                }
                syn::Item::Use(u) => {
                    if is_cfg_test(&u.attrs) {
                        continue;
                    }
                    let reexport = !matches!(u.vis, syn::Visibility::Inherited);
                    let mut flat = Vec::new();
                    flatten_use(&u.tree, &mut Vec::new(), &mut flat);
                    for (alias, written, glob) in flat {
                        let Some(absolute) = self.absolute(index, &written) else {
                            continue;
                        };
                        let module = &mut self.modules[index];
                        if glob {
                            module.globs.push(absolute.clone());
                        } else {
                            module.imports.insert(alias, absolute.clone());
                        }
                        module.refs.push((absolute, reexport));
                    }
                }
                other => {
                    if let Some(name) = item_name(other) {
                        self.modules[index].items.insert(name);
                    }
                    refs.visit_item(other);
                }
            }
        }
        for written in refs.paths {
            if let Some(absolute) = self.absolute(index, &written) {
                self.modules[index].refs.push((absolute, false));
            }
        }
        Ok(index)
    }

    /// The absolute path (from the crate root) of a path written in module `at`, or `None`
    /// for a path into another crate.
    fn absolute(&self, at: usize, written: &[String]) -> Option<Vec<String>> {
        let here = &self.modules[at].path;
        let first = written.first()?;
        let mut out = match first.as_str() {
            "crate" => Vec::new(),
            "self" => here.clone(),
            "super" => {
                let mut p = here.clone();
                let mut rest = written;
                while rest.first().map(String::as_str) == Some("super") {
                    p.pop();
                    rest = &rest[1..];
                }
                p.extend(rest.iter().cloned());
                return Some(p);
            }
            // A path relative to this module (a child, or an item declared here).
            name if self.modules[at].children.contains_key(name) => {
                let mut p = here.clone();
                p.push(name.to_string());
                p.extend(written[1..].iter().cloned());
                return Some(p);
            }
            _ => return None,
        };
        out.extend(written[1..].iter().cloned());
        Some(out)
    }

    /// The module that defines what an absolute path names, following re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> usize {
        let mut at = 0;
        for (i, segment) in path.iter().enumerate() {
            if depth > 16 {
                return at;
            }
            let module = &self.modules[at];
            if let Some(&child) = module.children.get(segment) {
                at = child;
                continue;
            }
            if module.items.contains(segment) {
                return at;
            }
            if let Some(target) = module.imports.get(segment) {
                let mut full = target.clone();
                full.extend(path[i + 1..].iter().cloned());
                return self.resolve(&full, depth + 1);
            }
            for glob in &module.globs {
                let mut full = glob.clone();
                full.extend(path[i..].iter().cloned());
                let found = self.resolve(&full, depth + 1);
                if found != at && found != 0 {
                    return found;
                }
            }
            return at;
        }
        at
    }

    /// Every file's dependencies on other files: (from file, to file) → one path that makes it.
    fn file_edges(&self) -> BTreeMap<(String, String), String> {
        let mut edges = BTreeMap::new();
        for module in &self.modules {
            for (path, reexport) in &module.refs {
                let target = self.resolve(path, 0);
                let to = &self.modules[target];
                if to.file == module.file {
                    continue;
                }
                // A module's re-export of something below it is its facade, not a dependency.
                if *reexport && to.path.starts_with(&module.path) {
                    continue;
                }
                edges
                    .entry((module.file.clone(), to.file.clone()))
                    .or_insert_with(|| format!("crate::{}", path.join("::")));
            }
        }
        edges
    }

    /// The module path of each file (the path of the first module written in it).
    fn file_paths(&self) -> HashMap<String, Vec<String>> {
        let mut paths = HashMap::new();
        for module in &self.modules {
            paths
                .entry(module.file.clone())
                .or_insert_with(|| module.path.clone());
        }
        paths
    }
}

fn parse(path: &Path) -> Result<syn::File, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn item_name(item: &syn::Item) -> Option<String> {
    Some(match item {
        syn::Item::Const(i) => i.ident.to_string(),
        syn::Item::Enum(i) => i.ident.to_string(),
        syn::Item::Fn(i) => i.sig.ident.to_string(),
        syn::Item::Macro(i) => i.ident.as_ref()?.to_string(),
        syn::Item::Static(i) => i.ident.to_string(),
        syn::Item::Struct(i) => i.ident.to_string(),
        syn::Item::Trait(i) => i.ident.to_string(),
        syn::Item::TraitAlias(i) => i.ident.to_string(),
        syn::Item::Type(i) => i.ident.to_string(),
        syn::Item::Union(i) => i.ident.to_string(),
        _ => return None,
    })
}

/// The cycles of a graph: one path around each strongly connected component of two or more
/// nodes.
fn cycles(edges: &BTreeMap<(String, String), String>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
        next.entry(to).or_default();
    }
    let nodes: Vec<&str> = next.keys().copied().collect();
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(n) = stack.pop() {
            for &m in &next[n] {
                if seen.insert(m) {
                    stack.push(m);
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&str, BTreeSet<&str>> = nodes.iter().map(|&n| (n, reach(n))).collect();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for &n in &nodes {
        if done.contains(n) || !reachable[n].contains(n) {
            continue;
        }
        let component: BTreeSet<&str> = reachable[n]
            .iter()
            .copied()
            .filter(|m| reachable[*m].contains(n))
            .collect();
        done.extend(component.iter().copied());
        // A shortest way around, from n back to n, inside the component.
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([n]);
        'search: while let Some(a) = queue.pop_front() {
            for &b in &next[a] {
                if !component.contains(b) {
                    continue;
                }
                if b == n {
                    previous.insert(n, a);
                    break 'search;
                }
                if let std::collections::btree_map::Entry::Vacant(e) = previous.entry(b) {
                    e.insert(a);
                    queue.push_back(b);
                }
            }
        }
        let mut path = vec![n.to_string()];
        let mut at = previous.get(n).copied();
        while let Some(a) = at {
            if a == n {
                break;
            }
            path.push(a.to_string());
            at = previous.get(a).copied();
        }
        path.push(n.to_string());
        path.reverse();
        found.push(path);
    }
    found
}

fn describe(edges: &BTreeMap<(String, String), String>, cycle: &[String], out: &mut String) {
    for pair in cycle.windows(2) {
        let why = edges
            .get(&(pair[0].clone(), pair[1].clone()))
            .map(String::as_str)
            .unwrap_or("?");
        let _ = writeln!(out, "      {} -> {}   (uses {why})", pair[0], pair[1]);
    }
}

/// Every module-level cycle of one crate, described.
fn crate_cycles(krate: &Crate) -> String {
    let mut report = String::new();
    let edges = krate.file_edges();
    for cycle in cycles(&edges) {
        let _ = writeln!(
            report,
            "  {}: files depend on each other in a circle:",
            krate.name
        );
        describe(&edges, &cycle, &mut report);
    }
    // Sibling modules, each with everything under it.
    let paths = krate.file_paths();
    for parent in &krate.modules {
        if parent.children.is_empty() {
            continue;
        }
        let depth = parent.path.len();
        let mut level: BTreeMap<(String, String), String> = BTreeMap::new();
        for ((from, to), why) in &edges {
            let (Some(a), Some(b)) = (paths.get(from), paths.get(to)) else {
                continue;
            };
            if a.len() <= depth || b.len() <= depth {
                continue;
            }
            if !a.starts_with(&parent.path) || !b.starts_with(&parent.path) || a[depth] == b[depth]
            {
                continue;
            }
            let name = |p: &[String]| {
                let mut q = p[..=depth].to_vec();
                q.insert(0, "crate".to_string());
                q.join("::")
            };
            level
                .entry((name(a), name(b)))
                .or_insert_with(|| format!("{why} in {from}"));
        }
        for cycle in cycles(&level) {
            let _ = writeln!(
                report,
                "  {}: sibling modules depend on each other in a circle:",
                krate.name
            );
            describe(&level, &cycle, &mut report);
        }
    }
    report
}

#[test]
fn modules_depend_on_each_other_one_way_only() {
    let mut report = String::new();
    for (dir, root) in ROOTS {
        match Crate::load(dir, root) {
            Ok(krate) => report.push_str(&crate_cycles(&krate)),
            Err(e) => {
                let _ = writeln!(report, "  {dir}/{root}: cannot read the modules: {e}");
            }
        }
    }
    assert!(
        report.is_empty(),
        "module cycles (an arrow is a `use` or a path from one file to what another defines; \
         move what both sides need into a module of its own that depends on neither):\n{report}"
    );
}

#[test]
fn the_checker_finds_a_cycle_between_siblings() {
    let mut edges = BTreeMap::new();
    edges.insert(
        ("a".to_string(), "b".to_string()),
        "crate::b::X".to_string(),
    );
    edges.insert(
        ("b".to_string(), "c".to_string()),
        "crate::c::Y".to_string(),
    );
    edges.insert(
        ("c".to_string(), "a".to_string()),
        "crate::a::Z".to_string(),
    );
    edges.insert(
        ("c".to_string(), "d".to_string()),
        "crate::d::W".to_string(),
    );
    let found = cycles(&edges);
    assert_eq!(found, vec![vec!["a", "b", "c", "a"]]);
    edges.remove(&("c".to_string(), "a".to_string()));
    assert!(cycles(&edges).is_empty());
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_longer_than_a_reader_can_hold() {
    let mut long = Vec::new();
    let mut seen = BTreeSet::new();
    for (dir, _) in ROOTS {
        if !seen.insert(*dir) {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&workspace().join(dir).join("src"), &mut files);
        for file in files {
            let lines = std::fs::read_to_string(&file)
                .map(|t| t.lines().count())
                .unwrap_or(0);
            if lines > MAX_LINES {
                long.push(format!("  {} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files under src/ longer than {MAX_LINES} lines (split them by concern):\n{}",
        long.join("\n")
    );
}
