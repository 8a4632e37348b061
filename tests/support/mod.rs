//! Shared support for integration tests.

pub mod interop;
