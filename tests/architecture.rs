//! The module map of ARCHITECTURE.md, enforced: every `crate::` path in the
//! library names a module of a lower layer (or its own), pure modules touch
//! no I/O, and anyhow stays at the command-line edge.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The library's top-level modules by layer: a module may use only modules
/// of lower layers. Keep in step with ARCHITECTURE.md.
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("format", 1),
    ("chunker", 2),
    ("crypto", 2),
    ("policy", 2),
    ("progress", 2),
    ("units", 1),
    ("system", 3),
    ("storage", 3),
    ("cache", 3),
    ("config", 3),
    ("engines", 4),
    ("repo", 5),
    ("delta", 6),
    ("ingest", 7),
    ("ops", 8),
    ("mount", 9),
    ("serve", 9),
];

/// Names the crate root re-exports, and the module each comes from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("Error", "error"),
    ("ErrorKind", "error"),
    ("Result", "error"),
    ("Id", "format"),
    ("Repository", "repo"),
];

/// Modules that must stay pure: bytes and rules, no files, sockets,
/// processes or environment.
const PURE: &[&str] = &[
    "error", "format", "chunker", "crypto", "policy", "progress", "units",
];
const IO_PATHS: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "opendal",
    "rusqlite",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a library file belongs to (`src/repo/lock.rs` ->
/// `repo`, `src/chunker.rs` -> `chunker`); `None` for the crate roots and
/// the command line, which stand above the library.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    match name.as_str() {
        "lib" | "main" | "cli" => None,
        _ => Some(name),
    }
}

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module `{module}` is missing from LAYERS and ARCHITECTURE.md"))
}

/// The modules a file's code names through `crate::` paths, comments
/// left out.
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let preceded_by_ident = rest[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
            rest = &rest[at + "crate::".len()..];
            if preceded_by_ident {
                continue; // `$crate::` or another crate's path
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if let Some((_, module)) = ROOT_REEXPORTS.iter().find(|(n, _)| *n == name) {
                out.insert(module.to_string());
            } else if !name.is_empty() {
                out.insert(name);
            }
        }
        // `use crate::{a, b}` names several.
        if let Some(at) = code.find("crate::{") {
            let group = &code[at + "crate::{".len()..];
            for part in group.split([',', '}']) {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

fn library_files() -> Vec<(PathBuf, String, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .into_iter()
        .filter_map(|f| {
            let module = module_of(&f)?;
            let text = std::fs::read_to_string(&f).unwrap();
            Some((f, module, text))
        })
        .collect()
}

#[test]
fn every_import_points_down_the_layers() {
    let mut wrong = Vec::new();
    for (file, module, text) in library_files() {
        let own = layer(&module);
        for used in crate_uses(&text) {
            if used == module {
                continue;
            }
            if layer(&used) >= own {
                wrong.push(format!(
                    "{}: `{module}` (layer {own}) uses `{used}` (layer {})",
                    file.display(),
                    layer(&used)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the module map (ARCHITECTURE.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn pure_modules_do_no_io() {
    let mut wrong = Vec::new();
    for (file, module, text) in library_files() {
        if !PURE.contains(&module.as_str()) {
            continue;
        }
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        for io in IO_PATHS {
            if code.contains(io) {
                wrong.push(format!(
                    "{}: pure module `{module}` uses {io}",
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn anyhow_only_at_the_command_line() {
    let offenders: Vec<String> = library_files()
        .into_iter()
        .filter(|(_, _, text)| text.contains("anyhow"))
        .map(|(f, _, _)| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "the library returns vault::Error; anyhow belongs to src/cli and src/main.rs: {offenders:?}"
    );
}

#[test]
fn the_map_names_every_module_and_the_test_sees_them_all() {
    let found: BTreeSet<String> = library_files().into_iter().map(|(_, m, _)| m).collect();
    let listed: BTreeSet<String> = LAYERS.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(found, listed, "LAYERS and src/ disagree");
    let map =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .unwrap();
    for module in &listed {
        assert!(
            map.contains(&format!("`{module}`")),
            "ARCHITECTURE.md does not place `{module}`"
        );
    }
}

#[test]
fn the_checker_sees_imports() {
    // The scan must find what it is meant to forbid, or every test above
    // passes vacuously.
    let sample = "use crate::repo::Repository;\nuse crate::{ops, format::Id};\nlet e = crate::Error::invalid(x); // crate::serve\n$crate::mount";
    let got: Vec<String> = crate_uses(sample).into_iter().collect();
    assert_eq!(got, ["error", "format", "ops", "repo"]);
}
