//! Thin handlers: parse the request, call one service method, shape the answer.
//!
//! Bodies are the types of `crate::api`, parsed by our own extractors (`problem`) and
//! answered with `Json`; callers are the extractors of `auth`.
//!
//! Each handler carries its `#[utoipa::path]`: its route, parameters, body and answers, from
//! which `GET /openapi.json` is generated (`super::openapi`). Error answers name their codes
//! in backticks; `super::openapi` gives every 4xx and 5xx the problem+json body, and every
//! route the answers any route can give (405, 408, 429, 500).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use uuid::Uuid;

use super::auth::{AccountAuth, AdminAuth, AuthJson, MaybeAccount};
use super::problem::{ApiJson, ApiOptionalJson, ApiPath, ApiQuery};
use crate::api::{
    self, AccountResponse, CaptureResponse, ConsistencyProofQuery, Costs, CreateAccountRequest,
    CreateAccountResponse, CreatePostRequest, CreditRequest, CreditResponse, Direction,
    EntriesQuery, HealthResponse, HoldRequest, HoldResponse, HoldStateName, HoldStatusResponse,
    InclusionProofQuery, KeyInfo, KeysResponse, LedgerKeyResponse, PolicyInfo, PostsPageResponse,
    PostsQuery, PricesResponse, ProofResponse, PurchaseRequest, PurchaseResponse, QuoteRequest,
    QuoteResponse, RedeemRequest, RedeemResponse, StampState, StampStatusResponse, VerifyRequest,
    VerifyResponse, VoteRequest, VoteResponse,
};
use crate::api::{BackupRequest, BackupResponse, DebitRequest, DebitResponse, RevokedStamps};
use crate::domain::{CreditSource, DebitReason, Post};
use crate::error::Error;
use crate::keys::{public_key_text, KeyStatus};
use crate::ledger::checkpoint;
use crate::rules::QuoteAction;
use crate::time::Timestamp;

use super::state::AppState;

fn post_answer(post: &Post) -> api::Post {
    api::Post {
        author: post.author.clone(),
        body: post.body.clone(),
        cost: post.cost,
        created_at: post.created_at.into(),
        ledger_index: post.ledger_index,
        post_id: post.post_id,
        refunded: post.refunded,
        score: post.score,
        verified: post.verified,
        voters: post.voters,
        votes_down: post.votes_down,
        votes_up: post.votes_up,
    }
}

#[utoipa::path(get, path = "/", tag = "board",
    responses((status = 200, description = "The board and stamp wallet web page.", content_type = "text/html", body = String)))]
pub async fn index() -> Html<&'static str> {
    Html(include_str!("../web/index.html"))
}

/// The web page's script: the wallet shared with the gate's script (`web/wallet.js`), then the
/// page's own: the board, the ledger panel and "Add money" (`web/board.js`, `web/ledger.js`,
/// `web/money.js`: declarations only), and `web/app.js`, which wires them up. Built into the
/// binary with the page, so the two always match;
/// `no-cache` makes a browser ask again after an upgrade rather than run an older script.
#[utoipa::path(get, path = "/app.js", tag = "board",
    responses((status = 200, description = "The web page's script.", content_type = "text/javascript", body = String)))]
pub async fn app_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        concat!(
            include_str!("../web/wallet.js"),
            include_str!("../web/board.js"),
            include_str!("../web/ledger.js"),
            include_str!("../web/money.js"),
            include_str!("../web/app.js")
        ),
    )
        .into_response()
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process serves HTTP.", body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/v1/keys", tag = "stamps",
    responses((status = 200, description = "Every issuer key the ledger published.", body = KeysResponse)))]
pub async fn keys(State(service): State<AppState>) -> Json<KeysResponse> {
    let keys = service
        .mint
        .keyring()
        .keys()
        .iter()
        .map(|k| KeyInfo {
            alg: "Ed25519".into(),
            created_at: k.created_at.into(),
            kid: k.kid.to_hex(),
            public_key: public_key_text(&k.verifying),
            status: match k.status {
                KeyStatus::Active => api::KeyStatus::Active,
                KeyStatus::Retired => api::KeyStatus::Retired,
            },
        })
        .collect();
    Json(KeysResponse { keys })
}

