//! `pennypost stamp inspect STAMP [--keys URL]`: decode a stamp, print what it says, and verify
//! its signature offline against a server's published keys.

use std::process::ExitCode;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::Args;
use ed25519_dalek::VerifyingKey;

use crate::api::ErrorCode;
use crate::stamp::{self, Kid};
use crate::time::Timestamp;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The stamp, `pp1.…`.
    pub stamp: String,
    /// A server base URL or the URL of its `/v1/keys` document.
    #[arg(long)]
    pub keys: Option<String>,
}

/// Fetches `/v1/keys` and returns (kid, key) pairs.
async fn fetch_keys(url: &str) -> Result<Vec<(Kid, VerifyingKey)>, String> {
    let url = if url.trim_end_matches('/').ends_with("/v1/keys") {
        url.to_string()
    } else {
        format!("{}/v1/keys", url.trim_end_matches('/'))
    };
    let doc: serde_json::Value = reqwest::get(&url)
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| format!("cannot fetch {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{url} is not a keys document: {e}"))?;
    let mut out = Vec::new();
    for key in doc["keys"].as_array().into_iter().flatten() {
        let Some(text) = key["public_key"].as_str() else {
            continue;
        };
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(text) else {
            continue;
        };
        let Ok(bytes): Result<[u8; 32], _> = bytes.try_into() else {
            continue;
        };
        let Ok(vk) = VerifyingKey::from_bytes(&bytes) else {
            continue;
        };
        // Trust the kid we compute, not the one the document claims.
        out.push((Kid::of(&vk), vk));
    }
    Ok(out)
}

pub fn main(args: InspectArgs) -> ExitCode {
    let decoded = match stamp::decode(args.stamp.trim()) {
        Ok(d) => d,
        Err(e) => {
            println!("invalid: {e} ({})", ErrorCode::from(&e));
            return ExitCode::from(1);
        }
    };
    let p = &decoded.payload;
    println!("stamp_id:   {}", p.stamp_id);
    println!("kid:        {}", p.kid);
    println!(
        "issued_at:  {}",
        Timestamp::from_unix(p.issued_at).to_rfc3339()
    );
    println!(
        "expires_at: {}",
        Timestamp::from_unix(p.expires_at).to_rfc3339()
    );
    println!("value:      {}", p.value);
    println!(
        "holder:     {}",
        if p.holder == [0; 32] {
            "unbound".to_string()
        } else {
            hex::encode(p.holder)
        }
    );
    let Some(url) = args.keys else {
        println!("signature:  not checked (pass --keys URL to verify)");
        return ExitCode::from(1);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let keys = match runtime.block_on(fetch_keys(&url)) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let lookup = |kid: &Kid| keys.iter().find(|(k, _)| k == kid).map(|(_, vk)| *vk);
    match decoded.verify(lookup, Timestamp::now().unix()) {
        Ok(()) => {
            println!("signature:  valid (key {})", p.kid);
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("signature:  {e} ({})", ErrorCode::from(&e));
            ExitCode::from(1)
        }
    }
}
