//! Thin handlers of the payments routes: members pay (`/v1/payments…`), providers notify
//! (`/v1/payments/webhooks/…`, with a body limit of their own), the test provider's pay page
//! (`/pay/{payment_id}`), operators list and settle (`/v1/admin/payments…`). Everything is
//! decided by `crate::service::Payments`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use uuid::Uuid;

use super::auth::{AccountAuth, AdminAuth, AuthJson};
use super::problem::{ApiOptionalJson, ApiPath, ApiQuery, RawBody};
use super::state::AppState;
use crate::api::{
    AdminPaymentsQuery, AdminPaymentsResponse, CreatePaymentRequest, PaymentProvider,
    PaymentProvidersResponse, PaymentResponse, PaymentStatusName, PaymentsPageResponse,
    PaymentsQuery, SettlePaymentRequest, WebhookResponse,
};
use crate::domain::{Payment, PaymentStatus};
use crate::error::Error;

/// Payments per page of `GET /v1/payments` when the query names no limit, and the most.
const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 100;
/// Payments of `GET /v1/admin/payments` when the query names no limit, and the most.
const ADMIN_LIST_DEFAULT: usize = 100;
const ADMIN_LIST_MAX: usize = 1000;

fn status_name(status: PaymentStatus) -> PaymentStatusName {
    match status {
        PaymentStatus::Pending => PaymentStatusName::Pending,
        PaymentStatus::Paid => PaymentStatusName::Paid,
        PaymentStatus::Expired => PaymentStatusName::Expired,
        PaymentStatus::Failed => PaymentStatusName::Failed,
        PaymentStatus::Refunded => PaymentStatusName::Refunded,
        PaymentStatus::Disputed => PaymentStatusName::Disputed,
    }
}

fn status_of(name: PaymentStatusName) -> PaymentStatus {
    match name {
        PaymentStatusName::Pending => PaymentStatus::Pending,
        PaymentStatusName::Paid => PaymentStatus::Paid,
        PaymentStatusName::Expired => PaymentStatus::Expired,
        PaymentStatusName::Failed => PaymentStatus::Failed,
        PaymentStatusName::Refunded => PaymentStatus::Refunded,
        PaymentStatusName::Disputed => PaymentStatus::Disputed,
    }
}

fn answer(service: &AppState, payment: &Payment) -> PaymentResponse {
    PaymentResponse {
        account_id: payment.account_id,
        amount: payment.amount,
        created_at: payment.created_at.into(),
        credited_ledger_index: payment.credited_ledger_index,
        currency: payment.currency.clone(),
        expires_at: payment.expires_at.into(),
        pay_url: payment.pay_url.clone(),
        payment_id: payment.payment_id,
        provider: payment.provider.clone(),
        status: status_name(payment.status),
        test_mode: service.payments.test_mode(&payment.provider),
        updated_at: payment.updated_at.into(),
    }
}

#[utoipa::path(get, path = "/v1/payments/providers", tag = "payments",
    responses((status = 200, description = "The enabled payment providers (none: the server takes no payments).", body = PaymentProvidersResponse)))]
pub async fn providers(State(service): State<AppState>) -> Json<PaymentProvidersResponse> {
    Json(PaymentProvidersResponse {
        providers: service
            .payments
            .providers()
            .into_iter()
            .map(|p| PaymentProvider {
                currency: p.currency,
                max: p.max,
                min: p.min,
                provider: p.provider.to_string(),
                test_mode: p.test_mode,
            })
            .collect(),
    })
}

#[utoipa::path(post, path = "/v1/payments", tag = "payments", security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 bytes of printable ASCII, one header: a retry with the same key, provider and amount answers the first payment again.")),
    request_body = CreatePaymentRequest,
    responses(
        (status = 201, description = "Created at the provider, pending: the member pays at `pay_url` (or the first answer again, with `Idempotent-Replayed: true`, for a replayed Idempotency-Key, whatever the payment became since).", body = PaymentResponse),
        (status = 400, description = "`bad_request`: a provider not enabled, an amount out of bounds or not an integer, a malformed body, a bad Idempotency-Key."),
        (status = 401, description = "`unauthorized`: the API key is missing or unknown."),
        (status = 409, description = "`idempotency_conflict`: the Idempotency-Key was used for another payment."),
        (status = 413, description = "`payload_too_large`"),
        (status = 429, description = "`rate_limited`: too many purchases and payments from this client."),
        (status = 503, description = "`service_unavailable`: the provider's API cannot be reached or failed; nothing was recorded."),
    ))]
