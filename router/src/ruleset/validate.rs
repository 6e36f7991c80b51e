//! Table checks the kernel performs when a ruleset is loaded: every jump
//! names an existing user chain, jumps form no loop, and each target / match
//! is used only in the tables and hooks where netfilter accepts it (for a user
//! chain, every hook it is reachable from counts).

use super::{Hook, Match, Table, TableKind, Target, NO_RECENT};

/// Why a table was rejected. Messages follow iptables' wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    #[error(
        "Couldn't load target `{target}':No such file or directory (chain {chain}, rule {rule})"
    )]
    NoSuchChain {
        chain: String,
        rule: usize,
        target: String,
    },
    #[error("Too many levels of symbolic links: jumps from chain {chain} loop back to it")]
    Loop { chain: String },
    #[error("{target} target: only valid in {allowed} (used in table {table}, chain {chain}, rule {rule})")]
    TargetPlacement {
        target: &'static str,
        allowed: &'static str,
        table: &'static str,
        chain: String,
        rule: usize,
    },
    #[error("{what} (table {table}, chain {chain}, rule {rule})")]
    MatchPlacement {
        what: &'static str,
        table: &'static str,
        chain: String,
        rule: usize,
    },
}

/// Hooks a target may be used from, and tables it may be used in.
/// `None` tables = any table.
pub(crate) fn target_rules(
    t: &Target,
) -> Option<(&'static str, Option<TableKind>, u8, &'static str)> {
    use Hook::*;
    let b = |hs: &[Hook]| hs.iter().fold(0u8, |m, h| m | h.bit());
    Some(match t {
        Target::Dnat(_) => (
            "DNAT",
            Some(TableKind::Nat),
            b(&[Prerouting, Output]),
            "the nat table, chains PREROUTING and OUTPUT",
        ),
        Target::Redirect(_) => (
            "REDIRECT",
            Some(TableKind::Nat),
            b(&[Prerouting, Output]),
            "the nat table, chains PREROUTING and OUTPUT",
        ),
        Target::Snat(_) => (
            "SNAT",
            Some(TableKind::Nat),
            b(&[Postrouting, Input]),
            "the nat table, chains POSTROUTING and INPUT",
        ),
        Target::Masquerade(_) => (
            "MASQUERADE",
            Some(TableKind::Nat),
            b(&[Postrouting]),
            "the nat table, chain POSTROUTING",
        ),
        Target::Reject(_) => (
            "REJECT",
            Some(TableKind::Filter),
            b(&[Input, Forward, Output]),
            "the filter table, chains INPUT, FORWARD and OUTPUT",
        ),
        Target::Notrack => (
            "NOTRACK",
            Some(TableKind::Raw),
            b(&[Prerouting, Output]),
            "the raw table",
        ),
        Target::Ct(_) => (
            "CT",
            Some(TableKind::Raw),
            b(&[Prerouting, Output]),
            "the raw table",
        ),
        Target::TcpmssClamp => (
            "TCPMSS",
            None,
            b(&[Forward, Output, Postrouting]),
            "chains FORWARD, OUTPUT and POSTROUTING (path-MTU clamping)",
        ),
        Target::Hl { .. } => (
            "HL",
            Some(TableKind::Mangle),
            b(&[Prerouting, Input, Forward, Output, Postrouting]),
            "the mangle table",
        ),
        Target::ChecksumFill => (
            "CHECKSUM",
            Some(TableKind::Mangle),
            b(&[Prerouting, Input, Forward, Output, Postrouting]),
            "the mangle table",
        ),
        _ => return None,
    })
}

/// The jump graph: for chain `c`, `edges[start[c]..start[c + 1]]` are the
/// chain indices its rules jump or go to, in rule order. Each name is
/// resolved once; a name that is no user chain is the error.
struct Jumps {
    start: Vec<u32>,
    edges: Vec<u32>,
}

impl Jumps {
    fn of(&self, c: usize) -> &[u32] {
        &self.edges[self.start[c] as usize..self.start[c + 1] as usize]
    }
}

