//! `aq_options`: the whitelist, leases and output cap apply to the queue
//! opened with them, and durability and busy timeout reach SQLite.

mod support;

use std::ffi::c_char;
use std::ptr::{null, null_mut};

use actionq_c::*;
use support::*;

#[test]
fn options_apply_and_are_validated() {
    let mut options = null_mut();
    assert_eq!(unsafe { aq_options_new(&mut options) }, aq_status::Ok);
    assert_eq!(
        unsafe { aq_options_set_whitelist(options, c("{\"actions\":{}}").as_ptr()) },
        aq_status::InvalidInput
    );
    let config = r#"{"actions":{"install_package":{
        "command":"apt-get install -y {package}",
        "params":{"package":{"kind":"debian_package"}}}}}"#;
    assert_eq!(
        unsafe { aq_options_set_whitelist(options, c(config).as_ptr()) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { aq_options_set_durability(options, 2) },
        aq_status::InvalidInput
    );
    assert_eq!(
        unsafe { aq_options_set_durability(options, aq_durability::Full as u32) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { aq_options_set_output_cap(options, 3) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { aq_options_set_leases(options, 30.0, 60.0) },
        aq_status::Ok
    );
    assert_eq!(
        unsafe { aq_options_set_busy_timeout_seconds(options, 2.0) },
        aq_status::Ok
    );

    let dir = tempfile::tempdir().unwrap();
    let path = c(dir.path().join("q.sqlite3").to_str().unwrap());
    let mut handle = null_mut();
    assert_eq!(
        unsafe { aq_queue_open(path.as_ptr(), options, &mut handle) },
        aq_status::Ok
    );
    unsafe { aq_options_free(options) };
    let q = Queue(handle);
    create_server(&q, "db-1");
    assert_eq!(
        create_action(
            &q,
            r#"{"server_id":"db-1","action_type":"restart_service","service_name":"x"}"#
        )
        .unwrap_err(),
        aq_status::NotWhitelisted
    );
    let action = create_action(
        &q,
        r#"{"server_id":"db-1","action_type":"install_package","params":{"package":"htop"}}"#,
    )
    .unwrap();
    assert_eq!(
        action["argv"],
        serde_json::json!(["apt-get", "install", "-y", "htop"])
    );
    let mut out = null_mut();
    assert_eq!(
        unsafe { aq_queue_whitelist_json(q.0, &mut out) },
        aq_status::Ok
    );
    assert!(take_json(out)["actions"]["install_package"].is_object());

    // Lease bounds and output cap from the options.
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, host(), c("db-1").as_ptr(), &61.0, &mut out) },
        aq_status::InvalidInput
    );
    assert_eq!(
        unsafe { aq_action_claim_next(q.0, host(), c("db-1").as_ptr(), null(), &mut out) },
        aq_status::Ok
    );
    let claim = take_json(out);
    // The default lease (30 s, not the built-in 300 s) sets the deadline.
    let at = |field: &str| -> actionq::Timestamp {
        serde_json::from_value(claim[field].clone()).unwrap()
    };
    assert_eq!(
        (at("lease_expires_at") - at("executed_at")).num_milliseconds(),
        30_000,
        "{claim}"
    );
    let token = c(claim["lease_token"].as_str().unwrap());
    let id = claim["id"].as_i64().unwrap();
    assert_eq!(
        unsafe { aq_action_heartbeat(q.0, host(), id, c("wrong").as_ptr(), null(), &mut out) },
        aq_status::Conflict
    );
    let status = unsafe {
        aq_action_report_result(
            q.0,
            host(),
            id,
            token.as_ptr(),
            2,
            c("abcdef").as_ptr(),
            c("e").as_ptr(),
            &mut out,
        )
    };
    assert_eq!(status, aq_status::Ok);
    let failed = take_json(out);
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["stdout"], "abc");
    assert_eq!(failed["exit_code"], 2);

    assert_eq!(
        unsafe { aq_whitelist_default_json(&mut out) },
        aq_status::Ok
    );
    assert!(take_json(out)["actions"]["apt_upgrade_all"].is_object());
}

