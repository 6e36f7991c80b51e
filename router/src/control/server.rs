//! The control socket listener.
//!
//! Guarantees:
//! * The socket is created mode 0600 (0660 and group-owned when a control group
//!   is configured), and every connection's peer credentials (SO_PEERCRED) are
//!   checked: uid 0, or a process whose primary or supplementary groups include
//!   the configured group. Anyone else gets status 1 "permission denied" and
//!   nothing is read from them.
//! * A request is read whole (bounded by [`proto::MAX_FRAME`]) within
//!   [`ServerConfig::read_timeout`] before anything is executed: a client that
//!   stalls or disconnects mid-request changes nothing.
//! * At most [`ServerConfig::max_clients`] requests run at once; more are told
//!   to retry.

use super::proto::{self, FrameError, Request, Response};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Executes requests against the live gateway.
pub trait Handler: Send + Sync + 'static {
    /// Runs one request. Streaming tools call `stream` for every intermediate
    /// response (it returns `false` once the client is gone) and return the
    /// final one.
    fn handle(&self, req: &Request, stream: &mut dyn FnMut(&Response) -> bool) -> Response;
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub path: PathBuf,
    /// Group (gid) whose members may use the socket besides root.
    pub group: Option<u32>,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub max_clients: usize,
}

impl ServerConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ServerConfig {
            path: path.into(),
            group: None,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            max_clients: 16,
        }
    }
}

/// A running listener; dropping it stops accepting and removes the socket.
pub struct Server {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Binds the socket (replacing a stale one left by a crash) and starts the
    /// accept thread.
    pub fn start(cfg: ServerConfig, handler: Arc<dyn Handler>) -> io::Result<Server> {
        Server::bind(cfg)?.serve(handler)
    }

