//! `conntrack -E`: the event stream, filtered and formatted from the
//! table's event queue.

use super::error::{CtError, EXIT_PARAMETER, PROG};
use super::exec::ok;
use super::format::{format_event, CliOptions};
use super::option::{Cmd, CtTable};
use super::parse::{parse, parse_warn};
use super::request::Request;
use crate::clock::Timestamp;
use crate::conntrack::{ConnSnapshot, ConnTable, CtEvent};
use crate::syntax::Output;

/// True if `args` is a valid `-E` command line: the caller streams it with
/// [`EventStream`] instead of calling [`run`](super::run). (An invalid one
/// goes to [`run`](super::run), which prints the error.)
pub fn is_event_stream(args: &[String]) -> bool {
    matches!(parse(args), Ok(r) if r.cmd == Cmd::Event)
}

/// A running `conntrack -E`: the parsed filters and how many events were
/// shown. The server owns the loop and its lifetime; see [`events`].
#[derive(Debug)]
pub struct EventStream {
    req: Request,
    opts: CliOptions,
    shown: u64,
    buf: Vec<CtEvent>,
}

impl EventStream {
    /// Parses the arguments. `Err` carries what the tool prints for a bad
    /// command line (or for a command other than `-E`).
    pub fn new(args: &[String], opts: CliOptions) -> Result<EventStream, Output> {
        let req = match parse_warn(args) {
            (_, Ok(r)) => r,
            (w, Err(e)) => return Err(ok(String::new(), w.concat() + &e.to_stderr(), e.status())),
        };
        if req.cmd != Cmd::Event {
            return Err(ok(
                String::new(),
                format!("{PROG}: events need -E\n"),
                EXIT_PARAMETER,
            ));
        }
        if req.xml {
            let e = CtError::OperationFailed("Operation not supported (tungate prints no XML)");
            return Err(ok(String::new(), e.to_stderr(), e.status()));
        }
        Ok(EventStream {
            req,
            opts,
            shown: 0,
            buf: Vec::new(),
        })
    }

