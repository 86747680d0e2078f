//! The engine's service tokens (`DTP_API_TOKENS_FILE`, TOML): one `[tokens.<name>]` table per
//! caller, with `secret_env` (the environment variable holding its secret), `role` and, for a
//! worker, optional `types`. Read once at start-up; only each secret's SHA-256 is kept, and a
//! presented token is compared with every known one, so the answer takes as long whoever asks.

use sha2::{Digest, Sha256};
use toml::{Table, Value};

use crate::domain::access::{Caller, Role};
use crate::domain::task_type::check_type_name;

/// Shortest secret accepted: a guessable one would make the token pointless.
pub const MIN_SECRET_CHARS: usize = 16;

/// What is wrong with the tokens file, where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {}{}{problem}",
    token.as_ref().map(|t| format!("token {t:?}: ")).unwrap_or_default(),
    field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct TokensFileError {
    pub file: String,
    pub token: Option<String>,
    pub field: Option<String>,
    pub problem: String,
}

struct KnownToken {
    hash: [u8; 32],
    caller: Caller,
}

/// Every token the engine accepts.
pub struct ServiceTokens {
    tokens: Vec<KnownToken>,
}

impl ServiceTokens {
    /// Reads the tokens file at `path`; `env` looks up environment variables.
    pub fn read(path: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, TokensFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| TokensFileError {
            file: path.to_owned(),
            token: None,
            field: None,
            problem: format!("cannot read the file: {e}"),
        })?;
        Self::parse(path, &text, env)
    }

    /// Parses the text of a tokens file named `file` (for messages).
    pub fn parse(
        file: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, TokensFileError> {
        let at = |token: Option<&str>, field: Option<&str>, problem: String| TokensFileError {
            file: file.to_owned(),
            token: token.map(str::to_owned),
            field: field.map(str::to_owned),
            problem,
        };
        let document: Table = text
            .parse()
            .map_err(|e: toml::de::Error| at(None, None, e.message().trim().replace('\n', " ")))?;
        if let Some(other) = document.keys().find(|k| *k != "tokens") {
            return Err(at(
                None,
                None,
                format!("unknown top-level key {other:?}; declare each token as [tokens.<name>]"),
            ));
        }
        let Some(Value::Table(tokens)) = document.get("tokens") else {
            return Err(at(None, None, "declares no [tokens.<name>]".into()));
        };
        let mut known: Vec<KnownToken> = Vec::with_capacity(tokens.len());
        for (name, declaration) in tokens {
            check_type_name(name).map_err(|_| {
                at(
                    Some(name),
                    None,
                    "a token name must be 1 to 100 characters of A-Z, a-z, 0-9, '.', '_' and '-'".into(),
                )
            })?;
            let Value::Table(declaration) = declaration else {
                return Err(at(Some(name), None, "must be a table".into()));
            };
            let (hash, caller) =
                declared(name, declaration, env).map_err(|(f, p)| at(Some(name), Some(&f), p))?;
            if let Some(twin) = known.iter().find(|k| k.hash == hash) {
                return Err(at(
                    Some(name),
                    Some("secret_env"),
                    format!("holds the same secret as token {:?}", twin.caller.name),
                ));
            }
            known.push(KnownToken { hash, caller });
        }
        Ok(Self { tokens: known })
    }

    /// The caller `presented` belongs to, if any. Every known token is compared, in constant
    /// time, whether or not an earlier one matched.
    pub fn caller(&self, presented: &str) -> Option<Caller> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for token in &self.tokens {
            if same_bytes(&token.hash, &hash) {
                found = Some(&token.caller);
            }
        }
        found.cloned()
    }

    /// Every worker token limited to types, with those types.
    pub fn limited_workers(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.tokens
            .iter()
            .filter_map(|t| Some((t.caller.name.as_str(), t.caller.types.as_deref()?)))
    }
}

