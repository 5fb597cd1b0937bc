//! Thin handlers: parse the request, call one service method, shape the answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::problem::{ApiJson, ApiOptionalJson, ApiPath, ApiQuery};
use crate::error::Error;
use crate::keys::public_key_text;
use crate::ledger::checkpoint;
use crate::service::App;
use crate::store::Post;

pub type AppState = Arc<App>;

/// The bearer token of the Authorization header, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn post_json(post: &Post) -> Value {
    json!({
        "post_id": post.post_id,
        "author": post.author,
        "body": post.body,
        "created_at": post.created_at.to_rfc3339(),
        "score": post.score,
        "ledger_index": post.ledger_index,
    })
}

pub async fn index() -> Html<&'static str> {
    Html(include_str!("../web/index.html"))
}

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn keys(State(service): State<AppState>) -> Json<Value> {
    let keys: Vec<Value> = service
        .mint
        .keyring()
        .keys()
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid.to_hex(),
                "alg": "Ed25519",
                "public_key": public_key_text(&k.verifying),
                "status": k.status.as_str(),
                "created_at": k.created_at.to_rfc3339(),
            })
        })
        .collect();
    Json(json!({ "keys": keys }))
}

#[derive(Deserialize, Default)]
pub struct CreateAccount {
    name: Option<String>,
}

pub async fn create_account(
    State(service): State<AppState>,
    ApiOptionalJson(request): ApiOptionalJson<CreateAccount>,
) -> Result<Response, Error> {
    // The body is optional: no body (or an empty one) creates an unnamed account.
    let request = request.unwrap_or_default();
    let (account_id, api_key) = service.mint.create_account(request.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"account_id": account_id, "api_key": api_key})),
    )
        .into_response())
}

pub async fn account(
    State(service): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Error> {
    let account = service.mint.authenticate(bearer(&headers))?;
    Ok(Json(json!({
        "account_id": account.account_id,
        "name": account.name,
        "balance": account.balance,
        "currency": service.mint.economy().currency,
        "stamps_purchased": account.stamps_purchased,
        "stamps_spent": account.stamps_spent,
    })))
}

#[derive(Deserialize)]
pub struct Credit {
    amount: u64,
    reference: String,
}

pub async fn credit(
    State(service): State<AppState>,
    headers: HeaderMap,
    ApiPath(account_id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<Credit>,
) -> Result<Json<Value>, Error> {
    service.mint.check_admin(bearer(&headers))?;
    let (balance, ledger_index) = service
        .mint
        .credit(account_id, request.amount, request.reference)
        .await?;
    Ok(Json(json!({
        "account_id": account_id,
        "balance": balance,
        "ledger_index": ledger_index,
    })))
}

pub async fn prices(State(service): State<AppState>) -> Json<Value> {
    let economy = service.mint.economy();
    Json(json!({
        "currency": economy.currency,
        "stamp_price": economy.stamp_price,
        "costs": {"post": economy.post_cost, "vote": economy.vote_cost},
    }))
}

#[derive(Deserialize)]
pub struct Purchase {
    count: u64,
}

pub async fn purchase(
    State(service): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<Purchase>,
) -> Result<Response, Error> {
    let account = service.mint.authenticate(bearer(&headers))?;
    let idempotency_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Error::BadRequest("Idempotency-Key must be visible ASCII".into()))?,
        ),
        None => None,
    };
    let purchase = service
        .mint
        .purchase(&account, request.count, idempotency_key)
        .await?;
    let r = &purchase.record;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "purchase_id": r.purchase_id,
            "count": r.count,
            "unit_price": r.unit_price,
            "total": r.total,
            "balance": r.balance,
            "ledger_index": r.ledger_index,
            "issued_at": r.issued_at.to_rfc3339(),
            "expires_at": r.expires_at.to_rfc3339(),
            "stamps": purchase.stamps,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct Verify {
    stamp: String,
}

pub async fn verify(
    State(service): State<AppState>,
    ApiJson(request): ApiJson<Verify>,
) -> Result<Json<Value>, Error> {
    let v = service.mint.verify(&request.stamp).await?;
    Ok(Json(json!({
        "valid": v.valid,
        "stamp_id": v.stamp_id,
        "kid": v.kid,
        "state": v.state,
        "issued_at": v.issued_at.map(|t| t.to_rfc3339()),
        "expires_at": v.expires_at.map(|t| t.to_rfc3339()),
        "code": v.code,
    })))
}

#[derive(Deserialize)]
pub struct Redeem {
    stamp: String,
    context: String,
}

pub async fn redeem(
    State(service): State<AppState>,
    ApiJson(request): ApiJson<Redeem>,
) -> Result<Response, Error> {
    let (stamp_id, spend) = service.mint.redeem(&request.stamp, request.context).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "stamp_id": stamp_id,
            "spent_at": spend.spent_at.to_rfc3339(),
            "ledger_index": spend.ledger_index,
        })),
    )
        .into_response())
}

