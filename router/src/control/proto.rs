//! Control protocol, version 1.
//!
//! Transport: one Unix stream connection per request. Each message is a frame:
//!
//! ```text
//! +----------------------+--------------------------------+
//! | length: u32, BE      | payload: `length` bytes, UTF-8 |
//! +----------------------+--------------------------------+
//! ```
//!
//! `length` is 1..=[`MAX_FRAME`]; a larger or zero length is a protocol error
//! and the connection is closed after an error response. The payload is a JSON
//! object:
//!
//! * client -> server, exactly one [`Request`]:
//!   `{"version":1,"tool":"iptables","args":["-t","nat","-L"],"stdin":null}`
//! * server -> client, one or more [`Response`]s; every one but the last has
//!   `"more":true` (a stream, as `conntrack -E` produces):
//!   `{"version":1,"status":0,"stdout":"...","stderr":"","more":false}`
//!
//! A request with standard input (`iptables-restore`) carries it after its
//! frame as raw bytes, `stdin_raw` giving their number
//! ([`write_request`] / [`read_request`]): no JSON escaping of large inputs.
//! When that input is a regular file (`iptables-restore < FILE`), the client
//! sends the file itself instead: `stdin_file` gives the slice (offset and
//! length), and one byte after the frame carries the descriptor
//! (`SCM_RIGHTS`); the server reads the slice with `pread`
//! ([`write_request_fd`] / [`read_request_unix`]). The 20 MB of a
//! 10,000-service kube ruleset then cross no socket buffer (36 ms of the
//! restore while iperf3 loads both cores, `bench/restore.sh`).
//!
//! A request whose `version` the server does not speak is answered with status
//! 2 and a message naming the versions it does speak.

use crate::ruleset::Family;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Largest frame accepted in either direction: a 10,000-service kube ruleset
/// is about 15 MiB of iptables-restore text; leave room for four times that.
pub const MAX_FRAME: u32 = 64 << 20;

/// The tools a request may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    Iptables,
    IptablesSave,
    IptablesRestore,
    Conntrack,
    Stats,
    /// The IPv6 tools (`"ip6tables"`, ...): added to version 1 without a
    /// version bump, as a request naming them is one an older server
    /// refuses anyway (an unknown tool), and older clients never send them.
    Ip6tables,
    Ip6tablesSave,
    Ip6tablesRestore,
}

impl Tool {
    /// The tool a multi-call name stands for (`iptables`, `iptables-legacy`,
    /// `/usr/sbin/iptables-save`, ...).
    pub fn from_program_name(name: &str) -> Option<Tool> {
        let base = name.rsplit('/').next().unwrap_or(name);
        match base {
            "iptables" | "iptables-nft" | "iptables-legacy" => Some(Tool::Iptables),
            "iptables-save" | "iptables-nft-save" | "iptables-legacy-save" => {
                Some(Tool::IptablesSave)
            }
            "iptables-restore" | "iptables-nft-restore" | "iptables-legacy-restore" => {
                Some(Tool::IptablesRestore)
            }
            "ip6tables" | "ip6tables-nft" | "ip6tables-legacy" => Some(Tool::Ip6tables),
            "ip6tables-save" | "ip6tables-nft-save" | "ip6tables-legacy-save" => {
                Some(Tool::Ip6tablesSave)
            }
            "ip6tables-restore" | "ip6tables-nft-restore" | "ip6tables-legacy-restore" => {
                Some(Tool::Ip6tablesRestore)
            }
            "conntrack" => Some(Tool::Conntrack),
            "stats" => Some(Tool::Stats),
            _ => None,
        }
    }

    /// The address family of an iptables tool (None for the others).
    pub fn family(self) -> Option<Family> {
        match self {
            Tool::Iptables | Tool::IptablesSave | Tool::IptablesRestore => Some(Family::V4),
            Tool::Ip6tables | Tool::Ip6tablesSave | Tool::Ip6tablesRestore => Some(Family::V6),
            Tool::Conntrack | Tool::Stats => None,
        }
    }

    /// Whether the tool reads standard input (the restores).
    pub fn reads_stdin(self) -> bool {
        matches!(self, Tool::IptablesRestore | Tool::Ip6tablesRestore)
    }

