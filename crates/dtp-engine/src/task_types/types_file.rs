//! The operator's task types file (`DTP_TASK_TYPES_FILE`, TOML): one `[types.<name>]` table
//! per type. Read once at start-up; any problem is one line naming the file, the type and
//! the field, so that a typo stops the engine instead of silently changing what it runs.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use toml::{Table, Value};

use crate::domain::new_task::{MAX_ATTEMPTS_RANGE, TIMEOUT_MS_RANGE};
use crate::domain::task_type::{check_type_name, BACKOFF_MS_RANGE, CONCURRENCY_RANGE, LEASE_MS_RANGE};
use crate::domain::webhook_signature::signing_key;
use crate::domain::TypeOptions;

/// One type as the file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredType {
    pub name: String,
    pub options: TypeOptions,
    pub kind: DeclaredKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclaredKind {
    /// `kind = "http"`: the engine sends each attempt to `url`.
    Http(HttpTargetSpec),
    /// `kind = "external"`: workers lease the tasks.
    External { lease: Option<Duration> },
}

/// Where and how an HTTP type's attempts are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTargetSpec {
    pub url: String,
    pub method: reqwest::Method,
    pub headers: Vec<StaticHeader>,
    pub signing_secret: Option<SigningSecret>,
}

/// A header sent with every attempt; `from_env` names the variable its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
    pub from_env: Option<String>,
}

/// The signing secret, read from the environment variable the file names.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    pub env: String,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningSecret({}, <redacted>)", self.env)
    }
}

/// What is wrong with the file, where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{}{problem}",
    type_name.as_ref().map(|t| format!("task type {t:?}: ")).unwrap_or_default(),
    field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct TypesFileError {
    pub file: String,
    pub type_name: Option<String>,
    pub field: Option<String>,
    pub problem: String,
}

/// Headers the engine sets itself: the delivery contract, which a file may not override.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "idempotency-key",
    "connection",
    "transfer-encoding",
];
const RESERVED_HEADER_PREFIXES: [&str; 2] = ["dtp-", "webhook-"];

const COMMON_FIELDS: [&str; 7] = [
    "kind",
    "max_attempts",
    "timeout_ms",
    "max_timeout_ms",
    "backoff_base_ms",
    "backoff_max_ms",
    "concurrency",
];
const HTTP_FIELDS: [&str; 4] = ["url", "method", "headers", "signing_secret_env"];
const EXTERNAL_FIELDS: [&str; 1] = ["lease_ms"];

/// Reads the types file at `path`; `env` looks up environment variables.
pub fn read(path: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<DeclaredType>, TypesFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| TypesFileError {
        file: path.to_owned(),
        type_name: None,
        field: None,
        problem: format!("cannot read the file: {e}"),
    })?;
    parse(path, &text, env)
}

