//! Waking waiters when the store changes (`docs/contract/push.md`).
//!
//! Every store owns one [`Notifier`]. The store signals it after each commit
//! that logged something, with what the commit [`Touched`] (the servers of
//! the events it logged, [`Notifier::notify`]); a store shared with other
//! processes also has one watch thread (`Watcher`) that signals it when
//! another process commits (SQLite: `PRAGMA data_version` on a connection of
//! its own, then one read of the events logged since; PostgreSQL: `LISTEN`,
//! the servers in the payload). Waiters never poll the database: a blocking
//! waiter sleeps on its [`Topic`]'s condition variable, an async host
//! registers a one-shot callback ([`Notifier::subscribe`]), and both re-check
//! after a wake.
//!
//! A waiter names its [`Topic`]: a claim waits for its server (only a change
//! touching that server wakes it, so one approval wakes one agent, not the
//! fleet), an events reader for any event, an output reader for its action's
//! server and for writes of other processes that logged nothing (a chunk of
//! output logs no event, so a SQLite watcher cannot tell whose it was:
//! [`Touched::unlogged`]). A change that cannot be attributed
//! ([`Touched::everything`]) wakes every waiter.
//!
//! No wake is lost between a waiter's check and its sleep: a blocking waiter
//! reads the [`Notifier::generation`] *before* it checks and sleeps only while
//! no change of its topic came after that generation (each topic remembers the
//! generation of the last change that touched it); a subscriber registers
//! *before* it checks, so a change after the check has already run (or will
//! run) its callback.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
use std::{thread::Thread, time::Duration};

use crate::model::EventKind;
use crate::store::EventDraft;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// How long an idle watch thread sleeps before it looks whether its store is
/// gone (and, for a listener, between reads of the connection).
const WATCH_IDLE: Duration = Duration::from_millis(250);

/// What a waiter waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic<'a> {
    /// Any logged event (an events reader).
    Events,
    /// A change of this server's actions or of the server itself (a claim).
    Server(&'a str),
    /// New live output of this server's actions, or their end (an output
    /// reader): what wakes [`Topic::Server`], and any write of another
    /// process that logged nothing ([`Touched::unlogged`]).
    Output(&'a str),
}

/// A [`Topic`] kept by a [`Subscription`].
#[derive(Debug)]
enum OwnedTopic {
    Events,
    Server(Box<str>),
    Output(Box<str>),
}

impl OwnedTopic {
    fn of(topic: Topic<'_>) -> Self {
        match topic {
            Topic::Events => OwnedTopic::Events,
            Topic::Server(id) => OwnedTopic::Server(id.into()),
            Topic::Output(id) => OwnedTopic::Output(id.into()),
        }
    }

    fn topic(&self) -> Topic<'_> {
        match self {
            OwnedTopic::Events => Topic::Events,
            OwnedTopic::Server(id) => Topic::Server(id),
            OwnedTopic::Output(id) => Topic::Output(id),
        }
    }
}

/// What a commit changed, as waiters see it: whether it logged anything, and
/// the servers its events were about (an action's or a server's event; a
/// credential's is about none), or that it cannot say (wake everyone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    logged: bool,
    everything: bool,
    /// Another process wrote something that logged no event.
    unlogged: bool,
    servers: BTreeSet<String>,
}

impl Touched {
    /// A change that may have touched anything: wakes every waiter.
    pub fn everything() -> Self {
        Touched {
            logged: true,
            everything: true,
            unlogged: false,
            servers: BTreeSet::new(),
        }
    }

    /// Another process committed a write that logged no event (a chunk of
    /// live output, a lease, a delivery cursor): it wakes only the output
    /// readers, who cannot otherwise learn of a chunk written elsewhere.
    pub fn unlogged() -> Self {
        Touched {
            unlogged: true,
            ..Touched::default()
        }
    }

