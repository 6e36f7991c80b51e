//! What the tests in `router/tests/` share beyond fuzzing: where the shared
//! conformance data lives.

use std::path::PathBuf;

/// `$TUNGATE_SHARED`, or `../shared` beside the repository.
pub fn shared() -> PathBuf {
    match std::env::var("TUNGATE_SHARED") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
    }
}
