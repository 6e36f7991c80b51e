//! ruleset: see lib.rs for the layer map.
#![forbid(unsafe_code)]
