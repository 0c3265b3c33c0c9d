//! Resource bounds: huge outputs are capped, and a page of 100 over a million
//! rows costs a bounded amount of memory whatever the filter or offset.
//!
//! Memory is measured two ways: a counting global allocator (every Rust
//! allocation: peak bytes live above the level before the call) and the process
//! RSS high-water mark (`VmHWM`, reset through `/proc/self/clear_refs`), which also
//! sees SQLite's own C allocations and page cache.
//!
//! Rows: `ACTIONQ_BOUNDS_ROWS` (default 1,000,000).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use actionq::store::{ActionDraft, Change, ChangeKind, ConflictGuard, Store};
use actionq::{ActionQuery, ActionQueue, ActionStatus, MemoryStore, NewAction, QueueOptions};
#[cfg(feature = "sqlite")]
use actionq::{SqliteOptions, SqliteStore};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Tests here measure process-wide figures: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy)]
struct Cost {
    /// Peak Rust heap bytes above the level at the start.
    heap_peak: usize,
    /// Rust allocations made.
    allocations: usize,
    /// RSS high-water growth in KiB (includes SQLite's C heap and page cache).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // only the SQLite bound reads it
    rss_kib: i64,
}

/// A `kB` field of `/proc/self/status`. Unreadable or missing fails the test:
/// a 0 would make the RSS bound pass without measuring anything.
fn proc_status_kib(field: &str) -> i64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status: the RSS bound needs it");
    let kib = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    assert!(kib > 0, "{field} {kib} kB");
    kib
}

fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    // Reset the RSS high-water mark to the current RSS (Linux >= 4.0); without
    // it the mark would be the seeding's and the bound would measure nothing.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM via /proc/self/clear_refs");
    let rss_before = proc_status_kib("VmRSS:");
    let live = LIVE.load(Ordering::SeqCst);
    PEAK.store(live, Ordering::SeqCst);
    let count = COUNT.load(Ordering::SeqCst);
    let out = f();
    let cost = Cost {
        heap_peak: PEAK.load(Ordering::SeqCst).saturating_sub(live),
        allocations: COUNT.load(Ordering::SeqCst) - count,
        rss_kib: proc_status_kib("VmHWM:") - rss_before,
    };
    (out, cost)
}

