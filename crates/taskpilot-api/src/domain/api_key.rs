//! API keys: their text (`tp_<key id>_<secret>`, a prefix secret scanners can find), their
//! scopes, and who a request with a valid key acts as (a tenant, with some scopes). Only the
//! secret's SHA-256 is ever stored.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// What every key's text starts with.
pub const KEY_PREFIX: &str = "tp_";
/// Characters of a key id: lower-case letters and digits.
pub const KEY_ID_CHARS: usize = 12;
/// Random bytes of a key's secret (hex in the key's text).
pub const SECRET_BYTES: usize = 32;
/// Longest tenant name.
pub const TENANT_MAX_CHARS: usize = 100;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// The GET routes.
    TasksRead,
    /// Create, bind, cancel.
    TasksWrite,
    /// Keys and the operational routes; implies the others.
    Admin,
}

dtp_contract::wire_names!(Scope {
    TasksRead => "tasks:read",
    TasksWrite => "tasks:write",
    Admin => "admin",
});

/// Reads `tasks:read,tasks:write`-style lists: at least one scope, each known, none twice.
pub fn parse_scopes(names: &[&str]) -> Result<Vec<Scope>, String> {
    if names.is_empty() {
        return Err(format!(
            "name at least one scope of {}",
            Scope::ALL.map(Scope::as_str).join(", ")
        ));
    }
    let mut scopes = Vec::with_capacity(names.len());
    for name in names {
        let shown: String = name.chars().take(100).collect();
        let scope = Scope::parse(name.trim()).ok_or_else(|| {
            format!(
                "unknown scope {shown:?}; scopes are {}",
                Scope::ALL.map(Scope::as_str).join(", ")
            )
        })?;
        if scopes.contains(&scope) {
            return Err(format!("scope {shown:?} is named twice"));
        }
        scopes.push(scope);
    }
    scopes.sort();
    Ok(scopes)
}

