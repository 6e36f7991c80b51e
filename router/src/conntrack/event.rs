//! Conntrack events (`conntrack -E`): the bounded queue a table fills when
//! entries are created, change or go, the subscriptions that switch event
//! building on in on-demand mode, and the `conntrack -E` line.

use super::snapshot::{ConnSnapshot, ConntrackLine};
use super::table::ConnTable;
use crate::clock::Timestamp;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    New,
    Update,
    Destroy,
}

/// A conntrack event (`conntrack -E`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CtEvent {
    pub kind: EventKind,
    pub conn: ConnSnapshot,
}

impl CtEvent {
    /// One `conntrack -E` line (as conntrack-tools 1.4.7 prints them):
    /// `    [NEW] tcp      6 120 SYN_SENT src=... [UNREPLIED] src=...`.
    pub fn display(&self, now: Timestamp) -> EventLine<'_> {
        EventLine { e: self, now }
    }
}

/// Formatter returned by [`CtEvent::display`].
pub struct EventLine<'a> {
    e: &'a CtEvent,
    now: Timestamp,
}

impl fmt::Display for EventLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.e.kind {
            EventKind::New => "[NEW]",
            EventKind::Update => "[UPDATE]",
            EventKind::Destroy => "[DESTROY]",
        };
        let body = ConntrackLine {
            s: &self.e.conn,
            now: self.now,
            acct: false,
            event: true,
        };
        let text = body.to_string();
        write!(f, "{tag:>9} {}", text.trim_end())
    }
}

/// A table's events and who listens to them.
pub(super) struct EventQueue {
    /// Events not yet drained, oldest first, at most
    /// `ConntrackConfig::event_queue` of them; `None` when that is 0.
    queue: Option<Mutex<VecDeque<CtEvent>>>,
    /// Event subscribers (`conntrack -E` clients). In on-demand mode events
    /// are only built while one listens, as the kernel builds them only for
    /// netlink subscribers; otherwise (the default) whenever there is a queue.
    listeners: AtomicUsize,
    on_demand: AtomicBool,
}

impl EventQueue {
    /// A queue of at most `cap` events (none kept if 0).
    pub(super) fn new(cap: usize) -> EventQueue {
        EventQueue {
            queue: (cap > 0).then(|| Mutex::new(VecDeque::with_capacity(cap))),
            listeners: AtomicUsize::new(0),
            on_demand: AtomicBool::new(false),
        }
    }
}

/// Keeps events flowing while alive (see [`ConnTable::subscribe_events`]).
pub struct EventSubscription<'a> {
    table: &'a ConnTable,
}

impl Drop for EventSubscription<'_> {
    fn drop(&mut self) {
        self.table.events.listeners.fetch_sub(1, Relaxed);
    }
}

impl ConnTable {
    /// Builds events only while [`subscribe_events`](Self::subscribe_events)
    /// holds a subscription (the gateway's mode: the packet path pays
    /// nothing for events nobody reads).
    pub fn events_on_demand(&self) {
        self.events.on_demand.store(true, Relaxed);
    }

    #[inline]
    pub(super) fn events_wanted(&self) -> bool {
        let e = &self.events;
        e.queue.is_some() && (!e.on_demand.load(Relaxed) || e.listeners.load(Relaxed) > 0)
    }

    /// Starts building events (there must be an event queue:
    /// `ConntrackConfig::event_queue > 0`) until the subscription drops.
    /// Events queued while nobody listened are discarded first.
    pub fn subscribe_events(&self) -> EventSubscription<'_> {
        let e = &self.events;
        if e.listeners.fetch_add(1, Relaxed) == 0 && e.on_demand.load(Relaxed) {
            if let Some(q) = &e.queue {
                q.lock().unwrap_or_else(|e| e.into_inner()).clear();
            }
        }
        EventSubscription { table: self }
    }

    pub(super) fn event(&self, kind: EventKind, idx: u32) {
        if self.events_wanted() {
            let snap = self.snapshot_slot(idx);
            self.push_event(CtEvent { kind, conn: snap });
        }
    }

    pub(super) fn push_event(&self, ev: CtEvent) {
        if let Some(q) = &self.events.queue {
            let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() >= self.cfg.event_queue {
                q.pop_front();
                self.stats.events_lost.fetch_add(1, Relaxed);
            }
            q.push_back(ev);
        }
    }

    /// Moves queued events into `out` (oldest first).
    pub fn drain_events(&self, out: &mut Vec<CtEvent>) {
        if let Some(q) = &self.events.queue {
            out.extend(q.lock().unwrap_or_else(|e| e.into_inner()).drain(..));
        }
    }
}
