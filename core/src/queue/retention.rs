//! Retention (`docs/contract/retention.md`): prune finished history in
//! batches behind a chain checkpoint, and export it first as JSON Lines.
//!
//! # Why prune removes a prefix of the log
//!
//! The audit chain runs over every event in id order, and the events of
//! actions still live interleave with those of finished ones. Deleting
//! events from the middle of the chain would leave links nothing can
//! verify (or force rewriting every later hash, which is what the chain is
//! there to make evident). So a prune deletes only a *prefix* of the log:
//! every event up to an id `P`, where each event up to `P` is older than
//! the cutoff and belongs to a finished action whose events all lie at or
//! before `P` (or is a server or credential event older than the cutoff).
//! The checkpoint keeps `P` and its hash; the chain after it verifies as
//! before, starting from that hash ([`crate::audit::AuditVerifier::resume`]).
//!
//! The price: a prune stops at the first event of an action that is still
//! live (or changed after the cutoff), so one action pending for months
//! holds back everything logged after it until it is decided (an approval
//! `ttl_seconds` bounds that). Since an action and its creation event get
//! their ids in the same transaction, the pruned actions are a prefix of the
//! action ids too: the checkpoint also keeps the last pruned action id.
//!
//! Planning reads without the write lock (events and finished actions never
//! change); each batch is one short write transaction that re-checks the
//! checkpoint (so two pruners, on two replicas, never delete the same batch
//! twice or step past each other) and refuses a range holding a live action.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::identity::{Operation, Target};
use crate::limits;
use crate::model::{Event, ExportedAction, Timestamp};
use crate::store::PruneCheckpoint;

use super::ActionQueue;

/// What [`ActionQueue::prune`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PruneReport {
    /// Actions deleted by this call (with their events).
    pub pruned_actions: u64,
    /// The id of the last event pruned so far, by this call or an earlier
    /// one (what `verify_audit` reports as `pruned_through`); `None` when
    /// nothing was ever pruned.
    pub pruned_through: Option<i64>,
}

/// The end of the next batch: the last event and the last action it prunes.
struct BatchEnd {
    last_event_id: i64,
    last_action_id: i64,
}

impl ActionQueue {
    /// Deletes the finished actions (completed, failed, rejected, cancelled)
    /// whose last change is more than `older_than_seconds` old, with their
    /// events and per-action rows, in batches of at most
    /// [`limits::PRUNE_BATCH_EVENTS`] events, each its own transaction.
    /// Only a prefix of the log goes (see the module docs of
    /// `queue/retention.rs`): the prune stops at the first event of an
    /// action still live or changed since. Counts stay right; the audit
    /// chain keeps a checkpoint, so `verify_audit` still proves everything
    /// after it. Safe to run on several replicas at once. For the host and
    /// admins.
    ///
    /// ```
    /// use actionq::{ActionQueue, ManualClock, NewAction};
    ///
    /// let clock = std::sync::Arc::new(ManualClock::new(chrono::Utc::now()));
    /// let queue = ActionQueue::in_memory().with_clock(clock.clone());
    /// queue.create_server("web-1", None)?;
    /// let old = queue.create_action(&NewAction::new("web-1", "clear_logs"))?;
    /// queue.cancel_action(old.id)?;
    /// clock.advance(chrono::TimeDelta::hours(1));
    /// let report = queue.prune(60)?;
    /// assert_eq!(report.pruned_actions, 1);
    /// assert_eq!(queue.verify_audit()?.pruned_through, Some(2));
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn prune(&self, older_than_seconds: i64) -> Result<PruneReport> {
        self.prune_pacing(older_than_seconds, |pause| {
            if let Some(pause) = pause {
                std::thread::sleep(pause);
            }
        })
    }

    /// [`ActionQueue::prune`], calling `between_batches` after each batch
    /// with the pause it owes the store's other writers: `None` when none
    /// wrote since the batch before (an idle store is pruned at full speed),
    /// else [`limits::PRUNE_YIELD_FACTOR`] times the batch's time, at most
    /// [`limits::PRUNE_MAX_PAUSE`], so that a prune takes about 1 % of a busy
    /// store's time. A write of another process counts once the store's watch
    /// has signalled it, which it does while anyone in this process waits (a
    /// prune does not start it: its connection would outlive a dropped store).
    pub(crate) fn prune_pacing(
        &self,
        older_than_seconds: i64,
        mut between_batches: impl FnMut(Option<Duration>),
    ) -> Result<PruneReport> {
        self.allow(Operation::Retention, Target::None)?;
        let cutoff = self.cutoff(older_than_seconds)?;
        let notifier = self.store.notifier();
        let mut pruned_actions = 0;
        // The writes of others log events; a batch logs none.
        let mut seen = notifier.logged_at();
        loop {
            let started = Instant::now();
            let from = self.store.prune_checkpoint()?;
            let Some(end) = self.plan_batch(&from, cutoff)? else {
                return Ok(PruneReport {
                    pruned_actions,
                    pruned_through: (from.audit.last_event_id > 0)
                        .then_some(from.audit.last_event_id),
                });
            };
            // `None`: another pruner moved the checkpoint; plan again from it.
            if let Some(n) =
                self.store
                    .prune_prefix(&from, end.last_event_id, end.last_action_id)?
            {
                pruned_actions += n;
            }
            let now = notifier.logged_at();
            between_batches((now != seen).then(|| {
                (started.elapsed() * limits::PRUNE_YIELD_FACTOR).min(limits::PRUNE_MAX_PAUSE)
            }));
            seen = now;
        }
    }