    /// Adds a logged event about `kind` and `subject` (as stored).
    pub fn record(&mut self, kind: EventKind, subject: &str) {
        self.logged = true;
        if matches!(kind, EventKind::Action | EventKind::Server)
            && !self.everything
            && !self.servers.contains(subject)
        {
            self.servers.insert(subject.to_owned());
        }
    }

    #[cfg(test)]
    /// Action events about each of `ids`.
    pub(crate) fn of_servers(ids: &[&str]) -> Self {
        let mut touched = Touched::default();
        for id in ids {
            touched.record(EventKind::Action, id);
        }
        touched
    }

    /// Adds `event`.
    pub fn record_event(&mut self, event: &EventDraft) {
        self.record(event.kind, &event.subject);
    }

    /// Adds everything `other` touched.
    pub fn merge(&mut self, other: Touched) {
        self.logged |= other.logged;
        self.everything |= other.everything;
        self.unlogged |= other.unlogged;
        if self.everything {
            self.servers.clear();
        } else {
            self.servers.extend(other.servers);
        }
    }

    /// Whether nothing was logged or written (nobody is woken).
    pub fn is_empty(&self) -> bool {
        !self.logged && !self.unlogged
    }

    /// Whether every waiter is woken.
    pub fn is_everything(&self) -> bool {
        self.everything
    }

    /// The servers touched (empty when [`Touched::is_everything`]).
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(String::as_str)
    }
}

/// The change signal of one store, shared by the store, its watch thread and
/// every waiter. Counts what is registered so that tests (and hosts) can see
/// that a waiter that gave up left nothing behind ([`Notifier::registrations`]),
/// and how many waiters each change woke ([`Notifier::woken`]).
pub struct Notifier {
    state: Mutex<State>,
    /// Runs whenever a waiter registers: makes sure the watch thread of a
    /// store shared with other processes is running.
    on_register: Option<Box<dyn Fn() + Send + Sync>>,
}

type Wake = Box<dyn FnOnce() + Send>;

/// The waiters of one topic, and the last change that touched it.
#[derive(Default)]
struct Waiters {
    /// The generation of the last change of this topic.
    changed_at: u64,
    /// Blocking waiters asleep in [`Notifier::wait_past`], on `condvar`.
    sleepers: usize,
    condvar: Arc<Condvar>,
    callbacks: HashMap<u64, Wake>,
    /// The latest generation at which a look at this topic began that then
    /// found nothing ([`Notifier::found_nothing`]).
    found_nothing_at: Option<u64>,
}

impl Waiters {
    /// Marks the topic changed at `generation`; its callbacks go to `wakes`
    /// and its sleepers are woken (after the lock is released) through `condvars`.
    /// How many waiters that wakes.
    fn touch(
        &mut self,
        generation: u64,
        wakes: &mut Vec<Wake>,
        condvars: &mut Vec<Arc<Condvar>>,
    ) -> usize {
        self.changed_at = generation;
        let callbacks = self.callbacks.len();
        wakes.extend(self.callbacks.drain().map(|(_, wake)| wake));
        if self.sleepers > 0 {
            condvars.push(self.condvar.clone());
        }
        callbacks + self.sleepers
    }
}

#[derive(Default)]
struct State {
    generation: u64,
    /// The generation of the last change that touched everything.
    everything_at: u64,
    events: Waiters,
    /// Per server id; kept once made (one small entry per server that
    /// changed or was waited on), so a change with nobody waiting is still
    /// remembered for a waiter between its check and its sleep.
    servers: HashMap<String, Waiters>,
    /// The output readers, per server id (kept once made, like `servers`;
    /// a change of the server counts for them through `servers`).
    outputs: HashMap<String, Waiters>,
    /// The generation of the last [`Touched::unlogged`] change.
    unlogged_at: u64,
    next_id: u64,
    registered: usize,
    woken: u64,
}

