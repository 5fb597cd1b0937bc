//! Authentication as extractors: a handler that takes [`AccountAuth`] runs only for a caller
//! with a valid API key, one that takes [`AdminAuth`] only for the operator, and neither reads
//! the `Authorization` header itself.
//!
//! A refusal is 401 `unauthorized` like any other error answer; the rate limiter (`limit`)
//! counts every 401 as a failed authentication after the handler, so the extractors need no
//! part in it.
//!
//! The body is checked before the credentials (docs/api.md, "Authentication"): a route that
//! takes a JSON body and a caller takes [`AuthJson`], which reads and parses the body first,
//! so a malformed body is 400 or 413 whatever the token, and is not counted as a failed
//! authentication.
//!
//! Must not: keep or log tokens. The service compares them (as SHA-256, in constant time).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap};
use serde::de::DeserializeOwned;

use super::problem::ApiJson;
use super::state::AppState;
use crate::domain::Account;
use crate::error::Error;
use crate::service::App;

/// The bearer token of the Authorization header, if any. The scheme name is matched without
/// regard to case.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A caller that proves who it is with the bearer token.
pub trait Authenticate: Sized {
    /// Checks `token` (none when the request has no bearer token); 401 when it is wrong.
    fn authenticate(service: &App, token: Option<&str>) -> Result<Self, Error>;
}

/// The account whose API key the request carries.
pub struct AccountAuth(pub Account);

impl Authenticate for AccountAuth {
    fn authenticate(service: &App, token: Option<&str>) -> Result<Self, Error> {
        service.mint.authenticate(token).map(AccountAuth)
    }
}

impl FromRequestParts<AppState> for AccountAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Self::authenticate(state, bearer(&parts.headers))
    }
}

/// The account of the API key when the request carries one; `None` without a bearer token.
/// A token that is there but wrong is refused like any other (401).
pub struct MaybeAccount(pub Option<Account>);

impl Authenticate for MaybeAccount {
    fn authenticate(service: &App, token: Option<&str>) -> Result<Self, Error> {
        match token {
            None => Ok(MaybeAccount(None)),
            Some(token) => service
                .mint
                .authenticate(Some(token))
                .map(|a| MaybeAccount(Some(a))),
        }
    }
}

/// The operator: the request carries the admin token.
pub struct AdminAuth;

impl Authenticate for AdminAuth {
    fn authenticate(service: &App, token: Option<&str>) -> Result<Self, Error> {
        service.mint.check_admin(token).map(|()| AdminAuth)
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        Self::authenticate(state, bearer(&parts.headers))
    }
}

/// A caller `A` ([`AccountAuth`] or [`AdminAuth`]) and a JSON body `T`, the body checked first
/// (see the module comment). Refused as [`ApiJson`] refuses a body, then as `A` refuses a
/// caller.
pub struct AuthJson<A, T>(pub A, pub T);

impl<A, T> FromRequest<AppState> for AuthJson<A, T>
where
    A: Authenticate,
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        // Reading the body consumes the request, so the token is kept aside first.
        let token = bearer(req.headers()).map(str::to_owned);
        let ApiJson(body) = ApiJson::<T>::from_request(req, state).await?;
        let caller = A::authenticate(state, token.as_deref())?;
        Ok(AuthJson(caller, body))
    }
}
