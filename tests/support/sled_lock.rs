//! Waiting out sled's file lock: sled holds an exclusive lock on its database file while any
//! handle lives, and its flusher thread may hold one for a moment after the last handle was
//! dropped, so a test that reopens a store retries an open that fails on that lock.
//!
//! Which failures are the lock: sled 0.34.7 turns the `WouldBlock` of its `try_lock_exclusive`
//! into an `io::Error` of kind `Other` whose message is `could not acquire lock on "…": Os {
//! …, kind: WouldBlock, … }` (`sled/src/config.rs`), and `SledStore::open` keeps that message
//! in its error. The kind that reaches us is `Other`, shared with unrelated failures, so the
//! one test of it is [`is_lock_error`], here, for every test that reopens a store (a unit test
//! below pins what sled reports, so a sled that changes it fails here, not in a flaky retry).
//!
//! Included (it needs std, sled and tempfile): `#[path = "../support/sled_lock.rs"] mod sled_lock;` (test binaries
//! and `tests/conformance/harness.rs`), and by the sled store's unit tests.

// Every includer uses only part of it.
#![allow(dead_code)]

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How long an open is retried while the lock is held.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Whether an open failed because another handle holds sled's lock on the database file.
pub fn is_lock_error(error: &dyn Display) -> bool {
    error.to_string().contains("could not acquire lock")
}

/// Runs `open` again, every 10 ms for at most [`LOCK_WAIT`], while it fails on sled's lock;
/// any other failure, or the lock still held at the deadline, is `Err` with its text.
pub fn retry_while_locked<T, E: Display>(open: impl Fn() -> Result<T, E>) -> Result<T, String> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match open() {
            Ok(opened) => return Ok(opened),
            Err(e) if is_lock_error(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod pinned {
    use super::is_lock_error;

    /// What sled reports to a second opener, which [`is_lock_error`] relies on.
    #[test]
    fn sled_reports_its_lock_as_an_other_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = sled::open(dir.path()).expect("first open");
        let second = sled::open(dir.path()).expect_err("the lock is held");
        match &second {
            sled::Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::Other, "{io}"),
            other => panic!("not an I/O error: {other:?}"),
        }
        assert!(is_lock_error(&second), "{second}");
        drop(first);
    }
}
