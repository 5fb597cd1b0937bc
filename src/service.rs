//! The service: every use case (accounts, credit, purchase, verify, redeem, posts, votes,
//! ledger reads) as one method. The only code that uses the store, the committer, the keys and
//! the ledger together.
//!
//! Transaction boundaries: a method checks its input and every stamp's signature first, in the
//! calling task (CPU work in parallel across requests), then submits exactly one
//! [`Command`] to the group committer. The store applies that command all-or-nothing together
//! with its ledger entry, and the answer comes back only once the batch is durable. A refused
//! command changed nothing, so a failed request never spends a stamp or moves money.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand_core::{OsRng, RngCore as _};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::api::{ErrorCode, StampState};
use crate::commit::Committer;
use crate::config::{Economy, Limits};
use crate::error::Error;
use crate::keys::{public_key_text, KeyStatus, Keyring, LedgerKey};
use crate::ledger::check::{AuditReport, LedgerChecker};
use crate::ledger::checkpoint;
use crate::stamp::{self, Payload, StampError};
use crate::store::{
    Account, Command, Outcome, Post, PurchaseRecord, SpendFor, StampRecord, StampRef, Store,
};
use crate::time::Timestamp;
use crate::verify::BatchVerifier;

/// A board page: (`before` cursor, `limit`).
pub type PageKey = (Option<Uuid>, usize);
/// Board pages kept rendered. Most reads are of the first page; cursors of older pages vary.
const PAGE_CACHE_MAX: usize = 256;
/// Bytes of randomness in an API key (256 bits).
const API_KEY_RANDOM_BYTES: usize = 32;
/// The prefix of every API key, so a leaked one is recognisable (secret scanners, logs).
const API_KEY_PREFIX: &str = "ppk_";

/// A purchase as answered to the client.
#[derive(Debug, Clone)]
pub struct Purchase {
    pub record: PurchaseRecord,
    pub stamps: Vec<String>,
}

/// The answer of `POST /v1/stamps/verify`.
#[derive(Debug, Clone)]
pub struct Verification {
    pub valid: bool,
    pub stamp_id: Option<Uuid>,
    pub kid: Option<String>,
    pub state: Option<StampState>,
    pub issued_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub code: Option<ErrorCode>,
}

/// A finished spend.
#[derive(Debug, Clone)]
pub struct Spend {
    pub spent_at: Timestamp,
    pub ledger_index: u64,
    pub post: Option<Post>,
}

pub struct Service {
    store: Arc<dyn Store>,
    committer: Committer,
    keyring: Keyring,
    ledger_key: LedgerKey,
    origin: String,
    economy: Economy,
    limits: Limits,
    admin_token_sha256: [u8; 32],
    /// The newest signed checkpoint, by size. Guarded so two requests never sign twice.
    checkpoint: Mutex<Option<(u64, String)>>,
    verifier: BatchVerifier,
    /// Bumped after every post or vote commits; board pages cached under an older value are
    /// stale. Read before a page is read, so a page is never cached as newer than it is.
    board_generation: AtomicU64,
    /// Rendered board pages by (before, limit), with the generation they were read at.
    page_cache: Mutex<HashMap<PageKey, (u64, bytes::Bytes)>>,
    /// The server's own auditor, fed incrementally: each `GET /v1/audit` reads only the entries
    /// added since the last one.
    /// Kept caught up by a background task every few seconds; scans run on blocking threads
    /// under this std lock. `audit_running` makes callers queue on a tokio lock instead of
    /// blocking runtime threads.
    auditor: Arc<Mutex<LedgerChecker>>,
    audit_running: tokio::sync::Mutex<()>,
    /// How far the auditor has checked, readable while a catch-up holds its lock.
    audit_checked: Arc<AtomicU64>,
}

