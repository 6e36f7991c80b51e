//! Output formats: entry lines (plain, `-o extended`, `-o id`, `-o xml`),
//! event lines and the `-S` statistics line, as conntrack 1.4.7 prints them.

use super::request::Request;
use crate::clock::Timestamp;
use crate::conntrack::{
    proto_name, ConnSnapshot, ConnTable, CtEvent, EventKind, Tuple, PROTO_TCP, PROTO_UDP,
};
use std::fmt::Write as _;

/// How entries are printed (`nf_conntrack_acct` in the kernel decides
/// whether counters appear).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CliOptions {
    /// Print `packets= bytes=` after each tuple.
    pub acct: bool,
}

/// One entry as `conntrack -L` prints it (without the newline).
pub fn format_entry(c: &ConnSnapshot, now: Timestamp, req: &Request, opts: CliOptions) -> String {
    if req.xml {
        return format_xml(c, now, opts);
    }
    let mut s = String::with_capacity(200);
    if req.extended {
        family_prefix(&mut s, c);
    }
    let _ = write!(s, "{}", c.display(now, opts.acct));
    if req.show_id {
        let _ = write!(s, " id={}", c.id);
    }
    s
}

/// One event line as `conntrack -E` prints it (without the newline).
/// The kernel omits `mark=` when it is 0 and never sends `use=`; a
/// DESTROY of an expired entry carries no timeout.
pub fn format_event(ev: &CtEvent, now: Timestamp, req: &Request, opts: CliOptions) -> String {
    let c = &ev.conn;
    let tag = match ev.kind {
        EventKind::New => "[NEW]",
        EventKind::Update => "[UPDATE]",
        EventKind::Destroy => "[DESTROY]",
    };
    let mut s = format!("{tag:>9} ");
    if req.extended {
        family_prefix(&mut s, c);
    }
    let _ = write!(s, "{:<8} {} ", proto_name(c.orig.proto), c.orig.proto);
    let secs = c.timeout_secs(now);
    if !(ev.kind == EventKind::Destroy && secs == 0) {
        let _ = write!(s, "{secs} ");
    }
    if let Some(st) = c.tcp_state {
        let _ = write!(s, "{} ", st.name());
    }
    write_tuple(&mut s, &c.orig);
    if opts.acct && ev.kind == EventKind::Destroy {
        let _ = write!(s, " packets={} bytes={}", c.packets[0], c.bytes[0]);
    }
    if !c.status.seen_reply() {
        s.push_str(" [UNREPLIED]");
    }
    s.push(' ');
    write_tuple(&mut s, &c.reply);
    if opts.acct && ev.kind == EventKind::Destroy {
        let _ = write!(s, " packets={} bytes={}", c.packets[1], c.bytes[1]);
    }
    if c.status.assured() {
        s.push_str(" [ASSURED]");
    }
    if c.mark != 0 {
        let _ = write!(s, " mark={}", c.mark);
    }
    if req.show_id {
        let _ = write!(s, " id={}", c.id);
    }
    s
}

/// First and last lines of `-o xml` output (printed only around entries).
pub const XML_HEADER: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<conntrack>\n";
pub const XML_FOOTER: &str = "</conntrack>\n";

/// One entry as `conntrack -L -o xml` prints it (one `<flow>` line without
/// the newline); ICMP and portless protocols have an empty `<layer4>`.
pub fn format_xml(c: &ConnSnapshot, now: Timestamp, opts: CliOptions) -> String {
    let mut s = String::with_capacity(600);
    s.push_str("<flow>");
    for (i, (dir, t)) in [("original", &c.orig), ("reply", &c.reply)]
        .into_iter()
        .enumerate()
    {
        let name = proto_name(t.proto);
        let _ = write!(
            s,
            "<meta direction=\"{dir}\"><layer3 protonum=\"{}\" protoname=\"{}\"><src>{}</src><dst>{}</dst></layer3><layer4 protonum=\"{}\" protoname=\"{name}\">",
            t.family.l3proto(), t.family.name(), t.src_ip(), t.dst_ip(), t.proto
        );
        if matches!(t.proto, PROTO_TCP | PROTO_UDP) {
            let _ = write!(s, "<sport>{}</sport><dport>{}</dport>", t.sport, t.dport);
        }
        s.push_str("</layer4>");
        if opts.acct {
            let _ = write!(
                s,
                "<counters><packets>{}</packets><bytes>{}</bytes></counters>",
                c.packets[i], c.bytes[i]
            );
        }
        s.push_str("</meta>");
    }
    s.push_str("<meta direction=\"independent\">");
    if let Some(st) = c.tcp_state {
        let _ = write!(s, "<state>{}</state>", st.name());
    }
    let _ = write!(
        s,
        "<timeout>{}</timeout><mark>{}</mark><use>1</use><id>{}</id>",
        c.timeout_secs(now),
        c.mark,
        c.id
    );
    if c.status.assured() {
        s.push_str("<assured/>");
    }
    if !c.status.seen_reply() {
        s.push_str("<unreplied/>");
    }
    s.push_str("</meta></flow>");
    s
}

/// `-o extended`: the layer-3 name and number (`ipv4     2 `).
fn family_prefix(s: &mut String, c: &ConnSnapshot) {
    let f = c.orig.family;
    let _ = write!(s, "{:<8} {} ", f.name(), f.l3proto());
}

fn write_tuple(s: &mut String, t: &Tuple) {
    let _ = write!(s, "{t}");
}

/// `conntrack -S`: tungate's counters in the kernel's per-cpu line
/// (one line, `cpu=0`). `found`, `error`, `search_restart` and
/// `chaintoolong` have no counterpart and are 0; `drop` counts the packets
/// refused because the table was full (= `insert_failed`).
pub fn format_stats(table: &ConnTable) -> String {
    let s = table.stats();
    format!(
        "cpu={:<4}\tfound={} invalid={} insert={} insert_failed={} drop={} early_drop={} error={} search_restart={} clash_resolve={} chaintoolong={} \n",
        0,
        0,
        s.invalid,
        s.inserted,
        s.insert_failed,
        s.insert_failed,
        s.early_drop,
        0,
        0,
        s.clash_resolved,
        0
    )
}

#[cfg(test)]
mod tests {
    use crate::conntrack_cli::fixture::*;

    #[test]
    fn extended_and_id_output() {
        let t = fixture();
        let o = ct(&t, "-L -o extended -p icmp");
        assert_eq!(o.stdout, format!("ipv4     2 {L_ICMP}\n"));
        let id = t.list(T1).iter().find(|c| c.orig.proto == 1).unwrap().id;
        let o = ct(&t, "-L -o id,extended -p icmp");
        assert_eq!(o.stdout, format!("ipv4     2 {L_ICMP} id={id}\n"));
        assert_eq!(ct(&t, "-L -o extended,id -p icmp").stdout, o.stdout);
        // Options without an effect here are accepted, as by the tool.
        assert_eq!(
            ct(&t, "-L -o timestamp,ktimestamp,userspace -p icmp").stdout,
            lines(&[L_ICMP])
        );
    }
}