    /// Binds the socket only (replacing a stale one): done while privileged;
    /// [`Bound::serve`] starts the accept thread after the privilege drop, so
    /// that thread is born without capabilities.
    pub fn bind(cfg: ServerConfig) -> io::Result<Bound> {
        let listener = bind(&cfg)?;
        Ok(Bound { cfg, listener })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A bound control socket whose accept thread is not running yet.
pub struct Bound {
    cfg: ServerConfig,
    listener: UnixListener,
}

impl Bound {
    /// Starts the accept thread.
    pub fn serve(self, handler: Arc<dyn Handler>) -> io::Result<Server> {
        let Bound { cfg, listener } = self;
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let stop2 = stop.clone();
        let path = cfg.path.clone();
        let thread = thread::Builder::new()
            .name("tungate-ctl".into())
            .spawn(move || accept_loop(listener, cfg, handler, stop2, active))?;
        Ok(Server {
            path,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

fn bind(cfg: &ServerConfig) -> io::Result<UnixListener> {
    if let Some(dir) = cfg.path.parent() {
        if !dir.as_os_str().is_empty() {
            fs::create_dir_all(dir)?;
        }
    }
    if cfg.path.exists() {
        match UnixStream::connect(&cfg.path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use by another running gateway",
                        cfg.path.display()
                    ),
                ))
            }
            Err(_) => fs::remove_file(&cfg.path)?,
        }
    }
    let listener = UnixListener::bind(&cfg.path)?;
    let mode = if let Some(gid) = cfg.group {
        nix::unistd::chown(&cfg.path, None, Some(nix::unistd::Gid::from_raw(gid)))
            .map_err(io::Error::from)?;
        0o660
    } else {
        0o600
    };
    fs::set_permissions(&cfg.path, fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

fn accept_loop(
    listener: UnixListener,
    cfg: ServerConfig,
    handler: Arc<dyn Handler>,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicUsize>,
) {
    let cfg = Arc::new(cfg);
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = conn else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= cfg.max_clients {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = proto::write_frame(
                &mut stream,
                &Response::error(4, "tungate: control socket busy, try again\n"),
            );
            continue;
        }
        let (handler, cfg, active) = (handler.clone(), cfg.clone(), active.clone());
        let spawned = thread::Builder::new()
            .name("tungate-ctl-conn".into())
            .spawn(move || {
                serve_one(stream, &cfg, handler.as_ref());
                active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            tracing::warn!("control: could not spawn a connection thread");
        }
    }
}

/// Whether the peer may use the socket.
fn authorized(stream: &UnixStream, group: Option<u32>) -> Result<(), String> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let cred = getsockopt(stream, PeerCredentials).map_err(|e| format!("SO_PEERCRED: {e}"))?;
    if cred.uid() == 0 {
        return Ok(());
    }
    if let Some(g) = group {
        if cred.gid() == g || supplementary_groups(cred.pid()).contains(&g) {
            return Ok(());
        }
    }
    Err(format!(
        "permission denied: uid {} is neither root nor in the control group",
        cred.uid()
    ))
}

/// Supplementary groups of a process, from /proc/PID/status ("Groups:").
fn supplementary_groups(pid: i32) -> Vec<u32> {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn serve_one(mut stream: UnixStream, cfg: &ServerConfig, handler: &dyn Handler) {
    let _ = stream.set_read_timeout(Some(cfg.read_timeout));
    let _ = stream.set_write_timeout(Some(cfg.write_timeout));
    if let Err(why) = authorized(&stream, cfg.group) {
        tracing::warn!("control: refused a client: {why}");
        let _ = proto::write_frame(
            &mut stream,
            &Response::error(1, format!("tungate: {why}\n")),
        );
        return;
    }
    let t0 = std::time::Instant::now();
    let req: Request = match proto::read_request_unix(&mut stream) {
        Ok(Some(r)) => {
            tracing::debug!(
                tool = ?r.tool,
                stdin_bytes = r.stdin.as_ref().map_or(0, String::len),
                read_ms = t0.elapsed().as_secs_f64() * 1e3,
                "control: request received"
            );
            r
        }
        Ok(None) => return,
        Err(e) => {
            let msg = match &e {
                FrameError::Io(io) if io.kind() == io::ErrorKind::WouldBlock => {
                    "request not received in time".to_string()
                }
                other => other.to_string(),
            };
            tracing::warn!("control: bad request: {msg}");
            let _ = proto::write_frame(
                &mut stream,
                &Response::error(2, format!("tungate: bad request: {msg}\n")),
            );
            return;
        }
    };
    if req.version != proto::VERSION {
        let _ = proto::write_frame(
            &mut stream,
            &Response::error(
                2,
                format!(
                    "tungate: protocol version {} not supported (this gateway speaks {})\n",
                    req.version,
                    proto::VERSION
                ),
            ),
        );
        return;
    }
    let mut out = stream.try_clone().ok();
    let mut stream_fn = |r: &Response| -> bool {
        let mut r = r.clone();
        r.more = true;
        match out.as_mut() {
            Some(s) => proto::write_frame(s, &r).is_ok(),
            None => false,
        }
    };
    let mut last = handler.handle(&req, &mut stream_fn);
    last.more = false;
    let _ = proto::write_frame(&mut stream, &last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client;
    use crate::control::proto::{Tool, VERSION};
    use std::io::Write;

    struct Echo;
    impl Handler for Echo {
        fn handle(&self, req: &Request, stream: &mut dyn FnMut(&Response) -> bool) -> Response {
            if let Some(text) = &req.stdin {
                return Response::ok(format!("stdin {} {}", text.len(), text.lines().count()));
            }
            if req.args.first().map(String::as_str) == Some("stream") {
                for i in 0..3 {
                    stream(&Response::ok(format!("event {i}\n")));
                }
            }
            Response::ok(format!("{} {}\n", req.tool.name(), req.args.join(" ")))
        }
    }

    fn sock(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("tungate-test-{}-{name}.sock", std::process::id()))
    }

    #[test]
    fn request_response_and_stream() {
        let path = sock("rr");
        let _srv = Server::start(ServerConfig::new(&path), Arc::new(Echo)).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut got = String::new();
        let status = client::call(&path, Tool::Iptables, &["-S".to_string()], None, |r| {
            got.push_str(&r.stdout)
        })
        .unwrap();
        assert_eq!((status, got.as_str()), (0, "iptables -S\n"));
        let mut got = String::new();
        client::call(&path, Tool::Conntrack, &["stream".into()], None, |r| {
            got.push_str(&r.stdout)
        })
        .unwrap();
        assert_eq!(got, "event 0\nevent 1\nevent 2\nconntrack stream\n");
    }

    #[test]
    fn restore_input_arrives_whole_from_text_and_from_a_file() {
        let path = sock("stdin");
        let _srv = Server::start(ServerConfig::new(&path), Arc::new(Echo)).unwrap();
        // Large enough that the socket buffers fill while the server reads.
        let text: String = (0..50_000)
            .map(|i| format!("-A KUBE-SVC-{i} -m comment --comment \"svc {i}\" -j ACCEPT\n"))
            .collect();
        let want = format!("stdin {} 50000", text.len());
        let mut got = String::new();
        client::call(&path, Tool::IptablesRestore, &[], Some(text.clone()), |r| {
            got.push_str(&r.stdout)
        })
        .unwrap();
        assert_eq!(got, want);
        // From a file, skipping what was already read from it.
        let file = std::env::temp_dir().join(format!("tungate-test-{}-stdin", std::process::id()));
        fs::write(&file, format!("# header\n{text}")).unwrap();
        let mut f = fs::File::open(&file).unwrap();
        std::io::Read::read_exact(&mut f, &mut [0u8; 9]).unwrap();
        let mut got = String::new();
        client::call_with_file(
            &path,
            Tool::IptablesRestore,
            &[],
            f,
            text.len() as u32,
            |r| got.push_str(&r.stdout),
        )
        .unwrap();
        let _ = fs::remove_file(&file);
        assert_eq!(got, want);
    }

    #[test]
    fn a_passed_descriptor_must_be_a_regular_file_holding_the_slice() {
        use crate::control::proto::FileSlice;
        let path = sock("fd");
        let _srv = Server::start(ServerConfig::new(&path), Arc::new(Echo)).unwrap();
        let req = Request {
            version: VERSION,
            tool: Tool::IptablesRestore,
            args: vec![],
            stdin: None,
            stdin_raw: None,
            stdin_file: None,
        };
        let send = |file: &fs::File, slice: FileSlice| -> Response {
            let mut s = UnixStream::connect(&path).unwrap();
            proto::write_request_fd(&mut s, &req, file, slice).unwrap();
            proto::read_frame(&mut s).unwrap().unwrap()
        };
        let name = std::env::temp_dir().join(format!("tungate-test-{}-fd", std::process::id()));
        fs::write(&name, "0123456789*nat\nCOMMIT\n").unwrap();
        let f = fs::File::open(&name).unwrap();
        // The slice, not the file: offset 10, 12 bytes.
        let r = send(
            &f,
            FileSlice {
                offset: 10,
                len: 12,
            },
        );
        assert_eq!((r.status, r.stdout.as_str()), (0, "stdin 12 2"), "{r:?}");
        // A slice past the end of the file.
        let r = send(
            &f,
            FileSlice {
                offset: 10,
                len: 13,
            },
        );
        assert_eq!(r.status, 2, "{r:?}");
        assert!(r.stderr.contains("shorter than the slice"), "{r:?}");
        let _ = fs::remove_file(&name);
        // A pipe is no regular file.
        let (rd, _wr) = nix::unistd::pipe().unwrap();
        let r = send(&fs::File::from(rd), FileSlice { offset: 0, len: 1 });
        assert_eq!(r.status, 2, "{r:?}");
        assert!(r.stderr.contains("not a regular file"), "{r:?}");
        // A frame announcing a descriptor, then none: the byte comes alone.
        let mut s = UnixStream::connect(&path).unwrap();
        let head = Request {
            stdin_file: Some(FileSlice { offset: 0, len: 1 }),
            ..req.clone()
        };
        proto::write_frame(&mut s, &head).unwrap();
        s.write_all(b"F").unwrap();
        let r: Response = proto::read_frame(&mut s).unwrap().unwrap();
        assert_eq!(r.status, 2, "{r:?}");
        assert!(r.stderr.contains("expected one, got 0"), "{r:?}");
    }

    #[test]
    fn stalled_and_garbage_clients_do_not_hurt_the_server() {
        let path = sock("bad");
        let mut cfg = ServerConfig::new(&path);
        cfg.read_timeout = Duration::from_millis(200);
        let _srv = Server::start(cfg, Arc::new(Echo)).unwrap();
        // Half a frame, then silence: the server times out and says why.
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(&[0, 0, 0, 50, b'{']).unwrap();
        let r: Response = proto::read_frame(&mut s).unwrap().unwrap();
        assert_eq!(r.status, 2, "{r:?}");
        // Wrong version.
        let mut s = UnixStream::connect(&path).unwrap();
        let req = Request {
            version: VERSION + 7,
            tool: Tool::Iptables,
            args: vec![],
            stdin: None,
            stdin_raw: None,
            stdin_file: None,
        };
        proto::write_frame(&mut s, &req).unwrap();
        let r: Response = proto::read_frame(&mut s).unwrap().unwrap();
        assert!(r.stderr.contains("not supported"), "{r:?}");
        // Oversized length.
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(&u32::MAX.to_be_bytes()).unwrap();
        let r: Response = proto::read_frame(&mut s).unwrap().unwrap();
        assert!(r.stderr.contains("outside"), "{r:?}");
        // The server still answers.
        let status = client::call(&path, Tool::Stats, &[], None, |_| {}).unwrap();
        assert_eq!(status, 0);
    }

    #[test]
    fn stale_socket_is_replaced_live_one_is_not() {
        let path = sock("stale");
        {
            let _l = UnixListener::bind(&path).unwrap();
        } // listener dropped, file stays: a crashed gateway's socket.
        assert!(path.exists());
        let srv = Server::start(ServerConfig::new(&path), Arc::new(Echo)).unwrap();
        let second = Server::start(ServerConfig::new(&path), Arc::new(Echo));
        assert!(second.is_err());
        drop(srv);
        assert!(!path.exists());
    }
}