const DURABILITY_CHILD_ENV: &str = "ACTIONQ_C_DURABILITY_CHILD";
const DURABILITY_WRITES: usize = 40;

/// The child of `durability_set_through_the_c_api_reaches_sqlite`: opens the
/// file with the given durability and commits `DURABILITY_WRITES` actions.
#[test]
#[ignore = "child process entry: started by its parent test, checks nothing alone"]
fn durability_child_entry() {
    let Ok(spec) = std::env::var(DURABILITY_CHILD_ENV) else {
        return;
    };
    let (mode, path) = spec.split_once(':').unwrap();
    let durability = match mode {
        "full" => aq_durability::Full,
        _ => aq_durability::Normal,
    };
    let q = open_file_queue(std::path::Path::new(path), durability, 10.0);
    for i in 0..DURABILITY_WRITES {
        create_action(
            &q,
            &format!(
                r#"{{"server_id":"web-1","action_type":"restart_service","service_name":"s{i}"}}"#
            ),
        )
        .unwrap();
    }
}

/// fsync + fdatasync calls of a child (this test binary) committing
/// `DURABILITY_WRITES` writes with `mode`, counted by strace.
fn syncs_during_writes(mode: &str, dir: &std::path::Path) -> usize {
    let db = dir.join(format!("{mode}.sqlite3"));
    create_server(&open_file_queue(&db, aq_durability::Normal, 10.0), "web-1");
    let trace = dir.join(format!("{mode}.strace"));
    let run = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "--ignored",
            "durability_child_entry",
            "--test-threads=1",
        ])
        .env(DURABILITY_CHILD_ENV, format!("{mode}:{}", db.display()))
        .output()
        .expect("strace runs (make test-rust installs it)");
    assert!(
        run.status.success(),
        "strace run failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let q = open_file_queue(&db, aq_durability::Normal, 10.0);
    let mut out = null_mut();
    assert_eq!(
        unsafe {
            aq_action_list(
                q.0,
                host(),
                null(),
                null(),
                null(),
                1,
                0,
                std::ptr::null(),
                &mut out,
            )
        },
        aq_status::Ok
    );
    assert_eq!(
        take_json(out)["total"],
        DURABILITY_WRITES,
        "the child committed its writes"
    );
    std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .count()
}

/// `aq_options_set_durability(AQ_DURABILITY_FULL)` reaches SQLite: each
/// commit is synced to disk, which the default does not do. Observed from
/// outside the process (PRAGMA synchronous is per connection), as in
/// core/tests/durability.rs.
#[test]
fn durability_set_through_the_c_api_reaches_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let normal = syncs_during_writes("normal", dir.path());
    let full = syncs_during_writes("full", dir.path());
    eprintln!("syncs for {DURABILITY_WRITES} commits: normal {normal}, full {full}");
    assert!(
        full >= normal + DURABILITY_WRITES,
        "durability=full syncs each commit: normal {normal}, full {full}"
    );
    assert!(
        normal < DURABILITY_WRITES,
        "the default does not sync per commit: normal {normal}"
    );
}

/// A connection of the SQLite library linked into this test binary (the one
/// the queue uses), independent of any queue.
#[allow(non_camel_case_types)]
enum sqlite3 {}

extern "C" {
    fn sqlite3_open(filename: *const c_char, db: *mut *mut sqlite3) -> std::ffi::c_int;
    fn sqlite3_exec(
        db: *mut sqlite3,
        sql: *const c_char,
        callback: *const std::ffi::c_void,
        arg: *mut std::ffi::c_void,
        errmsg: *mut *mut c_char,
    ) -> std::ffi::c_int;
    fn sqlite3_close(db: *mut sqlite3) -> std::ffi::c_int;
}

struct RawConnection(*mut sqlite3);

impl RawConnection {
    fn open(path: &std::path::Path) -> RawConnection {
        let mut db = null_mut();
        assert_eq!(
            unsafe { sqlite3_open(c(path.to_str().unwrap()).as_ptr(), &mut db) },
            0
        );
        RawConnection(db)
    }