pub async fn stamp(
    State(service): State<AppState>,
    ApiPath(stamp_id): ApiPath<Uuid>,
) -> Result<Json<Value>, Error> {
    let record = service.mint.stamp_status(stamp_id)?;
    let now = crate::time::Timestamp::now();
    let state = match (&record.spent, now >= record.expires_at) {
        (Some(_), _) => "spent",
        (None, true) => "expired",
        (None, false) => "unspent",
    };
    Ok(Json(json!({
        "stamp_id": record.stamp_id,
        "state": state,
        "kid": record.kid.to_hex(),
        "issued_at": record.issued_at.to_rfc3339(),
        "expires_at": record.expires_at.to_rfc3339(),
        "spent_at": record.spent.as_ref().map(|s| s.spent_at.to_rfc3339()),
        "spent_for": record.spent.as_ref().map(|s| s.spent_for.clone()),
        "ledger_index": record.spent.as_ref().map(|s| s.ledger_index),
    })))
}

#[derive(Deserialize)]
pub struct CreatePost {
    author: String,
    body: String,
    stamps: Vec<String>,
}

pub async fn create_post(
    State(service): State<AppState>,
    ApiJson(request): ApiJson<CreatePost>,
) -> Result<Response, Error> {
    let post = service
        .board
        .create_post(request.author, request.body, &request.stamps)
        .await?;
    Ok((StatusCode::CREATED, Json(post_json(&post))).into_response())
}

#[derive(Deserialize)]
pub struct ListPosts {
    limit: Option<usize>,
    before: Option<Uuid>,
}

pub async fn list_posts(
    State(service): State<AppState>,
    ApiQuery(query): ApiQuery<ListPosts>,
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
            serde_json::to_vec(&json!({
                "posts": posts.iter().map(post_json).collect::<Vec<_>>(),
                "next_before": next_before,
            }))
            .map(bytes::Bytes::from)
            .map_err(|e| Error::Internal(e.to_string()))
        })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], page).into_response())
}

pub async fn get_post(
    State(service): State<AppState>,
    ApiPath(post_id): ApiPath<Uuid>,
) -> Result<Json<Value>, Error> {
    Ok(Json(post_json(&service.board.post(post_id)?)))
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

#[derive(Deserialize)]
pub struct Vote {
    direction: Direction,
    stamps: Vec<String>,
}

pub async fn vote(
    State(service): State<AppState>,
    ApiPath(post_id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<Vote>,
) -> Result<Response, Error> {
    let spend = service
        .board
        .vote(
            post_id,
            matches!(request.direction, Direction::Up),
            &request.stamps,
        )
        .await?;
    let score = spend.post.map(|p| p.score).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "post_id": post_id,
            "score": score,
            "ledger_index": spend.ledger_index,
        })),
    )
        .into_response())
}

pub async fn ledger_checkpoint(State(service): State<AppState>) -> Result<Response, Error> {
    let note = service.log.checkpoint()?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

pub async fn ledger_key(State(service): State<AppState>) -> Json<Value> {
    let key = service.log.key();
    let public = key.signing.verifying_key();
    Json(json!({
        "origin": service.log.origin(),
        "name": key.name,
        "public_key": public_key_text(&public),
        "vkey": checkpoint::verifier_key(&key.name, &public),
    }))
}

#[derive(Deserialize)]
pub struct EntriesQuery {
    start: Option<u64>,
    limit: Option<u64>,
}

pub async fn ledger_entries(
    State(service): State<AppState>,
    ApiQuery(query): ApiQuery<EntriesQuery>,
) -> Result<Response, Error> {
    let limit = query.limit.unwrap_or(service.limits().ledger_page_max);
    if limit == 0 {
        return Err(Error::BadRequest("limit must be at least 1".into()));
    }
    let entries = service.log.entries(query.start.unwrap_or(0), limit)?;
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

fn hashes_json(hashes: &[tlog_tiles::Hash]) -> Json<Value> {
    Json(json!({
        "hashes": hashes.iter().map(|h| STANDARD.encode(h.0)).collect::<Vec<_>>(),
    }))
}

#[derive(Deserialize)]
pub struct InclusionQuery {
    index: u64,
    size: u64,
}

pub async fn inclusion_proof(
    State(service): State<AppState>,
    ApiQuery(query): ApiQuery<InclusionQuery>,
) -> Result<Json<Value>, Error> {
    Ok(hashes_json(
        &service.log.inclusion_proof(query.index, query.size)?,
    ))
}

#[derive(Deserialize)]
pub struct ConsistencyQuery {
    from: u64,
    to: u64,
}

pub async fn consistency_proof(
    State(service): State<AppState>,
    ApiQuery(query): ApiQuery<ConsistencyQuery>,
) -> Result<Json<Value>, Error> {
    Ok(hashes_json(
        &service.log.consistency_proof(query.from, query.to)?,
    ))
}

pub async fn audit(State(service): State<AppState>) -> Result<Json<Value>, Error> {
    let report = service.log.audit().await?;
    serde_json::to_value(report)
        .map(Json)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// C2SP tlog-tiles: hash tiles and entry bundles under `/tile/`, and the checkpoint at
/// `/checkpoint`, so existing transparency-log tools can read the ledger.
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
