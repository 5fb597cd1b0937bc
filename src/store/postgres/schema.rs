//! The PostgreSQL schema and its versioned migrations.
//!
//! The server creates and migrates the schema itself on start ([`migrate`]): migrations are
//! numbered, each runs once in a (sub)transaction of its own, and `schema_migrations` records the ones
//! applied. Servers that start together on an empty database take a transaction-level advisory
//! lock first, so exactly one of them creates the schema and the others find it made.
//!
//! Integers the domain keeps as `u64` are `bigint` here, holding the same 64 bits, so that the
//! store keeps every value the rules accept (real ones stay far below 2^63: amounts are bounded
//! by `config::Limits`, counts by the ledger's size, and read as themselves in SQL). Times are
//! Unix seconds. Ledger entries are stored as their exact bytes (`entries.body`), Merkle hashes one
//! per row by their tlog-tiles stored-hash index (`hashes.idx`).

/// Advisory lock key that serialises schema migrations ("pennypost" as ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x7065_6e6e_7970_6f73;

/// The migrations, in order: (version, what it does, SQL). Never edit one that shipped: add a
/// new one.
pub(super) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "the store: ledger, accounts, stamps, board, economy",
        r"
CREATE TABLE head (
    id smallint PRIMARY KEY CHECK (id = 1),
    -- Entries in the ledger: the next entry's index. Locked FOR UPDATE by every batch, so
    -- batches of all servers take turns and the ledger has one order.
    ledger_size bigint NOT NULL CHECK (ledger_size >= 0),
    last_time bigint NOT NULL,
    -- The board position of the next new post.
    post_seq bigint NOT NULL CHECK (post_seq >= 0),
    -- Bumped by every batch that writes a post or a vote: servers read it to know whether a
    -- cached board page is stale.
    board_generation bigint NOT NULL,
    -- The policy in force (JSON), NULL before the first one.
    policy text
);
INSERT INTO head VALUES (1, 0, 0, 0, 0, NULL);

CREATE TABLE entries (
    idx bigint PRIMARY KEY CHECK (idx >= 0),
    body bytea NOT NULL
);

CREATE TABLE hashes (
    idx bigint PRIMARY KEY CHECK (idx >= 0),
    hash bytea NOT NULL CHECK (length(hash) = 32)
);

CREATE TABLE published_keys (
    kid bytea PRIMARY KEY CHECK (length(kid) = 8),
    public_key text,
    status text NOT NULL CHECK (status IN ('active', 'retired')),
    published_at bigint NOT NULL
);

CREATE TABLE accounts (
    account_id uuid PRIMARY KEY,
    name text,
    balance bigint NOT NULL,
    stamps_purchased bigint NOT NULL,
    stamps_spent bigint NOT NULL,
    created_at bigint NOT NULL,
    refunds_total bigint NOT NULL
);

CREATE TABLE api_keys (
    api_key_sha256 bytea PRIMARY KEY CHECK (length(api_key_sha256) = 32),
    account_id uuid NOT NULL REFERENCES accounts
);

CREATE TABLE names (
    name_key text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts
);

CREATE TABLE credits (
    reference_sha256 bytea PRIMARY KEY CHECK (length(reference_sha256) = 32),
    account_id uuid NOT NULL REFERENCES accounts,
    amount bigint NOT NULL,
    balance bigint NOT NULL,
    ledger_index bigint NOT NULL
);

CREATE TABLE purchases (
    account_id uuid NOT NULL REFERENCES accounts,
    key_sha256 bytea NOT NULL CHECK (length(key_sha256) = 32),
    purchase_id uuid NOT NULL,
    count integer NOT NULL CHECK (count > 0),
    unit_price bigint NOT NULL,
    total bigint NOT NULL,
    balance bigint NOT NULL,
    ledger_index bigint NOT NULL,
    kid bytea NOT NULL,
    issued_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    stamp_ids uuid[] NOT NULL,
    PRIMARY KEY (account_id, key_sha256)
);

-- The sold set. A stamp id is sold once (the key).
CREATE TABLE stamps (
    stamp_id uuid PRIMARY KEY,
    buyer uuid NOT NULL,
    kid bytea NOT NULL CHECK (length(kid) = 8),
    issued_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    -- NULL only for stamps copied from a store that did not keep prices per stamp.
    unit_price bigint
);

