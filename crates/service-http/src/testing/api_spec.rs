//! Checks of a served OpenAPI description against what the service really serves. Both
//! services' tests use them, so the two checks cannot drift apart.

use serde_json::Value;

/// Every (method, path template) the description lists, sorted.
pub fn described_operations(spec: &Value) -> Vec<(String, String)> {
    assert_eq!(spec["openapi"], "3.1.0", "not an OpenAPI 3.1 description");
    let paths = spec["paths"].as_object().expect("the description has no paths");
    let mut described: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item is an object");
            methods.keys().map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    described.sort();
    described
}

/// Panics unless the description lists exactly `served`, as (method, path template).
pub fn assert_describes_exactly(spec: &Value, served: &[(&str, &str)]) {
    let mut expected: Vec<(String, String)> = served
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(described_operations(spec), expected);
}

/// Panics unless `status` is one of the answers the description lists for the operation.
pub fn assert_status_documented(spec: &Value, method: &str, path: &str, status: u16) {
    let documented = documented_responses(spec, method, path);
    assert!(
        documented.contains_key(&status.to_string()),
        "{method} {path} answered {status}, not in {:?}",
        documented.keys()
    );
}

/// Panics unless every documented 4xx/5xx answer of every operation (but those under
/// `exempt_paths`, which answer a report of their own) is an `ErrorBody`, or for a 409 a
/// `LeaseLostBody` (an error body that also says why the lease was lost).
pub fn assert_error_answers_are_error_bodies(spec: &Value, exempt_paths: &[&str]) {
    for (method, path) in described_operations(spec) {
        if exempt_paths.contains(&path.as_str()) {
            continue;
        }
        for (status, answer) in documented_responses(spec, &method, &path) {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                let lease_lost = status == "409" && schema == "#/components/schemas/LeaseLostBody";
                assert!(
                    lease_lost || schema == "#/components/schemas/ErrorBody",
                    "{method} {path} {status}: {schema}"
                );
            }
        }
    }
}

fn documented_responses<'a>(spec: &'a Value, method: &str, path: &str) -> &'a serde_json::Map<String, Value> {
    spec["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} documents no responses"))
}

/// Panics unless the operation's query parameter `name` is documented with `pattern`.
pub fn assert_query_pattern(spec: &Value, method: &str, path: &str, name: &str, pattern: &str) {
    let parameters = spec["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} documents no parameters"));
    let parameter = parameters
        .iter()
        .find(|p| p["name"] == name && p["in"] == "query")
        .unwrap_or_else(|| panic!("{method} {path} documents no query parameter {name}"));
    assert_eq!(parameter["schema"]["pattern"], pattern, "{method} {path} {name}");
}