/// Parses the text of a types file named `file` (for messages).
pub fn parse(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<DeclaredType>, TypesFileError> {
    let at = |type_name: Option<&str>, field: Option<&str>, problem: String| TypesFileError {
        file: file.to_owned(),
        type_name: type_name.map(str::to_owned),
        field: field.map(str::to_owned),
        problem,
    };
    let document: Table = text.parse().map_err(|e: toml::de::Error| {
        let place = e.span().map(|span| line_and_column(text, span.start));
        let message = e.message().trim().replace('\n', " ");
        match place {
            Some((line, column)) => at(None, None, format!("line {line}, column {column}: {message}")),
            None => at(None, None, message),
        }
    })?;
    if let Some(other) = document.keys().find(|k| *k != "types") {
        return Err(at(
            None,
            None,
            format!("unknown top-level key {other:?}; declare each type as [types.<name>]"),
        ));
    }
    let Some(types) = document.get("types") else {
        return Ok(Vec::new());
    };
    let Value::Table(types) = types else {
        return Err(at(
            None,
            Some("types"),
            "must be a table of [types.<name>] tables".into(),
        ));
    };
    types
        .iter()
        .map(|(name, declaration)| {
            check_type_name(name).map_err(|e| at(Some(name), None, e.to_string()))?;
            let Value::Table(declaration) = declaration else {
                return Err(at(Some(name), None, "must be a table".into()));
            };
            declared_type(name, declaration, env)
                .map_err(|(field, problem)| at(Some(name), Some(&field), problem))
        })
        .collect()
}

/// A field's name and what is wrong with it.
type FieldError = (String, String);

fn declared_type(
    name: &str,
    table: &Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DeclaredType, FieldError> {
    let kind = match table.get("kind") {
        None => return Err(("kind".into(), "is required: \"http\" or \"external\"".into())),
        Some(Value::String(kind)) if kind == "http" || kind == "external" => kind.as_str(),
        Some(other) => {
            return Err((
                "kind".into(),
                format!("must be \"http\" or \"external\", got {other}"),
            ))
        }
    };
    let own_fields: &[&str] = if kind == "http" {
        &HTTP_FIELDS
    } else {
        &EXTERNAL_FIELDS
    };
    if let Some(unknown) = table
        .keys()
        .find(|k| !COMMON_FIELDS.contains(&k.as_str()) && !own_fields.contains(&k.as_str()))
    {
        return Err((
            unknown.clone(),
            format!("unknown field for a type of kind {kind:?}"),
        ));
    }
    let in_range = |field: &str, min: i64, max: i64| integer(table, field, min, max);
    let options = TypeOptions {
        max_attempts: in_range(
            "max_attempts",
            i64::from(*MAX_ATTEMPTS_RANGE.start()),
            i64::from(*MAX_ATTEMPTS_RANGE.end()),
        )?
        .map(narrow),
        timeout_ms: in_range(
            "timeout_ms",
            i64::from(*TIMEOUT_MS_RANGE.start()),
            i64::from(*TIMEOUT_MS_RANGE.end()),
        )?
        .map(narrow),
        max_timeout_ms: in_range(
            "max_timeout_ms",
            i64::from(*TIMEOUT_MS_RANGE.start()),
            i64::from(*TIMEOUT_MS_RANGE.end()),
        )?
        .map(narrow),
        backoff_base_ms: in_range(
            "backoff_base_ms",
            wide(*BACKOFF_MS_RANGE.start()),
            wide(*BACKOFF_MS_RANGE.end()),
        )?
        .map(narrow),
        backoff_max_ms: in_range(
            "backoff_max_ms",
            wide(*BACKOFF_MS_RANGE.start()),
            wide(*BACKOFF_MS_RANGE.end()),
        )?
        .map(narrow),
        concurrency: in_range(
            "concurrency",
            i64::from(*CONCURRENCY_RANGE.start()),
            i64::from(*CONCURRENCY_RANGE.end()),
        )?
        .map(narrow),
    };
    let kind = if kind == "http" {
        DeclaredKind::Http(http_target(table, env)?)
    } else {
        let lease = in_range(
            "lease_ms",
            wide(*LEASE_MS_RANGE.start()),
            wide(*LEASE_MS_RANGE.end()),
        )?
        .map(|ms| Duration::from_millis(narrow(ms)));
        DeclaredKind::External { lease }
    };
    Ok(DeclaredType {
        name: name.to_owned(),
        options,
        kind,
    })
}

fn http_target(table: &Table, env: &dyn Fn(&str) -> Option<String>) -> Result<HttpTargetSpec, FieldError> {
    let field_error = |field: &str, problem: String| (field.to_owned(), problem);
    let url = match table.get("url") {
        None => {
            return Err(field_error(
                "url",
                "is required for a type of kind \"http\"".into(),
            ))
        }
        Some(Value::String(url)) => url,
        Some(other) => return Err(field_error("url", format!("must be a string, got {other}"))),
    };
    let parsed =
        url::Url::parse(url).map_err(|e| field_error("url", format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(field_error(
            "url",
            format!("must be an http or https URL with a host, got {url:?}"),
        ));
    }
    let method = match table.get("method") {
        None => reqwest::Method::POST,
        Some(Value::String(m)) if m == "POST" => reqwest::Method::POST,
        Some(Value::String(m)) if m == "PUT" => reqwest::Method::PUT,
        Some(other) => {
            return Err(field_error(
                "method",
                format!("must be \"POST\" or \"PUT\", got {other}"),
            ))
        }
    };
    let headers = match table.get("headers") {
        None => Vec::new(),
        Some(Value::Table(headers)) => headers
            .iter()
            .map(|(name, value)| static_header(name, value, env))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(field_error(
                "headers",
                format!("must be a table of strings, got {other}"),
            ))
        }
    };
    let signing_secret = match table.get("signing_secret_env") {
        None => None,
        Some(Value::String(var)) => {
            let field = "signing_secret_env";
            let secret = env(var)
                .ok_or_else(|| field_error(field, format!("environment variable {var} is not set")))?;
            let key =
                signing_key(&secret).map_err(|e| field_error(field, format!("the secret in {var} {e}")))?;
            Some(SigningSecret {
                env: var.clone(),
                key,
            })
        }
        Some(other) => {
            return Err(field_error(
                "signing_secret_env",
                format!("must name an environment variable, got {other}"),
            ))
        }
    };
    Ok(HttpTargetSpec {
        url: parsed.to_string(),
        method,
        headers,
        signing_secret,
    })
}

fn static_header(
    name: &str,
    value: &Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<StaticHeader, FieldError> {
    let field = format!("headers.{name}");
    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| (field.clone(), "is not a valid header name".to_owned()))?;
    let lower = header_name.as_str();
    if RESERVED_HEADERS.contains(&lower) || RESERVED_HEADER_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err((field, "is set by the engine and cannot be overridden".into()));
    }
    let Value::String(text) = value else {
        return Err((field, format!("must be a string, got {value}")));
    };
    let (text, from_env) = match env_reference(text) {
        Some(var) => match env(var) {
            Some(from_env) => (from_env, Some(var.to_owned())),
            None => return Err((field, format!("environment variable {var} is not set"))),
        },
        None => (text.clone(), None),
    };
    let value = HeaderValue::from_str(&text).map_err(|_| {
        let source = from_env
            .as_ref()
            .map_or_else(|| "the value".to_owned(), |var| format!("the value of {var}"));
        (field.clone(), format!("{source} is not a valid header value"))
    })?;
    Ok(StaticHeader {
        name: header_name,
        value,
        from_env,
    })
}

/// `NAME` when `text` is exactly `${NAME}`.
fn env_reference(text: &str) -> Option<&str> {
    let name = text.strip_prefix("${")?.strip_suffix('}')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

/// An optional integer field within `[min, max]`.
fn integer(table: &Table, field: &str, min: i64, max: i64) -> Result<Option<i64>, FieldError> {
    match table.get(field) {
        None => Ok(None),
        Some(Value::Integer(n)) if (min..=max).contains(n) => Ok(Some(*n)),
        Some(Value::Integer(n)) => Err((
            field.to_owned(),
            format!("must be between {min} and {max}, got {n}"),
        )),
        Some(other) => Err((field.to_owned(), format!("must be an integer, got {other}"))),
    }
}

/// A value already checked to lie within a range of the narrower type.
fn narrow<T: TryFrom<i64>>(n: i64) -> T {
    T::try_from(n).unwrap_or_else(|_| unreachable!("{n} was range-checked"))
}

fn wide(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// 1-based line and column of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "types.toml";

    fn env(name: &str) -> Option<String> {
        match name {
            "MAILER_TOKEN" => Some("Bearer t0k3n".into()),
            "SEND_EMAIL_SECRET" => Some("s3cret".into()),
            "BAD_HEADER" => Some("line\nbreak".into()),
            _ => None,
        }
    }

    fn parsed(text: &str) -> Result<Vec<DeclaredType>, TypesFileError> {
        parse(FILE, text, &env)
    }

    fn error(text: &str) -> String {
        let err = parsed(text).unwrap_err();
        let line = err.to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(line.starts_with("types.toml: "), "names the file: {line}");
        line
    }

    #[test]
    fn reads_the_example_of_the_readme() {
        let types = parsed(
            r#"
            [types.send-email]
            kind = "http"
            url = "http://127.0.0.1:9000/hooks/send-email"
            timeout_ms = 10000
            max_attempts = 5
            concurrency = 20
            signing_secret_env = "SEND_EMAIL_SECRET"
            headers = { "X-Env" = "prod", "Authorization" = "${MAILER_TOKEN}" }

            [types.resize-image]
            kind = "external"
            lease_ms = 60000
            backoff_base_ms = 500
            backoff_max_ms = 8000
            "#,
        )
        .unwrap();
        assert_eq!(types.len(), 2);
        let resize = &types[0];
        assert_eq!(resize.name, "resize-image");
        assert_eq!(
            resize.kind,
            DeclaredKind::External {
                lease: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(
            (resize.options.backoff_base_ms, resize.options.backoff_max_ms),
            (Some(500), Some(8000))
        );
        let email = &types[1];
        assert_eq!(email.name, "send-email");
        assert_eq!(email.options.max_attempts, Some(5));
        assert_eq!(email.options.timeout_ms, Some(10_000));
        assert_eq!(email.options.concurrency, Some(20));
        let DeclaredKind::Http(target) = &email.kind else {
            panic!("{email:?}")
        };
        assert_eq!(target.url, "http://127.0.0.1:9000/hooks/send-email");
        assert_eq!(target.method, reqwest::Method::POST);
        assert_eq!(target.signing_secret.as_ref().unwrap().key, b"s3cret");
        let auth = target.headers.iter().find(|h| h.name == "authorization").unwrap();
        assert_eq!(auth.value, "Bearer t0k3n");
        assert_eq!(auth.from_env.as_deref(), Some("MAILER_TOKEN"));
        let plain = target.headers.iter().find(|h| h.name == "x-env").unwrap();
        assert_eq!(
            (plain.value.to_str().unwrap(), plain.from_env.as_deref()),
            ("prod", None)
        );
    }

    #[test]
    fn an_empty_file_declares_nothing_and_put_is_a_method() {
        assert_eq!(parsed("").unwrap(), vec![]);
        let types =
            parsed("[types.t]\nkind = \"http\"\nurl = \"https://example.com/x\"\nmethod = \"PUT\"").unwrap();
        let DeclaredKind::Http(target) = &types[0].kind else {
            panic!()
        };
        assert_eq!(target.method, reqwest::Method::PUT);
        assert!(target.signing_secret.is_none() && target.headers.is_empty());
    }

    #[test]
    fn each_problem_is_one_line_naming_the_type_and_the_field() {
        let http = "kind = \"http\"\nurl = \"http://127.0.0.1:9/x\"\n";
        let cases = [
            ("[types.a]\nkind = ", "line 2, column 8"),
            ("[types.a]\nkind = \"http\"\nkind = \"http\"", "line 3"),
            ("[other]\nx = 1", "unknown top-level key \"other\""),
            ("types = 3", "types: must be a table"),
            (
                "[types.\"has space\"]\nkind = \"http\"",
                "task type \"has space\": a task type name must be",
            ),
            (
                "[types.a]\nurl = \"http://x\"",
                "task type \"a\": kind: is required",
            ),
            (
                "[types.a]\nkind = \"grpc\"",
                "task type \"a\": kind: must be \"http\" or \"external\"",
            ),
            (
                &format!("[types.a]\n{http}retries = 3"),
                "task type \"a\": retries: unknown field for a type of kind \"http\"",
            ),
            (
                "[types.a]\nkind = \"external\"\nurl = \"http://x\"",
                "task type \"a\": url: unknown field for a type of kind \"external\"",
            ),
            (
                "[types.a]\nkind = \"http\"\nlease_ms = 100",
                "task type \"a\": lease_ms: unknown field",
            ),
            ("[types.a]\nkind = \"http\"", "task type \"a\": url: is required"),
            (
                "[types.a]\nkind = \"http\"\nurl = \"ftp://x/y\"",
                "task type \"a\": url: must be an http or https URL",
            ),
            (
                "[types.a]\nkind = \"http\"\nurl = \"not a url\"",
                "task type \"a\": url: \"not a url\" is not a URL",
            ),
            (
                "[types.a]\nkind = \"http\"\nurl = 5",
                "task type \"a\": url: must be a string",
            ),
            (
                &format!("[types.a]\n{http}method = \"GET\""),
                "task type \"a\": method: must be \"POST\" or \"PUT\"",
            ),
            (
                &format!("[types.a]\n{http}max_attempts = 0"),
                "task type \"a\": max_attempts: must be between 1 and 100, got 0",
            ),
            (
                &format!("[types.a]\n{http}max_attempts = \"3\""),
                "task type \"a\": max_attempts: must be an integer",
            ),
            (
                &format!("[types.a]\n{http}timeout_ms = 86400001"),
                "task type \"a\": timeout_ms: must be between 1 and 86400000",
            ),
            (
                &format!("[types.a]\n{http}concurrency = 99999999999"),
                "task type \"a\": concurrency: must be between 1 and 10000",
            ),
            (
                &format!("[types.a]\n{http}backoff_base_ms = -1"),
                "task type \"a\": backoff_base_ms: must be between",
            ),
            (
                "[types.a]\nkind = \"external\"\nlease_ms = 5",
                "task type \"a\": lease_ms: must be between 30 and",
            ),
            (
                &format!("[types.a]\n{http}headers = 3"),
                "task type \"a\": headers: must be a table",
            ),
            (
                &format!("[types.a]\n{http}headers = {{ \"X-A\" = 1 }}"),
                "task type \"a\": headers.X-A: must be a string",
            ),
            (
                &format!("[types.a]\n{http}headers = {{ \"bad name\" = \"x\" }}"),
                "task type \"a\": headers.bad name: is not a valid header name",
            ),
            (
                &format!("[types.a]\n{http}headers = {{ \"DTP-Attempt\" = \"9\" }}"),
                "task type \"a\": headers.DTP-Attempt: is set by the engine",
            ),
            (
                &format!("[types.a]\n{http}headers = {{ \"Content-Type\" = \"text/plain\" }}"),
                "headers.Content-Type: is set by the engine",
            ),
            (
                &format!("[types.a]\n{http}headers = {{ \"Authorization\" = \"${{NOPE}}\" }}"),
                "task type \"a\": headers.Authorization: environment variable NOPE is not set",
            ),
            (
                &format!("[types.a]\n{http}headers = {{ \"X-B\" = \"${{BAD_HEADER}}\" }}"),
                "headers.X-B: the value of BAD_HEADER is not a valid header value",
            ),
            (
                &format!("[types.a]\n{http}signing_secret_env = \"NOPE\""),
                "task type \"a\": signing_secret_env: environment variable NOPE is not set",
            ),
            (
                &format!("[types.a]\n{http}signing_secret_env = 7"),
                "task type \"a\": signing_secret_env: must name an environment variable",
            ),
        ];
        for (text, expected) in cases {
            let line = error(text);
            assert!(
                line.contains(expected),
                "{text:?}\n  gave {line}\n  expected {expected}"
            );
        }
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let err = read("/nonexistent/types.toml", &env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/types.toml: cannot read the file: "),
            "{err}"
        );
    }

    #[test]
    fn env_references_are_whole_values_with_plain_names() {
        assert_eq!(env_reference("${MAILER_TOKEN}"), Some("MAILER_TOKEN"));
        assert_eq!(env_reference("${_X1}"), Some("_X1"));
        for literal in ["Bearer ${T}", "${}", "${1X}", "$X", "${A-B}", "{A}"] {
            assert_eq!(env_reference(literal), None, "{literal}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let secret = SigningSecret {
            env: "S".into(),
            key: b"s3cret".to_vec(),
        };
        assert_eq!(format!("{secret:?}"), "SigningSecret(S, <redacted>)");
    }
}
