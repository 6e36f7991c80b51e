//! IPv4 reassembly (placeholder, filled in below).
#![forbid(unsafe_code)]
