//! Test support for the HTTP side: `api_spec` checks a served OpenAPI description against
//! the served routes; `doubles` gives numbers for payload round-trip tests.

pub mod api_spec;
pub mod doubles;
