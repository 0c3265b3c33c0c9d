//! Pages a durable SQLite create writes: every page a commit changes is one
//! WAL frame (the commit's whole cost in writes, and later in checkpoint
//! writes), so frames per create are counted from the WAL file itself. The
//! frames of each commit are told apart by the frame header's commit marker
//! (a non-zero database size), and the WAL is emptied first (a TRUNCATE
//! checkpoint), so no automatic checkpoint runs among the creates counted.
#![cfg(feature = "sqlite")]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use actionq::{ActionQueue, ActionStatus, NewAction, SqliteOptions, SqliteStore};

/// Creates counted per kind: few enough that their frames stay below the
/// automatic checkpoint (1,000 frames).
const CREATES: usize = 40;

/// The page numbers each commit wrote to the WAL at `db`, in commit order
/// (frames of the current WAL generation only: its salt must match the
/// header's).
fn pages_per_commit(db: &Path) -> Vec<Vec<u32>> {
    let wal = std::fs::read(db.with_extension("sqlite3-wal")).unwrap();
    let page_size = u32::from_be_bytes(wal[8..12].try_into().unwrap()) as usize;
    let salt = &wal[16..24];
    let mut commits = Vec::new();
    let mut pages = Vec::new();
    for frame in wal[32..].chunks_exact(24 + page_size) {
        if &frame[8..16] != salt {
            break;
        }
        pages.push(u32::from_be_bytes(frame[0..4].try_into().unwrap()));
        if u32::from_be_bytes(frame[4..8].try_into().unwrap()) != 0 {
            commits.push(std::mem::take(&mut pages));
        }
    }
    commits
}

/// The table or index each page of `db` belongs to (SQLite's `dbstat`).
fn page_owners(db: &Path) -> HashMap<u32, String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut select = conn.prepare("SELECT pageno, name FROM dbstat").unwrap();
    let owners = select
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    owners
}

/// Pages per create, the median over [`CREATES`] creates made by `create(i)`
/// after 500 of the same kind (so the b-trees are past their first pages),
/// on a store with `servers` servers (`web-0`, `web-1`, ...). The median,
/// because a create that splits a b-tree page writes a page or more beyond
/// the rest, once per page's worth of rows. Prints each create's pages by
/// owner (table or index).
fn pages_per_create(servers: usize, create: impl Fn(&ActionQueue, usize)) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.sqlite3");
    let queue = ActionQueue::new(SqliteStore::open(&db, &SqliteOptions::default()).unwrap());
    for s in 0..servers {
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
    let commits = pages_per_commit(&db);
    assert_eq!(commits.len(), CREATES, "one commit per create: {commits:?}");
    let owners = page_owners(&db);
    let mut written: BTreeMap<&str, usize> = BTreeMap::new();
    for page in commits.iter().flatten() {
        *written
            .entry(owners.get(page).map_or("?", String::as_str))
            .or_default() += 1;
    }
    let mut sizes: Vec<usize> = commits.iter().map(Vec::len).collect();
    eprintln!("{servers} servers: pages per create {sizes:?}");
    eprintln!("{servers} servers: pages written in {CREATES} creates, by owner: {written:?}");
    sizes.sort_unstable();
    sizes[CREATES / 2]
}

/// The common create on a store with `servers` servers: a normal server,
/// auto-approved.
fn auto_approved_create(servers: usize) -> impl Fn(&ActionQueue, usize) {
    move |queue, i| {
        let action = queue
            .create_action(
                &NewAction::new(format!("web-{}", i % servers), "restart_service")
                    .service_name(format!("s{i}.service")),
            )
            .unwrap();
        assert_eq!(action.status, ActionStatus::Approved);
    }
}

/// The common create (a normal server, auto-approved) writes the action's
/// row, its entries in `actions_by_status` and `actions_by_server_status`,
/// its event, and its count, whose `action_counts` leaf also holds the ids'
/// high-water marks and the audit head: 5 pages (9 before schema v6, 6
/// before v8, when those lived in `sqlite_sequence`).
#[test]
fn an_auto_approved_create_writes_five_pages() {
    let pages = pages_per_create(10, auto_approved_create(10));
    assert!(pages <= 5, "a create writes {pages} pages");
}

/// With a thousand servers `action_counts` spans several leaves, and most
/// creates count in a leaf other than the first, which holds the ids and
/// the audit head: one page more, as many as before schema v8.
#[test]
fn with_a_thousand_servers_a_create_writes_at_most_six_pages() {
    let pages = pages_per_create(1_000, auto_approved_create(1_000));
    assert!(pages <= 6, "a create writes {pages} pages");
}
