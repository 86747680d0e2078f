//! What both services' API descriptions say of credentials: a bearer scheme, required by
//! every operation but the open ones (the probes), each of which may then answer 401
//! (`UNAUTHORIZED`), 403 (`FORBIDDEN`) or 429 (`RATE_LIMITED`) with the usual error body.

use serde_json::{json, Value};

/// Marks every operation of `description` but those under `open_paths` as needing a bearer
/// credential described as `credential`, and documents its 401, 403 and 429.
pub fn require_bearer(description: &mut Value, credential: &str, open_paths: &[&str]) {
    description["components"]["securitySchemes"]["bearer"] = json!({
        "type": "http", "scheme": "bearer", "description": credential,
    });
    description["security"] = json!([{"bearer": []}]);
    let Some(paths) = description["paths"].as_object_mut() else {
        return;
    };
    for (path, operations) in paths {
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            if open_paths.contains(&path.as_str()) {
                operation["security"] = json!([]);
                continue;
            }
            let responses = &mut operation["responses"];
            for (status, meaning) in [
                (
                    "401",
                    "No valid credentials (UNAUTHORIZED); WWW-Authenticate: Bearer",
                ),
                ("403", "The credentials do not reach this operation (FORBIDDEN)"),
                (
                    "429",
                    "Over the caller's quota (RATE_LIMITED); retry after Retry-After seconds",
                ),
            ] {
                if responses.get(status).is_none() {
                    responses[status] = json!({
                        "description": meaning,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                    });
                }
            }
        }
    }
}