#[utoipa::path(post, path = "/v1/accounts", tag = "accounts",
    request_body(content = Option<CreateAccountRequest>, description = "Optional: no body makes an unnamed account."),
    responses(
        (status = 201, description = "Created; the API key is shown this once.", body = CreateAccountResponse),
        (status = 400, description = "`bad_request`: a name empty or too long, malformed JSON, a wrong content type."),
        (status = 409, description = "`name_taken`: an account with that name exists."),
        (status = 413, description = "`payload_too_large`"),
        (status = 429, description = "`rate_limited`: too many account creations from this client."),
        (status = 503, description = "`service_unavailable`: the writer stopped after a storage failure."),
    ))]
pub async fn create_account(
    State(service): State<AppState>,
    ApiOptionalJson(request): ApiOptionalJson<CreateAccountRequest>,
) -> Result<Response, Error> {
    // The body is optional: no body (or an empty one) creates an unnamed account.
    let request = request.unwrap_or_default();
    let (account_id, api_key) = service.mint.create_account(request.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreateAccountResponse {
            account_id,
            api_key,
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/account", tag = "accounts", security(("api_key" = [])),
    responses(
        (status = 200, description = "The caller's account.", body = AccountResponse),
        (status = 401, description = "`unauthorized`: the API key is missing or unknown."),
    ))]
pub async fn account(
    State(service): State<AppState>,
    AccountAuth(account): AccountAuth,
) -> Json<AccountResponse> {
    let balance = account.signed_balance();
    Json(AccountResponse {
        account_id: account.account_id,
        name: account.name,
        balance,
        currency: service.mint.economy().policy.currency.clone(),
        refunds_total: account.refunds_total,
        stamps_purchased: account.stamps_purchased,
        stamps_spent: account.stamps_spent,
    })
}

#[utoipa::path(post, path = "/v1/admin/accounts/{account_id}/credit", tag = "admin",
    security(("admin_token" = [])),
    params(("account_id" = Uuid, Path, description = "The account to credit.")),
    request_body = CreditRequest,
    responses(
        (status = 200, description = "Credited (or the first answer again, for the same reference, with the header `Idempotent-Replayed: true`).", body = CreditResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` when the reference was credited before and this request credited nothing; absent otherwise."))),
        (status = 400, description = "`bad_request`: a malformed body or id, an amount out of range, a bad reference, a balance that would overflow. Also a reference beginning `stripe:`, `btcpay:` or `test:`, which are the payment providers'."),
        (status = 401, description = "`unauthorized`: the admin token is missing or wrong."),
        (status = 404, description = "`not_found`: no such account."),
        (status = 409, description = "`idempotency_conflict`: the reference was used with another account or amount."),
        (status = 413, description = "`payload_too_large`"),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn credit(
    State(service): State<AppState>,
    ApiPath(account_id): ApiPath<Uuid>,
    AuthJson(AdminAuth, request): AuthJson<AdminAuth, CreditRequest>,
) -> Result<Response, Error> {
    let credited = service
        .mint
        .credit(
            account_id,
            request.amount,
            request.reference,
            CreditSource::Operator,
        )
        .await?;
    let body = Json(CreditResponse {
        account_id,
        balance: credited.balance,
        ledger_index: credited.ledger_index,
    });
    // The body of a replay is the first answer's, byte for byte; the header tells it apart.
    Ok(replayable(credited.replayed, body))
}

#[utoipa::path(post, path = "/v1/admin/accounts/{account_id}/debit", tag = "admin",
    security(("admin_token" = [])),
    params(("account_id" = Uuid, Path, description = "The account to debit.")),
    request_body = DebitRequest,
    responses(
        (status = 200, description = "Debited as a correction (or the first answer again, for the same reference, with the header `Idempotent-Replayed: true`). A debit that leaves the balance below zero revokes the account's unspent, unexpired stamps, latest first, until the balance is at least zero (`revoked`); what they do not cover stays a debt.", body = DebitResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` when the reference was debited before and this request debited nothing; absent otherwise."))),
        (status = 400, description = "`bad_request`: a malformed body or id, an amount out of range, a bad reference, a debt that would overflow. Also a reference beginning `stripe:`, `btcpay:` or `test:`, which are the payment providers'."),
        (status = 401, description = "`unauthorized`: the admin token is missing or wrong."),
        (status = 404, description = "`not_found`: no such account."),
        (status = 409, description = "`idempotency_conflict`: the reference was used by a credit, or by a debit of another account or amount."),
        (status = 413, description = "`payload_too_large`"),
        (status = 422, description = "`debit_too_large`: the debit would revoke more than 1,600 stamps (or look through more than 1,000 unexpired purchases) at once; nothing was debited, smaller debits go through."),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn debit(
    State(service): State<AppState>,
    ApiPath(account_id): ApiPath<Uuid>,
    AuthJson(AdminAuth, request): AuthJson<AdminAuth, DebitRequest>,
) -> Result<Response, Error> {
    let debited = service
        .mint
        .debit(
            account_id,
            request.amount,
            request.reference,
            CreditSource::Operator,
            DebitReason::Correction,
        )
        .await?;
    let body = Json(DebitResponse {
        account_id,
        balance: debited.balance,
        ledger_index: debited.ledger_index,
        revoked: debited.revoked.map(|r| RevokedStamps {
            amount: r.amount,
            ledger_index: r.ledger_index,
            stamps: r.stamps,
        }),
    });
    Ok(replayable(debited.replayed, body))
}

/// An answer marked `Idempotent-Replayed: true` when it is a replay's: the body is the first
/// answer's either way.
pub fn replayable(replayed: bool, answer: impl IntoResponse) -> Response {
    if replayed {
        ([(IDEMPOTENT_REPLAYED, "true")], answer).into_response()
    } else {
        answer.into_response()
    }
}

/// The `Idempotency-Key` header of a purchase or a payment, if any: ASCII (its length is the
/// service's to check). One key names one request: two headers would leave it unsaid which one
/// a retry meant, so they are refused rather than one of them taken.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let mut keys = headers.get_all("idempotency-key").iter();
    let Some(key) = keys.next() else {
        return Ok(None);
    };
    if keys.next().is_some() {
        return Err(Error::BadRequest(
            "give one Idempotency-Key header, not several".into(),
        ));
    }
    key.to_str()
        .map(Some)
        .map_err(|_| Error::BadRequest("Idempotency-Key must be visible ASCII".into()))
}

/// The header of an answer given again for a request already carried out (a credit under a
/// reference credited before), named as Stripe's API names it.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

#[utoipa::path(get, path = "/v1/prices", tag = "stamps",
    responses((status = 200, description = "The stamp price, base costs and the policy in force.", body = PricesResponse)))]