/// Checks a tenant name: 1–100 characters of `A-Za-z0-9._-`.
pub fn check_tenant(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > TENANT_MAX_CHARS || !name.chars().all(allowed) {
        return Err(format!(
            "a tenant must be 1 to {TENANT_MAX_CHARS} characters of A-Z, a-z, 0-9, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// A key's text, split into its id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyText {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyText({}, <secret>)", self.id)
    }
}

impl KeyText {
    /// A key made of random bytes: each of `id_picks` picks one character of the id.
    pub fn from_random(id_picks: [u8; KEY_ID_CHARS], secret: [u8; SECRET_BYTES]) -> Self {
        const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let id = id_picks
            .iter()
            .map(|b| char::from(ID_ALPHABET[usize::from(*b) % ID_ALPHABET.len()]))
            .collect();
        Self {
            id,
            secret: secret.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The text a client sends: `tp_<id>_<secret>`.
    pub fn text(&self) -> String {
        format!("{KEY_PREFIX}{}_{}", self.id, self.secret)
    }

    /// Reads a key's text; `None` for anything that is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(KEY_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let id_ok =
            id.len() == KEY_ID_CHARS && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let secret_ok = secret.len() == SECRET_BYTES * 2 && secret.bytes().all(|b| b.is_ascii_hexdigit());
        (id_ok && secret_ok).then(|| Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// What is stored of the secret.
    pub fn secret_hash(&self) -> [u8; 32] {
        hash_secret(&self.secret)
    }
}

/// The SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Equality that looks at every byte, however early they differ.
pub fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A stored key, as the authenticator knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub secret_hash: [u8; 32],
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key used; `None` when authentication is off.
    pub key_id: Option<String>,
    pub tenant: String,
    pub scopes: Vec<Scope>,
}

/// The tenant every request acts for when authentication is off.
pub const DEFAULT_TENANT: &str = "default";

impl Principal {
    /// Anyone, as tenant `default` with every scope (authentication off).
    pub fn anyone() -> Self {
        Self {
            key_id: None,
            tenant: DEFAULT_TENANT.to_owned(),
            scopes: Scope::ALL.to_vec(),
        }
    }

    /// Whether the principal may do what `scope` allows (`admin` allows everything).
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }
}

/// Who `text` makes a request act as, given the key its id names (if any) and the time.
/// The secret is compared whether or not a key was found (with a hash no secret has), so
/// an unknown key costs as long as a wrong secret.
pub fn authenticate(text: &KeyText, record: Option<&KeyRecord>, now: DateTime<Utc>) -> Option<Principal> {
    const NO_KEY: [u8; 32] = [0; 32];
    let presented = text.secret_hash();
    let matches = same_hash(&presented, record.map_or(&NO_KEY, |r| &r.secret_hash));
    let record = record?;
    let live = !record.revoked && record.expires_at.is_none_or(|at| at > now);
    (matches && live).then(|| Principal {
        key_id: Some(record.id.clone()),
        tenant: record.tenant.clone(),
        scopes: record.scopes.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate() -> KeyText {
        KeyText::from_random(rand::random(), rand::random())
    }

    fn record(text: &KeyText) -> KeyRecord {
        KeyRecord {
            id: text.id.clone(),
            tenant: "acme".into(),
            scopes: vec![Scope::TasksRead],
            secret_hash: text.secret_hash(),
            expires_at: None,
            revoked: false,
        }
    }

    #[test]
    fn a_generated_key_reads_back_and_others_do_not() {
        let key = generate();
        let text = key.text();
        assert!(
            text.starts_with("tp_") && text.len() == 3 + KEY_ID_CHARS + 1 + SECRET_BYTES * 2,
            "{text}"
        );
        assert_eq!(KeyText::parse(&text), Some(key.clone()));
        assert_ne!(generate(), key);
        assert!(!format!("{key:?}").contains(&key.secret));
        for bad in [
            "",
            "tp_",
            &text[3..],
            &text.replace("tp_", "tk_"),
            &format!("{text}0"),
            &text[..text.len() - 1],
            &text.to_uppercase(),
            "tp_abcdefghijkl_zz",
        ] {
            assert_eq!(KeyText::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_a_live_key_with_its_secret_authenticates() {
        let now = Utc::now();
        let key = generate();
        let stored = record(&key);
        let principal = authenticate(&key, Some(&stored), now).unwrap();
        assert_eq!(
            (principal.tenant.as_str(), principal.key_id.as_deref()),
            ("acme", Some(key.id.as_str()))
        );
        let wrong = KeyText {
            secret: generate().secret,
            ..key.clone()
        };
        assert_eq!(authenticate(&wrong, Some(&stored), now), None);
        assert_eq!(authenticate(&key, None, now), None, "unknown key");
        let revoked = KeyRecord {
            revoked: true,
            ..stored.clone()
        };
        assert_eq!(authenticate(&key, Some(&revoked), now), None);
        let expired = KeyRecord {
            expires_at: Some(now),
            ..stored.clone()
        };
        assert_eq!(authenticate(&key, Some(&expired), now), None);
        let later = KeyRecord {
            expires_at: Some(now + chrono::Duration::seconds(1)),
            ..stored
        };
        assert!(authenticate(&key, Some(&later), now).is_some());
    }

    #[test]
    fn admin_implies_every_scope() {
        let reader = Principal {
            key_id: None,
            tenant: "t".into(),
            scopes: vec![Scope::TasksRead],
        };
        assert!(reader.may(Scope::TasksRead) && !reader.may(Scope::TasksWrite) && !reader.may(Scope::Admin));
        let admin = Principal {
            scopes: vec![Scope::Admin],
            ..reader
        };
        assert!(Scope::ALL.iter().all(|s| admin.may(*s)));
        assert!(Principal::anyone().may(Scope::Admin));
    }

    #[test]
    fn scopes_and_tenants_are_checked() {
        assert_eq!(
            parse_scopes(&["tasks:write", "tasks:read"]),
            Ok(vec![Scope::TasksRead, Scope::TasksWrite])
        );
        assert!(parse_scopes(&[]).is_err());
        assert!(parse_scopes(&["tasks:delete"])
            .unwrap_err()
            .contains("unknown scope"));
        assert!(parse_scopes(&["admin", "admin"]).unwrap_err().contains("twice"));
        assert_eq!(check_tenant("acme-eu.1"), Ok(()));
        for bad in ["", "a b", &"t".repeat(101), "ümlaut"] {
            assert!(check_tenant(bad).is_err(), "{bad:?}");
        }
    }
}
