//! Job leases and delivery cursors (`crate::jobs`): statements of the
//! `job_leases` and `deliveries` tables. A lease is taken by one
//! `INSERT ... ON CONFLICT DO UPDATE ... WHERE`, atomic against every other
//! process; a cursor moves under its row lock and a share lock on its lease
//! row, so a lease cannot change hands between the check and the move.

use postgres::Row;

use super::rows::{from_micros, required_micros, ts};
use super::{Conn, Db, Out};
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

fn delivery_from_row(r: &Row) -> Result<Delivery> {
    let count = |i: usize| -> Result<u64> {
        let n: i64 = r.get(i);
        Ok(n as u64)
    };
    Ok(Delivery {
        name: r.get(0),
        kind: r.get(1),
        cursor: r.get(2),
        lag_events: count(3)?,
        oldest_pending_at: from_micros(r.get(4))?,
        sent: count(5)?,
        failed: count(6)?,
        dead: count(7)?,
        last_error: r.get(8),
        last_success_at: from_micros(r.get(9))?,
    })
}

fn lease_from_row(r: &Row) -> Result<JobLease> {
    Ok(JobLease {
        name: r.get(0),
        holder: r.get(1),
        expires_at: required_micros(r.get(2))?,
    })
}

/// Takes the lease when free, lapsed or `holder`'s; else the holder's lease.
pub(super) fn take_lease(
    conn: &mut Conn,
    name: &str,
    holder: &str,
    now: Timestamp,
    expires_at: Timestamp,
) -> Out<Result<JobLease, JobLease>> {
    const WHAT: &str = "take lease";
    let taken = conn
        .query(
            "INSERT INTO job_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE job_leases.holder = excluded.holder OR job_leases.expires_at <= $4 \
             RETURNING name, holder, expires_at",
            &[&name, &holder, &ts(expires_at), &ts(now)],
        )
        .db(WHAT)?;
    if let Some(row) = taken.first() {
        return Ok(Ok(lease_from_row(row)?));
    }
    let held = conn
        .query(
            "SELECT name, holder, expires_at FROM job_leases WHERE name = $1",
            &[&name],
        )
        .db(WHAT)?;
    let row = held.first().expect("a lease refused is a lease held");
    Ok(Err(lease_from_row(row)?))
}

pub(super) fn release_lease(conn: &mut Conn, name: &str, holder: &str) -> Out<bool> {
    let dropped = conn
        .execute(
            "DELETE FROM job_leases WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )
        .db("release lease")?;
    Ok(dropped == 1)
}

fn get(conn: &mut Conn, name: &str, what: &str) -> Out<Option<Delivery>> {
    let rows = conn
        .query(&format!("{DELIVERY_SQL} WHERE d.name = $1"), &[&name])
        .db(what)?;
    Ok(rows.first().map(delivery_from_row).transpose()?)
}

/// Creates the cursor at the last event's id when missing; sets its kind.
pub(super) fn register(conn: &mut Conn, name: &str, kind: &str) -> Out<Delivery> {
    conn.execute(
        "INSERT INTO deliveries (name, kind, cursor) \
         VALUES ($1, $2, (SELECT COALESCE(MAX(id), 0) FROM action_events)) \
         ON CONFLICT (name) DO UPDATE SET kind = excluded.kind",
        &[&name, &kind],
    )
    .db("register delivery")?;
    Ok(get(conn, name, "register delivery")?.expect("just written"))
}

/// The checks and the update of `Store::record_delivery`, in a transaction.
pub(super) fn record(
    conn: &mut Conn,
    name: &str,
    holder: &str,
    now: Timestamp,
    update: &DeliveryUpdate,
) -> Out<Delivery> {
    const WHAT: &str = "record delivery";
    let locked = conn
        .query(
            "SELECT 1 FROM deliveries WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .db(WHAT)?;
    if locked.is_empty() {
        return Err(no_delivery(name).into());
    }
    let lease = delivery_lease_name(name);
    let held = conn
        .query(
            "SELECT 1 FROM job_leases WHERE name = $1 AND holder = $2 AND expires_at > $3 FOR SHARE",
            &[&lease, &holder, &ts(now)],
        )
        .db(WHAT)?;
    if held.is_empty() {
        return Err(lease_not_held(&lease, holder).into());
    }
    let before = get(conn, name, WHAT)?.expect("locked above");
    if update.event_id <= before.cursor {
        return Err(already_past(name, before.cursor, update.event_id).into());
    }
    let (sent, failed, dead) = update.counts();
    conn.execute(
        "UPDATE deliveries SET cursor = $2, sent = sent + $3, failed = failed + $4, \
         dead = dead + $5, last_error = $6, last_success_at = $7 WHERE name = $1",
        &[
            &name,
            &update.cursor(before.cursor),
            &(sent as i64),
            &(failed as i64),
            &(dead as i64),
            &update.last_error(before.last_error.as_deref()),
            &update.last_success_at(before.last_success_at).map(ts),
        ],
    )
    .db(WHAT)?;
    Ok(get(conn, name, WHAT)?.expect("locked above"))
}

pub(super) fn list(conn: &mut Conn) -> Out<Vec<Delivery>> {
    let rows = conn
        .query(&format!("{DELIVERY_SQL} ORDER BY d.name"), &[])
        .db("list deliveries")?;
    Ok(rows.iter().map(delivery_from_row).collect::<Result<_>>()?)
}