pub async fn prices(State(service): State<AppState>) -> Json<PricesResponse> {
    let policy = &service.mint.economy().policy;
    Json(PricesResponse {
        costs: Costs {
            post: usize::try_from(policy.post_cost).unwrap_or(usize::MAX),
            vote: usize::try_from(policy.vote_cost).unwrap_or(usize::MAX),
        },
        currency: policy.currency.clone(),
        policy: PolicyInfo {
            post_cost: policy.post_cost,
            refund_voters: policy.refund_voters,
            repeat_factor: policy.repeat_factor,
            repeat_window_secs: policy.repeat_window_secs,
            stamp_price: policy.stamp_price,
            vote_cost: policy.vote_cost,
            vote_pricing: policy.vote_pricing.as_str().to_string(),
        },
        stamp_price: policy.stamp_price,
    })
}

/// `POST /v1/quote`: what a post or vote would cost its payer now.
#[utoipa::path(post, path = "/v1/quote", tag = "board", security((), ("api_key" = [])),
    request_body = QuoteRequest,
    responses(
        (status = 200, description = "What the action would cost its payer now.", body = QuoteResponse),
        (status = 400, description = "`bad_request`: neither an API key nor a stamp; a post_id missing or extra."),
        (status = 401, description = "`unauthorized`: the API key sent is wrong."),
        (status = 404, description = "`not_found`: no such post to vote on."),
        (status = 413, description = "`payload_too_large`"),
        (status = 422, description = "`invalid_stamp`, `unknown_key`, `bad_signature`, `stamp_expired`: the stamp given."),
    ))]
