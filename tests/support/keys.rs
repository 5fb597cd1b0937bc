//! Key files and test keys, one way for every test binary: the issuer key files of a keys
//! directory, a copy of a keys directory, and the fixed issuer keys of store-level tests.
//!
//! Included by the test binaries that need it: `#[path = "../support/keys.rs"] mod keys_files;`
//! (a name that does not hide `pennypost::keys`).

// Every test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use pennypost::keys::public_key_text;
use pennypost::stamp::Kid;

/// The issuer key files (`stamp-…`) of keys directory `dir`, in no particular order.
pub fn stamp_key_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("keys dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("stamp-"))
        })
        .collect()
}

/// Copies the files of keys directory `from` into a new directory `to` (a keys directory is
/// flat); `std::fs::copy` keeps each file's mode, so the copies stay 0600.
pub fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for file in std::fs::read_dir(from).expect("read dir") {
        let file = file.expect("entry");
        std::fs::copy(file.path(), to.join(file.file_name())).expect("copy");
    }
}

/// Issuer key `seed` of the store-level tests (its secret key is `[seed; 32]`): its kid and its
/// public key as the ledger writes it.
pub fn issuer(seed: u8) -> (Kid, String) {
    let key = SigningKey::from_bytes(&[seed; 32]).verifying_key();
    (Kid::of(&key), public_key_text(&key))
}