    pub fn name(self) -> &'static str {
        match self {
            Tool::Iptables => "iptables",
            Tool::IptablesSave => "iptables-save",
            Tool::IptablesRestore => "iptables-restore",
            Tool::Conntrack => "conntrack",
            Tool::Stats => "stats",
            Tool::Ip6tables => "ip6tables",
            Tool::Ip6tablesSave => "ip6tables-save",
            Tool::Ip6tablesRestore => "ip6tables-restore",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    pub tool: Tool,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Standard input, for tools that read it (`iptables-restore`).
    #[serde(default)]
    pub stdin: Option<String>,
    /// Set by [`write_request`]: standard input follows the frame as this
    /// many raw bytes (UTF-8) instead of sitting in `stdin`, so a 20 MB
    /// restore file is neither escaped into JSON nor unescaped out of it
    /// (about 45 ms for the 10,000-service kube ruleset). [`read_request`]
    /// moves it into `stdin`. Absent from the JSON when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_raw: Option<u32>,
    /// Set by [`write_request_fd`]: standard input is this slice of a
    /// regular file whose descriptor follows the frame; [`read_request_unix`]
    /// reads it into `stdin`. Absent from the JSON when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_file: Option<FileSlice>,
}

/// `len` bytes of a file from `offset` ([`Request::stdin_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSlice {
    pub offset: u64,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    /// Exit status the client process should end with.
    pub status: i32,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    /// More responses follow (streaming).
    #[serde(default)]
    pub more: bool,
}

impl Response {
    /// A complete (last) answer: exit status, standard output and error.
    pub fn new(status: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> Response {
        Response {
            version: VERSION,
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
            more: false,
        }
    }

    pub fn ok(stdout: impl Into<String>) -> Response {
        Response::new(0, stdout, String::new())
    }

    pub fn error(status: i32, stderr: impl Into<String>) -> Response {
        Response::new(status, String::new(), stderr)
    }
}

/// A front end's result, as the client process prints and exits with it.
impl From<crate::syntax::Output> for Response {
    fn from(out: crate::syntax::Output) -> Response {
        Response::new(out.status, out.stdout, out.stderr)
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed before a complete frame")]
    Truncated,
    #[error("frame length {0} is outside 1..={MAX_FRAME}")]
    BadLength(u32),
    #[error("frame is not valid JSON for this message: {0}")]
    BadPayload(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Writes one frame.
pub fn write_frame<W: Write, M: Serialize>(w: &mut W, msg: &M) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    if body.is_empty() || body.len() > MAX_FRAME as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("message of {} bytes exceeds the frame limit", body.len()),
        ));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)?;
    w.flush()
}

/// Writes a request; its `stdin` goes after the frame as raw bytes (see
/// [`Request::stdin_raw`]).
pub fn write_request<W: Write>(w: &mut W, req: &Request) -> io::Result<()> {
    let Some(stdin) = req.stdin.as_deref() else {
        return write_frame(w, req);
    };
    if stdin.len() > MAX_FRAME as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("input of {} bytes exceeds the frame limit", stdin.len()),
        ));
    }
    let head = Request {
        version: req.version,
        tool: req.tool,
        args: req.args.clone(),
        stdin: None,
        stdin_raw: Some(stdin.len() as u32),
        stdin_file: None,
    };
    let body = serde_json::to_vec(&head).map_err(io::Error::other)?;
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(&body)?;
    w.write_all(stdin.as_bytes())?;
    w.flush()
}

/// Writes a request whose standard input is `slice` of `file` (a regular
/// file): the frame, then one byte carrying the descriptor (`SCM_RIGHTS`).
/// `req.stdin` must be `None`.
pub fn write_request_fd(
    s: &mut UnixStream,
    req: &Request,
    file: &std::fs::File,
    slice: FileSlice,
) -> io::Result<()> {
    if slice.len > MAX_FRAME || req.stdin.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("input of {} bytes exceeds the frame limit", slice.len),
        ));
    }
    let head = Request {
        stdin_file: Some(slice),
        ..req.clone()
    };
    write_frame(s, &head)?;
    let fds = [file.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let sent = sendmsg::<()>(
        s.as_raw_fd(),
        &[io::IoSlice::new(b"F")],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if sent != 1 {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "descriptor not sent",
        ));
    }
    Ok(())
}

/// [`read_request`] on a Unix socket, which may also carry standard input
/// as a file descriptor ([`write_request_fd`]). The descriptor must be a
/// regular file holding the whole slice, read with `pread` (a file that
/// shrinks meanwhile gives an error, not a fault); it is closed before this
/// returns, as is anything else that came with it.
pub fn read_request_unix(s: &mut UnixStream) -> Result<Option<Request>, FrameError> {
    let Some(mut req) = read_request(s)? else {
        return Ok(None);
    };
    let Some(slice) = req.stdin_file.take() else {
        return Ok(Some(req));
    };
    if slice.len > MAX_FRAME || req.stdin.is_some() {
        return Err(FrameError::BadLength(slice.len));
    }
    let mut byte = [0u8; 1];
    let (n, mut fds) = crate::sys::fdpass::recv_with_fds(s, &mut byte)?;
    if n == 0 {
        return Err(FrameError::Truncated);
    }
    let bad = |m: &str| FrameError::BadPayload(format!("standard input descriptor: {m}"));
    if fds.len() != 1 {
        return Err(bad(&format!("expected one, got {}", fds.len())));
    }
    let file = std::fs::File::from(fds.pop().expect("one descriptor"));
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(bad("not a regular file"));
    }
    let mut buf = vec![0u8; slice.len as usize];
    file.read_exact_at(&mut buf, slice.offset)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => bad("the file is shorter than the slice sent"),
            _ => FrameError::Io(e),
        })?;
    let text = String::from_utf8(buf)
        .map_err(|e| FrameError::BadPayload(format!("standard input is not UTF-8: {e}")))?;
    req.stdin = Some(text);
    Ok(Some(req))
}