pub async fn quote(
    State(service): State<AppState>,
    AuthJson(MaybeAccount(account), request): AuthJson<MaybeAccount, QuoteRequest>,
) -> Result<Json<QuoteResponse>, Error> {
    let action = match (request.action, request.post_id) {
        (api::QuoteAction::Post, None) => QuoteAction::Post,
        (api::QuoteAction::Vote, Some(post_id)) => QuoteAction::Vote { post_id },
        (api::QuoteAction::Post, Some(_)) => {
            return Err(Error::BadRequest("a post quote takes no post_id".into()))
        }
        (api::QuoteAction::Vote, None) => {
            return Err(Error::BadRequest("a vote quote needs the post_id".into()))
        }
    };
    let stamps = service
        .board
        .quote(action, account.as_ref(), request.stamp.as_deref())
        .await?;
    Ok(Json(QuoteResponse {
        action: request.action,
        stamps,
    }))
}

#[utoipa::path(post, path = "/v1/stamps/purchase", tag = "stamps", security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 bytes of printable ASCII, one header: a retry with the same key and count answers the first purchase again.")),
    request_body = PurchaseRequest,
    responses(
        (status = 201, description = "The stamps sold (or the first answer again, for a replayed Idempotency-Key).", body = PurchaseResponse),
        (status = 400, description = "`bad_request`: a malformed body, count out of 1 to 1000, a bad Idempotency-Key or more than one."),
        (status = 401, description = "`unauthorized`: the API key is missing or unknown."),
        (status = 402, description = "`insufficient_funds`: the balance is below the price."),
        (status = 409, description = "`idempotency_conflict`: the Idempotency-Key was used with another count."),
        (status = 413, description = "`payload_too_large`"),
        (status = 429, description = "`rate_limited`: too many purchases from this client."),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn purchase(
    State(service): State<AppState>,
    headers: HeaderMap,
    AuthJson(AccountAuth(account), request): AuthJson<AccountAuth, PurchaseRequest>,
) -> Result<Response, Error> {
    let idempotency_key = idempotency_key(&headers)?;
    let purchase = service
        .mint
        .purchase(&account, request.count, idempotency_key)
        .await?;
    let r = purchase.record;
    Ok((
        StatusCode::CREATED,
        Json(PurchaseResponse {
            balance: r.balance,
            count: r.count,
            expires_at: r.expires_at.into(),
            issued_at: r.issued_at.into(),
            ledger_index: r.ledger_index,
            purchase_id: r.purchase_id,
            stamps: purchase.stamps,
            total: r.total,
            unit_price: r.unit_price,
        }),
    )
        .into_response())
}

#[utoipa::path(post, path = "/v1/stamps/verify", tag = "stamps",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Whether the stamp is good, and why not (any string gets 200).", body = VerifyResponse),
        (status = 400, description = "`bad_request`: a malformed body."),
        (status = 413, description = "`payload_too_large`"),
    ))]