fn rows() -> i64 {
    std::env::var("ACTIONQ_BOUNDS_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[test]
fn ten_megabyte_output_is_capped() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ten_mb = "x".repeat(10 * 1024 * 1024);
    let wide = "é".repeat(5 * 1024 * 1024); // 10 MB of 2-byte characters
    #[cfg(feature = "sqlite")]
    let dir = tempfile::tempdir().unwrap();
    for (name, cap) in [("default", 10_000usize), ("custom", 1_234)] {
        #[allow(unused_mut)] // without the sqlite feature there is one store
        let mut stores: Vec<(&str, ActionQueue)> =
            vec![("memory", ActionQueue::new(MemoryStore::new()))];
        #[cfg(feature = "sqlite")]
        stores.push((
            "sqlite",
            ActionQueue::new(
                SqliteStore::open(
                    dir.path().join(format!("{name}.sqlite3")),
                    &SqliteOptions::default(),
                )
                .unwrap(),
            ),
        ));
        for (store, queue) in stores {
            let queue = queue.with_options(QueueOptions {
                output_cap_chars: cap,
                ..QueueOptions::default()
            });
            queue.create_server("web-1", None).unwrap();
            for _ in 0..2 {
                queue
                    .create_action(&NewAction::new("web-1", "clear_logs"))
                    .unwrap();
            }
            for (out, err) in [(&ten_mb, &wide), (&wide, &ten_mb)] {
                let claim = queue.claim_next("web-1", None, None).unwrap().unwrap();
                let (done, cost) = measure(|| {
                    queue
                        .report_result(claim.action.id, &claim.lease_token, 1, Some(out), Some(err))
                        .unwrap()
                });
                let stdout = done.stdout.unwrap();
                let stderr = done.stderr.unwrap();
                assert_eq!(stdout.chars().count(), cap, "{store}/{name}");
                assert_eq!(stderr.chars().count(), cap, "{store}/{name}");
                assert!(out.starts_with(&stdout) && err.starts_with(&stderr));
                let stored = queue.get_action(claim.action.id).unwrap();
                assert_eq!(stored.stdout.unwrap().chars().count(), cap);
                // Capping must not copy the 10 MB input.
                assert!(cost.heap_peak < 1024 * 1024, "{store}/{name}: {cost:?}");
                eprintln!(
                    "resource_bounds: 10 MB output capped to {cap} chars on {store}: {cost:?}"
                );
            }
        }
        #[cfg(feature = "sqlite")]
        let file = std::fs::metadata(dir.path().join(format!("{name}.sqlite3")))
            .unwrap()
            .len();
        #[cfg(feature = "sqlite")]
        let wal = std::fs::metadata(dir.path().join(format!("{name}.sqlite3-wal")))
            .map(|m| m.len())
            .unwrap_or(0);
        #[cfg(feature = "sqlite")]
        assert!(
            file + wal < 2 * 1024 * 1024,
            "{name}: {file} + {wal} bytes on disk after capped 10 MB outputs"
        );
    }
}

/// Fills a fresh SQLite store with `n` actions in one transaction of three
/// INSERT ... SELECT statements (rows, creation events, totals), so the
/// `action_counts` and audit invariants hold exactly as if created one by one.
#[cfg(feature = "sqlite")]
fn seed_sqlite(path: &std::path::Path, n: i64) {
    drop(SqliteStore::open(path, &SqliteOptions::default()).unwrap());
    let conn = rusqlite::Connection::open(path).unwrap();
    // Building the library's indexes once after the bulk insert is several times
    // faster than maintaining them row by row; they are recreated from their own
    // stored definitions, so the schema ends up exactly as the library made it.
    let indexes: Vec<(String, String)> = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'actions' AND sql IS NOT NULL")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let drop_indexes: String = indexes
        .iter()
        .map(|(name, _)| format!("DROP INDEX {name};\n"))
        .collect();
    let create_indexes: String = indexes.iter().map(|(_, sql)| format!("{sql};\n")).collect();
    conn.execute_batch("PRAGMA cache_size = -262144;").unwrap();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         {drop_indexes}
         INSERT INTO servers (id, hostname, is_paused, paused_at, created_at)
           WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 99)
           SELECT 'srv-' || i, NULL, 0, NULL, 1767225600000000 FROM s;
         INSERT INTO actions (id, server_id, action_type, status, service_name, command, argv,
             env, alert_id, created_at, created_by, approved_at, approved_by, rejected_at,
             rejected_by, rejection_reason, cancelled_at, cancelled_by, executed_at,
             lease_expires_at, lease_token, completed_at, exit_code, stdout, stderr)
           WITH RECURSIVE a(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM a WHERE i < {n})
           SELECT i, 'srv-' || (i % 100),
             CASE WHEN i % 10 = 0 THEN 'restart_service' ELSE 'clear_logs' END,
             CASE WHEN i % 7 = 0 THEN 'failed' ELSE 'completed' END,
             CASE WHEN i % 10 = 0 THEN 'nginx' END,
             CASE WHEN i % 10 = 0 THEN 'systemctl restart nginx' ELSE 'journalctl --vacuum-time=7d' END,
             CASE WHEN i % 10 = 0 THEN '[\"systemctl\",\"restart\",\"nginx\"]'
                  ELSE '[\"journalctl\",\"--vacuum-time=7d\"]' END,
             '{{}}', NULL, 1767225600000000 + i * 1000, 'seed',
             1767225600000000 + i * 1000, 'auto', NULL, NULL, NULL, NULL, NULL,
             1767225600000000 + i * 1000 + 1, 1767225600000000 + i * 1000 + 300000000, NULL,
             1767225600000000 + i * 1000 + 2,
             CASE WHEN i % 7 = 0 THEN 1 ELSE 0 END,
             'output of action ' || i, ''
           FROM a;
         INSERT INTO action_events (action_id, from_status, to_status, actor, at, detail,
                                    kind, subject, hash_version)
           SELECT id, NULL, 'approved', 'seed', created_at, NULL, 'action', server_id, 2
           FROM actions ORDER BY id;
         INSERT INTO action_counts (server_id, action_type, status, n)
           SELECT server_id, action_type, status, COUNT(*) FROM actions
           GROUP BY server_id, action_type, status;
         {create_indexes}
         COMMIT;"
    ))
    .unwrap();
}

