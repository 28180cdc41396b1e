//! The code's shape, checked from the source: the top-level modules form
//! layers that only point down, with no import circles, and the shared key
//! state imports nothing else from the crate. Run with `--nocapture` to see
//! the layers and every module's imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module's layer; a module may import only from its own
/// layer (without circles) or lower ones.
const LAYERS: &[(&str, &[&str])] = &[
    ("wiring", &["main", "app", "demo"]),
    ("HTTP", &["admin", "api"]),
    ("request flow", &["dispatch", "watch"]),
    (
        "services",
        &["accounting", "cluster", "pool", "policy", "tenancy", "upstream", "store", "server", "fake_upstream"],
    ),
    (
        "pure cores (no I/O)",
        &["key_state", "keys", "config", "translate", "secrets", "metrics", "midnight", "catalog", "shaping", "prices"],
    ),
];

fn layer_of(module: &str) -> usize {
    let from_top = LAYERS.iter().position(|(_, modules)| modules.contains(&module));
    from_top.map(|position| LAYERS.len() - position).unwrap_or_else(|| panic!("module `{module}` has no layer"))
}

/// Top-level module → the top-level modules its files name (`crate::x`).
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut folders = vec![src.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("src is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let module_of = |path: &Path| {
        let first = path.strip_prefix(&src).expect("under src").components().next().expect("a component");
        first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files.iter().map(|p| module_of(p)).filter(|m| m != "lib").collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for path in &files {
        let from = module_of(path);
        if from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("source is readable");
        // `main.rs` names the library as `gemgate::`; everything else `crate::`.
        for prefix in ["crate::", "gemgate::"] {
            for (at, _) in text.match_indices(prefix) {
                for name in names_after(&text[at + prefix.len()..]) {
                    if name != from && modules.contains(&name) {
                        graph.get_mut(&from).expect("known").insert(name);
                    }
                }
            }
        }
    }
    graph
}

/// `x` in `crate::x::…`, or each `x` in `crate::{x, y::z}`.
fn names_after(rest: &str) -> Vec<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    match rest.strip_prefix('{') {
        Some(group) => {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            group.split(',').map(|item| ident(item.trim())).filter(|s| !s.is_empty()).collect()
        }
        None => vec![ident(rest)],
    }
}

fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            return Some(path[start..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in &graph[node] {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn modules_form_layers_that_only_point_down() {
    let graph = import_graph();
    for (name, modules) in LAYERS {
        println!("{name}:");
        for module in *modules {
            let imports: Vec<&str> =
                graph.get(*module).map(|s| s.iter().map(String::as_str).collect()).unwrap_or_default();
            println!("  {module} -> {}", imports.join(", "));
        }
    }
    assert_eq!(find_circle(&graph), None, "an import circle");
    for (from, imports) in &graph {
        for to in imports {
            assert!(layer_of(from) >= layer_of(to), "`{from}` imports `{to}`, a higher layer");
        }
    }
    assert!(graph["key_state"].is_empty(), "key_state imports {:?}", graph["key_state"]);
    let pure = LAYERS.last().expect("layers").1;
    for module in pure {
        for to in &graph[*module] {
            assert!(pure.contains(&to.as_str()), "pure core `{module}` imports `{to}`");
        }
    }
}

#[test]
fn the_checker_sees_circles_and_grouped_imports() {
    assert_eq!(names_after("{pool, store::StoreHandle}; x"), ["pool", "store"]);
    assert_eq!(names_after("pool::Lease"), ["pool"]);
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a".to_string(), BTreeSet::from(["b".to_string()])), ("b".to_string(), BTreeSet::from(["a".to_string()]))]
            .into();
    assert_eq!(find_circle(&graph), Some(vec!["a".to_string(), "b".to_string()]));
}
