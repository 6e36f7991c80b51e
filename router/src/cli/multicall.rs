//! The iptables/conntrack personalities: `tungate iptables ...` or a link named
//! `iptables` (see `tungate install-links DIR`). They forward argv and stdin to
//! the running gateway and print what it answers, exiting with its status.

use crate::control::{client, proto::Tool};
use std::io::{Read, Write};
use std::process::ExitCode;

/// Names `install-links` creates, each a symlink to the tungate binary.
pub const LINK_NAMES: [&str; 7] = [
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
    "conntrack",
];

/// Runs `tool` with `args` (program name already removed). A leading
/// `--ctl PATH` selects the socket.
pub fn run(tool: Tool, mut args: Vec<String>) -> ExitCode {
    let mut ctl = None;
    if args.first().map(String::as_str) == Some("--ctl") && args.len() >= 2 {
        ctl = Some(args[1].clone());
        args.drain(..2);
    }
    let path = client::socket_path(ctl.as_deref());
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let mut print = |r: &crate::control::proto::Response| {
        let _ = out.write_all(r.stdout.as_bytes());
        let _ = out.flush();
        let _ = err.write_all(r.stderr.as_bytes());
    };
    if tool.reads_stdin() {
        // Input redirected from a file: the kernel sends it to the gateway.
        if let Some((file, len)) = stdin_file() {
            return exit(
                tool,
                client::call_with_file(&path, tool, &args, file, len, print),
            );
        }
    }
    let stdin = if tool.reads_stdin() {
        let mut s = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut s) {
            eprintln!("{}: reading standard input: {e}", tool.name());
            return ExitCode::from(1);
        }
        Some(s)
    } else {
        None
    };
    exit(tool, client::call(&path, tool, &args, stdin, &mut print))
}

/// Standard input as a regular file, with the bytes left in it, when it is
/// one (`iptables-restore < FILE`) and fits a request.
fn stdin_file() -> Option<(std::fs::File, u32)> {
    use std::io::Seek;
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let mut f = std::fs::File::from(fd);
    let meta = f.metadata().ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    let left = meta.len().checked_sub(f.stream_position().ok()?)?;
    u32::try_from(left)
        .ok()
        .filter(|&n| n <= crate::control::proto::MAX_FRAME)
        .map(|n| (f, n))
}

fn exit(tool: Tool, result: std::io::Result<i32>) -> ExitCode {
    match result {
        Ok(status) => ExitCode::from(status.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("{}: {e}", tool.name());
            ExitCode::from(1)
        }
    }
}

/// `tungate install-links DIR`: symlinks named like the real tools, pointing at
/// this binary. Existing links to us are replaced; other files are left alone.
pub fn install_links(dir: &str) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("tungate: cannot find own executable: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("tungate: {dir}: {e}");
        return ExitCode::from(1);
    }
    for name in LINK_NAMES {
        let link = std::path::Path::new(dir).join(name);
        if let Ok(meta) = std::fs::symlink_metadata(&link) {
            let ours = meta.file_type().is_symlink()
                && std::fs::read_link(&link).map(|t| t == exe).unwrap_or(false);
            if !ours {
                eprintln!(
                    "tungate: {} exists and is not a link to tungate; left alone",
                    link.display()
                );
                return ExitCode::from(1);
            }
            let _ = std::fs::remove_file(&link);
        }
        if let Err(e) = std::os::unix::fs::symlink(&exe, &link) {
            eprintln!("tungate: {}: {e}", link.display());
            return ExitCode::from(1);
        }
        println!("{} -> {}", link.display(), exe.display());
    }
    ExitCode::SUCCESS
}
