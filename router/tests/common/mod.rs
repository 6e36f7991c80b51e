//! What the tests in `router/tests/` share beyond fuzzing: where the shared
//! conformance data lives, a look into a ruleset.

use std::path::PathBuf;

use tungate::ruleset::{Ruleset, TableKind};

/// `$TUNGATE_SHARED`, or `../shared` beside the repository.
#[allow(dead_code)] // not every test reads the shared data
pub fn shared() -> PathBuf {
    match std::env::var("TUNGATE_SHARED") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")),
    }
}

/// How many rules chain `chain` of `table` holds (the chain must exist).
#[allow(dead_code)] // not every test looks into a ruleset
pub fn rule_count(rs: &Ruleset, table: TableKind, chain: &str) -> usize {
    rs.table(table)
        .chain(chain)
        .unwrap_or_else(|| panic!("no chain {chain} in {table:?}"))
        .rules
        .len()
}
