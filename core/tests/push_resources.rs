//! Waiters leave nothing behind (`docs/contract/push.md`): 10,000 waits
//! given up (subscriptions dropped, waits ended at their deadline) leave the
//! store's registrations at zero and the process's threads as they were
//! (the store's one watch thread, started by the first wait, is all). One
//! test in its own binary, so no other test's threads are counted.

mod common;

use std::time::Duration;

use actionq::store::Topic;
use actionq::ActionQueue;

/// The threads of this process, by name, from the kernel.
fn threads() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap_or_default())
        .collect();
    names.sort();
    names
}

fn ten_thousand_waits_leave_nothing(name: &str, queue: &ActionQueue) {
    queue.create_server("web-1", None).unwrap();
    // The first wait starts the store's watch thread (if it has one).
    assert!(queue
        .claim_next("web-1", None, Some(Duration::from_millis(50)))
        .unwrap()
        .is_none());
    std::thread::sleep(Duration::from_millis(100));
    let before = threads();
    for _ in 0..10_000 {
        let subscription = queue.on_change(Topic::Server("web-1"), || {});
        drop(subscription);
    }
    assert_eq!(
        queue.waiters(),
        0,
        "{name}: dropped subscriptions unregistered"
    );
    // Waits that end at their deadline, from several threads at once.
    let waiting: Vec<_> = (0..4)
        .map(|_| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    assert!(queue
                        .claim_next("web-1", None, Some(Duration::from_millis(2)))
                        .unwrap()
                        .is_none());
                }
            })
        })
        .collect();
    for thread in waiting {
        // Joined: the kernel's task is gone, unlike a scoped thread's.
        thread.join().unwrap();
    }
    // Subscriptions still registered when a change runs them: gone too.
    let held: Vec<_> = (0..1000)
        .map(|i| {
            let topic = if i % 2 == 0 {
                Topic::Server("web-1")
            } else {
                Topic::Events
            };
            queue.on_change(topic, || {})
        })
        .collect();
    assert_eq!(queue.waiters(), 1000);
    queue.pause_server("web-1").unwrap();
    assert_eq!(
        queue.waiters(),
        0,
        "{name}: a change runs and forgets callbacks"
    );
    drop(held);
    assert_eq!(
        queue.waiters(),
        0,
        "{name}: waits ended, nothing registered"
    );
    assert_eq!(threads(), before, "{name}: no thread per waiter");
}

#[test]
fn waits_given_up_leave_registrations_and_threads_flat() {
    ten_thousand_waits_leave_nothing("memory", &ActionQueue::in_memory());
    #[cfg(feature = "sqlite")]
    {
        let dir = tempfile::tempdir().unwrap();
        let queue = ActionQueue::open(dir.path().join("q.sqlite3")).unwrap();
        ten_thousand_waits_leave_nothing("sqlite", &queue);
    }
    #[cfg(feature = "postgres")]
    if let Some(url) = common::pg::fresh_schema_url() {
        let store =
            actionq::PostgresStore::open(&url, &actionq::PostgresOptions::default()).unwrap();
        ten_thousand_waits_leave_nothing("postgres", &ActionQueue::new(store));
    }
}
