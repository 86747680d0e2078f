//! Who may call what: every caller of the engine presents a service token with a role
//! (`submitter`, `worker`, `admin`); each route needs one kind of access. A worker token may
//! also be limited to some external types.

/// A service token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Submits, reads, lists and cancels tasks, and reads the change feed.
    Submitter,
    /// Leases tasks of external types and reports on its leases; nothing else.
    Worker,
    /// Everything, the operational routes included.
    Admin,
}

dtp_contract::wire_names!(Role {
    Submitter => "submitter",
    Worker => "worker",
    Admin => "admin",
});

/// What a route gives access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `/tasks`, `/task-types`: submitting and reading tasks.
    Tasks,
    /// `/leases`: the worker API.
    Leases,
    /// `/metrics`, `/openapi.json`, `/docs`.
    Operations,
}

/// Who is calling: the name of their token (which scopes their idempotency keys) and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The external types a worker token is limited to; `None`: any.
    pub types: Option<Vec<String>>,
}

impl Caller {
    /// The caller of an engine whose authentication is off: anyone, with every access.
    pub fn anyone() -> Self {
        Self {
            name: String::new(),
            role: Role::Admin,
            types: None,
        }
    }

    /// Whether the caller's role gives `access`.
    pub fn may(&self, access: Access) -> bool {
        matches!(
            (self.role, access),
            (Role::Admin, _) | (Role::Submitter, Access::Tasks) | (Role::Worker, Access::Leases)
        )
    }

    /// Whether the caller may lease tasks of `task_type` (given it may use the worker API).
    pub fn may_lease(&self, task_type: &str) -> bool {
        self.types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == task_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, types: Option<&[&str]>) -> Caller {
        Caller {
            name: "t".into(),
            role,
            types: types.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn each_role_reaches_exactly_its_routes() {
        let table = [
            (Role::Submitter, [true, false, false]),
            (Role::Worker, [false, true, false]),
            (Role::Admin, [true, true, true]),
        ];
        for (role, allowed) in table {
            let c = caller(role, None);
            let got = [Access::Tasks, Access::Leases, Access::Operations].map(|a| c.may(a));
            assert_eq!(got, allowed, "{role:?}");
        }
        assert!(Caller::anyone().may(Access::Operations));
    }

    #[test]
    fn a_worker_token_may_be_limited_to_some_types() {
        let limited = caller(Role::Worker, Some(&["resize"]));
        assert!(limited.may_lease("resize"));
        assert!(!limited.may_lease("render"));
        assert!(caller(Role::Worker, None).may_lease("render"));
    }

    #[test]
    fn roles_read_from_their_names() {
        assert_eq!(Role::parse("worker"), Some(Role::Worker));
        assert_eq!(Role::parse("Admin"), None);
    }
}
