//! Job leases and delivery cursors (`crate::jobs`): statements of the
//! `job_leases` and `deliveries` tables.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::rows::{from_micros, required_micros, ts};
use super::Context;
use crate::error::Result;
use crate::jobs::{already_past, delivery_lease_name, lease_not_held, no_delivery};
use crate::model::Timestamp;
use crate::store::{Delivery, DeliveryUpdate, JobLease};

/// A cursor with its lag: the events after it, counted on the event ids'
/// primary key, and the oldest one's time.
const DELIVERY_SQL: &str = "SELECT d.name, d.kind, d.cursor, \
     (SELECT count(*) FROM action_events e WHERE e.id > d.cursor), \
     (SELECT e.at FROM action_events e WHERE e.id > d.cursor ORDER BY e.id LIMIT 1), \
     d.sent, d.failed, d.dead, d.last_error, d.last_success_at FROM deliveries d";

fn delivery_from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        name: r.get(0)?,
        kind: r.get(1)?,
        cursor: r.get(2)?,
        lag_events: r.get::<_, i64>(3)? as u64,
        oldest_pending_at: from_micros(r.get(4)?)?,
        sent: r.get::<_, i64>(5)? as u64,
        failed: r.get::<_, i64>(6)? as u64,
        dead: r.get::<_, i64>(7)? as u64,
        last_error: r.get(8)?,
        last_success_at: from_micros(r.get(9)?)?,
    })
}

fn lease_from_row(r: &Row<'_>) -> rusqlite::Result<JobLease> {
    Ok(JobLease {
        name: r.get(0)?,
        holder: r.get(1)?,
        expires_at: required_micros(r.get(2)?)?,
    })
}

/// Takes the lease when free, lapsed or `holder`'s; else the holder's lease.
pub(super) fn take_lease(
    tx: &Transaction<'_>,
    name: &str,
    holder: &str,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<Result<JobLease, JobLease>> {
    let taken = tx
        .prepare_cached(
            "INSERT INTO job_leases (name, holder, expires_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= ?4",
        )
        .and_then(|mut take| take.execute(params![name, holder, ts(expires_at), ts(now)]))
        .context("take lease")?;
    let lease = tx
        .prepare_cached("SELECT name, holder, expires_at FROM job_leases WHERE name = ?1")
        .and_then(|mut select| select.query_row([name], lease_from_row))
        .context("take lease")?;
    Ok(if taken == 1 { Ok(lease) } else { Err(lease) })
}

pub(super) fn release_lease(tx: &Transaction<'_>, name: &str, holder: &str) -> Result<bool> {
    let dropped = tx
        .prepare_cached("DELETE FROM job_leases WHERE name = ?1 AND holder = ?2")
        .and_then(|mut delete| delete.execute(params![name, holder]))
        .context("release lease")?;
    Ok(dropped == 1)
}

fn get(conn: &Connection, name: &str, what: &str) -> Result<Option<Delivery>> {
    conn.prepare_cached(&format!("{DELIVERY_SQL} WHERE d.name = ?1"))
        .and_then(|mut select| select.query_row([name], delivery_from_row).optional())
        .context(what)
}

/// Creates the cursor at the last event's id when missing; sets its kind.
pub(super) fn register(tx: &Transaction<'_>, name: &str, kind: &str) -> Result<Delivery> {
    tx.prepare_cached(
        "INSERT INTO deliveries (name, kind, cursor) \
         VALUES (?1, ?2, (SELECT COALESCE(MAX(id), 0) FROM action_events)) \
         ON CONFLICT (name) DO UPDATE SET kind = excluded.kind",
    )
    .and_then(|mut insert| insert.execute(params![name, kind]))
    .context("register delivery")?;
    Ok(get(tx, name, "register delivery")?.expect("just written"))
}

/// The checks and the update of `Store::record_delivery`, in the caller's transaction.
pub(super) fn record(
    tx: &Transaction<'_>,
    name: &str,
    holder: &str,
    now: Timestamp,
    update: &DeliveryUpdate,
) -> Result<Delivery> {
    const WHAT: &str = "record delivery";
    let before = get(tx, name, WHAT)?.ok_or_else(|| no_delivery(name))?;
    let lease = delivery_lease_name(name);
    let held: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM job_leases WHERE name = ?1 AND holder = ?2 AND expires_at > ?3)",
        )
        .and_then(|mut select| select.query_row(params![lease, holder, ts(now)], |r| r.get(0)))
        .context(WHAT)?;
    if !held {
        return Err(lease_not_held(&lease, holder));
    }
    if update.event_id <= before.cursor {
        return Err(already_past(name, before.cursor, update.event_id));
    }
    let (sent, failed, dead) = update.counts();
    tx.prepare_cached(
        "UPDATE deliveries SET cursor = ?2, sent = sent + ?3, failed = failed + ?4, \
         dead = dead + ?5, last_error = ?6, last_success_at = ?7 WHERE name = ?1",
    )
    .and_then(|mut set| {
        set.execute(params![
            name,
            update.cursor(before.cursor),
            sent as i64,
            failed as i64,
            dead as i64,
            update.last_error(before.last_error.as_deref()),
            update.last_success_at(before.last_success_at).map(ts),
        ])
    })
    .context(WHAT)?;
    Ok(get(tx, name, WHAT)?.expect("checked above"))
}

pub(super) fn list(conn: &Connection) -> Result<Vec<Delivery>> {
    conn.prepare_cached(&format!("{DELIVERY_SQL} ORDER BY d.name"))
        .and_then(|mut select| select.query_map([], delivery_from_row)?.collect())
        .context("list deliveries")
}
