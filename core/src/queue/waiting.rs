//! Waits (`docs/contract/push.md`): an operation that would answer "nothing"
//! waits for the store's next change of its [`Topic`] (a claim: its server;
//! events: any) and tries again, until it has an answer or its wait ends.
//! Waiters sleep on the store's [`Notifier`]; none polls.

use std::time::{Duration, Instant};

use super::ActionQueue;
use crate::error::Result;
use crate::identity::Operation;
use crate::limits;
use crate::model::{Action, ActionStatus};
use crate::store::{Subscription, Topic};

#[cfg(doc)]
use crate::store::Notifier;

impl ActionQueue {
    /// `attempt` until it has an answer or `wait` (checked against
    /// [`limits::MAX_WAIT`]) ends, again after each change of `topic`; `None`
    /// for a wait that ended empty. Each try reads the notifier's generation
    /// first, so a change committed between the try and the sleep ends the
    /// sleep at once.
    pub(super) fn waiting<T>(
        &self,
        topic: Topic<'_>,
        wait: Option<Duration>,
        mut attempt: impl FnMut() -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let wait = wait.unwrap_or(Duration::ZERO);
        if wait > limits::MAX_WAIT {
            return Err(limits::wait_out_of_range(wait.as_secs_f64()));
        }
        let deadline = Instant::now() + wait;
        let notifier = self.store.notifier();
        loop {
            let seen = notifier.generation();
            if let Some(found) = attempt()? {
                return Ok(Some(found));
            }
            if Instant::now() >= deadline || !notifier.wait_past(topic, seen, deadline) {
                return Ok(None);
            }
        }
    }

    /// Runs `wake` once, on the thread that signals it, at the store's next
    /// change of `topic` (a commit that logged an event about that server,
    /// or any event for [`Topic::Events`], here or in another process sharing
    /// the store; see [`Topic`]), unless the returned [`Subscription`] is
    /// dropped first. The building block of a host's wait that holds no
    /// thread (Python's `AsyncActionQueue`): subscribe to the topic the call
    /// waits on (`claim_next` and `await_cancel`: the server; `events_since`:
    /// events; `output_since`: the output of the server), try the call with
    /// no wait, and if it found nothing, await the wake (or the deadline),
    /// then start over. `wake` should only hand the news on (complete a
    /// future, write to a pipe): it runs on a committing thread.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use actionq::store::Topic;
    ///
    /// let queue = actionq::ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// let (tx, rx) = mpsc::channel();
    /// let subscription = queue.on_change(Topic::Server("web-1"), move || tx.send(()).unwrap());
    /// queue.pause_server("web-1")?;
    /// rx.recv().unwrap();
    /// drop(subscription);
    /// assert_eq!(queue.waiters(), 0);
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn on_change(
        &self,
        topic: Topic<'_>,
        wake: impl FnOnce() + Send + 'static,
    ) -> Subscription {
        self.store.notifier().subscribe(topic, wake)
    }

    /// Whether a [`ActionQueue::claim_next`] with a wait on `server_id`
    /// would start asleep, reading nothing: nothing about the server changed
    /// since a claim on it found nothing. Its errors are those the claim
    /// would raise first (the caller's right to claim there, the lease).
    /// Reads no store: for a host that waits without a thread (Python's
    /// `AsyncActionQueue`), to skip the hop to one for that first look.
    pub fn claim_would_wait(&self, server_id: &str, lease: Option<Duration>) -> Result<bool> {
        self.claim_allowed(server_id, lease)?;
        Ok(self
            .store
            .notifier()
            .unchanged_since_nothing(Topic::Server(server_id)))
    }

    /// One look, without writing, at whether the executor of action `id`
    /// should stop: the action when a cancel was requested or it is no
    /// longer executing, else `None`. What [`ActionQueue::await_cancel`]
    /// waits for; a host whose wait holds no thread (Python's
    /// `AsyncActionQueue`) renews once with `await_cancel` and then looks
    /// again with this at each change, since a renewal (a write) would wake
    /// it again. For the host, admins, and the agent of the action's server.
    pub fn cancel_request(&self, id: i64) -> Result<Option<Action>> {
        let action = self.target_action(Operation::Heartbeat, id)?;
        let settled =
            action.cancel_requested_at.is_some() || action.status != ActionStatus::Executing;
        Ok(settled.then_some(action))
    }

    /// Waiters registered on this queue's store now: waits in progress plus
    /// [`ActionQueue::on_change`] callbacks not yet run or dropped. Zero once
    /// every wait has ended, however it ended.
    pub fn waiters(&self) -> usize {
        self.store.notifier().registrations()
    }

    /// Test instrumentation, hidden from the docs: how many waiters the
    /// store's changes have woken so far ([`Notifier::woken`]), so a test can
    /// see that a change of one server woke no waiter of another.
    #[doc(hidden)]
    pub fn wakes(&self) -> u64 {
        self.store.notifier().woken()
    }
}
