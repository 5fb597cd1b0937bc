//! Batch signature verification: stamps checked by requests that arrive together are verified
//! in one Ed25519 batch, which costs about half as much per signature as one `verify_strict`
//! each (see `docs/performance.md`).
//!
//! One verifier thread takes every waiting job (up to [`BATCH_MAX`]); a lone job is checked
//! with `verify_strict` at once, so a quiet server adds no latency. A batch that fails is
//! checked again one by one with `verify_strict`, so one bad stamp never fails its neighbours.
//!
//! Why a batch is as strict as `verify_strict` for stamps: batches use the cofactored equation,
//! which accepts more signatures than the cofactorless one only when the signature's nonce
//! point carries a small-order component chosen *at signing time*; only the issuer (us) signs.
//! Changing R after signing changes the hash the signature commits to, so it fails both checks.
//! A small-order key would let anyone forge inside a batch, so such a key never reaches one
//! ([`BatchVerifier::verify`] refuses it first, as `verify_strict` does).
//!
//! Each batch's size goes to the `pennypost_verify_batch_size` histogram (`crate::telemetry`).

use ed25519_dalek::{Signature, VerifyingKey};
use tokio::sync::{mpsc, oneshot};

/// Most signatures in one batch: larger batches gain little and delay their first member.
pub const BATCH_MAX: usize = 64;
/// Jobs waiting for the verifier before submitters wait for room.
pub const QUEUE_MAX: usize = 4096;

struct Job {
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
    reply: oneshot::Sender<bool>,
}

/// The handle request tasks use.
#[derive(Clone)]
pub struct BatchVerifier {
    queue: mpsc::Sender<Job>,
}

impl BatchVerifier {
    /// Starts the verifier thread; it ends when every handle is dropped.
    pub fn start() -> std::io::Result<BatchVerifier> {
        let (queue, jobs) = mpsc::channel(QUEUE_MAX);
        std::thread::Builder::new()
            .name("pennypost-verify".into())
            .spawn(move || run(jobs))?;
        Ok(BatchVerifier { queue })
    }

    /// Whether `signature` is a valid signature of `message` under `key`. A small-order key is
    /// refused here, as `verify_strict` refuses it: a batch would not (anyone can forge under
    /// such a key, and the forgery's terms vanish from the batch equation).
    pub async fn verify(&self, message: Vec<u8>, signature: Signature, key: VerifyingKey) -> bool {
        if key.is_weak() {
            return false;
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            message,
            signature,
            key,
            reply,
        };
        match self.queue.send(job).await {
            Ok(()) => answer.await.unwrap_or(false),
            // The verifier thread is gone (shutting down): check here instead.
            Err(mpsc::error::SendError(job)) => {
                job.key.verify_strict(&job.message, &job.signature).is_ok()
            }
        }
    }
}

fn run(mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(BATCH_MAX);
    let batch_size = metrics::histogram!(crate::telemetry::VERIFY_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < BATCH_MAX {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batch_size.record(batch.len() as f64);
        let all_valid = batch.len() > 1 && {
            let messages: Vec<&[u8]> = batch.iter().map(|j| j.message.as_slice()).collect();
            let signatures: Vec<Signature> = batch.iter().map(|j| j.signature).collect();
            let keys: Vec<VerifyingKey> = batch.iter().map(|j| j.key).collect();
            ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
        };
        for job in batch.drain(..) {
            let valid = all_valid || job.key.verify_strict(&job.message, &job.signature).is_ok();
            let _ = job.reply.send(valid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_find_the_one_bad_signature() {
        let verifier = BatchVerifier::start().expect("start");
        let key = SigningKey::from_bytes(&[1u8; 32]);
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let verifier = verifier.clone();
            let message = i.to_be_bytes().to_vec();
            let mut signature = key.sign(&message);
            if i % 37 == 5 {
                let mut bytes = signature.to_bytes();
                bytes[10] ^= 1;
                signature = Signature::from_bytes(&bytes);
            }
            let vk = key.verifying_key();
            tasks.push(tokio::spawn(async move {
                (i, verifier.verify(message, signature, vk).await)
            }));
        }
        for task in tasks {
            let (i, valid) = task.await.expect("join");
            assert_eq!(valid, i % 37 != 5, "signature {i}");
        }
    }

    /// Under a small-order key (the identity point), R = identity and s = 0 "sign" anything,
    /// and such a term vanishes from the batch equation: among good signatures it would pass a
    /// batch. It is refused alone and among others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_order_key_is_refused_in_a_batch_too() {
        let verifier = BatchVerifier::start().expect("start");
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).expect("the identity point decodes");
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity);
        let forged = Signature::from_bytes(&forged);
        let key = SigningKey::from_bytes(&[3u8; 32]);
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let verifier = verifier.clone();
            let message = i.to_be_bytes().to_vec();
            let (signature, vk) = if i % 10 == 3 {
                (forged, weak)
            } else {
                (key.sign(&message), key.verifying_key())
            };
            tasks.push(tokio::spawn(async move {
                (i, verifier.verify(message, signature, vk).await)
            }));
        }
        for task in tasks {
            let (i, valid) = task.await.expect("join");
            assert_eq!(valid, i % 10 != 3, "signature {i}");
        }
        // The forgery is one: the batch equation alone accepts it beside a good signature.
        let good = key.sign(b"m");
        assert!(ed25519_dalek::verify_batch(
            &[b"m".as_slice(), b"anything".as_slice()],
            &[good, forged],
            &[key.verifying_key(), weak]
        )
        .is_ok());
    }

    /// A signature whose scalar is not reduced (s + L) satisfies the same group equation as
    /// s, so only a check of the encoding refuses it: it must be refused inside a batch too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_non_canonical_signature_is_refused_in_a_batch_too() {
        // L, the order of the base point, little-endian.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let unreduced = |signature: Signature| {
            let mut bytes = signature.to_bytes();
            let mut carry = 0u16;
            for (i, l) in L.iter().enumerate() {
                let sum = u16::from(bytes[32 + i]) + u16::from(*l) + carry;
                bytes[32 + i] = (sum & 0xff) as u8;
                carry = sum >> 8;
            }
            // s < L < 2^253, so s + L < 2^254 fits: no carry out.
            (carry == 0).then(|| Signature::from_bytes(&bytes))
        };
        let verifier = BatchVerifier::start().expect("start");
        let key = SigningKey::from_bytes(&[4u8; 32]);
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let verifier = verifier.clone();
            let message = i.to_be_bytes().to_vec();
            let good = key.sign(&message);
            let signature = if i % 10 == 7 {
                unreduced(good).expect("fits")
            } else {
                good
            };
            let vk = key.verifying_key();
            tasks.push(tokio::spawn(async move {
                (i, verifier.verify(message, signature, vk).await)
            }));
        }
        for task in tasks {
            let (i, valid) = task.await.expect("join");
            assert_eq!(valid, i % 10 != 7, "signature {i}");
        }
    }

    #[tokio::test]
    async fn a_lone_signature_is_checked_strictly() {
        let verifier = BatchVerifier::start().expect("start");
        let key = SigningKey::from_bytes(&[2u8; 32]);
        let signature = key.sign(b"m");
        assert!(
            verifier
                .verify(b"m".to_vec(), signature, key.verifying_key())
                .await
        );
        assert!(
            !verifier
                .verify(b"n".to_vec(), signature, key.verifying_key())
                .await
        );
    }
}