-- The spent set. Its key is what makes a stamp spendable once, whichever server spends it:
-- a second spend of the same stamp is a unique violation and its transaction does not commit.
CREATE TABLE spends (
    stamp_id uuid PRIMARY KEY REFERENCES stamps,
    spent_at bigint NOT NULL,
    action text NOT NULL CHECK (action IN ('post', 'vote', 'redeem')),
    spent_for text NOT NULL,
    ledger_index bigint NOT NULL
);

CREATE TABLE posts (
    post_id uuid PRIMARY KEY,
    seq bigint NOT NULL UNIQUE,
    author text NOT NULL,
    body text NOT NULL,
    created_at bigint NOT NULL,
    score bigint NOT NULL,
    ledger_index bigint NOT NULL,
    verified boolean NOT NULL,
    payer uuid,
    cost bigint NOT NULL,
    votes_up bigint NOT NULL,
    votes_down bigint NOT NULL,
    voters bigint NOT NULL,
    up_voters bigint NOT NULL,
    base_postage bigint,
    refunded boolean NOT NULL
);

-- A payer's post times, for flood pricing (newest first through the index). `post_id` is
-- NULL for posts copied from a sled store, which kept only the times.
CREATE TABLE payer_posts (
    payer uuid NOT NULL,
    time bigint NOT NULL,
    post_id uuid
);
CREATE INDEX payer_posts_newest ON payer_posts (payer, time DESC);

-- One payer's votes on one post, for vote prices and refunds.
CREATE TABLE voters (
    post_id uuid NOT NULL REFERENCES posts,
    payer uuid NOT NULL,
    votes bigint NOT NULL,
    up_voted boolean NOT NULL,
    PRIMARY KEY (post_id, payer)
);