pub async fn verify(
    State(service): State<AppState>,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Result<Json<VerifyResponse>, Error> {
    let v = service.mint.verify(&request.stamp).await?;
    Ok(Json(VerifyResponse {
        code: v.code,
        expires_at: v.expires_at.map(Into::into),
        issued_at: v.issued_at.map(Into::into),
        kid: v.kid,
        stamp_id: v.stamp_id,
        state: v.state,
        valid: v.valid,
    }))
}

#[utoipa::path(post, path = "/v1/stamps/redeem", tag = "stamps",
    request_body = RedeemRequest,
    responses(
        (status = 201, description = "The stamp is spent.", body = RedeemResponse),
        (status = 400, description = "`bad_request`: a context empty or over 512 bytes, a malformed body."),
        (status = 409, description = "`stamp_already_spent`"),
        (status = 413, description = "`payload_too_large`"),
        (status = 422, description = "`invalid_stamp` (also: not sold by this server), `unknown_key`, `bad_signature`, `stamp_expired`."),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn redeem(
    State(service): State<AppState>,
    ApiJson(request): ApiJson<RedeemRequest>,
) -> Result<Response, Error> {
    let (stamp_id, spend) = service.mint.redeem(&request.stamp, request.context).await?;
    Ok((
        StatusCode::CREATED,
        Json(RedeemResponse {
            ledger_index: spend.ledger_index,
            spent_at: spend.spent_at.into(),
            stamp_id,
        }),
    )
        .into_response())
}

/// A hold's ttl when the request names none (GATE.md: 30 s).
const HOLD_TTL_SECS_DEFAULT: u64 = 30;

#[utoipa::path(post, path = "/v1/stamps/hold", tag = "holds",
    request_body = HoldRequest,
    responses(
        (status = 201, description = "The stamps are held until `expires_at`; nothing is written to the ledger.", body = HoldResponse),
        (status = 400, description = "`bad_request`: a context empty or over 512 bytes, `ttl_secs` outside 1 to 300, no stamps or over 100, a stamp twice, a malformed body."),
        (status = 409, description = "`stamp_already_spent`, `stamp_held` (held by another live hold)."),
        (status = 413, description = "`payload_too_large`"),
        (status = 422, description = "`invalid_stamp` (also: not sold by this server), `unknown_key`, `bad_signature`, `stamp_expired`."),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn hold(
    State(service): State<AppState>,
    ApiJson(request): ApiJson<HoldRequest>,
) -> Result<Response, Error> {
    let ttl_secs = request.ttl_secs.unwrap_or(HOLD_TTL_SECS_DEFAULT);
    let held = service
        .mint
        .hold(&request.stamps, request.context, ttl_secs)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(HoldResponse {
            hold_id: held.hold_id,
            expires_at: held.expires_at.into(),
            count: held.count,
        }),
    )
        .into_response())
}

#[utoipa::path(post, path = "/v1/holds/{hold_id}/capture", tag = "holds",
    params(("hold_id" = Uuid, Path, description = "The hold's id, as the hold answered it.")),
    responses(
        (status = 200, description = "The hold's stamps are spent by one `spend` entry (action `redeem`, target SHA-256 of the hold's context). A second capture answers the same.", body = CaptureResponse),
        (status = 400, description = "`bad_request`: the id is not a UUID."),
        (status = 404, description = "`not_found`: no such hold."),
        (status = 409, description = "`hold_expired` (past its expiry, or released), `stamp_already_spent` (a stamp was spent meanwhile: the hold ends)."),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn capture_hold(
    State(service): State<AppState>,
    ApiPath(hold_id): ApiPath<Uuid>,
) -> Result<Json<CaptureResponse>, Error> {
    let (ledger_index, spent_at) = service.mint.capture(hold_id).await?;
    Ok(Json(CaptureResponse {
        ledger_index,
        spent_at: spent_at.into(),
    }))
}

#[utoipa::path(post, path = "/v1/holds/{hold_id}/release", tag = "holds",
    params(("hold_id" = Uuid, Path, description = "The hold's id, as the hold answered it.")),
    responses(
        (status = 200, description = "The stamps are spendable again at once. Releasing a released or expired hold answers the same.", body = HoldStatusResponse),
        (status = 400, description = "`bad_request`: the id is not a UUID."),
        (status = 404, description = "`not_found`: no such hold."),
        (status = 409, description = "`hold_captured`: the hold's stamps are spent."),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn release_hold(
    State(service): State<AppState>,
    ApiPath(hold_id): ApiPath<Uuid>,
) -> Result<Json<HoldStatusResponse>, Error> {
    let status = service.mint.release(hold_id).await?;
    Ok(Json(hold_status_response(status)))
}

#[utoipa::path(get, path = "/v1/holds/{hold_id}", tag = "holds",
    params(("hold_id" = Uuid, Path, description = "The hold's id, as the hold answered it.")),
    responses(
        (status = 200, description = "The hold's state.", body = HoldStatusResponse),
        (status = 400, description = "`bad_request`: the id is not a UUID."),
        (status = 404, description = "`not_found`: no such hold."),
    ))]
pub async fn get_hold(
    State(service): State<AppState>,
    ApiPath(hold_id): ApiPath<Uuid>,
) -> Result<Json<HoldStatusResponse>, Error> {
    Ok(Json(hold_status_response(
        service.mint.hold_status(hold_id)?,
    )))
}

fn hold_status_response(status: crate::service::HoldStatus) -> HoldStatusResponse {
    let state = match status.state {
        "captured" => HoldStateName::Captured,
        "released" => HoldStateName::Released,
        "expired" => HoldStateName::Expired,
        _ => HoldStateName::Held,
    };
    HoldStatusResponse {
        hold_id: status.hold_id,
        state,
        count: status.count,
        expires_at: status.expires_at.into(),
    }
}

#[utoipa::path(get, path = "/v1/stamps/{stamp_id}", tag = "stamps",
    params(("stamp_id" = Uuid, Path, description = "A stamp id.")),
    responses(
        (status = 200, description = "The stamp's state.", body = StampStatusResponse),
        (status = 400, description = "`bad_request`: the id is not a UUID."),
        (status = 404, description = "`not_found`: this server never sold a stamp with this id."),
    ))]
