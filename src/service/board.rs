//! The board: posts and votes that cost stamps, and the page cache of its reads.
//!
//! A post or vote checks its input and stamps, then spends through the mint in one command
//! that also writes the post or the new score. Pages are cached until the next post or vote,
//! behind one call ([`Board::page`]): the generation is bumped after a post or vote commits
//! and before it is answered, and read before a page is read, so a client reads its own
//! writes and no page is cached as newer than it is.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::mint::{Mint, Spend};
use crate::domain::{Account, Post, StampRef};
use crate::error::Error;
use crate::rules::{self, QuoteAction, SpendFor};
use crate::store::Store;

/// A board page: (`before` cursor, `limit`).
type PageKey = (Option<Uuid>, usize);
/// Board pages kept rendered. Most reads are of the first page; cursors of older pages vary.
const PAGE_CACHE_MAX: usize = 256;

pub struct Board {
    mint: Arc<Mint>,
    store: Arc<dyn Store>,
    /// Bumped after every post or vote commits; pages cached under an older value are stale.
    generation: AtomicU64,
    /// Rendered pages by (before, limit), with the generation they were read at.
    page_cache: Mutex<HashMap<PageKey, (u64, bytes::Bytes)>>,
}

impl Board {
    pub(super) fn new(mint: Arc<Mint>, store: Arc<dyn Store>) -> Board {
        Board {
            mint,
            store,
            generation: AtomicU64::new(0),
            page_cache: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses more stamps than one request may carry, and the same stamp text twice. The
    /// count against the price is the rules' to check: the price depends on the ledger.
    fn check_stamp_count(&self, stamps: &[String]) -> Result<(), Error> {
        if stamps.len() > self.mint.limits().stamps_per_request_max {
            return Err(Error::BadRequest(format!(
                "at most {} stamps per request",
                self.mint.limits().stamps_per_request_max
            )));
        }
        // The same stamp twice is a malformed request (docs/api.md: 400), whatever the count; two
        // different encodings of one stamp are caught after decoding, in check_stamps.
        let mut seen = HashSet::with_capacity(stamps.len());
        if !stamps.iter().all(|s| seen.insert(s.as_str())) {
            return Err(Error::BadRequest("the same stamp is attached twice".into()));
        }
        Ok(())
    }

    /// Posts `body`. With the account of an API key, the author is that account's name (a
    /// given `author` must equal it) and the post is verified; without one, the author is as
    /// given and unverified.
    pub async fn create_post(
        &self,
        author: Option<String>,
        body: String,
        stamps: &[String],
        account: Option<&Account>,
    ) -> Result<Post, Error> {
        let (author, verified) = match (account, author) {
            (Some(account), given) => {
                let Some(name) = account.name.clone() else {
                    return Err(Error::BadRequest(
                        "this account has no name to post under; post without the API key, \
                         or use an account created with a name"
                            .into(),
                    ));
                };
                if given.as_ref().is_some_and(|g| *g != name) {
                    return Err(Error::BadRequest(format!(
                        "author must be the account's name, {name:?}, when posting with its API key"
                    )));
                }
                (name, true)
            }
            (None, Some(author)) => (author, false),
            (None, None) => {
                return Err(Error::BadRequest(
                    "author is required without an API key".into(),
                ))
            }
        };
        let author_chars = author.chars().count();
        if author_chars == 0 || author_chars > self.mint.limits().author_chars_max {
            return Err(Error::BadRequest(format!(
                "author must be 1 to {} characters",
                self.mint.limits().author_chars_max
            )));
        }
        let body_chars = body.chars().count();
        if body_chars == 0 || body_chars > self.mint.limits().post_body_chars_max {
            return Err(Error::BadRequest(format!(
                "body must be 1 to {} characters",
                self.mint.limits().post_body_chars_max
            )));
        }
        self.check_stamp_count(stamps)?;
        let ids = self.mint.check_stamps(stamps).await?;
        let spend = self
            .spend(
                ids,
                SpendFor::Post {
                    post_id: Uuid::new_v4(),
                    author,
                    body,
                    verified,
                },
            )
            .await?;
        spend
            .post
            .ok_or_else(|| Error::Internal("post spend returned no post".into()))
    }

    pub async fn vote(&self, post_id: Uuid, up: bool, stamps: &[String]) -> Result<Spend, Error> {
        self.check_stamp_count(stamps)?;
        let ids = self.mint.check_stamps(stamps).await?;
        self.spend(ids, SpendFor::Vote { post_id, up }).await
    }

    /// What `action` would cost its payer now: the account of an API key, or the payer of a
    /// stamp (after its own checks). Spends and reserves nothing.
    pub async fn quote(
        &self,
        action: QuoteAction,
        account: Option<&Account>,
        stamp: Option<&str>,
    ) -> Result<u64, Error> {
        let payer = match (account, stamp) {
            (Some(account), _) => account.account_id,
            (None, Some(text)) => {
                let stamps = self.mint.check_stamps(&[text.to_string()]).await?;
                let id = stamps
                    .first()
                    .map(|s| s.stamp_id)
                    .ok_or_else(|| Error::Internal("a checked stamp went missing".into()))?;
                self.store
                    .stamp(id)?
                    .ok_or(Error::Stamp(crate::stamp::StampError::Invalid(
                        "not sold by this server",
                    )))?
                    .buyer
            }
            (None, None) => {
                return Err(Error::BadRequest(
                    "a quote needs an API key or a stamp to know who pays".into(),
                ))
            }
        };
        Ok(rules::quote(
            self.store.as_ref(),
            payer,
            action,
            crate::time::Timestamp::now(),
        )??)
    }

    pub fn post(&self, post_id: Uuid) -> Result<Post, Error> {
        self.store.post(post_id)?.ok_or(Error::NotFound("post"))
    }

    /// A page of posts, newest first, and the cursor of the next page when there may be one.
    fn posts(
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

    /// Spends through the mint, then bumps the generation before anyone is answered, so a
    /// client that posts and then reads sees its post.
    async fn spend(&self, stamps: Vec<StampRef>, spend_for: SpendFor) -> Result<Spend, Error> {
        let spend = self.mint.spend(stamps, spend_for).await?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(spend)
    }

    /// A page of posts (newest first, older than `before` when given), rendered by `render`
    /// from the posts and the cursor of the next page, or the cached rendering of the same
    /// page when no post or vote committed since.
    pub fn page(
        &self,
        before: Option<Uuid>,
        limit: usize,
        render: impl FnOnce(&[Post], Option<Uuid>) -> Result<bytes::Bytes, Error>,
    ) -> Result<bytes::Bytes, Error> {
        let key = (before, limit);
        // Read before the page, so a page is never cached as newer than it is. On a database
        // shared with other servers, their posts and votes count too: the generation is the
        // database's, read at every page.
        let generation = match self.store.board_generation()? {
            Some(shared) => shared,
            None => self.generation.load(Ordering::Acquire),
        };
        if let Some(page) = self.cached(key, generation) {
            return Ok(page);
        }
        let (posts, next_before) = self.posts(before, limit)?;
        let page = render(&posts, next_before)?;
        self.keep(key, generation, page.clone());
        Ok(page)
    }

    fn cached(&self, key: PageKey, generation: u64) -> Option<bytes::Bytes> {
        let cache = self.page_cache.lock().ok()?;
        cache
            .get(&key)
            .filter(|(at, _)| *at == generation)
            .map(|(_, page)| page.clone())
    }

    /// Keeps a page read at `generation`. The cache holds at most [`PAGE_CACHE_MAX`] pages
    /// and starts over when full.
    fn keep(&self, key: PageKey, generation: u64, page: bytes::Bytes) {
        if let Ok(mut cache) = self.page_cache.lock() {
            if cache.len() >= PAGE_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (generation, page));
        }
    }
}
