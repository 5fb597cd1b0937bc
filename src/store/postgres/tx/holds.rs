//! Holds in PostgreSQL: `holds` (one row a hold) and `hold_stamps` (each stamp's last hold).
//! Read through the batch's cache like everything else (prefetched by the `ReadSet`: holds by
//! id, and the last hold of each stamp named); written at once, inside the batch's
//! transaction, since a hold changes rarely next to the spends around it.

use uuid::Uuid;

use super::super::{corrupt, to_i64, to_u64};
use super::PgTx;
use crate::domain::{Hold, HoldState, StampRef};
use crate::store::StoreError;
use crate::time::Timestamp;

/// Columns of `holds`, in the order [`hold_from_row`] reads them (from `at`).
pub(in crate::store::postgres) const HOLD_COLUMNS: &str =
    "h.hold_id, h.stamp_ids, h.issued_ats, h.context, \
     h.created_at, h.expires_at, h.state, h.ledger_index, h.spent_at";

pub(in crate::store::postgres) fn hold_from_row(
    row: &tokio_postgres::Row,
    at: usize,
) -> Result<Hold, StoreError> {
    let stamp_ids: Vec<Uuid> = row.get(at + 1);
    let issued_ats: Vec<i64> = row.get(at + 2);
    if stamp_ids.len() != issued_ats.len() {
        return Err(corrupt(
            "holds",
            "stamp ids and issue times differ in number",
        ));
    }
    let state = match (
        row.get::<_, &str>(at + 6),
        row.get::<_, Option<i64>>(at + 7),
        row.get::<_, Option<i64>>(at + 8),
    ) {
        ("held", _, _) => HoldState::Held,
        ("released", _, _) => HoldState::Released,
        ("captured", Some(index), Some(spent_at)) => HoldState::Captured {
            ledger_index: to_u64(index, "holds")?,
            spent_at: Timestamp::from_unix(spent_at),
        },
        (other, _, _) => return Err(corrupt("holds", format!("hold state {other:?}"))),
    };
    Ok(Hold {
        hold_id: row.get(at),
        stamps: stamp_ids
            .into_iter()
            .zip(issued_ats)
            .map(|(stamp_id, issued_at)| StampRef {
                stamp_id,
                issued_at: Timestamp::from_unix(issued_at),
            })
            .collect(),
        context: row.get(at + 3),
        created_at: Timestamp::from_unix(row.get(at + 4)),
        expires_at: Timestamp::from_unix(row.get(at + 5)),
        state,
    })
}

/// A hold's state as stored: (state, ledger index, spent at).
pub(super) fn state_columns(state: HoldState) -> (&'static str, Option<i64>, Option<i64>) {
    match state {
        HoldState::Held => ("held", None, None),
        HoldState::Captured {
            ledger_index,
            spent_at,
        } => (
            "captured",
            Some(to_i64(ledger_index)),
            Some(spent_at.unix()),
        ),
        HoldState::Released => ("released", None, None),
    }
}

impl PgTx<'_> {
    pub(super) fn hold_by_id(&self, hold_id: Uuid) -> Result<Option<Hold>, StoreError> {
        if let Some(hold) = self.overlay.borrow().holds.get(&hold_id) {
            return Ok(hold.clone());
        }
        let hold = self
            .query(
                &format!("SELECT {HOLD_COLUMNS} FROM holds h WHERE h.hold_id = $1"),
                &[&hold_id],
            )?
            .first()
            .map(|row| hold_from_row(row, 0))
            .transpose()?;
        self.overlay
            .borrow_mut()
            .holds
            .insert(hold_id, hold.clone());
        Ok(hold)
    }

    pub(super) fn last_hold_of(&self, stamp_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        if let Some(hold_id) = self.overlay.borrow().stamp_holds.get(&stamp_id) {
            return Ok(*hold_id);
        }
        let hold_id = self
            .query(
                "SELECT hold_id FROM hold_stamps WHERE stamp_id = $1",
                &[&stamp_id],
            )?
            .first()
            .map(|row| row.get::<_, Uuid>(0));
        self.overlay
            .borrow_mut()
            .stamp_holds
            .insert(stamp_id, hold_id);
        Ok(hold_id)
    }

    pub(super) fn write_new_hold(&self, hold: &Hold) -> Result<(), StoreError> {
        let stamp_ids: Vec<Uuid> = hold.stamps.iter().map(|s| s.stamp_id).collect();
        let issued_ats: Vec<i64> = hold.stamps.iter().map(|s| s.issued_at.unix()).collect();
        let (state, ledger_index, spent_at) = state_columns(hold.state);
        self.query(
            "INSERT INTO holds (hold_id, stamp_ids, issued_ats, context, created_at, expires_at, \
             state, ledger_index, spent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &hold.hold_id,
                &stamp_ids,
                &issued_ats,
                &hold.context,
                &hold.created_at.unix(),
                &hold.expires_at.unix(),
                &state,
                &ledger_index,
                &spent_at,
            ],
        )?;
        self.query(
            "INSERT INTO hold_stamps (stamp_id, hold_id) SELECT s, $2 FROM UNNEST($1::uuid[]) s \
             ON CONFLICT (stamp_id) DO UPDATE SET hold_id = EXCLUDED.hold_id",
            &[&stamp_ids, &hold.hold_id],
        )?;
        let mut overlay = self.overlay.borrow_mut();
        for id in stamp_ids {
            overlay.stamp_holds.insert(id, Some(hold.hold_id));
        }
        overlay.holds.insert(hold.hold_id, Some(hold.clone()));
        Ok(())
    }

    pub(super) fn write_hold_state(&self, hold: &Hold) -> Result<(), StoreError> {
        let (state, ledger_index, spent_at) = state_columns(hold.state);
        self.query(
            "UPDATE holds SET state = $2, ledger_index = $3, spent_at = $4 WHERE hold_id = $1",
            &[&hold.hold_id, &state, &ledger_index, &spent_at],
        )?;
        self.overlay
            .borrow_mut()
            .holds
            .insert(hold.hold_id, Some(hold.clone()));
        Ok(())
    }
}
