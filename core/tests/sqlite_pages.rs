//! Pages a durable SQLite create writes: every page a commit changes is one
//! WAL frame (the commit's whole cost in writes, and later in checkpoint
//! writes), so frames per create are counted from the WAL file itself. The
//! frames of each commit are told apart by the frame header's commit marker
//! (a non-zero database size), and the WAL is emptied first (a TRUNCATE
//! checkpoint), so no automatic checkpoint runs among the creates counted.
#![cfg(feature = "sqlite")]

use std::path::Path;

use actionq::{ActionQueue, ActionStatus, NewAction, SqliteOptions, SqliteStore};

/// Creates counted per kind: few enough that their frames stay below the
/// automatic checkpoint (1,000 frames).
const CREATES: usize = 40;

/// Frames per commit in the WAL at `db`, in commit order (frames of the
/// current WAL generation only: its salt must match the header's).
fn frames_per_commit(db: &Path) -> Vec<usize> {
    let wal = std::fs::read(db.with_extension("sqlite3-wal")).unwrap();
    let page_size = u32::from_be_bytes(wal[8..12].try_into().unwrap()) as usize;
    let salt = &wal[16..24];
    let mut commits = Vec::new();
    let mut frames = 0;
    for frame in wal[32..].chunks_exact(24 + page_size) {
        if &frame[8..16] != salt {
            break;
        }
        frames += 1;
        if u32::from_be_bytes(frame[4..8].try_into().unwrap()) != 0 {
            commits.push(frames);
            frames = 0;
        }
    }
    commits
}

/// Pages per create, the median over [`CREATES`] creates made by `create(i)`
/// after 500 of the same kind (so the b-trees are past their first pages).
/// The median, because a create that splits a b-tree page writes a page or
/// more beyond the rest, once per page's worth of rows.
fn pages_per_create(create: impl Fn(&ActionQueue, usize)) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite3");
    let queue = ActionQueue::new(SqliteStore::open(&db, &SqliteOptions::default()).unwrap());
    for s in 0..10 {
        queue.create_server(&format!("web-{s}"), None).unwrap();
    }
    for i in 0..500 {
        create(&queue, i);
    }
    let probe = rusqlite::Connection::open(&db).unwrap();
    // The store's checkpoint thread may be checkpointing right now, and a
    // checkpoint meeting another is refused at once (SQLITE_BUSY, no busy
    // handler): try again until it runs, and insist the WAL really was
    // emptied, or the count below would include every commit since the file
    // was created.
    probe
        .busy_timeout(std::time::Duration::from_secs(60))
        .unwrap();
    let truncated = (0..10_000).any(|_| {
        let busy: i64 = probe
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        busy == 0 || {
            std::thread::sleep(std::time::Duration::from_millis(1));
            false
        }
    });
    assert!(truncated, "the TRUNCATE checkpoint never ran");
    for i in 500..500 + CREATES {
        create(&queue, i);
    }
    let mut commits = frames_per_commit(&db);
    assert_eq!(commits.len(), CREATES, "one commit per create: {commits:?}");
    eprintln!("frames per create: {commits:?}");
    commits.sort_unstable();
    commits[CREATES / 2]
}

/// The common create (a normal server, auto-approved) writes the action's
/// row, its entries in `actions_by_status` and `actions_by_server_status`,
/// its event, its count and the audit head: 6 pages (9 before schema v6).
#[test]
fn an_auto_approved_create_writes_six_pages() {
    let pages = pages_per_create(|queue, i| {
        let action = queue
            .create_action(
                &NewAction::new(format!("web-{}", i % 10), "restart_service")
                    .service_name(format!("s{i}.service")),
            )
            .unwrap();
        assert_eq!(action.status, ActionStatus::Approved);
    });
    assert!(pages <= 6, "a create writes {pages} pages");
}
