//! The bodies of the holds routes (`POST /v1/stamps/hold`, `/v1/holds/{hold_id}…`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Time;

/// `POST /v1/stamps/hold`: stamps held until captured, released or expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HoldRequest {
    /// 1 to 100 stamps.
    pub stamps: Vec<String>,
    /// What a capture spends them for (the redeem context), 1 to 512 bytes.
    pub context: String,
    /// 1 to 300 seconds; 30 when absent.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// The answer of a hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HoldResponse {
    /// A bearer capability: whoever knows it can capture or release the hold.
    pub hold_id: Uuid,
    /// The hold's end: `ttl_secs` from now, or its stamps' earliest expiry if sooner.
    pub expires_at: Time,
    pub count: u64,
}

/// The answer of a capture: the `spend` entry (action `redeem`) that spent the hold's stamps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CaptureResponse {
    pub ledger_index: u64,
    pub spent_at: Time,
}

/// What became of a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStateName {
    Held,
    Captured,
    Released,
    Expired,
}

/// `GET /v1/holds/{hold_id}`, and the answer of a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HoldStatusResponse {
    pub hold_id: Uuid,
    pub state: HoldStateName,
    pub count: u64,
    pub expires_at: Time,
}
