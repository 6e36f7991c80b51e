//! dataplane: see lib.rs for the layer map.
#![deny(unsafe_op_in_unsafe_fn)]
