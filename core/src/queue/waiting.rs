//! Waits (`docs/contract/push.md`): an operation that would answer "nothing"
//! waits for the store's next change and tries again, until it has an answer
//! or its wait ends. Waiters sleep on the store's [`Notifier`]; none polls.

use std::time::{Duration, Instant};

use super::ActionQueue;
use crate::error::Result;
use crate::identity::Operation;
use crate::limits;
use crate::model::{Action, ActionStatus};
use crate::store::Subscription;

#[cfg(doc)]
use crate::store::Notifier;

impl ActionQueue {
    /// `attempt` until it has an answer or `wait` (checked against
    /// [`limits::MAX_WAIT`]) ends; `None` for a wait that ended empty. Each
    /// try reads the notifier's generation first, so a change committed
    /// between the try and the sleep ends the sleep at once.
    pub(super) fn waiting<T>(
        &self,
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
            if Instant::now() >= deadline || !notifier.wait_past(seen, deadline) {
                return Ok(None);
            }
        }
    }

    /// Runs `wake` once, on the thread that signals it, at the store's next
    /// change (a commit that logged an event, here or in another process
    /// sharing the store), unless the returned [`Subscription`] is dropped
    /// first. The building block of a host's wait that holds no thread
    /// (Python's `AsyncActionQueue`): subscribe, try the call with no wait,
    /// and if it found nothing, await the wake (or the deadline), then start
    /// over. `wake` should only hand the news on (complete a future, write to
    /// a pipe): it runs on a committing thread.
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let queue = actionq::ActionQueue::in_memory();
    /// queue.create_server("web-1", None)?;
    /// let (tx, rx) = mpsc::channel();
    /// let subscription = queue.on_change(move || tx.send(()).unwrap());
    /// queue.pause_server("web-1")?;
    /// rx.recv().unwrap();
    /// drop(subscription);
    /// assert_eq!(queue.waiters(), 0);
    /// # Ok::<(), actionq::Error>(())
    /// ```
    pub fn on_change(&self, wake: impl FnOnce() + Send + 'static) -> Subscription {
        self.store.notifier().subscribe(wake)
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
}
