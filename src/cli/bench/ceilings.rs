//! The in-process Ed25519 ceilings: `verify_strict`, `verify_batch` and `sign` on one core,
//! over real stamps. Spends are held against the verify rate. (The HTTP ceiling, `GET
//! /healthz` over the same stack, is measured as a workload.)

use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rand_core::OsRng;
use uuid::Uuid;

use crate::stamp::{self, Kid, Payload};

pub(super) struct Ceilings {
    /// `verify_strict` per second on one core.
    pub(super) verify_strict: f64,
    /// Signatures per second through `verify_batch` in batches of 64, on one core.
    pub(super) verify_batch: f64,
    /// Signatures made per second on one core.
    pub(super) sign: f64,
}

/// Runs `step` (which does some units of work and returns how many) until `time` has passed;
/// returns units per second.
fn per_second(
    time: Duration,
    mut step: impl FnMut() -> Result<u64, String>,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut units = 0u64;
    loop {
        units += step()?;
        let elapsed = start.elapsed();
        if elapsed >= time {
            return Ok(units as f64 / elapsed.as_secs_f64());
        }
    }
}

/// Measures the Ed25519 rates over real stamps (the same message layout the server verifies).
pub(super) fn ed25519_ceilings(time: Duration) -> Result<Ceilings, String> {
    const N: usize = 64;
    let signing = SigningKey::generate(&mut OsRng);
    let verifying: VerifyingKey = signing.verifying_key();
    let kid = Kid::of(&verifying);
    let payloads: Vec<Payload> = (0..N)
        .map(|_| Payload {
            kid,
            stamp_id: Uuid::new_v4(),
            issued_at: 1_700_000_000,
            expires_at: 1_800_000_000,
            value: stamp::VALUE_V1,
            holder: [0; 32],
        })
        .collect();
    let mut messages: Vec<Vec<u8>> = Vec::with_capacity(N);
    let mut signatures: Vec<Signature> = Vec::with_capacity(N);
    for payload in &payloads {
        let text = stamp::sign(payload, &signing);
        let decoded = stamp::decode(&text).map_err(|e| format!("own stamp: {e}"))?;
        let (message, signature) = decoded.signed_parts();
        messages.push(message);
        signatures.push(signature);
    }
    let keys = vec![verifying; N];

    let mut i = 0usize;
    let verify_strict = per_second(time, || {
        for _ in 0..16 {
            i = (i + 1) % N;
            verifying
                .verify_strict(&messages[i], &signatures[i])
                .map_err(|e| format!("verify_strict refused a good signature: {e}"))?;
        }
        Ok(16)
    })?;
    let refs: Vec<&[u8]> = messages.iter().map(|m| m.as_slice()).collect();
    let verify_batch = per_second(time, || {
        ed25519_dalek::verify_batch(&refs, &signatures, &keys)
            .map_err(|e| format!("verify_batch refused good signatures: {e}"))?;
        Ok(N as u64)
    })?;
    let mut j = 0usize;
    let sign = per_second(time, || {
        for _ in 0..16 {
            j = (j + 1) % N;
            std::hint::black_box(stamp::sign(&payloads[j], &signing));
        }
        Ok(16)
    })?;
    Ok(Ceilings {
        verify_strict,
        verify_batch,
        sign,
    })
}