/// Hides a spend whose ledger entry is not yet durable (its batch is between apply and sync):
/// a crash then would undo it, so no reader may be told the stamp is spent. The spender is
/// answered only after the sync, and the durable size grows before that answer, so the
/// spender reads its own spend.
fn only_durable(mut record: StampRecord, durable_size: u64) -> StampRecord {
    if record
        .spent
        .as_ref()
        .is_some_and(|s| s.ledger_index >= durable_size)
    {
        record.spent = None;
    }
    record
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Service {
    /// Builds the service and publishes in the ledger any key whose status it has not recorded
    /// yet (the first key on first start, both keys after a rotation).
    pub async fn start(
        store: Arc<dyn Store>,
        keyring: Keyring,
        ledger_key: LedgerKey,
        origin: String,
        economy: Economy,
        limits: Limits,
        admin_token: &str,
    ) -> Result<Service, Error> {
        let committer = Committer::start(store.clone())?;
        let checkpoint = store.checkpoint()?;
        let service = Service {
            store,
            committer,
            keyring,
            ledger_key,
            origin,
            economy,
            limits,
            admin_token_sha256: sha256(admin_token.as_bytes()),
            checkpoint: Mutex::new(checkpoint),
            board_generation: AtomicU64::new(0),
            page_cache: Mutex::new(HashMap::new()),
            verifier: BatchVerifier::start()
                .map_err(|e| Error::Internal(format!("cannot start verifier thread: {e}")))?,
            auditor: Arc::new(Mutex::new(LedgerChecker::new())),
            audit_running: tokio::sync::Mutex::new(()),
            audit_checked: Arc::new(AtomicU64::new(0)),
        };
        service.publish_keys().await?;
        service.start_background_audit();
        Ok(service)
    }

    async fn publish_keys(&self) -> Result<(), Error> {
        let published = self.store.published_keys()?;
        // Retirements first, so the ledger never shows two active keys at once.
        let mut keys: Vec<_> = self.keyring.keys().to_vec();
        keys.sort_by_key(|k| k.status == KeyStatus::Active);
        for key in keys {
            let known = published
                .iter()
                .find(|p| p.kid == key.kid)
                .map(|p| p.status);
            if known == Some(key.status) {
                continue;
            }
            let outcome = self
                .committer
                .submit(Command::KeyEvent {
                    kid: key.kid,
                    public_key: public_key_text(&key.verifying),
                    status: key.status,
                })
                .await??;
            tracing::info!(kid = %key.kid, status = key.status.as_str(), ?outcome, "published key in ledger");
        }
        Ok(())
    }

    pub fn economy(&self) -> &Economy {
        &self.economy
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Checks the operator token in constant time.
    pub fn check_admin(&self, token: Option<&str>) -> Result<(), Error> {
        let token = token.ok_or(Error::Unauthorized("admin token required"))?;
        if bool::from(sha256(token.as_bytes()).ct_eq(&self.admin_token_sha256)) {
            Ok(())
        } else {
            Err(Error::Unauthorized("wrong admin token"))
        }
    }

    /// Finds the account of an API key. Keys are stored only as SHA-256 hashes; the lookup is
    /// by hash and the found hash is compared again in constant time.
    pub fn authenticate(&self, api_key: Option<&str>) -> Result<Account, Error> {
        let api_key = api_key.ok_or(Error::Unauthorized("API key required"))?;
        let hash = sha256(api_key.as_bytes());
        self.store
            .account_by_api_key(&hash)?
            .ok_or(Error::Unauthorized("unknown API key"))
    }

    pub async fn create_account(&self, name: Option<String>) -> Result<(Uuid, String), Error> {
        if let Some(name) = &name {
            let chars = name.chars().count();
            if chars == 0 || chars > self.limits.account_name_chars_max {
                return Err(Error::BadRequest(format!(
                    "name must be 1 to {} characters",
                    self.limits.account_name_chars_max
                )));
            }
        }
        let mut secret = [0u8; API_KEY_RANDOM_BYTES];
        OsRng.fill_bytes(&mut secret);
        let api_key = format!("{API_KEY_PREFIX}{}", hex::encode(secret));
        let account_id = Uuid::new_v4();
        self.committer
            .submit(Command::CreateAccount {
                account_id,
                name,
                api_key_sha256: sha256(api_key.as_bytes()),
            })
            .await??;
        Ok((account_id, api_key))
    }

    pub async fn credit(
        &self,
        account_id: Uuid,
        amount: u64,
        reference: String,
    ) -> Result<(u64, u64), Error> {
        if amount == 0 || amount > self.limits.credit_amount_max {
            return Err(Error::BadRequest(format!(
                "amount must be 1 to {}",
                self.limits.credit_amount_max
            )));
        }
        let chars = reference.chars().count();
        if chars == 0 || chars > self.limits.reference_chars_max {
            return Err(Error::BadRequest(format!(
                "reference must be 1 to {} characters",
                self.limits.reference_chars_max
            )));
        }
        match self
            .committer
            .submit(Command::Credit {
                account_id,
                amount,
                reference,
            })
            .await??
        {
            Outcome::Credited {
                balance,
                ledger_index,
            } => Ok((balance, ledger_index)),
            other => Err(unexpected(&other)),
        }
    }

    /// Sells `count` stamps. With an idempotency key, a replay answers the first purchase again
    /// (the same stamps, signed again: Ed25519 signatures are deterministic) and charges nothing.
    pub async fn purchase(
        &self,
        account: &Account,
        count: u64,
        idempotency_key: Option<&str>,
    ) -> Result<Purchase, Error> {
        let max = self.limits.purchase_count_max;
        if count == 0 || count > u64::from(max) {
            return Err(Error::BadRequest(format!("count must be 1 to {max}")));
        }
        if let Some(key) = idempotency_key {
            if key.is_empty() || key.len() > self.limits.idempotency_key_bytes_max {
                return Err(Error::BadRequest(format!(
                    "Idempotency-Key must be 1 to {} bytes",
                    self.limits.idempotency_key_bytes_max
                )));
            }
        }
        let key = self.keyring.active();
        let issued_at = Timestamp::now();
        let expires_at = issued_at.plus_secs(self.economy.stamp_ttl_secs);
        let stamp_ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
        let outcome = self
            .committer
            .submit(Command::Purchase {
                account_id: account.account_id,
                unit_price: self.economy.stamp_price,
                idempotency_key_sha256: idempotency_key.map(|k| sha256(k.as_bytes())),
                purchase_id: Uuid::new_v4(),
                kid: key.kid,
                issued_at,
                expires_at,
                stamp_ids,
            })
            .await??;
        let Outcome::Purchased { record, .. } = outcome else {
            return Err(unexpected(&outcome));
        };
        let stamps = self.sign_stamps(&record)?;
        Ok(Purchase { record, stamps })
    }

    /// Signs the stamps of a purchase record. Signing happens after the sale is durable, so a
    /// stamp string never exists for a sale that could be lost in a crash.
    fn sign_stamps(&self, record: &PurchaseRecord) -> Result<Vec<String>, Error> {
        let signing = self
            .keyring
            .signing_key(&record.kid)
            .ok_or_else(|| Error::Internal(format!("no signing key {}", record.kid)))?;
        Ok(record
            .stamp_ids
            .iter()
            .map(|id| {
                stamp::sign(
                    &Payload {
                        kid: record.kid,
                        stamp_id: *id,
                        issued_at: record.issued_at.unix(),
                        expires_at: record.expires_at.unix(),
                        value: stamp::VALUE_V1,
                        holder: [0; 32],
                    },
                    signing,
                )
            })
            .collect())
    }

    /// Checks a stamp without spending it. Never fails for a bad stamp: the answer says why.
    pub async fn verify(&self, text: &str) -> Result<Verification, Error> {
        let now = Timestamp::now().unix();
        let decoded = match stamp::decode(text) {
            Ok(d) => d,
            Err(e) => {
                return Ok(Verification {
                    valid: false,
                    stamp_id: None,
                    kid: None,
                    state: None,
                    issued_at: None,
                    expires_at: None,
                    code: Some(e.code()),
                })
            }
        };
        let p = &decoded.payload;
        let mut answer = Verification {
            valid: false,
            stamp_id: Some(p.stamp_id),
            kid: Some(p.kid.to_hex()),
            state: None,
            issued_at: Some(Timestamp::from_unix(p.issued_at)),
            expires_at: Some(Timestamp::from_unix(p.expires_at)),
            code: None,
        };
        match self.check_stamp(text, now).await {
            Err(StampError::Expired) | Ok(_) => {}
            Err(e) => {
                // Unknown key or bad signature: nothing about the stamp can be trusted.
                answer.code = Some(e.code());
                return Ok(answer);
            }
        }
        let record = self.durable_stamp(p.stamp_id)?;
        let spent = record.as_ref().is_some_and(|r| r.spent.is_some());
        let expired = now >= p.expires_at;
        answer.state = Some(StampState::of(spent, expired));
        answer.code = if expired {
            Some(ErrorCode::StampExpired)
        } else if spent {
            Some(ErrorCode::StampAlreadySpent)
        } else if record.is_none() {
            Some(ErrorCode::InvalidStamp)
        } else {
            None
        };
        answer.valid = answer.code.is_none();
        Ok(answer)
    }

    /// Checks 1 to 4 of STAMP-FORMAT.md for one stamp, in order; the signature goes through
    /// the batch verifier.
    async fn check_stamp(&self, text: &str, now: i64) -> Result<stamp::Decoded, StampError> {
        let decoded = stamp::decode(text)?;
        let key = decoded.issuer_key(|kid| self.keyring.lookup(kid))?;
        let (message, signature) = decoded.signed_parts();
        if !self.verifier.verify(message, signature, key).await {
            return Err(StampError::BadSignature);
        }
        decoded.check_expiry(now)?;
        Ok(decoded)
    }

    /// Decodes and verifies the stamps of one request (checks 1 to 4). Refuses duplicates: two
    /// encodings of one stamp are one stamp.
    async fn check_stamps(&self, texts: &[String]) -> Result<Vec<StampRef>, Error> {
        let now = Timestamp::now().unix();
        let mut stamps = Vec::with_capacity(texts.len());
        let mut seen = HashSet::with_capacity(texts.len());
        for text in texts {
            let decoded = self.check_stamp(text, now).await?;
            if !seen.insert(decoded.payload.stamp_id) {
                return Err(Error::BadRequest("the same stamp is attached twice".into()));
            }
            stamps.push(StampRef {
                stamp_id: decoded.payload.stamp_id,
                issued_at: Timestamp::from_unix(decoded.payload.issued_at),
            });
        }
        Ok(stamps)
    }

    async fn spend(&self, stamps: Vec<StampRef>, spend_for: SpendFor) -> Result<Spend, Error> {
        let changes_board = !matches!(spend_for, SpendFor::Redeem { .. });
        let outcome = self
            .committer
            .submit(Command::Spend { stamps, spend_for })
            .await??;
        if changes_board {
            // Before answering, so a client that posts and then reads sees its post.
            self.board_generation.fetch_add(1, Ordering::AcqRel);
        }
        match outcome {
            Outcome::Spent {
                spent_at,
                ledger_index,
                post,
            } => Ok(Spend {
                spent_at,
                ledger_index,
                post,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Cancels one stamp for another site's action.
    pub async fn redeem(&self, stamp_text: &str, context: String) -> Result<(Uuid, Spend), Error> {
        if context.is_empty() || context.len() > self.limits.context_bytes_max {
            return Err(Error::BadRequest(format!(
                "context must be 1 to {} bytes",
                self.limits.context_bytes_max
            )));
        }
        let stamps = self.check_stamps(&[stamp_text.to_string()]).await?;
        let id = stamps
            .first()
            .map(|s| s.stamp_id)
            .ok_or_else(|| Error::Internal("a checked stamp went missing".into()))?;
        let spend = self.spend(stamps, SpendFor::Redeem { context }).await?;
        Ok((id, spend))
    }

    pub fn stamp_status(&self, stamp_id: Uuid) -> Result<StampRecord, Error> {
        self.durable_stamp(stamp_id)?
            .ok_or(Error::NotFound("stamp"))
    }

    /// A stamp as readers may see it: only what is durable. The record is read before the
    /// durable size, so a spend that became durable in between is shown.
    fn durable_stamp(&self, stamp_id: Uuid) -> Result<Option<StampRecord>, Error> {
        let record = self.store.stamp(stamp_id)?;
        Ok(record.map(|r| only_durable(r, self.committer.durable_size())))
    }

    fn check_stamp_count(&self, stamps: &[String], expected: usize) -> Result<(), Error> {
        if stamps.len() > self.limits.stamps_per_request_max {
            return Err(Error::BadRequest(format!(
                "at most {} stamps per request",
                self.limits.stamps_per_request_max
            )));
        }
        // The same stamp twice is a malformed request (API.md: 400), whatever the count; two
        // different encodings of one stamp are caught after decoding, in check_stamps.
        let mut seen = HashSet::with_capacity(stamps.len());
        if !stamps.iter().all(|s| seen.insert(s.as_str())) {
            return Err(Error::BadRequest("the same stamp is attached twice".into()));
        }
        if stamps.len() != expected {
            return Err(Error::WrongStampCount {
                expected,
                got: stamps.len(),
            });
        }
        Ok(())
    }

    pub async fn create_post(
        &self,
        author: String,
        body: String,
        stamps: &[String],
    ) -> Result<Post, Error> {
        let author_chars = author.chars().count();
        if author_chars == 0 || author_chars > self.limits.author_chars_max {
            return Err(Error::BadRequest(format!(
                "author must be 1 to {} characters",
                self.limits.author_chars_max
            )));
        }
        let body_chars = body.chars().count();
        if body_chars == 0 || body_chars > self.limits.post_body_chars_max {
            return Err(Error::BadRequest(format!(
                "body must be 1 to {} characters",
                self.limits.post_body_chars_max
            )));
        }
        self.check_stamp_count(stamps, self.economy.post_cost)?;
        let ids = self.check_stamps(stamps).await?;
        let spend = self
            .spend(
                ids,
                SpendFor::Post {
                    post_id: Uuid::new_v4(),
                    author,
                    body,
                },
            )
            .await?;
        spend
            .post
            .ok_or_else(|| Error::Internal("post spend returned no post".into()))
    }

    pub async fn vote(&self, post_id: Uuid, up: bool, stamps: &[String]) -> Result<Spend, Error> {
        self.check_stamp_count(stamps, self.economy.vote_cost)?;
        let ids = self.check_stamps(stamps).await?;
        self.spend(ids, SpendFor::Vote { post_id, up }).await
    }

    pub fn post(&self, post_id: Uuid) -> Result<Post, Error> {
        self.store.post(post_id)?.ok_or(Error::NotFound("post"))
    }

    /// A page of posts, newest first, and the cursor of the next page when there may be one.
    pub fn posts(
        &self,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Post>, Option<Uuid>), Error> {
        let posts = self
            .store
            .posts(before, limit)?
            .ok_or_else(|| Error::BadRequest("before names no post".into()))?;
        let next = if posts.len() == limit {
            posts.last().map(|p| p.post_id)
        } else {
            None
        };
        Ok((posts, next))
    }

    /// The board's version: read it before reading a page to cache.
    pub fn board_generation(&self) -> u64 {
        self.board_generation.load(Ordering::Acquire)
    }

    /// A rendered board page, if one is cached for the current generation.
    pub fn cached_page(&self, key: PageKey) -> Option<bytes::Bytes> {
        let generation = self.board_generation();
        let cache = self.page_cache.lock().ok()?;
        cache
            .get(&key)
            .filter(|(at, _)| *at == generation)
            .map(|(_, page)| page.clone())
    }

    /// Keeps a rendered page read at `generation`. The cache holds at most
    /// [`PAGE_CACHE_MAX`] pages and starts over when full.
    pub fn cache_page(&self, key: PageKey, generation: u64, page: bytes::Bytes) {
        if let Ok(mut cache) = self.page_cache.lock() {
            if cache.len() >= PAGE_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (generation, page));
        }
    }

    /// The ledger size that is durable (what checkpoints and entry reads may show).
    pub fn ledger_size(&self) -> u64 {
        self.committer.durable_size()
    }

    /// Entries `start..start+limit`, capped at the page limit and at the durable size.
    pub fn ledger_entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, Error> {
        let size = self.ledger_size();
        if start > size {
            return Err(Error::BadRequest(format!(
                "start {start} is past the ledger size {size}"
            )));
        }
        let limit = limit.min(self.limits.ledger_page_max).min(size - start);
        Ok(self.store.entries(start, limit)?)
    }

    pub fn ledger_origin(&self) -> &str {
        &self.origin
    }

    pub fn ledger_key(&self) -> &LedgerKey {
        &self.ledger_key
    }

    /// The signed checkpoint of the durable ledger. Signs a new one only when the ledger grew;
    /// the root of a size never changes, so one size never gets two roots.
    pub fn checkpoint(&self) -> Result<String, Error> {
        let size = self.ledger_size();
        let mut cached = self
            .checkpoint
            .lock()
            .map_err(|_| Error::Internal("checkpoint lock poisoned".into()))?;
        if let Some((cached_size, note)) = cached.as_ref() {
            if *cached_size >= size {
                return Ok(note.clone());
            }
        }
        let root = self.root(size)?;
        let note = checkpoint::sign(&self.origin, size, &root, &self.ledger_key)
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.store.put_checkpoint(size, &note)?;
        *cached = Some((size, note.clone()));
        Ok(note)
    }

    /// The Merkle root of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<tlog_tiles::Hash, Error> {
        tlog_tiles::tree_hash(size, &StoreHashes(self.store.as_ref()))
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<tlog_tiles::Hash>, Error> {
        let durable = self.ledger_size();
        if size == 0 || size > durable || index >= size {
            return Err(Error::BadRequest(format!(
                "need index < size <= {durable}; got index {index}, size {size}"
            )));
        }
        tlog_tiles::prove_record(size, index, &StoreHashes(self.store.as_ref()))
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Consistency proof between the trees of `from` and `to` entries.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<tlog_tiles::Hash>, Error> {
        let durable = self.ledger_size();
        if from == 0 || from > to || to > durable {
            return Err(Error::BadRequest(format!(
                "need 0 < from <= to <= {durable}; got from {from}, to {to}"
            )));
        }
        tlog_tiles::prove_tree(to, from, &StoreHashes(self.store.as_ref()))
            .map_err(|e| Error::Internal(e.to_string()))
    }
}

impl Service {
    /// The server's own check of the ledger invariants over every durable entry.
    pub async fn audit(&self) -> Result<AuditReport, Error> {
        // One scan at a time; others wait here without holding a runtime thread.
        let size = self.ledger_size();
        let checked = self.audit_checked.load(Ordering::Acquire);
        if size.saturating_sub(checked) > self.limits.audit_lag_max {
            return Err(Error::AuditCatchingUp {
                checked,
                size,
                retry_after_secs: BACKGROUND_AUDIT_SECS,
            });
        }
        let _turn = self.audit_running.lock().await;
        let (store, auditor, progress) = (
            self.store.clone(),
            self.auditor.clone(),
            self.audit_checked.clone(),
        );
        let page_max = self.limits.ledger_page_max;
        // The scan reads and hashes entries: keep it off the runtime's worker threads, which
        // must go on serving requests (the auditor itself downloads entries meanwhile).
        tokio::task::spawn_blocking(move || {
            let checker = catch_up(store.as_ref(), &auditor, &progress, size, page_max)?;
            Ok(checker.report(Timestamp::now().unix()))
        })
        .await
        .map_err(|e| Error::Internal(format!("audit task failed: {e}")))?
    }

    /// Keeps the server's own auditor caught up in the background, so that `GET /v1/audit`
    /// only checks the entries of the last few seconds, even on a log of millions of entries.
    fn start_background_audit(&self) {
        let (store, auditor, committer, progress) = (
            self.store.clone(),
            self.auditor.clone(),
            self.committer.clone(),
            self.audit_checked.clone(),
        );
        let page_max = self.limits.ledger_page_max;
        tokio::spawn(async move {
            loop {
                let size = committer.durable_size();
                let (store, auditor, progress) = (store.clone(), auditor.clone(), progress.clone());
                let caught_up = tokio::task::spawn_blocking(move || {
                    catch_up(store.as_ref(), &auditor, &progress, size, page_max).map(|_| ())
                })
                .await;
                if let Ok(Err(e)) = caught_up {
                    tracing::error!(error = %e, "background audit could not read the ledger");
                }
                tokio::time::sleep(std::time::Duration::from_secs(BACKGROUND_AUDIT_SECS)).await;
            }
        });
    }
}

/// Seconds between background catch-ups of the server's own auditor.
const BACKGROUND_AUDIT_SECS: u64 = 2;

/// Feeds `auditor` every entry below `size` it has not seen yet; returns it locked.
fn catch_up<'a>(
    store: &dyn Store,
    auditor: &'a Mutex<LedgerChecker>,
    progress: &AtomicU64,
    size: u64,
    page_max: u64,
) -> Result<std::sync::MutexGuard<'a, LedgerChecker>, Error> {
    let mut checker = auditor
        .lock()
        .map_err(|_| Error::Internal("auditor lock poisoned".into()))?;
    while checker.size() < size {
        let page = store.entries(checker.size(), page_max.min(size - checker.size()))?;
        if page.is_empty() {
            return Err(Error::Internal(format!(
                "ledger entry {} missing below durable size {size}",
                checker.size()
            )));
        }
        for entry in page {
            checker.push(&entry);
        }
        progress.store(checker.size(), Ordering::Release);
    }
    Ok(checker)
}

/// Tile height of C2SP tlog-tiles (c2sp.org/tlog-tiles): 256 hashes or entries per tile.
const TILE_HEIGHT: u8 = 8;
const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

impl Service {
    /// Serves the log as C2SP tlog-tiles: `path` is what follows `tile/`, either
    /// `<L>/<N>[.p/<W>]` (a hash tile) or `entries/<N>[.p/<W>]` (an entry bundle, each entry
    /// prefixed by its length as a big-endian u16). Only tiles within the durable size exist.
    pub fn tile(&self, path: &str) -> Result<Vec<u8>, Error> {
        let (is_entries, rest) = match path.strip_prefix("entries/") {
            Some(rest) => (true, rest),
            None => (false, path),
        };
        // tlog_tiles parses the Go sumdb form `tile/H/L/N`; C2SP drops the fixed height.
        let go_path = if is_entries {
            format!("tile/{TILE_HEIGHT}/data/{rest}")
        } else {
            format!("tile/{TILE_HEIGHT}/{rest}")
        };
        let tile = tlog_tiles::Tile::from_path(&go_path).map_err(|_| Error::NotFound("tile"))?;
        if tile.height() != TILE_HEIGHT || u32::from(tile.level()) * u32::from(TILE_HEIGHT) >= 64 {
            return Err(Error::NotFound("tile"));
        }
        let size = self.ledger_size();
        let nodes_at_level = size >> (u32::from(tile.level()) * u32::from(TILE_HEIGHT));
        let first = tile
            .level_index()
            .checked_mul(TILE_WIDTH)
            .ok_or(Error::NotFound("tile"))?;
        let width = u64::from(tile.width());
        // A tile (full or partial) exists once its last node does; the log only grows, so its
        // bytes never change after that.
        let exists = first
            .checked_add(width)
            .is_some_and(|end| end <= nodes_at_level);
        if !exists {
            return Err(Error::NotFound("tile"));
        }
        if is_entries {
            let mut out = Vec::new();
            for entry in self.store.entries(first, width)? {
                let length = u16::try_from(entry.len())
                    .map_err(|_| Error::Internal("entry too long for a tile".into()))?;
                out.extend_from_slice(&length.to_be_bytes());
                out.extend_from_slice(&entry);
            }
            Ok(out)
        } else {
            tile.read_data(&StoreHashes(self.store.as_ref()))
                .map_err(|e| Error::Internal(e.to_string()))
        }
    }
}

/// Reads Merkle hashes from the store for the tlog_tiles proof functions.
struct StoreHashes<'a>(&'a dyn Store);

impl tlog_tiles::HashReader for StoreHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        self.0
            .hashes(indexes)
            .map(|v| v.into_iter().map(tlog_tiles::Hash).collect())
            .map_err(|e| tlog_tiles::Error::InvalidInput(e.to_string()))
    }
}

fn unexpected(outcome: &Outcome) -> Error {
    Error::Internal(format!("unexpected outcome {outcome:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::entry::SpendAction;
    use crate::store::SpentRecord;

    fn spent_at_index(ledger_index: u64) -> StampRecord {
        StampRecord {
            stamp_id: Uuid::from_u128(1),
            buyer: Uuid::from_u128(2),
            kid: crate::stamp::Kid([0; 8]),
            issued_at: Timestamp::from_unix(0),
            expires_at: Timestamp::from_unix(100),
            spent: Some(SpentRecord {
                spent_at: Timestamp::from_unix(1),
                action: SpendAction::Redeem,
                spent_for: "site".into(),
                ledger_index,
            }),
        }
    }

    #[test]
    fn a_spend_is_shown_only_once_its_entry_is_durable() {
        // Entry 7 is durable once the durable size is 8 or more.
        assert!(only_durable(spent_at_index(7), 7).spent.is_none());
        assert!(only_durable(spent_at_index(7), 0).spent.is_none());
        assert!(only_durable(spent_at_index(7), 8).spent.is_some());
        assert!(only_durable(spent_at_index(7), u64::MAX).spent.is_some());
        let mut unspent = spent_at_index(7);
        unspent.spent = None;
        assert_eq!(only_durable(unspent.clone(), 0), unspent);
    }
}