    /// `now - older_than_seconds`, or InvalidInput for a negative or
    /// absurd age.
    fn cutoff(&self, older_than_seconds: i64) -> Result<Timestamp> {
        if !(0..=limits::MAX_PRUNE_AGE_SECONDS).contains(&older_than_seconds) {
            return Err(Error::InvalidInput(format!(
                "older_than_seconds must be between 0 and {} (got {older_than_seconds})",
                limits::MAX_PRUNE_AGE_SECONDS
            )));
        }
        self.now()
            .checked_sub_signed(chrono::TimeDelta::seconds(older_than_seconds))
            .ok_or_else(|| Error::InvalidInput("older_than_seconds reaches before year 0".into()))
    }

    /// The end of the longest prunable prefix after `from` within one batch,
    /// or `None` when the first event after it may not go. Reads only.
    fn plan_batch(&self, from: &PruneCheckpoint, cutoff: Timestamp) -> Result<Option<BatchEnd>> {
        let mut cursor = from.audit.last_event_id;
        let mut last_action_id = from.last_action_id;
        // Actions seen whose terminal event is not yet seen.
        let mut open: HashSet<i64> = HashSet::new();
        let mut end = None;
        let mut scanned: u32 = 0;
        loop {
            let events = self
                .store
                .events_since(cursor, limits::PRUNE_BATCH_EVENTS)?;
            let Some(last) = events.last() else {
                return Ok(end);
            };
            cursor = last.id;
            for event in &events {
                scanned += 1;
                if event.at > cutoff {
                    return Ok(end);
                }
                if let Some(id) = event.action_id {
                    if id > last_action_id {
                        // Its first event (ids and creation events go in step):
                        // the action may go only if it is finished now.
                        match self.store.get_action(id)? {
                            Some(action) if action.status.is_terminal() => {}
                            _ => return Ok(end),
                        }
                        open.insert(id);
                        last_action_id = id;
                    } else if !open.contains(&id) {
                        // An event of an action already closed or pruned: the
                        // store would not let a finished action log more.
                        return Ok(end);
                    }
                    if event.to_status.is_some_and(|s| s.is_terminal()) {
                        open.remove(&id);
                    }
                }
                if open.is_empty() {
                    end = Some(BatchEnd {
                        last_event_id: event.id,
                        last_action_id,
                    });
                    if scanned >= limits::PRUNE_BATCH_EVENTS {
                        return Ok(end);
                    }
                }
                if scanned >= limits::PRUNE_BATCH_EVENTS + limits::PRUNE_SCAN_EVENTS {
                    return Ok(end);
                }
            }
        }
    }

    /// The finished actions whose last change is before `before`, oldest
    /// first, each with all its events: what a prune with that cutoff may
    /// delete (and those a live action holds back), to archive first.
    /// Reads the log in pages as the iterator is consumed: memory holds one
    /// page and the events of actions still open at that point of the log.
    /// For the host and admins.
    ///
    /// ```
    /// use actionq::{ActionQueue, NewAction};
    ///
    /// let queue = ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// let action = queue.create_action(&NewAction::new("web-1", "clear_logs"))?;
    /// queue.cancel_action(action.id)?;
    /// let lines: Vec<_> = queue.export(chrono::Utc::now())?.collect::<Result<_, _>>()?;
    /// assert_eq!(lines[0].events.len(), 2);
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn export(&self, before: Timestamp) -> Result<Export> {
        self.allow(Operation::Retention, Target::None)?;
        Ok(Export {
            queue: self.clone(),
            before,
            cursor: 0,
            open: HashMap::new(),
            ready: VecDeque::new(),
            done: false,
        })
    }
}

/// The iterator [`ActionQueue::export`] returns: one [`ExportedAction`] per
/// finished action, in the order their last events were logged.
pub struct Export {
    queue: ActionQueue,
    before: Timestamp,
    cursor: i64,
    open: HashMap<i64, Vec<Event>>,
    ready: VecDeque<ExportedAction>,
    done: bool,
}

impl Export {
    /// Reads the next page of the log into `ready`.
    fn fill(&mut self) -> Result<()> {
        let events = self
            .queue
            .store
            .events_since(self.cursor, limits::MAX_EVENTS_LIMIT as u32)?;
        if events.is_empty() {
            self.done = true;
        }
        for event in events {
            self.cursor = event.id;
            if event.at >= self.before {
                // The log is in time order: nothing after this is older.
                self.done = true;
                break;
            }
            let Some(id) = event.action_id else {
                continue;
            };
            let finished = event.to_status.is_some_and(|s| s.is_terminal());
            self.open.entry(id).or_default().push(event);
            if finished {
                let events = self.open.remove(&id).unwrap_or_default();
                if let Some(action) = self.queue.store.get_action(id)? {
                    self.ready.push_back(ExportedAction { action, events });
                }
            }
        }
        Ok(())
    }
}