pub async fn stamp(
    State(service): State<AppState>,
    ApiPath(stamp_id): ApiPath<Uuid>,
) -> Result<Json<StampStatusResponse>, Error> {
    let record = service.mint.stamp_status(stamp_id)?;
    let expired = Timestamp::now() >= record.expires_at;
    let state = StampState::of(record.spent.is_some(), expired);
    let spent = record.spent;
    Ok(Json(StampStatusResponse {
        expires_at: record.expires_at.into(),
        issued_at: record.issued_at.into(),
        kid: record.kid.to_hex(),
        ledger_index: spent.as_ref().map(|s| s.ledger_index),
        spent_at: spent.as_ref().map(|s| s.spent_at.into()),
        spent_for: spent.map(|s| s.spent_for),
        stamp_id: record.stamp_id,
        state,
    }))
}

#[utoipa::path(post, path = "/v1/posts", tag = "board", security((), ("api_key" = [])),
    request_body = CreatePostRequest,
    responses(
        (status = 201, description = "The new post.", body = api::Post),
        (status = 400, description = "`bad_request`: a malformed body, a bad author or body, too many stamps, a stamp twice."),
        (status = 401, description = "`unauthorized`: the API key sent is wrong."),
        (status = 409, description = "`stamp_already_spent`"),
        (status = 413, description = "`payload_too_large`"),
        (status = 422, description = "`invalid_stamp`, `unknown_key`, `bad_signature`, `stamp_expired`, `mixed_payers`, `wrong_stamp_count` (the problem adds `required`)."),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn create_post(
    State(service): State<AppState>,
    AuthJson(MaybeAccount(account), request): AuthJson<MaybeAccount, CreatePostRequest>,
) -> Result<Response, Error> {
    let post = service
        .board
        .create_post(
            request.author,
            request.body,
            &request.stamps,
            account.as_ref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(post_answer(&post))).into_response())
}

#[utoipa::path(get, path = "/v1/posts", tag = "board", params(PostsQuery),
    responses(
        (status = 200, description = "A page of posts, newest first.", body = PostsPageResponse),
        (status = 400, description = "`bad_request`: limit out of 1 to 100, a bad query string, a before that names no post."),
    ))]
pub async fn list_posts(
    State(service): State<AppState>,
    ApiQuery(query): ApiQuery<PostsQuery>,
) -> Result<Response, Error> {
    let max = service.limits().posts_page_max;
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > max {
        return Err(Error::BadRequest(format!("limit must be 1 to {max}")));
    }
    // Pages are rendered once per board change: reads far outnumber posts and votes.
    let page = service
        .board
        .page(query.before, limit, |posts, next_before| {
            serde_json::to_vec(&PostsPageResponse {
                next_before,
                posts: posts.iter().map(post_answer).collect(),
            })
            .map(bytes::Bytes::from)
            .map_err(|e| Error::Internal(e.to_string()))
        })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], page).into_response())
}

#[utoipa::path(get, path = "/v1/posts/{post_id}", tag = "board",
    params(("post_id" = Uuid, Path, description = "A post id.")),
    responses(
        (status = 200, description = "The post.", body = api::Post),
        (status = 400, description = "`bad_request`: the id is not a UUID."),
        (status = 404, description = "`not_found`: no such post."),
    ))]
pub async fn get_post(
    State(service): State<AppState>,
    ApiPath(post_id): ApiPath<Uuid>,
) -> Result<Json<api::Post>, Error> {
    Ok(Json(post_answer(&service.board.post(post_id)?)))
}

