//! End-to-end tests: tungate between network namespaces (need root and TUN).