impl Iterator for Export {
    type Item = Result<ExportedAction>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.ready.is_empty() && !self.done {
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::{limits, ActionQueue, Clock, ManualClock, NewAction};

    /// Finished actions, an hour old, for four batches.
    fn history(queue: &ActionQueue, clock: &ManualClock) {
        queue.create_server("old", None).unwrap();
        queue.create_server("busy", None).unwrap();
        for _ in 0..2 * limits::PRUNE_BATCH_EVENTS {
            let action = queue
                .create_action(&NewAction::new("old", "clear_logs"))
                .unwrap();
            queue.cancel_action(action.id).unwrap();
        }
        clock.advance(chrono::TimeDelta::hours(1));
    }

    /// The pauses `prune` took between batches, with `meanwhile` run after
    /// each batch (given its number from 0).
    fn pauses(queue: &ActionQueue, mut meanwhile: impl FnMut(usize)) -> Vec<Option<Duration>> {
        let mut pauses = Vec::new();
        let report = queue
            .prune_pacing(60, |pause| {
                meanwhile(pauses.len());
                pauses.push(pause);
            })
            .unwrap();
        assert_eq!(report.pruned_actions, 2 * limits::PRUNE_BATCH_EVENTS as u64);
        assert!(pauses.len() >= 4, "{} batches", pauses.len());
        pauses
    }

    /// Runs `each` on a queue with [`history`], a writer and whether the
    /// store has a watch: in memory, the queue itself (no watch); on a SQLite
    /// file, another store on the file, whose writes reach the queue only
    /// through its store's watch.
    fn stores(each: impl Fn(ActionQueue, ActionQueue, bool)) {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let as_clock = || -> Arc<dyn Clock> { clock.clone() };
        let memory = ActionQueue::in_memory().with_clock(as_clock());
        history(&memory, &clock);
        each(memory.clone(), memory, false);
        #[cfg(feature = "sqlite")]
        {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("q.db");
            let sqlite = ActionQueue::open(&path).unwrap().with_clock(as_clock());
            history(&sqlite, &clock);
            // The watch's first look signals a change of anything (it cannot
            // tell what landed before it), and a prune's batch that sees it
            // pauses once: let it happen first.
            wait_for_logged_change(&sqlite, || {});
            let other = ActionQueue::open(&path).unwrap().with_clock(as_clock());
            each(sqlite, other, true);
        }
    }

    /// Runs `change`, then waits until `queue`'s notifier signalled a
    /// logged change after it began, keeping the store's watch looking.
    fn wait_for_logged_change(queue: &ActionQueue, change: impl FnOnce()) {
        let notifier = queue.store.notifier();
        let _watching = notifier.subscribe(crate::store::wake::Topic::Events, || {});
        let before = notifier.logged_at();
        change();
        let deadline = Instant::now() + Duration::from_secs(10);
        while notifier.logged_at() == before {
            assert!(Instant::now() < deadline, "the change was never signalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Nobody else writes: no batch pauses. A waiter keeps the SQLite
    /// store's watch looking, and between batches it has time to see the
    /// prune's own commits (as changes that logged nothing): they do not
    /// count.
    #[test]
    fn a_prune_of_an_idle_store_never_pauses() {
        stores(|queue, _, has_watch| {
            let notifier = queue.store.notifier();
            let _waiting = notifier.subscribe(crate::store::wake::Topic::Events, || {});
            let watched = notifier.generation();
            let pauses = pauses(&queue, |_| std::thread::sleep(Duration::from_millis(100)));
            assert!(pauses.iter().all(Option::is_none), "{pauses:?}");
            if has_watch {
                assert_ne!(
                    notifier.generation(),
                    watched,
                    "the watch saw no commit of the prune"
                );
            }
        });
    }

    /// A write between two batches, in this process or (SQLite) another
    /// store on the file, seen through the watch while someone waits: the
    /// next batch pauses, in proportion to its time and within the cap; the
    /// batches after it, with nobody writing, do not.
    #[test]
    fn a_prune_pauses_after_a_batch_when_another_writer_wrote() {
        stores(|queue, writer, _| {
            let pauses = pauses(&queue, |batch| {
                if batch == 0 {
                    wait_for_logged_change(&queue, || {
                        writer.pause_server("busy").unwrap();
                    });
                }
            });
            assert_eq!(pauses[0], None, "{pauses:?}");
            let pause = pauses[1].expect("the batch after the write pauses");
            assert!(pause > Duration::ZERO && pause <= limits::PRUNE_MAX_PAUSE);
            assert!(pauses[2..].iter().all(Option::is_none), "{pauses:?}");
        });
    }
}