/// Equality that looks at every byte, however early they differ.
fn same_bytes(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn declared(
    name: &str,
    table: &Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<([u8; 32], Caller), (String, String)> {
    if let Some(unknown) = table
        .keys()
        .find(|k| !["secret_env", "role", "types"].contains(&k.as_str()))
    {
        return Err((
            unknown.clone(),
            "unknown field; a token has secret_env, role and types".into(),
        ));
    }
    let field = |name: &str, problem: String| (name.to_owned(), problem);
    let role = match table.get("role") {
        Some(Value::String(role)) => Role::parse(role).ok_or_else(|| {
            field(
                "role",
                format!("must be \"submitter\", \"worker\" or \"admin\", got {role:?}"),
            )
        })?,
        Some(other) => return Err(field("role", format!("must be a string, got {other}"))),
        None => return Err(field("role", "is required".into())),
    };
    let secret = match table.get("secret_env") {
        Some(Value::String(var)) => {
            env(var).ok_or_else(|| field("secret_env", format!("environment variable {var} is not set")))?
        }
        Some(other) => {
            return Err(field(
                "secret_env",
                format!("must name an environment variable, got {other}"),
            ))
        }
        None => return Err(field("secret_env", "is required".into())),
    };
    if secret.chars().count() < MIN_SECRET_CHARS || secret.chars().any(char::is_whitespace) {
        return Err(field(
            "secret_env",
            format!("the secret must be at least {MIN_SECRET_CHARS} characters without spaces"),
        ));
    }
    let types = match table.get("types") {
        None => None,
        Some(_) if role != Role::Worker => {
            return Err(field("types", "only a worker token is limited to types".into()))
        }
        Some(Value::Array(items)) => {
            let names = items
                .iter()
                .map(|item| match item {
                    Value::String(t) if check_type_name(t).is_ok() => Ok(t.clone()),
                    other => Err(field("types", format!("{other} is not a task type name"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            if names.is_empty() {
                return Err(field("types", "must name at least one external type".into()));
            }
            Some(names)
        }
        Some(other) => {
            return Err(field(
                "types",
                format!("must be a list of external types, got {other}"),
            ))
        }
    };
    let caller = Caller {
        name: name.to_owned(),
        role,
        types,
    };
    Ok((Sha256::digest(secret.as_bytes()).into(), caller))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TP_TOKEN" => Some("taskpilot-secret-0123456789".into()),
            "WORKER_TOKEN" => Some("worker-secret-0123456789ab".into()),
            "SHORT" => Some("short".into()),
            _ => None,
        }
    }

    const FILE: &str = "[tokens.taskpilot]\nsecret_env = \"TP_TOKEN\"\nrole = \"submitter\"\n\
         [tokens.resizer]\nsecret_env = \"WORKER_TOKEN\"\nrole = \"worker\"\ntypes = [\"resize\"]\n";

    #[test]
    fn knows_each_caller_by_its_secret_only() {
        let tokens = ServiceTokens::parse("t.toml", FILE, &env).unwrap();
        let taskpilot = tokens.caller("taskpilot-secret-0123456789").unwrap();
        assert_eq!(
            (taskpilot.name.as_str(), taskpilot.role),
            ("taskpilot", Role::Submitter)
        );
        let worker = tokens.caller("worker-secret-0123456789ab").unwrap();
        assert_eq!(worker.types, Some(vec!["resize".to_owned()]));
        for wrong in [
            "",
            "taskpilot",
            "TP_TOKEN",
            "taskpilot-secret-012345678",
            "taskpilot-secret-0123456789 ",
        ] {
            assert_eq!(tokens.caller(wrong), None, "{wrong:?}");
        }
        assert_eq!(
            tokens.limited_workers().collect::<Vec<_>>(),
            vec![("resizer", &["resize".to_owned()][..])]
        );
    }

    #[test]
    fn each_problem_names_the_token_and_the_field() {
        let cases = [
            ("[tokens.a]\nsecret_env = \"TP_TOKEN\"\n", "token \"a\": role: is required"),
            ("[tokens.a]\nsecret_env = \"TP_TOKEN\"\nrole = \"root\"\n", "token \"a\": role: must be \"submitter\""),
            ("[tokens.a]\nrole = \"admin\"\n", "token \"a\": secret_env: is required"),
            ("[tokens.a]\nsecret_env = \"NOPE\"\nrole = \"admin\"\n", "token \"a\": secret_env: environment variable NOPE is not set"),
            ("[tokens.a]\nsecret_env = \"SHORT\"\nrole = \"admin\"\n", "token \"a\": secret_env: the secret must be at least 16"),
            ("[tokens.a]\nsecret_env = \"TP_TOKEN\"\nrole = \"submitter\"\ntypes = [\"x\"]\n", "token \"a\": types: only a worker token"),
            ("[tokens.a]\nsecret_env = \"TP_TOKEN\"\nrole = \"worker\"\ntypes = []\n", "token \"a\": types: must name at least one"),
            ("[tokens.a]\nsecret_env = \"TP_TOKEN\"\nrole = \"admin\"\nextra = 1\n", "token \"a\": extra: unknown field"),
            ("[tokens.a]\nsecret_env = \"TP_TOKEN\"\nrole = \"admin\"\n[tokens.b]\nsecret_env = \"TP_TOKEN\"\nrole = \"admin\"\n", "token \"b\": secret_env: holds the same secret as token \"a\""),
            ("[other]\n", "unknown top-level key"),
            ("", "declares no [tokens.<name>]"),
            ("[tokens.a\n", "t.toml: "),
        ];
        for (text, expected) in cases {
            let err = ServiceTokens::parse("t.toml", text, &env)
                .err()
                .unwrap()
                .to_string();
            assert!(err.starts_with("t.toml: ") && !err.contains('\n'), "{err}");
            assert!(
                err.contains(expected),
                "{text:?}\n  gave {err}\n  expected {expected}"
            );
        }
    }
}