/// The page `query` must return over the seeded rows `1..=n`, whose status is
/// `status_of(id)` (server `srv-{id % 100}`, a restart when `id % 10 == 0`):
/// the ids, newest first, and the total. Every query but the one meant to
/// match nothing must have a non-empty page, so an empty page fails.
fn expected_page(
    what: &str,
    query: &ActionQuery,
    n: i64,
    status_of: fn(i64) -> ActionStatus,
) -> (Vec<i64>, u64) {
    let matching: Vec<i64> = (1..=n)
        .rev()
        .filter(|&i| {
            query.status.is_none_or(|s| s == status_of(i))
                && query
                    .server_id
                    .as_ref()
                    .is_none_or(|s| *s == format!("srv-{}", i % 100))
                && query.action_type.as_ref().is_none_or(|t| {
                    t == if i % 10 == 0 {
                        "restart_service"
                    } else {
                        "clear_logs"
                    }
                })
        })
        .collect();
    let page: Vec<i64> = matching
        .iter()
        .skip(query.offset as usize)
        .take(query.limit as usize)
        .copied()
        .collect();
    assert_eq!(
        page.is_empty(),
        what.contains("no match"),
        "{what}: the seeded rows give the query {} matches",
        matching.len()
    );
    (page, matching.len() as u64)
}

fn queries() -> Vec<(&'static str, ActionQuery)> {
    let q = ActionQuery {
        limit: 100,
        ..ActionQuery::default()
    };
    vec![
        ("newest 100", q.clone()),
        (
            "status=failed",
            ActionQuery {
                status: Some(ActionStatus::Failed),
                ..q.clone()
            },
        ),
        (
            "server_id=srv-7",
            ActionQuery {
                server_id: Some("srv-7".into()),
                ..q.clone()
            },
        ),
        (
            "action_type=restart_service",
            ActionQuery {
                action_type: Some("restart_service".into()),
                ..q.clone()
            },
        ),
        (
            "all filters",
            ActionQuery {
                status: Some(ActionStatus::Completed),
                server_id: Some("srv-10".into()),
                action_type: Some("restart_service".into()),
                ..q.clone()
            },
        ),
        (
            "status=pending (no match)",
            ActionQuery {
                status: Some(ActionStatus::Pending),
                ..q.clone()
            },
        ),
        (
            "offset half the rows",
            ActionQuery {
                offset: rows() / 2,
                ..q.clone()
            },
        ),
    ]
}

/// Bound on what one page may cost, far below what materialising the matches
/// would (a million actions are several hundred MB as Rust values).
const HEAP_BOUND: usize = 4 * 1024 * 1024;
#[cfg(feature = "sqlite")]
const RSS_BOUND_KIB: i64 = 64 * 1024;