/// Reads a request written by [`write_request`] (or a plain frame with
/// `stdin` inline); `Ok(None)` on a clean end of stream.
pub fn read_request<R: Read>(r: &mut R) -> Result<Option<Request>, FrameError> {
    let Some(mut req) = read_frame::<_, Request>(r)? else {
        return Ok(None);
    };
    if let Some(n) = req.stdin_raw.take() {
        if n > MAX_FRAME || req.stdin.is_some() {
            return Err(FrameError::BadLength(n));
        }
        let mut buf = Vec::with_capacity(n as usize);
        r.take(n as u64).read_to_end(&mut buf)?;
        if buf.len() != n as usize {
            return Err(FrameError::Truncated);
        }
        let text = String::from_utf8(buf)
            .map_err(|e| FrameError::BadPayload(format!("standard input is not UTF-8: {e}")))?;
        req.stdin = Some(text);
    }
    Ok(Some(req))
}

/// Reads one frame; `Ok(None)` on a clean end of stream before any byte.
pub fn read_frame<R: Read, M: for<'de> Deserialize<'de>>(
    r: &mut R,
) -> Result<Option<M>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(len);
    if len == 0 || len > MAX_FRAME {
        return Err(FrameError::BadLength(len));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| FrameError::BadPayload(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            version: VERSION,
            tool: Tool::Iptables,
            args: vec!["-t".into(), "nat".into(), "-S".into()],
            stdin: None,
            stdin_raw: None,
            stdin_file: None,
        }
    }

    #[test]
    fn raw_stdin_roundtrip_and_limits() {
        let mut r = req();
        r.stdin = Some("*filter\n-A INPUT -m comment --comment \"é x\" -j DROP\nCOMMIT\n".into());
        let mut buf = Vec::new();
        write_request(&mut buf, &r).unwrap();
        assert!(
            !String::from_utf8_lossy(&buf).contains("\\n"),
            "stdin is not JSON-escaped"
        );
        let back = read_request(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!(back, r);
        // Without stdin, the frame is the plain one; and a plain frame with
        // inline stdin still reads.
        let mut plain = Vec::new();
        write_request(&mut plain, &req()).unwrap();
        assert_eq!(read_request(&mut plain.as_slice()).unwrap().unwrap(), req());
        let mut inline = Vec::new();
        write_frame(&mut inline, &r).unwrap();
        assert_eq!(read_request(&mut inline.as_slice()).unwrap().unwrap(), r);
        // Short raw input, and input that is not UTF-8, are errors.
        let cut = &buf[..buf.len() - 2];
        assert!(matches!(
            read_request(&mut &cut[..]),
            Err(FrameError::Truncated)
        ));
        let mut bad = buf.clone();
        let n = bad.len();
        bad[n - 1] = 0xff;
        assert!(matches!(
            read_request(&mut bad.as_slice()),
            Err(FrameError::BadPayload(_))
        ));
    }

    #[test]
    fn frame_roundtrip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &req()).unwrap();
        let back: Request = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!(back, req());
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &req()).unwrap();
        let cut = &buf[..buf.len() - 3];
        assert!(matches!(
            read_frame::<_, Request>(&mut &cut[..]),
            Err(FrameError::Truncated)
        ));
        let huge = (MAX_FRAME + 1).to_be_bytes();
        assert!(matches!(
            read_frame::<_, Request>(&mut &huge[..]),
            Err(FrameError::BadLength(_))
        ));
        let zero = 0u32.to_be_bytes();
        assert!(matches!(
            read_frame::<_, Request>(&mut &zero[..]),
            Err(FrameError::BadLength(0))
        ));
        assert!(read_frame::<_, Request>(&mut &[][..]).unwrap().is_none());
    }

    #[test]
    fn garbage_payload_is_a_clear_error() {
        let mut buf = 5u32.to_be_bytes().to_vec();
        buf.extend_from_slice(b"hello");
        let err = read_frame::<_, Request>(&mut buf.as_slice()).unwrap_err();
        assert!(matches!(err, FrameError::BadPayload(_)), "{err}");
    }

    #[test]
    fn program_names_map_to_tools() {
        assert_eq!(
            Tool::from_program_name("/usr/sbin/iptables-save"),
            Some(Tool::IptablesSave)
        );
        assert_eq!(Tool::from_program_name("conntrack"), Some(Tool::Conntrack));
        assert_eq!(Tool::from_program_name("tungate"), None);
    }
}
