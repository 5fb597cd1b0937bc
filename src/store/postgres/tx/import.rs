//! A whole store taken in as it is (`pennypost migrate`): no rule runs.

use super::{Overlay, PgTx};
use crate::store::{Exported, StoreError};

impl PgTx<'_> {
    /// Takes one record of another store (`pennypost migrate`) into the batch's writes as it
    /// is: no rule runs, the source store already kept them. [`PgTx::flush_and_clear`] sends
    /// what was gathered.
    pub(in crate::store::postgres) fn absorb(&self, record: Exported) -> Result<(), StoreError> {
        let mut overlay = self.overlay.borrow_mut();
        let o = &mut *overlay;
        match record {
            Exported::Head {
                ledger_size,
                last_time,
                post_seq,
                policy,
            } => {
                let mut head = self.head.borrow_mut();
                head.ledger_size = ledger_size;
                head.last_time = last_time.unix();
                head.post_seq = post_seq;
                head.policy = policy;
                head.changed = true;
            }
            Exported::Key(key) => {
                o.dirty_keys.push(key.kid);
                o.keys.insert(key.kid, Some(key));
            }
            Exported::Account(account) => {
                o.dirty_accounts.push(account.account_id);
                o.accounts.insert(account.account_id, Some(account));
            }
            Exported::ApiKey(hash, account) => o.new_api_keys.push((hash, account)),
            Exported::Name(name, account) => o.new_names.push((name, account)),
            Exported::Credit(hash, record) => o.new_credits.push((hash, record)),
            Exported::Purchase(hash, record) => o.new_purchases.push((hash, record)),
            Exported::AccountPurchase(record) => o
                .new_account_purchases
                .push(super::tables::IndexedPurchase(record)),
            Exported::Stamp(id, sold) => {
                o.new_stamps.push((id, sold.sale));
                if let Some(spent) = sold.spent {
                    o.new_spends.push((id, spent));
                }
            }
            Exported::Post(post) => {
                o.dirty_posts.push(post.post_id);
                o.posts.insert(post.post_id, Some(post));
            }
            Exported::PayerPost { payer, time } => {
                o.new_payer_posts.push((payer, time.unix(), None))
            }
            Exported::Voter {
                post_id,
                payer,
                voter,
            } => {
                o.dirty_voters.push((post_id, payer));
                o.voters.insert((post_id, payer), voter);
            }
            Exported::Entry(index, bytes) => o.new_entries.push((index, bytes)),
            Exported::Hash(index, hash) => o.new_hashes.push((index, hash)),
            Exported::Checkpoint(size, note) => o.checkpoint = Some((size, note)),
            Exported::Hold(hold) => o.imported_holds.push(hold),
            Exported::StampHold(stamp_id, hold_id) => o
                .imported_stamp_holds
                .push(super::tables::StampHold { stamp_id, hold_id }),
            Exported::Payment(payment) => o.imported_payments.push(payment),
        }
        Ok(())
    }

    /// Sends the writes gathered so far and starts gathering anew (the transaction stays
    /// open).
    pub(in crate::store::postgres) fn flush_and_clear(&self) -> Result<(), StoreError> {
        self.send_writes(false)?;
        *self.overlay.borrow_mut() = Overlay::default();
        Ok(())
    }
}
