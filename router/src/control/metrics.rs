//! The gateway's counters for people and for Prometheus.
//!
//! [`text`] is what `tungate stats` prints; [`prometheus`] is the same data
//! in the Prometheus text exposition format (version 0.0.4), served by
//! [`serve`] over plain HTTP on a loopback address when the config says
//! `metrics = "127.0.0.1:9469"`, and printed by `tungate stats --prometheus`.
//!
//! The HTTP side is deliberately tiny: one thread, one request per
//! connection (`Connection: close`), `GET /metrics` only, a request head of at
//! most [`MAX_REQUEST`] bytes read within [`IO_TIMEOUT`]. Anything else gets a
//! 4xx status and the connection closed; a slow or silent client costs one
//! timeout, never a stuck gateway. The endpoint has no authentication, which
//! is why the config accepts loopback addresses only.

use crate::dataplane::stats::Stats;
use crate::pipeline::engine::Pipeline;
use crate::pipeline::DropReason;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// The dataplane's counters (interfaces, workers, verdict drops), read on
/// demand.
pub type DataplaneStatsFn = Arc<dyn Fn() -> Stats + Send + Sync>;

/// Longest request head (request line and headers) accepted.
pub const MAX_REQUEST: usize = 8192;
/// Read and write timeout per connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// `tungate stats`: one `name value` line per counter (stable names; bench
/// scripts and tests grep them).
pub fn text(p: &Pipeline, dp: Option<&Stats>) -> String {
    let mut s = String::new();
    let ct = p.conntrack().stats();
    let _ = writeln!(s, "ruleset_generation {}", p.generation());
    let _ = writeln!(s, "conntrack_entries {}", p.conntrack().len());
    let _ = writeln!(s, "conntrack_stats {ct:?}");
    for r in DropReason::ALL {
        let n = p.stats().drops[r.index()].load(Relaxed);
        let _ = writeln!(s, "pipeline_drop{{reason=\"{}\"}} {n}", r.name());
    }
    let _ = writeln!(s, "pipeline_emitted {}", p.stats().emitted.load(Relaxed));
    if let Some(d) = dp {
        s.push_str(&d.to_string());
    }
    s
}