#[utoipa::path(post, path = "/v1/posts/{post_id}/votes", tag = "board",
    params(("post_id" = Uuid, Path, description = "The post voted on.")),
    request_body = VoteRequest,
    responses(
        (status = 201, description = "The vote, and the post's score after it.", body = VoteResponse),
        (status = 400, description = "`bad_request`: a malformed body or id, too many stamps, a stamp twice, a score that would overflow."),
        (status = 404, description = "`not_found`: no such post."),
        (status = 409, description = "`stamp_already_spent`"),
        (status = 413, description = "`payload_too_large`"),
        (status = 422, description = "`invalid_stamp`, `unknown_key`, `bad_signature`, `stamp_expired`, `mixed_payers`, `wrong_stamp_count` (the problem adds `required`)."),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn vote(
    State(service): State<AppState>,
    ApiPath(post_id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<VoteRequest>,
) -> Result<Response, Error> {
    let spend = service
        .board
        .vote(post_id, request.direction == Direction::Up, &request.stamps)
        .await?;
    let score = spend.post.map(|p| p.score).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(VoteResponse {
            cost: spend.cost,
            ledger_index: spend.ledger_index,
            post_id,
            refund_ledger_index: spend.refund_ledger_index,
            score,
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/ledger/checkpoint", tag = "ledger",
    responses((status = 200, description = "The latest signed checkpoint, a C2SP signed note.", content_type = "text/plain; charset=utf-8", body = String)))]
pub async fn ledger_checkpoint(State(service): State<AppState>) -> Result<Response, Error> {
    let note = service.log.checkpoint()?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

#[utoipa::path(get, path = "/v1/ledger/key", tag = "ledger",
    responses((status = 200, description = "The key that signs checkpoints.", body = LedgerKeyResponse)))]
pub async fn ledger_key(State(service): State<AppState>) -> Json<LedgerKeyResponse> {
    let key = service.log.key();
    let public = key.signing.verifying_key();
    Json(LedgerKeyResponse {
        name: key.name.clone(),
        origin: service.log.origin().to_string(),
        public_key: public_key_text(&public),
        vkey: checkpoint::verifier_key(&key.name, &public),
    })
}

#[utoipa::path(get, path = "/v1/ledger/entries", tag = "ledger", params(EntriesQuery),
    responses(
        (status = 200, description = "One entry per line, exactly the bytes hashed into the log.", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "`bad_request`: start past the size, limit 0, `to` before `from`, `start` with `from` or `limit` with `to`, a parameter that is not a number."),
    ))]
pub async fn ledger_entries(
    State(service): State<AppState>,
    ApiQuery(query): ApiQuery<EntriesQuery>,
) -> Result<Response, Error> {
    let (start, limit) = entries_range(&query, service.limits().ledger_page_max)?;
    let entries = service.log.entries(start, limit)?;
    let mut body = Vec::with_capacity(entries.iter().map(|e| e.len() + 1).sum());
    for entry in entries {
        body.extend_from_slice(&entry);
        body.push(b'\n');
    }
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from(body),
    )
        .into_response())
}

/// The first index and the most entries of a `GET /v1/ledger/entries` query: `start` and
/// `limit`, or `from` and `to` as the proofs name a range (`to` exclusive). A query mixing the
/// two names for one thing is refused rather than one of them silently ignored.
fn entries_range(query: &EntriesQuery, page_max: u64) -> Result<(u64, u64), Error> {
    let start = match (query.start, query.from) {
        (Some(_), Some(_)) => {
            return Err(Error::BadRequest(
                "give start or from (the same thing), not both".into(),
            ))
        }
        (start, from) => start.or(from).unwrap_or(0),
    };
    let limit = match (query.limit, query.to) {
        (Some(_), Some(_)) => {
            return Err(Error::BadRequest(
                "give limit or to (the end of the range), not both".into(),
            ))
        }
        (Some(0), None) => return Err(Error::BadRequest("limit must be at least 1".into())),
        (Some(limit), None) => limit,
        (None, Some(to)) if to < start => {
            return Err(Error::BadRequest(format!("to {to} is before from {start}")))
        }
        // An empty range (`to` = `from`) is an empty page, not a refusal.
        (None, Some(to)) => (to - start).min(page_max),
        (None, None) => page_max,
    };
    Ok((start, limit))
}

