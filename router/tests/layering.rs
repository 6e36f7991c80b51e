//! The architecture as a test: `router/ARCHITECTURE.md`'s layer table is the
//! rule, and this reads `router/src` against it.
//!
//! - every top-level module of `src` has a row in the table;
//! - a module names only modules of a lower layer (no upward import, no
//!   import between modules of one layer, hence no cycle);
//! - `unsafe` is written only under `src/sys/`;
//! - the sans-IO core reads no clock, file or environment, logs and prints
//!   nothing, starts no process, opens no socket, sleeps not, and calls
//!   nothing of `sys` (its one use of `sys` is the `ZeroableAtomics` promise);
//! - no source file has more than 1,200 lines of non-test code.
//!
//! Test code (`#[cfg(test)]` modules at the end of a file, `tests.rs`
//! files) is exempt from the first and fourth rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const CORE: [&str; 7] = [
    "pipeline",
    "syntax",
    "nat",
    "route",
    "ruleset",
    "conntrack",
    "wire",
];

/// What the core must not contain (in non-test code, outside comments).
const CORE_FORBIDDEN: [&str; 17] = [
    "std::fs",
    "std::env",
    "SystemTime",
    "Instant::now",
    "now_monotonic",
    "tracing::",
    "println!",
    "eprintln!",
    "print!",
    "std::process",
    "TcpStream",
    "UdpSocket",
    "TcpListener",
    "UnixStream",
    "thread::sleep",
    "libc::",
    "crate::sys::",
];

/// The core's allowed uses of `sys` (type-level promises, no calls).
const CORE_SYS_ALLOWED: [&str; 2] = [
    "crate::sys::mem::zeroable_atomics!",
    "crate::sys::mem::ZeroableAtomics",
];

const MAX_NON_TEST_LINES: usize = 1200;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `layer | module | ...` rows of ARCHITECTURE.md.
fn layers() -> BTreeMap<String, u32> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("router/ARCHITECTURE.md");
    let mut m = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 4 && cells[0].is_empty() {
            if let Ok(n) = cells[1].parse::<u32>() {
                assert!(
                    m.insert(cells[2].to_string(), n).is_none(),
                    "module {} has two rows",
                    cells[2]
                );
            }
        }
    }
    assert!(
        m.len() >= 10,
        "no layer table found in ARCHITECTURE.md: {m:?}"
    );
    m
}

/// Every `.rs` file under `dir`, with the top-level module it belongs to.
fn files(dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(src()).unwrap();
            let top = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let top = top.trim_end_matches(".rs").to_string();
            out.push((top, p));
        }
    }
}

/// The lines of a file (all of them, or only its non-test code), each
/// without its `//` comment (string contents are kept, which errs on the
/// strict side).
fn lines(path: &Path, with_tests: bool) -> Vec<(usize, String)> {
    if !with_tests && path.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if !with_tests && line.starts_with("#[cfg(test)]") {
            break;
        }
        let l = line.find("//").map_or(line, |j| &line[..j]);
        out.push((i + 1, l.to_string()));
    }
    out
}

/// The non-test code of a file (see [`lines`]).
fn code(path: &Path) -> Vec<(usize, String)> {
    lines(path, false)
}

/// Fails with every finding, one a line, under `what`.
fn report(what: &str, bad: Vec<String>) {
    assert!(bad.is_empty(), "{what}:\n{}", bad.join("\n"));
}

/// Module names `crate::x` or `crate::{x, y::z}` on the lines.
fn imports(lines: &[(usize, String)]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let joined: Vec<(usize, &str)> = lines.iter().map(|(n, l)| (*n, l.as_str())).collect();
    let mut in_brace: Option<usize> = None;
    for (n, l) in joined {
        let mut rest = l;
        if in_brace.is_some() {
            // Inside `use crate::{ ... }` spanning lines: each item's first segment.
            let (inside, after) = match rest.find('}') {
                Some(j) => (&rest[..j], Some(&rest[j + 1..])),
                None => (rest, None),
            };
            for item in inside.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() && first.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    out.push((n, first.to_string()));
                }
            }
            match after {
                Some(a) => {
                    in_brace = None;
                    rest = a;
                }
                None => continue,
            }
        }
        while let Some(j) = rest.find("crate::") {
            rest = &rest[j + "crate::".len()..];
            if let Some(r) = rest.strip_prefix('{') {
                let (inside, after) = match r.find('}') {
                    Some(k) => (&r[..k], Some(&r[k + 1..])),
                    None => (r, None),
                };
                for item in inside.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    if !first.is_empty() {
                        out.push((n, first.to_string()));
                    }
                }
                match after {
                    Some(a) => rest = a,
                    None => {
                        in_brace = Some(n);
                        break;
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                if !name.is_empty() {
                    out.push((n, name));
                }
            }
        }
    }
    out
}