pub async fn create(
    State(service): State<AppState>,
    headers: HeaderMap,
    AuthJson(AccountAuth(account), request): AuthJson<AccountAuth, CreatePaymentRequest>,
) -> Result<Response, Error> {
    let idempotency_key = super::routes::idempotency_key(&headers)?;
    let (payment, replayed) = service
        .payments
        .create(&account, &request.provider, request.amount, idempotency_key)
        .await?;
    // A replay's payment is its first answer (`Payment::as_created`), marked as a replay;
    // `GET /v1/payments/{id}` says where the payment stands now.
    let body = (StatusCode::CREATED, Json(answer(&service, &payment)));
    Ok(super::routes::replayable(replayed, body))
}

#[utoipa::path(get, path = "/v1/payments/{payment_id}", tag = "payments", security(("api_key" = [])),
    params(("payment_id" = Uuid, Path, description = "The payment's id.")),
    responses(
        (status = 200, description = "The payment; a pending one is asked about at the provider first (at most every 10 s), and credited if paid.", body = PaymentResponse),
        (status = 400, description = "`bad_request`: the id is not a UUID."),
        (status = 401, description = "`unauthorized`: the API key is missing or unknown."),
        (status = 404, description = "`not_found`: no payment of this account has this id."),
    ))]
pub async fn get(
    State(service): State<AppState>,
    AccountAuth(account): AccountAuth,
    ApiPath(payment_id): ApiPath<Uuid>,
) -> Result<Json<PaymentResponse>, Error> {
    let payment = service.payments.get(&account, payment_id).await?;
    Ok(Json(answer(&service, &payment)))
}

#[utoipa::path(get, path = "/v1/payments", tag = "payments", security(("api_key" = [])), params(PaymentsQuery),
    responses(
        (status = 200, description = "A page of the caller's payments, newest first.", body = PaymentsPageResponse),
        (status = 400, description = "`bad_request`: limit out of 1 to 100, a before that names no payment of the caller's."),
        (status = 401, description = "`unauthorized`: the API key is missing or unknown."),
    ))]
pub async fn list(
    State(service): State<AppState>,
    AccountAuth(account): AccountAuth,
    ApiQuery(query): ApiQuery<PaymentsQuery>,
) -> Result<Json<PaymentsPageResponse>, Error> {
    let limit = query.limit.unwrap_or(PAGE_DEFAULT);
    if limit == 0 || limit > PAGE_MAX {
        return Err(Error::BadRequest(format!("limit must be 1 to {PAGE_MAX}")));
    }
    let (page, next_before) = service.payments.list(&account, query.before, limit)?;
    Ok(Json(PaymentsPageResponse {
        next_before,
        payments: page.iter().map(|p| answer(&service, p)).collect(),
    }))
}

async fn webhook(
    service: &AppState,
    provider: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Json<WebhookResponse>, Error> {
    let effect = service.payments.webhook(provider, headers, body).await?;
    Ok(Json(WebhookResponse {
        effect: effect.as_str().to_string(),
    }))
}

#[utoipa::path(post, path = "/v1/payments/webhooks/stripe", tag = "payments",
    request_body(content = String, description = "A Stripe event, signed in `Stripe-Signature`; up to `--webhook-body-max-bytes` (1 MiB).", content_type = "application/json"),
    responses(
        (status = 200, description = "Verified, confirmed with Stripe's API and done (durable); or an event not acted on, or about no payment of this server's.", body = WebhookResponse),
        (status = 400, description = "`invalid_webhook_signature`: the signature is missing, malformed, older than 300 s or wrong; `bad_request`: a signed body that is no event. Nothing done."),
        (status = 404, description = "`not_found`: Stripe is not enabled here."),
        (status = 413, description = "`payload_too_large`: over `--webhook-body-max-bytes`."),
        (status = 503, description = "`service_unavailable`: Stripe's API could not confirm it now; Stripe retries."),
    ))]
pub async fn stripe_webhook(
    State(service): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<WebhookResponse>, Error> {
    webhook(&service, crate::payments::stripe::NAME, &headers, &body).await
}

#[utoipa::path(post, path = "/v1/payments/webhooks/btcpay", tag = "payments",
    request_body(content = String, description = "A BTCPay Server event, signed in `BTCPay-Sig`; up to `--webhook-body-max-bytes` (1 MiB).", content_type = "application/json"),
    responses(
        (status = 200, description = "Verified, confirmed with BTCPay's API and done (durable); or an event not acted on, or about no payment of this server's.", body = WebhookResponse),
        (status = 400, description = "`invalid_webhook_signature`: the signature is missing, malformed or wrong; `bad_request`: a signed body that is no event. Nothing done."),
        (status = 404, description = "`not_found`: BTCPay is not enabled here."),
        (status = 413, description = "`payload_too_large`: over `--webhook-body-max-bytes`."),
        (status = 503, description = "`service_unavailable`: BTCPay's API could not confirm it now; BTCPay redelivers."),
    ))]