    fn exec(&self, sql: &str) {
        let rc = unsafe { sqlite3_exec(self.0, c(sql).as_ptr(), null(), null_mut(), null_mut()) };
        assert_eq!(rc, 0, "{sql}");
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        unsafe { sqlite3_close(self.0) };
    }
}

/// Syscalls the store's busy handler waits in: `sched_yield` for its first
/// polls, then `nanosleep`/`clock_nanosleep` (as core/tests/sqlite_locking.rs).
#[cfg(target_arch = "x86_64")]
const WAITING_SYSCALLS: &[i64] = &[24, 35, 230];
#[cfg(target_arch = "aarch64")]
const WAITING_SYSCALLS: &[i64] = &[124, 101, 115];

/// The calling thread's kernel id, so another thread can watch what it does.
fn current_tid() -> String {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name().unwrap().to_string_lossy().into_owned()
}

/// Whether thread `tid` of this process is in one of the busy handler's
/// syscalls right now.
fn in_busy_wait(tid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok())
        .is_some_and(|nr| WAITING_SYSCALLS.contains(&nr))
}

/// `aq_options_set_busy_timeout_seconds` bounds how long a write waits for another
/// connection's write lock: a short timeout gives up (STORAGE) while the lock
/// is still held, a long one waits and succeeds once the lock is released.
#[test]
fn busy_timeout_set_through_the_c_api_bounds_the_wait() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("busy.sqlite3");
    let fast = open_file_queue(&db, aq_durability::Normal, 0.05);
    let patient = open_file_queue(&db, aq_durability::Normal, 600.0);
    create_server(&fast, "web-1");
    let request = r#"{"server_id":"web-1","action_type":"clear_logs"}"#;
    let holder = RawConnection::open(&db);

    // 50 ms: the write fails although the lock is held for at most 5 s (the
    // default timeout, 10 s, would outlast the hold and succeed).
    holder.exec("BEGIN IMMEDIATE");
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let result = create_action(&fast, request).map(|_| ());
            let message = last_message();
            done_tx.send((result, message)).unwrap();
        });
        let outcome = done_rx.recv_timeout(Duration::from_secs(5));
        holder.exec("COMMIT");
        let (result, message) = outcome.expect("the 50 ms write gave up while the lock was held");
        assert_eq!(result, Err(aq_status::Storage));
        assert!(message.contains("database is busy"), "{message}");
    });

    // 600 s: the write waits for the lock and succeeds after its release. The
    // writer is seen in the busy handler, then the lock stays held 2 s more
    // while the writer must keep waiting: a setter that took the value as
    // milliseconds (0.6 s) gives up within the hold.
    holder.exec("BEGIN IMMEDIATE");
    let released = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let (tid_tx, tid_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            tid_tx.send(current_tid()).unwrap();
            let result = create_action(&patient, request).map(|a| a["id"].clone());
            done.store(true, Ordering::SeqCst);
            (result, released.load(Ordering::SeqCst), last_message())
        });
        let tid = tid_rx.recv().unwrap();
        let mut seen_waiting = false;
        while !seen_waiting && !done.load(Ordering::SeqCst) {
            seen_waiting = in_busy_wait(&tid);
        }
        assert!(
            seen_waiting,
            "the write returned without waiting for the lock"
        );
        let hold_until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < hold_until && !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            !done.load(Ordering::SeqCst),
            "the 600 s write gave up while the lock was held 2 s"
        );
        released.store(true, Ordering::SeqCst);
        holder.exec("COMMIT");
        let (result, released_first, message) = writer.join().unwrap();
        assert_eq!(result, Ok(serde_json::json!(1)), "{message}");
        assert!(
            released_first,
            "the write returned only after the lock was released"
        );
    });
    assert_eq!(
        create_action(&fast, request).map(|a| a["id"].clone()),
        Ok(serde_json::json!(2)),
        "the fast queue writes once the lock is free"
    );
}