/// Writes one metric family: `# HELP`, `# TYPE` and its samples
/// (`labels` already formatted as `{a="x",b="y"}` or empty).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// A label value, escaped as the exposition format requires.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of every counter.
pub fn prometheus(p: &Pipeline, dp: Option<&Stats>) -> String {
    let mut o = String::new();
    let one = |v: u64| vec![(String::new(), v)];
    let ct = p.conntrack().stats();
    family(
        &mut o,
        "tungate_ruleset_generation",
        "gauge",
        "Rulesets installed since start (each iptables change or restore swaps one in).",
        &one(p.generation()),
    );
    family(
        &mut o,
        "tungate_conntrack_entries",
        "gauge",
        "Connection tracking entries.",
        &one(p.conntrack().len() as u64),
    );
    for (name, help, v) in [
        (
            "inserted",
            "Connections confirmed into the table.",
            ct.inserted,
        ),
        (
            "early_drop",
            "Unassured entries evicted to make room (table full).",
            ct.early_drop,
        ),
        (
            "insert_failed",
            "New connections refused: table full and nothing to evict.",
            ct.insert_failed,
        ),
        ("expired", "Entries removed by their timeout.", ct.expired),
        (
            "deleted",
            "Entries removed by conntrack -D/-F or a TCP RST/close.",
            ct.deleted,
        ),
        (
            "clash_resolved",
            "Insert races between workers resolved onto the existing entry.",
            ct.clash_resolved,
        ),
        ("invalid", "Packets conntrack classed INVALID.", ct.invalid),
        (
            "events_lost",
            "conntrack -E events lost to a full queue.",
            ct.events_lost,
        ),
    ] {
        family(
            &mut o,
            &format!("tungate_conntrack_{name}_total"),
            "counter",
            help,
            &one(v),
        );
    }
    // Drops: the dataplane counts packets dropped by a verdict, the pipeline
    // those it originated itself; the two never count the same packet.
    let drops: Vec<(String, u64)> = DropReason::ALL
        .iter()
        .map(|&r| {
            let n = p.stats().drops[r.index()].load(Relaxed) + dp.map_or(0, |d| d.dropped(r));
            (format!("{{reason=\"{}\"}}", r.name()), n)
        })
        .collect();
    family(
        &mut o,
        "tungate_packets_dropped_total",
        "counter",
        "Packets dropped, by reason.",
        &drops,
    );
    let st = p.stats();
    family(
        &mut o,
        "tungate_packets_emitted_total",
        "counter",
        "Packets the gateway originated (ICMP errors, TCP resets, echo replies).",
        &one(st.emitted.load(Relaxed)),
    );
    family(
        &mut o,
        "tungate_icmp_ratelimited_total",
        "counter",
        "ICMP errors not sent because of icmp_ratelimit / icmp_msgs_per_sec.",
        &one(st.icmp_ratelimited.load(Relaxed)),
    );
    family(
        &mut o,
        "tungate_log_lines_total",
        "counter",
        "Lines written by the LOG target.",
        &one(st.log_lines.load(Relaxed)),
    );
    if let Some(d) = dp {
        family(
            &mut o,
            "tungate_workers",
            "gauge",
            "Worker threads.",
            &one(d.workers as u64),
        );
        type Field = fn(&crate::dataplane::stats::IfStats) -> u64;
        let fields: [(&str, &str, Field); 4] = [
            ("rx_packets", "Packets read from the device.", |i| {
                i.rx_packets
            }),
            ("rx_bytes", "Bytes read from the device.", |i| i.rx_bytes),
            ("tx_packets", "Packets written to the device.", |i| {
                i.tx_packets
            }),
            ("tx_bytes", "Bytes written to the device.", |i| i.tx_bytes),
        ];
        for (name, help, get) in fields {
            let mut samples = vec![];
            for (w, ifs) in d.per_worker.iter().enumerate() {
                for i in ifs {
                    samples.push((
                        format!("{{interface=\"{}\",worker=\"{w}\"}}", label(&i.name)),
                        get(i),
                    ));
                }
            }
            family(
                &mut o,
                &format!("tungate_interface_{name}_total"),
                "counter",
                help,
                &samples,
            );
        }
    }
    o
}

/// Serves `GET /metrics` on `listener` from a thread of its own, until the
/// process exits.
pub fn serve(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    dp: Option<DataplaneStatsFn>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tungate-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let body = || prometheus(&pipeline, dp.as_ref().map(|f| f()).as_ref());
                if let Err(e) = answer(&mut conn, body) {
                    tracing::debug!("metrics client: {e}");
                }
            }
        })
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Parses a request head (everything up to the blank line).
pub fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    if method != "GET" {
        return Route::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or("");
    if path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

fn answer(conn: &mut TcpStream, body: impl FnOnce() -> String) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() > MAX_REQUEST {
            break false;
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(()); // the client left
        }
        head.extend_from_slice(&buf[..n]);
    };
    let (status, extra, body) = if !complete {
        ("431 Request Header Fields Too Large", "", String::new())
    } else {
        match route(&head) {
            Route::Metrics => ("200 OK", "", body()),
            Route::NotFound => ("404 Not Found", "", "try /metrics\n".to_string()),
            Route::MethodNotAllowed => ("405 Method Not Allowed", "Allow: GET\r\n", String::new()),
            Route::BadRequest => ("400 Bad Request", "", String::new()),
        }
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes())?;
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_get_metrics() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Route::BadRequest);
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn families_have_help_type_and_samples() {
        let mut o = String::new();
        family(
            &mut o,
            "x_total",
            "counter",
            "Xs.",
            &[("{a=\"1\"}".into(), 5)],
        );
        assert_eq!(
            o,
            "# HELP x_total Xs.\n# TYPE x_total counter\nx_total{a=\"1\"} 5\n"
        );
    }
}