pub async fn btcpay_webhook(
    State(service): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<WebhookResponse>, Error> {
    webhook(&service, crate::payments::btcpay::NAME, &headers, &body).await
}

/// Text for HTML: `&`, `<`, `>` and quotes escaped.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[utoipa::path(get, path = "/pay/{payment_id}", tag = "payments",
    params(("payment_id" = Uuid, Path, description = "A test payment's id.")),
    responses(
        (status = 200, description = "The test provider's pay page: a \"Pay (test mode)\" button.", content_type = "text/html", body = String),
        (status = 400, description = "`bad_request`: the id is not a UUID."),
        (status = 404, description = "`not_found`: no test payment has this id (or the test provider is not enabled)."),
    ))]
pub async fn pay_page(
    State(service): State<AppState>,
    ApiPath(payment_id): ApiPath<Uuid>,
) -> Result<Html<String>, Error> {
    let payment = service
        .payments
        .test_payment(payment_id)?
        .ok_or(Error::NotFound("payment"))?;
    let currency = html_text(&payment.currency);
    let state = match payment.status {
        PaymentStatus::Pending => format!(
            "<form method=\"post\" action=\"/pay/{payment_id}\">\
             <button type=\"submit\">Pay (test mode)</button></form>"
        ),
        status => format!(
            "<p>This payment is {}. <a href=\"/?payment={payment_id}\">Back to the board</a></p>",
            status.as_str()
        ),
    };
    Ok(Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Pay (test mode) · pennypost</title></head><body>\
         <h1>Test mode</h1>\
         <p>This is the test payment provider: <strong>no money moves</strong>. \
         The button credits {amount} {currency} to the account at once, marked <code>test</code> \
         in the ledger.</p>{state}</body></html>\n",
        amount = payment.amount,
    )))
}

#[utoipa::path(post, path = "/pay/{payment_id}", tag = "payments",
    params(("payment_id" = Uuid, Path, description = "A test payment's id.")),
    responses(
        (status = 303, description = "Settled and credited (test mode); sent back to the board, `/?payment=<id>`."),
        (status = 400, description = "`bad_request`: the id is not a UUID."),
        (status = 404, description = "`not_found`: no test payment has this id (or the test provider is not enabled)."),
        (status = 503, description = "`service_unavailable`"),
    ))]
pub async fn pay(
    State(service): State<AppState>,
    ApiPath(payment_id): ApiPath<Uuid>,
) -> Result<Response, Error> {
    let payment = service.payments.settle_test(payment_id).await?;
    Ok((
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            format!("/?payment={}", payment.payment_id),
        )],
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/admin/payments", tag = "admin", security(("admin_token" = [])), params(AdminPaymentsQuery),
    responses(
        (status = 200, description = "Payments in the status asked (pending by default), newest first.", body = AdminPaymentsResponse),
        (status = 400, description = "`bad_request`: an unknown status, limit out of 1 to 1000."),
        (status = 401, description = "`unauthorized`: the admin token is missing or wrong."),
    ))]
pub async fn admin_list(
    State(service): State<AppState>,
    _admin: AdminAuth,
    ApiQuery(query): ApiQuery<AdminPaymentsQuery>,
) -> Result<Json<AdminPaymentsResponse>, Error> {
    let limit = query.limit.unwrap_or(ADMIN_LIST_DEFAULT);
    if limit == 0 || limit > ADMIN_LIST_MAX {
        return Err(Error::BadRequest(format!(
            "limit must be 1 to {ADMIN_LIST_MAX}"
        )));
    }
    let status = status_of(query.status.unwrap_or(PaymentStatusName::Pending));
    let payments = service.payments.with_status(status, limit)?;
    Ok(Json(AdminPaymentsResponse {
        payments: payments.iter().map(|p| answer(&service, p)).collect(),
    }))
}

#[utoipa::path(post, path = "/v1/admin/payments/{payment_id}/settle", tag = "admin", security(("admin_token" = [])),
    params(("payment_id" = Uuid, Path, description = "The payment.")),
    request_body(content = Option<SettlePaymentRequest>, description = "Optional: no body asks the provider once more."),
    responses(
        (status = 200, description = "The payment after: credited if the provider confirmed it (or with `force`), under the provider's own reference.", body = PaymentResponse),
        (status = 400, description = "`bad_request`: `force` without a note, a provider no longer enabled (use `force`), a malformed body."),
        (status = 401, description = "`unauthorized`: the admin token is missing or wrong."),
        (status = 404, description = "`not_found`: no such payment."),
        (status = 503, description = "`service_unavailable`: the provider's API could not be asked."),
    ))]
pub async fn admin_settle(
    State(service): State<AppState>,
    _admin: AdminAuth,
    ApiPath(payment_id): ApiPath<Uuid>,
    ApiOptionalJson(request): ApiOptionalJson<SettlePaymentRequest>,
) -> Result<Json<PaymentResponse>, Error> {
    let request = request.unwrap_or_default();
    let payment = service
        .payments
        .settle(payment_id, request.force, request.note.as_deref())
        .await?;
    Ok(Json(answer(&service, &payment)))
}