    /// Drains the table's event queue once and emits the lines that pass
    /// the filters (with their newline). Returns false as soon as `emit`
    /// does (the client went away). Note that the table has one queue:
    /// two concurrent streams share its events.
    pub fn pump(
        &mut self,
        table: &ConnTable,
        now: Timestamp,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> bool {
        self.buf.clear();
        table.drain_events(&mut self.buf);
        self.emit_events(now, emit)
    }

    /// Formats and emits already drained events (for a server that fans
    /// one queue out to several streams).
    pub fn feed(
        &mut self,
        events: &[CtEvent],
        now: Timestamp,
        emit: &mut dyn FnMut(&str) -> bool,
    ) -> bool {
        self.buf.clear();
        self.buf.extend_from_slice(events);
        self.emit_events(now, emit)
    }

    fn emit_events(&mut self, now: Timestamp, emit: &mut dyn FnMut(&str) -> bool) -> bool {
        if self.req.table != CtTable::Conntrack {
            // `-E expect`: tungate has no expectations, nothing to say.
            return true;
        }
        for ev in &self.buf {
            if !self.req.wants_event(ev.kind) || !self.req.matches_event(&ev.conn) {
                continue;
            }
            let mut line = format_event(ev, now, &self.req, self.opts);
            line.push('\n');
            self.shown += 1;
            if !emit(&line) {
                return false;
            }
        }
        true
    }

    /// Warnings the tool prints on stderr before streaming (`-a`, ...).
    pub fn warnings(&self) -> String {
        self.req.warnings.concat()
    }

    /// Events shown so far.
    pub fn shown(&self) -> u64 {
        self.shown
    }

    /// The line the tool prints on stderr when it stops.
    pub fn summary(&self) -> String {
        format!("{PROG}: {} flow events have been shown.\n", self.shown)
    }
}

impl Request {
    /// Filters for events: as for listings, except that an expired entry
    /// (a DESTROY) is still matched.
    fn matches_event(&self, c: &ConnSnapshot) -> bool {
        self.matches(c)
    }
}

/// Runs `conntrack -E`: polls the table every `poll`, emitting event lines
/// until `emit` returns false or `stop_after` events were shown. `now` is
/// the caller's clock (the control server passes
/// `Timestamp::now_monotonic`). Returns the exit output: the summary on
/// stderr, status 0 (or the parse error).
///
/// `emit` is only called when an event arrives, so a client that went
/// away is noticed at the next event; a server that must notice sooner
/// drives [`EventStream::pump`] itself and checks its socket in between.
/// Events are drained from the table's single queue: two concurrent
/// streams would split them (fan one drain out with [`EventStream::feed`]).
pub fn events(
    table: &ConnTable,
    args: &[String],
    emit: &mut dyn FnMut(&str) -> bool,
    stop_after: Option<usize>,
    poll: std::time::Duration,
    now: &mut dyn FnMut() -> Timestamp,
) -> Output {
    let mut st = match EventStream::new(args, CliOptions::default()) {
        Ok(s) => s,
        Err(o) => return o,
    };
    // The table builds events only while someone listens.
    let _sub = table.subscribe_events();
    let limit = stop_after.map(|n| n as u64);
    let mut emitted: u64 = 0;
    while limit != Some(0) {
        let mut sink = |l: &str| {
            emitted += 1;
            emit(l) && limit.is_none_or(|lim| emitted < lim)
        };
        if !st.pump(table, now(), &mut sink) {
            break;
        }
        std::thread::sleep(poll);
    }
    ok(String::new(), st.warnings() + &st.summary(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::ConntrackConfig;
    use crate::conntrack_cli::fixture::*;
    use crate::wire::tcp::flags::{ACK, SYN};
    use crate::wire::testutil;

    fn ev_args(s: &str) -> Vec<String> {
        args(s)
    }

    #[test]
    fn events_stream_in_the_real_format() {
        let t = ConnTable::new(ConntrackConfig {
            event_queue: 256,
            ..Default::default()
        });
        let mut all = EventStream::new(&ev_args("-E"), CliOptions::default()).unwrap();
        let mut nd = EventStream::new(
            &ev_args("-E -e NEW,DESTROY -o extended,id -p tcp"),
            CliOptions::default(),
        )
        .unwrap();
        feed_all(
            &t,
            &[
                testutil::udp("10.9.0.1", "10.9.0.1", 7788, 7787, b"a"),
                testutil::udp("10.9.0.1", "10.9.0.1", 7787, 7788, b"b"),
                testutil::tcp("127.0.0.1", "127.0.0.1", 41420, 8090, SYN, b""),
                testutil::tcp("127.0.0.1", "127.0.0.1", 8090, 41420, SYN | ACK, b""),
                testutil::tcp("127.0.0.1", "127.0.0.1", 41420, 8090, ACK, b""),
            ],
            T0,
        );
        let o = ct(&t, "-D -p udp --dport 7787");
        assert_eq!(o.status, 0);
        let mut evs = Vec::new();
        t.drain_events(&mut evs);
        let mut got = String::new();
        assert!(all.feed(&evs, T0, &mut |l| {
            got.push_str(l);
            true
        }));
        assert_eq!(
            got,
            "    [NEW] udp      17 30 src=10.9.0.1 dst=10.9.0.1 sport=7788 dport=7787 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=7787 dport=7788
 [UPDATE] udp      17 30 src=10.9.0.1 dst=10.9.0.1 sport=7788 dport=7787 src=10.9.0.1 dst=10.9.0.1 sport=7787 dport=7788
    [NEW] tcp      6 120 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=41420 dport=8090 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8090 dport=41420
 [UPDATE] tcp      6 60 SYN_RECV src=127.0.0.1 dst=127.0.0.1 sport=41420 dport=8090 src=127.0.0.1 dst=127.0.0.1 sport=8090 dport=41420
 [UPDATE] tcp      6 432000 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=41420 dport=8090 src=127.0.0.1 dst=127.0.0.1 sport=8090 dport=41420 [ASSURED]
[DESTROY] udp      17 30 src=10.9.0.1 dst=10.9.0.1 sport=7788 dport=7787 src=10.9.0.1 dst=10.9.0.1 sport=7787 dport=7788
"
        );
        assert_eq!(all.shown(), 6);
        assert_eq!(
            all.summary(),
            "conntrack v1.4.7 (conntrack-tools): 6 flow events have been shown.\n"
        );
        let mut got = String::new();
        nd.feed(&evs, T0, &mut |l| {
            got.push_str(l);
            true
        });
        let id = t.list(T0)[0].id;
        assert_eq!(
            got,
            format!("    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=41420 dport=8090 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8090 dport=41420 id={id}\n")
        );
        // A sink that refuses stops the stream at once.
        let mut n = 0;
        assert!(!all.feed(&evs, T0, &mut |_| {
            n += 1;
            false
        }));
        assert_eq!(n, 1);
    }

    #[test]
    fn event_commands_are_recognised() {
        assert!(is_event_stream(&args("-E")));
        assert!(is_event_stream(&args("--event -e NEW -p tcp")));
        assert!(!is_event_stream(&args("-E -e FOO")));
        assert!(!is_event_stream(&args("-L")));
        let st = EventStream::new(&args("-E -a x"), CliOptions::default()).unwrap();
        assert_eq!(st.warnings(), "WARNING: ignoring -a, deprecated option.\n");
        let e = EventStream::new(&args("-L"), CliOptions::default()).unwrap_err();
        assert_eq!(e.status, 2);
        // Without the event queue nothing arrives, and nothing breaks.
        let t = fixture_without_events();
        let mut st = EventStream::new(&args("-E"), CliOptions::default()).unwrap();
        assert!(st.pump(&t, T1, &mut |_| panic!("no events expected")));
    }

    fn fixture_without_events() -> ConnTable {
        let t = ConnTable::new(ConntrackConfig::default());
        feed(
            &t,
            &testutil::udp("10.0.0.1", "10.0.0.2", 1, 2, b"x"),
            T0,
            |_| {},
        );
        t
    }

    #[test]
    fn destroy_of_an_expired_entry_has_no_timeout_and_shows_a_mark() {
        let t = ConnTable::new(ConntrackConfig {
            event_queue: 16,
            ..Default::default()
        });
        feed(
            &t,
            &testutil::udp("10.9.0.1", "10.9.0.1", 58295, 4545, b"z"),
            T0,
            |nc| nc.mark = 7,
        );
        let mut st = EventStream::new(&args("-E"), CliOptions::default()).unwrap();
        let mut got = String::new();
        // The stream pumps when the entry is created, and after it expired.
        st.pump(&t, T0, &mut |l| {
            got.push_str(l);
            true
        });
        let later = Timestamp::from_secs(200);
        assert_eq!(t.gc(later, 1024), 1);
        st.pump(&t, later, &mut |l| {
            got.push_str(l);
            true
        });
        assert_eq!(
            got,
            "    [NEW] udp      17 30 src=10.9.0.1 dst=10.9.0.1 sport=58295 dport=4545 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=4545 dport=58295 mark=7
[DESTROY] udp      17 src=10.9.0.1 dst=10.9.0.1 sport=58295 dport=4545 [UNREPLIED] src=10.9.0.1 dst=10.9.0.1 sport=4545 dport=58295 mark=7
"
        );
    }

    #[test]
    fn events_loop_stops_after_n_and_on_parse_error() {
        let t = ConnTable::new(ConntrackConfig {
            event_queue: 16,
            ..Default::default()
        });
        for p in 1..=3u16 {
            feed(
                &t,
                &testutil::udp("10.0.0.1", "10.0.0.2", p, 53, b"q"),
                T0,
                |_| {},
            );
        }
        let mut got = Vec::new();
        let o = events(
            &t,
            &args("-E -e NEW"),
            &mut |l| {
                got.push(l.to_string());
                true
            },
            Some(2),
            std::time::Duration::from_millis(1),
            &mut || T0,
        );
        assert_eq!(got.len(), 2);
        assert!(got[1].contains("sport=2 dport=53"));
        assert_eq!(
            (o.stderr.as_str(), o.status),
            (
                "conntrack v1.4.7 (conntrack-tools): 2 flow events have been shown.\n",
                0
            )
        );
        let bad = events(
            &t,
            &args("-E -s nope"),
            &mut |_| true,
            None,
            std::time::Duration::ZERO,
            &mut || T0,
        );
        assert_eq!(
            (bad.stderr, bad.status),
            (err("Invalid IP address `nope'"), 2)
        );
    }
}
