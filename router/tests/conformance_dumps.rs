//! Whole-ruleset round trip: every dump in the shared conformance data is
//! restored and saved by tungate and compared with what the real
//! `iptables-restore` + `iptables-save` print, run in a scratch network
//! namespace this test creates (and always deletes). `#` lines are ignored.
//! Skips, saying why, when not root or when the tools are missing.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use tungate::ruleset::Ruleset;
use tungate::syntax::{restore, save, RestoreOptions};

fn shared() -> PathBuf {
    match std::env::var("TUNGATE_SHARED") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
    }
}

fn strip(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Option<Netns> {
        let name = format!("tg_rules_{tag}_{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(Netns(name))
    }
    fn run(&self, cmd: &[&str], input: Option<&str>) -> (bool, String, String) {
        use std::io::Write;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).args(cmd);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut ch = c.spawn().expect("spawn ip netns exec");
        if let Some(i) = input {
            ch.stdin.take().unwrap().write_all(i.as_bytes()).unwrap();
        } else {
            drop(ch.stdin.take());
        }
        let o = ch.wait_with_output().unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn dumps_round_trip_like_real_iptables() {
    let dir = shared().join("conformance/dumps");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let oracle = is_root()
        && Command::new("iptables-restore")
            .arg("--version")
            .output()
            .is_ok();
    if !oracle {
        println!("SKIP comparison with the real iptables: needs root and iptables-restore (only checking that each dump parses)");
    }
    let mut failures = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).unwrap();
        let mut rs = Ruleset::new();
        restore(&mut rs, &text, RestoreOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let ours = strip(&save(&rs, false));
        if !oracle {
            continue;
        }
        let ns = Netns::new(&i.to_string()).expect("ip netns add");
        let (ok, _, err) = ns.run(&["iptables-restore"], Some(&text));
        assert!(ok, "real iptables-restore failed on {}: {err}", f.display());
        let (ok, theirs, err) = ns.run(&["iptables-save"], None);
        assert!(ok, "iptables-save: {err}");
        let theirs = strip(&theirs);
        if ours == theirs {
            println!("{}: identical", f.display());
        } else {
            let diff: Vec<String> = ours
                .lines()
                .zip(theirs.lines())
                .filter(|(a, b)| a != b)
                .take(5)
                .map(|(a, b)| format!("  ours:   {a}\n  theirs: {b}"))
                .collect();
            failures.push(format!(
                "{} differs ({} vs {} lines):\n{}",
                f.display(),
                ours.lines().count(),
                theirs.lines().count(),
                diff.join("\n")
            ));
        }
    }
    for f in &failures {
        println!("{f}");
    }
    assert!(failures.is_empty(), "{} dumps differ", failures.len());
}
