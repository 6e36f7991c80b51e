//! The caller side of the control socket, used by the multi-call front ends.

use super::proto::{self, Request, Response, Tool, VERSION};
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// The socket path: `--ctl PATH` (already stripped by the caller), else
/// `TUNGATE_CTL`, else [`super::DEFAULT_SOCKET`].
pub fn socket_path(explicit: Option<&str>) -> PathBuf {
    explicit
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("TUNGATE_CTL").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(super::DEFAULT_SOCKET))
}

/// Sends one request and feeds every response to `on_response` (several for
/// streaming tools). Returns the exit status from the last response.
pub fn call(
    path: &Path,
    tool: Tool,
    args: &[String],
    stdin: Option<String>,
    on_response: impl FnMut(&Response),
) -> io::Result<i32> {
    let req = request(tool, args, stdin);
    exchange(path, |s| proto::write_request(s, &req), on_response)
}

/// As [`call`], with standard input the next `len` bytes of a regular
/// file, which the gateway reads itself ([`proto::write_request_fd`]): a
/// 20 MB restore file is neither read into the client nor copied through the
/// socket.
pub fn call_with_file(
    path: &Path,
    tool: Tool,
    args: &[String],
    mut file: std::fs::File,
    len: u32,
    on_response: impl FnMut(&Response),
) -> io::Result<i32> {
    use std::io::Seek;
    let req = request(tool, args, None);
    let offset = file.stream_position()?;
    let slice = proto::FileSlice { offset, len };
    exchange(
        path,
        |s| proto::write_request_fd(s, &req, &file, slice),
        on_response,
    )
}

/// A request of this protocol version (raw standard input, if any, follows
/// the frame and is not part of the request).
fn request(tool: Tool, args: &[String], stdin: Option<String>) -> Request {
    Request {
        version: VERSION,
        tool,
        args: args.to_vec(),
        stdin,
        stdin_raw: None,
        stdin_file: None,
    }
}

fn exchange(
    path: &Path,
    send: impl FnOnce(&mut UnixStream) -> io::Result<()>,
    mut on_response: impl FnMut(&Response),
) -> io::Result<i32> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot reach the gateway at {}: {e} (is `tungate run` running? set --ctl or TUNGATE_CTL)",
                path.display()
            ),
        )
    })?;
    // A server that refuses the peer answers without reading the request;
    // the write may then fail (EPIPE) while the answer is waiting: read it.
    let sent = send(&mut s);
    let mut first = true;
    loop {
        match proto::read_frame::<_, Response>(&mut s) {
            Ok(Some(r)) => {
                first = false;
                on_response(&r);
                if !r.more {
                    return Ok(r.status);
                }
            }
            Ok(None) => {
                sent?;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "gateway closed the connection without an answer",
                ));
            }
            Err(e) if first => {
                sent?;
                return Err(io::Error::other(e.to_string()));
            }
            Err(e) => return Err(io::Error::other(e.to_string())),
        }
    }
}