-- The newest signed checkpoint. Replaced only by a larger size (compare and set), so a
-- checkpoint read back never goes back in size.
CREATE TABLE checkpoint (
    id smallint PRIMARY KEY CHECK (id = 1),
    size bigint NOT NULL,
    note text NOT NULL
);
",
    ),
    (
        2,
        "holds: stamps reserved until captured, released or expired",
        r"
-- A hold's stamps as (stamp id, issued_at) pairs, in order; state is held, captured or
-- released (expired is judged from expires_at by the batch's time).
CREATE TABLE holds (
    hold_id uuid PRIMARY KEY,
    stamp_ids uuid[] NOT NULL,
    issued_ats bigint[] NOT NULL,
    context text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    state text NOT NULL CHECK (state IN ('held', 'captured', 'released')),
    ledger_index bigint,
    spent_at bigint
);

-- The last hold placed on each stamp.
CREATE TABLE hold_stamps (
    stamp_id uuid PRIMARY KEY,
    hold_id uuid NOT NULL REFERENCES holds
);
",
    ),
    (
        3,
        "debits: debts, the credit index's kind, revoked stamps, each account's purchases",
        r"
-- What an account owes after a debit its balance and stamps did not cover.
ALTER TABLE accounts ADD COLUMN debt bigint NOT NULL DEFAULT 0;

-- Credits and debits share one index of references; a debit keeps the revoke it caused.
ALTER TABLE credits
    ADD COLUMN kind text NOT NULL DEFAULT 'credit' CHECK (kind IN ('credit', 'debit')),
    ADD COLUMN revoke_index bigint,
    ADD COLUMN revoked_stamps bigint,
    ADD COLUMN revoked_amount bigint;

ALTER TABLE spends DROP CONSTRAINT spends_action_check;
ALTER TABLE spends ADD CONSTRAINT spends_action_check
    CHECK (action IN ('post', 'vote', 'redeem', 'revoke'));

-- Every purchase of an account, for the revoke a debit owes (newest first by ledger index).
CREATE TABLE account_purchases (
    account_id uuid NOT NULL REFERENCES accounts,
    ledger_index bigint NOT NULL,
    purchase_id uuid NOT NULL,
    count integer NOT NULL CHECK (count > 0),
    unit_price bigint NOT NULL,
    total bigint NOT NULL,
    balance bigint NOT NULL,
    kid bytea NOT NULL,
    issued_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    stamp_ids uuid[] NOT NULL,
    PRIMARY KEY (account_id, ledger_index)
);

-- The purchases made before this index, from the ledger's own entries (`balance`, the
-- balance after the purchase, is not in an entry and only answers replays: 0 here). Amounts
-- above 2^63 are kept as the same 64 bits, as every bigint of a u64 is.
INSERT INTO account_purchases
SELECT (e->>'account')::uuid, q.idx, (e->>'purchase_id')::uuid, (e->>'count')::integer,
       CASE WHEN (e->>'unit_price')::numeric > 9223372036854775807
            THEN ((e->>'unit_price')::numeric - 18446744073709551616)::bigint
            ELSE (e->>'unit_price')::numeric::bigint END,
       CASE WHEN (e->>'total')::numeric > 9223372036854775807
            THEN ((e->>'total')::numeric - 18446744073709551616)::bigint
            ELSE (e->>'total')::numeric::bigint END,
       0, decode(e->>'kid', 'hex'),
       extract(epoch FROM (e->>'issued_at')::timestamptz)::bigint,
       extract(epoch FROM (e->>'expires_at')::timestamptz)::bigint,
       ARRAY(SELECT jsonb_array_elements_text(e->'stamp_ids')::uuid)
FROM (SELECT idx, convert_from(body, 'UTF8')::jsonb AS e FROM entries) q
WHERE e->>'kind' = 'purchase';
",
    ),
    (
        4,
        "payments: what members pay through providers, and what became of it",
        r"
-- Not ledger entries: the ledger records the money moved, under references that are unique
-- there. Every update is a compare-and-set on version.
CREATE TABLE payments (
    payment_id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts,
    provider text NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    currency text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'paid', 'expired', 'failed', 'refunded', 'disputed')),
    reference text NOT NULL,
    pay_url text NOT NULL,
    expires_at bigint NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    credited_ledger_index bigint,
    charge_ref text,
    refund_seen bigint NOT NULL,
    refunded bigint NOT NULL,
    disputed bigint NOT NULL,
    reinstated bigint NOT NULL,
    move_kind text,
    move_reference text,
    move_amount bigint,
    move_refund_seen bigint,
    last_checked_at bigint,
    version bigint NOT NULL,
    UNIQUE (provider, reference)
);
CREATE INDEX payments_by_account ON payments (account_id, created_at DESC, payment_id DESC);
CREATE INDEX payments_by_status ON payments (status, created_at DESC, payment_id DESC);
",
    ),
    (
        5,
        "payments: listed newest first to the microsecond",
        r"
-- The microseconds past created_at's second, so that payments made within one second are
-- listed newest first; 0 for payments made before it was kept (listed by id within a second,
-- as before).
ALTER TABLE payments ADD COLUMN created_micros integer NOT NULL DEFAULT 0
    CHECK (created_micros BETWEEN 0 AND 999999);
DROP INDEX payments_by_account;
DROP INDEX payments_by_status;
CREATE INDEX payments_by_account
    ON payments (account_id, created_at DESC, created_micros DESC, payment_id DESC);
CREATE INDEX payments_by_status
    ON payments (status, created_at DESC, created_micros DESC, payment_id DESC);
",
    ),
];

/// The newest schema version this build knows.
pub(super) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

/// Brings the database's schema to [`latest`], applying each missing migration in a
/// transaction of its own (a savepoint of the one that holds the migration lock). Refuses a database whose schema is newer than this build (an older server
/// must not write a layout it does not know).
pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> Result<(), String> {
    let mut tx = client.transaction().await.map_err(|e| e.to_string())?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| e.to_string())?;
    let made: bool = tx
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if !made {
        tx.batch_execute(
            "CREATE TABLE schema_migrations (
             version integer PRIMARY KEY,
             description text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    let applied: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if applied > latest() {
        return Err(format!(
            "the database's schema is version {applied}, newer than this server's {}; \
             upgrade the server",
            latest()
        ));
    }
    for (version, description, sql) in MIGRATIONS {
        if *version <= applied {
            continue;
        }
        let step = tx.transaction().await.map_err(|e| e.to_string())?;
        step.batch_execute(sql)
            .await
            .map_err(|e| format!("schema migration {version} ({description}): {e}"))?;
        step.execute(
            "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
            &[version, description],
        )
        .await
        .map_err(|e| e.to_string())?;
        step.commit().await.map_err(|e| e.to_string())?;
        tracing::info!(version, description, "applied schema migration");
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(())
}