#[cfg(feature = "sqlite")]
#[test]
fn page_of_100_over_a_million_rows_stays_bounded_sqlite() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = rows();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("million.sqlite3");
    let started = Instant::now();
    seed_sqlite(&path, n);
    eprintln!(
        "resource_bounds: seeded {n} rows into SQLite in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let queue = ActionQueue::new(SqliteStore::open(&path, &SqliteOptions::default()).unwrap());
    // Warm up the connections and statement caches once, outside the measure.
    queue.list_actions(&ActionQuery::default()).unwrap();
    for (what, query) in queries() {
        let (page, cost) = measure(|| queue.list_actions(&query).unwrap());
        eprintln!(
            "resource_bounds: sqlite {n} rows, {what}: {} actions, total {}, {cost:?}",
            page.actions.len(),
            page.total
        );
        let status_of = |i| {
            if i % 7 == 0 {
                ActionStatus::Failed
            } else {
                ActionStatus::Completed
            }
        };
        let ids: Vec<i64> = page.actions.iter().map(|a| a.id).collect();
        assert_eq!(
            (ids, page.total),
            expected_page(what, &query, n, status_of),
            "sqlite {what}"
        );
        assert!(cost.heap_peak < HEAP_BOUND, "sqlite {what}: {cost:?}");
        assert!(cost.rss_kib < RSS_BOUND_KIB, "sqlite {what}: {cost:?}");
    }
    let page = queue.list_actions(&ActionQuery::default()).unwrap();
    assert_eq!(page.total, n as u64);
    assert_eq!(page.actions[0].id, n);
}

#[test]
fn page_of_100_over_a_million_rows_stays_bounded_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = rows();
    let store = MemoryStore::new();
    let started = Instant::now();
    for s in 0..100 {
        store
            .insert_server(&actionq::Server {
                id: format!("srv-{s}"),
                hostname: None,
                is_paused: false,
                paused_at: None,
                created_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            })
            .unwrap();
    }
    let t0: actionq::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for i in 1..=n {
        let restart = i % 10 == 0;
        let at = t0 + chrono::TimeDelta::milliseconds(i);
        let draft = ActionDraft {
            server_id: format!("srv-{}", i % 100),
            action_type: if restart {
                "restart_service"
            } else {
                "clear_logs"
            }
            .into(),
            service_name: restart.then(|| "nginx".into()),
            command: String::new(),
            argv: Vec::new(),
            env: Default::default(),
            params: Default::default(),
            alert_id: None,
            created_at: at,
            created_by: "seed".into(),
            digest: String::new(),
            whitelist_version: String::new(),
            auto_approve_budget: None,
            needs_people: None,
        };
        let id = store.insert_action(draft, &ConflictGuard::None).unwrap().id;
        // Leave the active set at once, as finished actions do (an active action
        // would make every later insert on its server scan it).
        let kind = if i % 7 != 0 {
            ChangeKind::Cancel
        } else {
            ChangeKind::Claim {
                lease_token: String::new(),
                lease_expires_at: at,
                whitelist_version: String::new(),
            }
        };
        store
            .update_action(
                id,
                &Change {
                    kind,
                    by: "seed".into(),
                    at,
                },
            )
            .unwrap();
        if i % 7 == 0 {
            store
                .update_action(
                    id,
                    &Change {
                        kind: ChangeKind::Expire,
                        by: "seed".into(),
                        at,
                    },
                )
                .unwrap();
        }
    }
    eprintln!(
        "resource_bounds: seeded {n} rows into MemoryStore in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let queue = ActionQueue::new(store);
    for (what, mut query) in queries() {
        if query.status == Some(ActionStatus::Completed) {
            query.status = Some(ActionStatus::Cancelled);
        }
        let (page, cost) = measure(|| queue.list_actions(&query).unwrap());
        eprintln!(
            "resource_bounds: memory {n} rows, {what}: {} actions, total {}, {cost:?}",
            page.actions.len(),
            page.total
        );
        let status_of = |i| {
            if i % 7 == 0 {
                ActionStatus::Failed
            } else {
                ActionStatus::Cancelled
            }
        };
        let ids: Vec<i64> = page.actions.iter().map(|a| a.id).collect();
        assert_eq!(
            (ids, page.total),
            expected_page(what, &query, n, status_of),
            "memory {what}"
        );
        assert!(cost.heap_peak < HEAP_BOUND, "memory {what}: {cost:?}");
        assert!(cost.allocations < 100 * 64, "memory {what}: {cost:?}");
    }
}
