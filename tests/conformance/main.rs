//! The conformance suite: what every store backend must do, written once over [`Store`] and
//! run on each backend (one test binary, modules below, so the crate links once).
//!
//! Every case gets a new, empty store of the backend ([`harness::Backend::open`]), applies
//! [`Command`]s with [`rules::apply`] (no HTTP, no service) and asserts exact outcomes and
//! refusals. Around every case the harness checks what no case may break:
//! - a refused command writes nothing: [`harness::Ctx::refused`] compares a snapshot of
//!   everything observable (ledger entries and hashes, the accounts, stamps and posts the case
//!   named, the board, the published keys) before and after;
//! - the ledger is gapless and its hashes right: after the case, entries `0..size` parse with
//!   consecutive indexes and times that never go back, the ledger checker reports no violation,
//!   and the Merkle root of the store's hashes is the checker's root ([`observe::audit`]).
//!
//! Cases: [`keys`] (key events, accounts), [`credit`], [`debit`] (debits, debts, revokes),
//! [`purchase`], [`spend`] (redeem, post,
//! vote), [`economy`] (policy, prices, refunds, payers, names), [`batches`] (refusals and replays inside a batch, time), [`concurrency`] (threads and
//! the group committer racing for the same stamps), [`durability`] (reopen after a crash), [`holds`] (hold, capture, release), [`payments`] (payment records: insert once, compare-and-set, listings).
//!
//! A backend joins with an implementation of [`harness::Backend`] and one line at the end of
//! this file; [`conformance!`] makes every case a `#[test]` named `<backend>::<case>`.
//!
//! [`Store`]: pennypost::store::Store
//! [`rules::apply`]: pennypost::rules::apply
//! [`Command`]: pennypost::rules::Command

mod batches;
mod concurrency;
mod credit;
mod debit;
mod durability;
mod economy;
mod harness;
mod holds;
mod keys;
mod observe;
mod payments;
#[path = "../support/pg.rs"]
mod pg;
mod purchase;
mod spend;

/// Makes every case of the suite a `#[test]` in module `$name`, run on `$backend` (an
/// expression whose type implements [`harness::Backend`]). A new case is added to the list
/// here once and runs on every backend.
macro_rules! conformance {
    ($name:ident, $backend:expr) => {
        conformance!(@cases $name, $backend,
            keys::key_events_publish_and_keep_the_first_time,
            keys::a_key_event_must_name_its_own_key,
            keys::only_one_key_is_active_at_a_time,
            keys::an_account_starts_empty_and_writes_no_entry,
            keys::an_account_id_or_api_key_that_exists_is_refused,
            credit::a_credit_adds_to_the_balance_with_one_entry,
            credit::a_credit_of_zero_is_invalid,
            credit::a_credit_to_an_unknown_account_is_not_found,
            credit::a_credit_replayed_answers_the_first_and_appends_nothing,
            credit::a_credit_reference_reused_otherwise_conflicts,
            credit::a_credit_past_the_largest_balance_overflows,
            credit::a_credit_carries_its_source_and_provider_references_are_theirs,
            debit::a_debit_within_the_balance_writes_one_entry,
            debit::a_debit_below_zero_revokes_the_latest_stamps_first,
            debit::a_debit_beyond_every_stamp_leaves_a_debt,
            debit::a_revoke_skips_expired_stamps,
            debit::a_held_stamp_is_revoked_and_its_capture_refused,
            debit::a_revoked_stamp_is_spent,
            debit::a_debit_replayed_changes_nothing,
            debit::credits_and_debits_share_their_references,
            debit::provider_references_in_debits_are_the_providers,
            debit::a_revoke_past_its_limit_is_refused,
            debit::a_revoke_through_too_many_purchases_is_refused,
            purchase::a_purchase_sells_stamps_for_the_balance,
            purchase::a_purchase_for_an_unknown_account_is_not_found,
            purchase::a_purchase_beyond_the_balance_is_refused,
            purchase::a_purchase_replayed_answers_the_first_record,
            purchase::a_purchase_of_a_sold_stamp_id_is_refused,
            purchase::a_purchase_naming_a_stamp_twice_or_none_is_invalid,
            purchase::a_purchase_total_past_the_largest_overflows,
            purchase::a_purchase_needs_its_issuer_key_active,
            spend::a_redeem_spends_a_stamp_once,
            spend::a_stamp_never_sold_is_not_sold,
            spend::a_stamp_named_with_another_issue_time_is_not_sold,
            spend::a_stamp_expires_at_exactly_its_expiry,
            spend::a_spend_naming_a_stamp_twice_or_none_is_invalid,
            spend::a_spend_is_all_or_nothing,
            spend::a_post_goes_on_the_board_newest_first,
            spend::a_post_id_that_exists_is_refused,
            spend::a_vote_changes_the_score,
            spend::spends_count_for_the_buyer,
            batches::a_refused_command_in_a_batch_leaves_the_others_applied,
            batches::replays_and_conflicts_inside_one_batch,
            batches::a_batch_reads_its_own_writes,
            batches::entry_times_never_go_backwards,
            batches::the_newest_checkpoint_is_kept,
            batches::a_command_with_too_many_stamps_is_refused_and_the_batch_goes_on,
            concurrency::threads_spend_each_stamp_exactly_once,
            concurrency::committer_tasks_spend_each_stamp_exactly_once,
            durability::a_reopened_store_keeps_every_acknowledged_change,
            durability::a_reopened_store_goes_on_where_it_stopped,
            economy::the_policy_is_written_once_and_again_when_it_changes,
            economy::posts_get_dearer_within_the_window,
            economy::a_repeat_factor_of_one_turns_flood_pricing_off,
            economy::votes_cost_two_n_minus_one,
            economy::flat_vote_pricing_charges_the_vote_cost,
            economy::a_refund_comes_with_the_vote_that_completes_it,
            economy::only_the_base_postage_of_a_flooded_post_goes_back,
            economy::refunds_off_refund_nothing,
            economy::stamps_of_two_payers_are_refused,
            economy::names_are_unique_whatever_their_case_and_form,
            holds::a_held_stamp_is_not_spendable,
            holds::a_spent_stamp_cannot_be_held,
            holds::a_capture_writes_one_redeem_and_answers_the_same_again,
            holds::a_capture_after_expiry_is_refused_and_the_stamps_come_back,
            holds::a_released_hold_frees_its_stamps_and_cannot_be_captured,
            holds::a_hold_never_outlives_its_stamps,
            holds::a_reopened_store_keeps_its_holds,
            holds::threads_hold_or_spend_each_stamp_exactly_once,
            payments::a_payment_is_inserted_once_by_id_and_by_reference,
            payments::a_payment_changes_only_over_the_version_it_read,
            payments::payments_are_listed_newest_first_by_account_and_by_status,
            payments::payments_made_within_one_second_are_listed_newest_first,
            payments::payments_in_a_status_are_paged_from_a_cursor,
            payments::racing_updates_of_one_version_write_once,
            payments::a_reopened_store_keeps_its_payments,
        );
    };
    (@cases $name:ident, $backend:expr, $($module:ident::$case:ident),* $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use crate::harness::*;
            $(
                #[test]
                fn $case() {
                    crate::harness::run(&$backend, crate::$module::$case);
                }
            )*
        }
    };
}

conformance!(sled, SledBackend);
conformance!(memory, MemoryBackend);
conformance!(postgres, crate::harness::PostgresBackend::default());