impl State {
    fn topic(&mut self, topic: Topic<'_>) -> &mut Waiters {
        let (map, id) = match topic {
            Topic::Events => return &mut self.events,
            Topic::Server(id) => (&mut self.servers, id),
            Topic::Output(id) => (&mut self.outputs, id),
        };
        if !map.contains_key(id) {
            map.insert(id.to_owned(), Waiters::default());
        }
        map.get_mut(id).expect("inserted")
    }

    /// The generation of the last change `topic`'s waiters care about.
    fn changed_at(&self, topic: Topic<'_>) -> u64 {
        let of = |map: &HashMap<String, Waiters>, id: &str| map.get(id).map_or(0, |w| w.changed_at);
        let own = match topic {
            Topic::Events => self.events.changed_at,
            Topic::Server(id) => of(&self.servers, id),
            Topic::Output(id) => of(&self.outputs, id)
                .max(of(&self.servers, id))
                .max(self.unlogged_at),
        };
        own.max(self.everything_at)
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Notifier")
            .field("generation", &state.generation)
            .field("registered", &state.registered)
            .field("woken", &state.woken)
            .finish()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// A notifier only this process's commits signal (an in-memory store).
    pub fn new() -> Self {
        Notifier {
            state: Mutex::default(),
            on_register: None,
        }
    }

    /// A notifier that calls `on_register` whenever a waiter registers
    /// (before the waiter sleeps): a store shared with other processes
    /// starts or wakes its watch thread there.
    pub fn with_watch(on_register: impl Fn() + Send + Sync + 'static) -> Self {
        Notifier {
            on_register: Some(Box::new(on_register)),
            ..Notifier::new()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; a poisoned lock still holds sound counters.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A commit logged what `touched` says: wakes the sleeping waiters of
    /// the touched servers and of [`Topic::Events`] (of every topic for
    /// [`Touched::everything`]; every [`Topic::Output`] for
    /// [`Touched::unlogged`]) and runs (then forgets) their callbacks, on
    /// this thread, after the lock is released. Nothing for an empty
    /// `touched`. Call it after the commit, outside the store's own locks (a
    /// callback may take a host's lock, such as Python's GIL).
    pub fn notify(&self, touched: &Touched) {
        if touched.is_empty() {
            return;
        }
        let mut wakes = Vec::new();
        let mut condvars = Vec::new();
        {
            let mut state = self.lock();
            state.generation = state.generation.wrapping_add(1);
            let generation = state.generation;
            let state = &mut *state;
            let mut woken = 0;
            if touched.logged {
                woken += state.events.touch(generation, &mut wakes, &mut condvars);
            }
            if touched.is_everything() || touched.unlogged {
                for waiters in state.outputs.values_mut() {
                    woken += waiters.touch(generation, &mut wakes, &mut condvars);
                }
            }
            if touched.unlogged {
                state.unlogged_at = generation;
            }
            if touched.is_everything() {
                state.everything_at = generation;
                for waiters in state.servers.values_mut() {
                    woken += waiters.touch(generation, &mut wakes, &mut condvars);
                }
            } else {
                for id in touched.servers() {
                    woken +=
                        state
                            .topic(Topic::Server(id))
                            .touch(generation, &mut wakes, &mut condvars);
                    if !touched.unlogged {
                        if let Some(waiters) = state.outputs.get_mut(id) {
                            woken += waiters.touch(generation, &mut wakes, &mut condvars);
                        }
                    }
                }
            }
            state.registered -= wakes.len();
            state.woken += woken as u64;
        }
        for condvar in condvars {
            condvar.notify_all();
        }
        for wake in wakes {
            wake();
        }
    }

    /// Notes that a look at `topic` (a claim's read of its server's actions)
    /// that began at generation `seen` found nothing. The look saw every
    /// change signalled by then, as each is signalled after its commit.
    pub fn found_nothing(&self, topic: Topic<'_>, seen: u64) {
        let mut state = self.lock();
        let waiters = state.topic(topic);
        waiters.found_nothing_at = waiters.found_nothing_at.max(Some(seen));
    }

    /// Whether a look at `topic` now would find nothing, as the last one did:
    /// no change of `topic` was signalled since a look that found nothing
    /// began. A change not yet signalled (another process's commit before
    /// the watch thread reads it) will be, and wakes whoever waits then.
    pub fn unchanged_since_nothing(&self, topic: Topic<'_>) -> bool {
        let state = self.lock();
        let found_nothing_at = match topic {
            Topic::Events => state.events.found_nothing_at,
            Topic::Server(id) => state.servers.get(id).and_then(|w| w.found_nothing_at),
            Topic::Output(id) => state.outputs.get(id).and_then(|w| w.found_nothing_at),
        };
        found_nothing_at.is_some_and(|at| at >= state.changed_at(topic))
    }

    /// How many changes were signalled so far: read it before checking, then
    /// [`Notifier::wait_past`] it.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The generation of the last signalled change that logged an event
    /// (0: none yet). A write that logs nothing (a prune batch, a lease, a
    /// chunk of output) leaves it, so a prune compares it across a batch to
    /// learn whether others write.
    pub fn logged_at(&self) -> u64 {
        self.lock().events.changed_at
    }

    /// Sleeps until a change of `topic` after generation `seen` is signalled
    /// (true) or `deadline` passes (false). Returns at once when one already was.
    pub fn wait_past(&self, topic: Topic<'_>, seen: u64, deadline: Instant) -> bool {
        if let Some(register) = &self.on_register {
            register();
        }
        let mut state = self.lock();
        let condvar = {
            let waiters = state.topic(topic);
            waiters.sleepers += 1;
            waiters.condvar.clone()
        };
        state.registered += 1;
        let changed = loop {
            if state.changed_at(topic) > seen {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            state = condvar
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        state.topic(topic).sleepers -= 1;
        state.registered -= 1;
        changed
    }

    /// Runs `wake` once, at the next change of `topic` (on the thread that
    /// signals it), unless the returned [`Subscription`] is dropped first.
    /// Register before checking, then check, then await the wake: no change
    /// is missed.
    pub fn subscribe(
        self: &Arc<Self>,
        topic: Topic<'_>,
        wake: impl FnOnce() + Send + 'static,
    ) -> Subscription {
        if let Some(register) = &self.on_register {
            register();
        }
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.registered += 1;
        state.topic(topic).callbacks.insert(id, Box::new(wake));
        Subscription {
            notifier: Arc::downgrade(self),
            topic: OwnedTopic::of(topic),
            id,
        }
    }

    /// Waiters registered now: blocking waiters asleep plus callbacks not yet
    /// run. Zero once every waiter has been answered, timed out or given up.
    pub fn registrations(&self) -> usize {
        self.lock().registered
    }

    /// How many waiters changes have woken so far (callbacks run plus
    /// sleepers signalled): what changes cost, for tests and metrics.
    pub fn woken(&self) -> u64 {
        self.lock().woken
    }
}

/// A callback registered with [`Notifier::subscribe`]; dropping it (or
/// [`Subscription::cancel`]) unregisters the callback if it has not run.
#[derive(Debug)]
pub struct Subscription {
    notifier: Weak<Notifier>,
    topic: OwnedTopic,
    id: u64,
}

impl Subscription {
    /// Unregisters the callback (the same as dropping the subscription).
    pub fn cancel(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(notifier) = self.notifier.upgrade() {
            let topic = self.topic.topic();
            // Dropped outside the lock: a host's callback may hold host
            // objects whose release takes the host's own lock.
            let wake = {
                let mut state = notifier.lock();
                let wake = state.topic(topic).callbacks.remove(&self.id);
                if wake.is_some() {
                    state.registered -= 1;
                }
                wake
            };
            drop(wake);
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// How a store learns of other processes' commits, on its watch thread.
pub(crate) trait Watch: Send + 'static {
    /// Waits up to about `at_most` for a commit by another connection, and
    /// says what it touched (empty when there was none):
    /// [`Touched::everything`] when it cannot say, or when a commit may have
    /// gone unseen (the first call, after a reconnect).
    fn changed(&mut self, at_most: Duration) -> Touched;

    /// Whether the thread must keep reading while nobody waits (a listening
    /// connection must be drained, or the server queues notifications for it).
    fn drains(&self) -> bool;
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The one watch thread of a store: started by the first waiter, asleep
/// while nobody waits (unless its [`Watch`] must drain), gone soon after
/// the store is dropped.
pub(crate) struct Watcher {
    notifier: Weak<Notifier>,
    start: Mutex<WatcherStart>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
enum WatcherStart {
    Idle(Box<dyn FnOnce() -> Box<dyn Watch> + Send>),
    Running(Thread),
    Failed,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Watcher {
    /// A notifier whose watch thread runs the [`Watch`] that `open` makes
    /// (on the thread, so a slow connect never holds up a waiter).
    pub(crate) fn notifier(
        open: impl FnOnce() -> Box<dyn Watch> + Send + 'static,
    ) -> Arc<Notifier> {
        Arc::new_cyclic(|weak: &Weak<Notifier>| {
            let watcher = Watcher {
                notifier: weak.clone(),
                start: Mutex::new(WatcherStart::Idle(Box::new(open))),
            };
            Notifier::with_watch(move || watcher.ensure_running())
        })
    }

    fn ensure_running(&self) {
        let mut start = self.start.lock().unwrap_or_else(|e| e.into_inner());
        match &*start {
            WatcherStart::Running(thread) => thread.unpark(),
            WatcherStart::Failed => {}
            WatcherStart::Idle(_) => {
                let WatcherStart::Idle(open) = std::mem::replace(&mut *start, WatcherStart::Failed)
                else {
                    unreachable!()
                };
                let notifier = self.notifier.clone();
                let spawned = std::thread::Builder::new()
                    .name("actionq-watch".into())
                    .spawn(move || watch(notifier, open()));
                // Without a thread (out of threads) waiters still wake on this
                // process's commits and at their deadline.
                if let Ok(handle) = spawned {
                    *start = WatcherStart::Running(handle.thread().clone());
                }
            }
        }
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// The watch thread's loop: ends once the store (and so its notifier) is gone.
fn watch(notifier: Weak<Notifier>, mut source: Box<dyn Watch>) {
    loop {
        let Some(strong) = notifier.upgrade() else {
            return;
        };
        let idle = strong.registrations() == 0 && !source.drains();
        drop(strong);
        if idle {
            std::thread::park_timeout(WATCH_IDLE);
            continue;
        }
        let touched = source.changed(WATCH_IDLE);
        if !touched.is_empty() {
            match notifier.upgrade() {
                Some(strong) => strong.notify(&touched),
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn a_look_that_found_nothing_holds_until_its_topic_changes() {
        let notifier = Notifier::new();
        let web_1 = Topic::Server("web-1");
        assert!(!notifier.unchanged_since_nothing(web_1), "no look yet");
        notifier.found_nothing(web_1, notifier.generation());
        assert!(notifier.unchanged_since_nothing(web_1));
        notifier.notify(&Touched::of_servers(&["web-2"]));
        let mut credential = Touched::default();
        credential.record(EventKind::Credential, "ops");
        notifier.notify(&credential);
        notifier.notify(&Touched::unlogged());
        assert!(
            notifier.unchanged_since_nothing(web_1),
            "another server, a credential and output make nothing claimable here"
        );
        notifier.notify(&Touched::of_servers(&["web-1"]));
        assert!(!notifier.unchanged_since_nothing(web_1));
        // A look that began before a change may have missed it: it proves nothing.
        let before = notifier.generation();
        notifier.notify(&Touched::of_servers(&["web-1"]));
        notifier.found_nothing(web_1, before);
        assert!(!notifier.unchanged_since_nothing(web_1));
        notifier.found_nothing(web_1, notifier.generation());
        assert!(notifier.unchanged_since_nothing(web_1));
        notifier.notify(&Touched::everything());
        assert!(!notifier.unchanged_since_nothing(web_1));
        assert!(!notifier.unchanged_since_nothing(Topic::Server("web-2")));
    }

    #[test]
    fn a_change_before_the_sleep_is_not_missed() {
        let notifier = Notifier::new();
        let seen = notifier.generation();
        notifier.notify(&Touched::of_servers(&["a"]));
        let start = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(30);
        assert!(notifier.wait_past(Topic::Server("a"), seen, deadline));
        assert!(notifier.wait_past(Topic::Events, seen, deadline));
        assert!(start.elapsed() < Duration::from_secs(30));
        assert_eq!(notifier.registrations(), 0);
    }

    #[test]
    fn output_readers_wake_on_their_server_and_on_unlogged_writes_alone() {
        let notifier = Notifier::new();
        let later = || Instant::now() + Duration::from_secs(30);
        let seen = notifier.generation();
        notifier.notify(&Touched::unlogged());
        assert!(notifier.wait_past(Topic::Output("a"), seen, later()));
        assert!(!notifier.wait_past(Topic::Server("a"), seen, Instant::now()));
        assert!(!notifier.wait_past(Topic::Events, seen, Instant::now()));
        let seen = notifier.generation();
        notifier.notify(&Touched::of_servers(&["a"]));
        assert!(notifier.wait_past(Topic::Output("a"), seen, later()));
        assert!(!notifier.wait_past(Topic::Output("b"), seen, Instant::now()));
        assert_eq!(notifier.registrations(), 0);
    }

    #[test]
    fn a_change_of_another_server_does_not_end_a_sleep() {
        let notifier = Notifier::new();
        let seen = notifier.generation();
        notifier.notify(&Touched::of_servers(&["a"]));
        let mut credential = Touched::default();
        credential.record(EventKind::Credential, "ops");
        notifier.notify(&credential);
        notifier.notify(&Touched::default());
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(!notifier.wait_past(Topic::Server("b"), seen, soon));
        notifier.notify(&Touched::everything());
        assert!(notifier.wait_past(Topic::Server("b"), seen, Instant::now()));
    }

    #[test]
    fn callbacks_run_once_and_dropped_ones_never() {
        let notifier = Arc::new(Notifier::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let kept = notifier.subscribe(Topic::Events, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        let counted = runs.clone();
        let dropped = notifier.subscribe(Topic::Events, move || {
            counted.fetch_add(100, Ordering::SeqCst);
        });
        assert_eq!(notifier.registrations(), 2);
        drop(dropped);
        notifier.notify(&Touched::everything());
        notifier.notify(&Touched::everything());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop(kept);
        assert_eq!(notifier.registrations(), 0);
    }

    #[test]
    fn callbacks_run_for_their_topic_only() {
        let notifier = Arc::new(Notifier::new());
        let runs = Arc::new(Mutex::new(Vec::new()));
        let subscribe = |topic: Topic<'_>, name: &'static str| {
            let runs = runs.clone();
            notifier.subscribe(topic, move || runs.lock().unwrap().push(name))
        };
        let _a = subscribe(Topic::Server("a"), "a");
        let _b = subscribe(Topic::Server("b"), "b");
        let _events = subscribe(Topic::Events, "events");
        notifier.notify(&Touched::of_servers(&["a"]));
        assert_eq!(*runs.lock().unwrap(), ["events", "a"]);
        assert_eq!(notifier.registrations(), 1);
        assert_eq!(notifier.woken(), 2);
        notifier.notify(&Touched::everything());
        assert_eq!(*runs.lock().unwrap(), ["events", "a", "b"]);
        assert_eq!(notifier.registrations(), 0);
    }
}