fn proof_answer(hashes: &[tlog_tiles::Hash]) -> Json<ProofResponse> {
    Json(ProofResponse {
        hashes: hashes.iter().map(|h| STANDARD.encode(h.0)).collect(),
    })
}

#[utoipa::path(get, path = "/v1/ledger/proof/inclusion", tag = "ledger", params(InclusionProofQuery),
    responses(
        (status = 200, description = "An RFC 9162 inclusion proof.", body = ProofResponse),
        (status = 400, description = "`bad_request`: a parameter missing, not a number, or out of range."),
    ))]
pub async fn inclusion_proof(
    State(service): State<AppState>,
    ApiQuery(query): ApiQuery<InclusionProofQuery>,
) -> Result<Json<ProofResponse>, Error> {
    Ok(proof_answer(
        &service.log.inclusion_proof(query.index, query.size)?,
    ))
}

#[utoipa::path(get, path = "/v1/ledger/proof/consistency", tag = "ledger", params(ConsistencyProofQuery),
    responses(
        (status = 200, description = "An RFC 9162 consistency proof.", body = ProofResponse),
        (status = 400, description = "`bad_request`: a parameter missing, not a number, or out of range."),
    ))]
pub async fn consistency_proof(
    State(service): State<AppState>,
    ApiQuery(query): ApiQuery<ConsistencyProofQuery>,
) -> Result<Json<ProofResponse>, Error> {
    Ok(proof_answer(
        &service.log.consistency_proof(query.from, query.to)?,
    ))
}

/// `GET /v1/audit`: the server's own check, as an [`api::AuditResponse`].
#[utoipa::path(get, path = "/v1/audit", tag = "ledger",
    responses(
        (status = 200, description = "The server's own check of every durable entry.", body = api::AuditResponse),
        (status = 503, description = "`audit_catching_up`: the check is far behind after a start on a long log; Retry-After says when to ask again."),
    ))]
pub async fn audit(State(service): State<AppState>) -> Result<Json<api::AuditResponse>, Error> {
    Ok(Json(service.log.audit().await?.into()))
}

/// C2SP tlog-tiles: hash tiles and entry bundles under `/tile/`, and the checkpoint at
/// `/checkpoint`, so existing transparency-log tools can read the ledger.
#[utoipa::path(get, path = "/tile/{path}", tag = "ledger",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]` (a hash tile) or `entries/<N>[.p/<W>]` (an entry bundle).")),
    responses(
        (status = 200, description = "A C2SP tlog-tiles tile; it never changes.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "`not_found`: no such tile (yet)."),
    ))]
pub async fn tile(
    State(service): State<AppState>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Result<Response, Error> {
    let bytes = service.log.tile(&path)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            // The log only grows: a tile that exists never changes.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /v1/admin/backup`: a consistent copy of the store in a new directory on the server's
/// machine, taken between two batches of the writer.
#[utoipa::path(post, path = "/v1/admin/backup", tag = "admin", security(("admin_token" = [])),
    request_body = BackupRequest,
    responses(
        (status = 201, description = "The backup is written whole and durable.", body = BackupResponse),
        (status = 400, description = "`bad_request`: the path is relative, exists, or cannot be made; a malformed body."),
        (status = 401, description = "`unauthorized`: the admin token is missing or wrong."),
        (status = 409, description = "`backup_not_supported`: the store takes no backups through the server."),
        (status = 413, description = "`payload_too_large`"),
        (status = 503, description = "`service_unavailable`: the writer stopped after a storage failure."),
    ))]
pub async fn backup(
    State(service): State<AppState>,
    AuthJson(AdminAuth, request): AuthJson<AdminAuth, BackupRequest>,
) -> Result<Response, Error> {
    let backup = service.backups.take(&request.path).await?;
    Ok((
        StatusCode::CREATED,
        Json(BackupResponse {
            ledger_size: backup.ledger_size,
            path: backup.path.display().to_string(),
        }),
    )
        .into_response())
}