fn jumps(t: &Table) -> Result<Jumps, ValidateError> {
    let mut start = Vec::with_capacity(t.chains.len() + 1);
    let mut edges = Vec::new();
    let mut recent = NO_RECENT;
    for c in &t.chains {
        start.push(edges.len() as u32);
        for (ri, r) in c.rules.iter().enumerate() {
            if let Some(name) = r.target.chain_ref() {
                match t.resolve(name, &mut recent) {
                    Some(j) if !t.chains[j].is_builtin() => edges.push(j as u32),
                    _ => {
                        return Err(ValidateError::NoSuchChain {
                            chain: c.name.clone(),
                            rule: ri + 1,
                            target: name.as_str().to_string(),
                        })
                    }
                }
            }
        }
    }
    start.push(edges.len() as u32);
    Ok(Jumps { start, edges })
}

/// Hook mask from which each chain is reachable (index = chain index).
fn reachability(t: &Table, g: &Jumps) -> Vec<u8> {
    let mut reach = vec![0u8; t.chains.len()];
    let mut stack = Vec::new();
    for (i, c) in t.chains.iter().enumerate() {
        if let Some(h) = c.hook {
            reach[i] = h.bit();
            stack.push(i);
        }
    }
    while let Some(i) = stack.pop() {
        let m = reach[i];
        for &j in g.of(i) {
            let j = j as usize;
            if reach[j] & m != m {
                reach[j] |= m;
                stack.push(j);
            }
        }
    }
    reach
}

pub(crate) fn validate_table(t: &Table) -> Result<(), ValidateError> {
    // References, resolved once.
    let g = jumps(t)?;
    // Loops: iterative DFS with colours over the jump graph.
    let n = t.chains.len();
    let mut colour = vec![0u8; n];
    let mut stack = Vec::new();
    for s in 0..n {
        if colour[s] != 0 {
            continue;
        }
        stack.push((s, 0usize));
        colour[s] = 1;
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            let out = g.of(v);
            if *k < out.len() {
                let w = out[*k] as usize;
                *k += 1;
                match colour[w] {
                    0 => {
                        colour[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        return Err(ValidateError::Loop {
                            chain: t.chains[w].name.clone(),
                        })
                    }
                    _ => {}
                }
            } else {
                colour[v] = 2;
                stack.pop();
            }
        }
    }
    // Placement.
    let reach = reachability(t, &g);
    for (ci, c) in t.chains.iter().enumerate() {
        let hooks = reach[ci];
        for (ri, r) in c.rules.iter().enumerate() {
            if let Some((name, table, allowed, msg)) = target_rules(&r.target) {
                let table_ok = table.map(|k| k == t.kind).unwrap_or(true);
                if !table_ok || hooks & !allowed != 0 {
                    return Err(ValidateError::TargetPlacement {
                        target: name,
                        allowed: msg,
                        table: t.kind.name(),
                        chain: c.name.clone(),
                        rule: ri + 1,
                    });
                }
            }
            for m in &r.matches {
                if let Some(what) = match_placement(m, hooks) {
                    return Err(ValidateError::MatchPlacement {
                        what,
                        table: t.kind.name(),
                        chain: c.name.clone(),
                        rule: ri + 1,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Whether match `m` is restricted to some hooks (only those need the
/// table's reachability checked when a rule is added).
pub(crate) fn match_restricted(m: &Match) -> bool {
    match_placement(m, 0xff).is_some()
}

/// Why match `m` may not be used from the hooks in `hooks`, if it may not.
fn match_placement(m: &Match, hooks: u8) -> Option<&'static str> {
    let inb = Hook::Prerouting.bit() | Hook::Input.bit() | Hook::Forward.bit();
    let outb = Hook::Postrouting.bit() | Hook::Output.bit() | Hook::Forward.bit();
    match m {
        Match::Addrtype {
            limit_iface_in: true,
            ..
        } if hooks & !inb != 0 => {
            Some("addrtype: --limit-iface-in only valid in PREROUTING, INPUT and FORWARD")
        }
        Match::Addrtype {
            limit_iface_out: true,
            ..
        } if hooks & !outb != 0 => {
            Some("addrtype: --limit-iface-out only valid in POSTROUTING, OUTPUT and FORWARD")
        }
        // The source MAC exists only on received packets.
        Match::Eui64 if hooks & !inb != 0 => {
            Some("eui64: only valid in PREROUTING, INPUT and FORWARD")
        }
        _ => None,
    }
}