fn all_files() -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    files(&src(), &mut v);
    v.sort();
    v
}

#[test]
fn every_module_has_a_layer() {
    let layers = layers();
    for (top, path) in all_files() {
        if top == "lib" || top == "main" {
            continue;
        }
        assert!(
            layers.contains_key(&top),
            "{}: module `{top}` has no row in ARCHITECTURE.md's layer table",
            path.display()
        );
    }
}

#[test]
fn imports_point_down_the_documented_layers() {
    let layers = layers();
    let mut bad = Vec::new();
    for (top, path) in all_files() {
        let Some(&mine) = layers.get(&top) else {
            continue;
        };
        for (n, m) in imports(&code(&path)) {
            if m == top || m == "self" || m == "super" {
                continue;
            }
            match layers.get(&m) {
                Some(&theirs) if theirs < mine => {}
                Some(&theirs) => bad.push(format!(
                    "{}:{n}: `{top}` (layer {mine}) imports `{m}` (layer {theirs})",
                    path.display()
                )),
                None => bad.push(format!(
                    "{}:{n}: `{top}` imports `{m}`, which has no layer",
                    path.display()
                )),
            }
        }
    }
    report("imports against the layers", bad);
}

/// Findings `path:line: what` on the lines of the modules `which` selects.
fn findings(
    which: impl Fn(&str) -> bool,
    with_tests: bool,
    find: impl Fn(&str) -> Vec<String>,
) -> Vec<String> {
    let mut bad = Vec::new();
    for (_, path) in all_files().into_iter().filter(|(t, _)| which(t)) {
        for (n, l) in lines(&path, with_tests) {
            for what in find(&l) {
                bad.push(format!("{}:{n}: {what}", path.display()));
            }
        }
    }
    bad
}

#[test]
fn unsafe_is_written_only_in_sys() {
    let bad = findings(
        |top| top != "sys",
        true,
        |l| {
            let mut words = l.split(|c: char| !(c.is_alphanumeric() || c == '_'));
            if words.any(|w| w == "unsafe") && !l.contains("unsafe_code") {
                vec![l.trim().to_string()]
            } else {
                vec![]
            }
        },
    );
    report("unsafe outside sys/", bad);
}

#[test]
fn the_core_does_no_io() {
    let bad = findings(
        |top| CORE.contains(&top),
        false,
        |l| {
            let mut l = l.to_string();
            for ok in CORE_SYS_ALLOWED {
                l = l.replace(ok, "");
            }
            CORE_FORBIDDEN
                .iter()
                .filter(|f| l.contains(*f))
                .map(|f| format!("`{f}` in the core: {}", l.trim()))
                .collect()
        },
    );
    report("I/O in the sans-IO core", bad);
}

#[test]
fn no_file_has_more_than_1200_lines_of_non_test_code() {
    let mut bad = Vec::new();
    for (_, path) in all_files() {
        let n = code(&path).len();
        if n > MAX_NON_TEST_LINES {
            bad.push(format!("{}: {n} lines of non-test code", path.display()));
        }
    }
    report("split these (one concept per file)", bad);
}

/// The checks above can fail: an upward import, `unsafe` and a clock read
/// are each caught on a made-up file.
#[test]
fn the_checks_catch_what_they_claim_to() {
    let lines = |s: &str| -> Vec<(usize, String)> {
        s.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect()
    };
    let im = imports(&lines(
        "use crate::pipeline::IfIndex;\nuse crate::{\n    clock::Timestamp,\n    wire::vnet,\n};\nlet x = crate::sys::mem::collect(true);",
    ));
    let names: Vec<&str> = im.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(names, ["pipeline", "clock", "wire", "sys"]);
    let layers = layers();
    assert!(
        layers["pipeline"] > layers["route"],
        "route must not import pipeline"
    );
    let core_line = "let t = std::time::SystemTime::now();";
    assert!(CORE_FORBIDDEN.iter().any(|f| core_line.contains(f)));
    let mut allowed = "crate::sys::mem::zeroable_atomics!(Slot {".to_string();
    for ok in CORE_SYS_ALLOWED {
        allowed = allowed.replace(ok, "");
    }
    assert!(!CORE_FORBIDDEN.iter().any(|f| allowed.contains(f)));
}
