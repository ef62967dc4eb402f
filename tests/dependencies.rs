//! Every dependency a crate of the workspace declares is used by that crate's code, and every entry
//! of `[workspace.dependencies]` is used by some member: an unused dependency costs build time on
//! every machine and reads as a promise the code does not keep. A crate counts as used when its
//! name appears as a path (`name::`), in a `use` or in `extern crate` in the crate's `src/`,
//! `tests/`, `benches/`, `examples/` or `build.rs` — the same rule cargo-machete applies, without
//! installing it. A dependency that is needed only for its features or its linking must be listed
//! in `KEPT` with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// (crate directory relative to the workspace root, dependency) kept although no code names it.
const KEPT: &[(&str, &str, &str)] = &[
    // `[workspace.dependencies]` entries ("*" = the workspace table) kept for work already planned
    (
        "*",
        "apalis",
        "the background-jobs issue (#16) moves the job runtime onto apalis; versions verified in STACK.md",
    ),
    ("*", "apalis-postgres", "as apalis (#16)"),
    ("*", "apalis-cron", "as apalis (#16)"),
    ("*", "cron", "as apalis (#16): apalis-cron's schedule type"),
];

const MEMBERS_KEY: &str = "members = [";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The dependency names of each `[…dependencies]` table of a manifest (no TOML crate needed: our
/// manifests write one dependency per line).
fn declared(manifest: &str, tables: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = tables.contains(&line);
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line
            .split(['=', '.', ' '])
            .next()
            .unwrap_or("")
            .trim_matches('"');
        if !name.is_empty() {
            names.insert(name.to_owned());
        }
    }
    names
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

fn sources_of(crate_dir: &Path) -> String {
    let mut files = Vec::new();
    for sub in ["src", "tests", "benches", "examples"] {
        rust_files(&crate_dir.join(sub), &mut files);
    }
    let build = crate_dir.join("build.rs");
    if build.is_file() {
        files.push(build);
    }
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Does the code name the crate `ident` as a path, in a `use`, or in `extern crate`?
fn names_crate(code: &str, ident: &str) -> bool {
    let mut from = 0;
    while let Some(at) = code[from..].find(ident) {
        let start = from + at;
        let end = start + ident.len();
        from = end;
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| is_ident_char(c) || c == ':') {
            continue; // part of a longer name, or a path segment (`foo::ident`)
        }
        let after = &code[end..];
        if after.chars().next().is_some_and(is_ident_char) {
            continue;
        }
        if after.trim_start().starts_with("::") {
            return true;
        }
        let head = code[..start].trim_end();
        if head.ends_with("use") || head.ends_with("extern crate") || head.ends_with("pub use") {
            return true;
        }
    }
    false
}

fn kept(dir: &str, dep: &str) -> bool {
    KEPT.iter().any(|(d, n, _)| *d == dir && *n == dep)
}

#[test]
fn every_declared_dependency_is_used() {
    let root = workspace_root();
    let root_manifest =
        std::fs::read_to_string(root.join("Cargo.toml")).expect("read the workspace manifest");
    let members_line = root_manifest
        .lines()
        .find(|l| l.trim_start().starts_with(MEMBERS_KEY))
        .expect("a one-line members list");
    let members: Vec<String> = members_line
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(members.len() > 3, "members parsed: {members:?}");

    let mut unused = Vec::new();
    let mut used_by_members = BTreeSet::new();
    let mut all_sources = BTreeMap::new();
    for member in &members {
        let dir = root.join(member);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("member manifest");
        let code = if member == "." {
            // the root package's own code only, not the other members below it
            let mut files = Vec::new();
            rust_files(&root.join("src"), &mut files);
            rust_files(&root.join("tests"), &mut files);
            files
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            sources_of(&dir)
        };
        let deps = declared(
            &manifest,
            &[
                "[dependencies]",
                "[dev-dependencies]",
                "[build-dependencies]",
            ],
        );
        for dep in deps {
            used_by_members.insert(dep.clone());
            let ident = dep.replace('-', "_");
            if !names_crate(&code, &ident) && !kept(member, &dep) {
                unused.push(format!(
                    "{member}/Cargo.toml declares `{dep}`, which its code never names"
                ));
            }
        }
        all_sources.insert(member.clone(), code);
    }
    for dep in declared(&root_manifest, &["[workspace.dependencies]"]) {
        if !used_by_members.contains(&dep) && !kept("*", &dep) {
            unused.push(format!(
                "[workspace.dependencies] declares `{dep}`, which no member uses"
            ));
        }
    }
    for (dir, dep, why) in KEPT {
        assert!(!why.is_empty(), "{dir} {dep}: say why it is kept");
    }
    assert!(
        unused.is_empty(),
        "unused dependencies (remove them, or list them in KEPT with the reason):\n  {}",
        unused.join("\n  ")
    );
}

#[test]
fn the_check_sees_a_crate_named_by_path_use_or_macro_only() {
    assert!(names_crate("let x = serde_json::json!({});", "serde_json"));
    assert!(names_crate("use maud::{html, DOCTYPE};", "maud"));
    assert!(names_crate("#[tokio::main]", "tokio"));
    assert!(!names_crate("let rand_value = 4; // rand", "rand"));
    assert!(!names_crate("use platform::uuid::Uuid;", "uuid"));
    assert!(!names_crate("let tower = 1;", "tower"));
}
