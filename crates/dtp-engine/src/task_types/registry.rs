//! Every task type an engine accepts, by name: its effective settings, how it runs, and
//! what runs it. Built once at start-up (demo types, the builder's `Task`s, the types file),
//! then only read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dtp_contract::{HttpTargetInfo, TaskTypeInfo, TaskTypeKind};

use super::typed::Typed;
use super::{demo, demo_fail, demo_slow, Task, TaskHandler};
use crate::domain::new_task::{SubmissionDefaults, TaskTypes};
use crate::domain::task_type::{check_type_name, InvalidTypeName, InvalidTypeOption};
use crate::domain::{EngineTypeDefaults, TaskQueue, TypeOptions, TypeSettings};

/// How a type's tasks are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeKind {
    /// Rust code in this engine.
    Handler,
    /// Each attempt is a request to an HTTP target (the target as configured, secrets redacted).
    Http(HttpTargetInfo),
    /// Workers outside the engine lease the tasks; the engine never runs them.
    External { lease: Duration },
}

/// One registered type.
#[derive(Clone)]
pub struct RegisteredType {
    pub name: String,
    pub kind: TypeKind,
    pub settings: TypeSettings,
    /// What runs an attempt in the engine; `None` for external types.
    pub handler: Option<Arc<dyn TaskHandler>>,
}

impl RegisteredType {
    /// Where the type's tasks wait to be claimed.
    pub fn queue(&self) -> TaskQueue {
        self.settings
            .queue(matches!(self.kind, TypeKind::External { .. }))
    }

    /// The type as `GET /task-types` shows it.
    pub fn info(&self) -> TaskTypeInfo {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (kind, lease_ms, http) = match &self.kind {
            TypeKind::Handler => (TaskTypeKind::Handler, None, None),
            TypeKind::Http(target) => (TaskTypeKind::Http, None, Some(target.clone())),
            TypeKind::External { lease } => (TaskTypeKind::External, Some(millis(*lease)), None),
        };
        TaskTypeInfo {
            name: self.name.clone(),
            kind,
            max_attempts: self.settings.max_attempts,
            timeout_ms: self.settings.timeout_ms,
            max_timeout_ms: self.settings.max_timeout_ms,
            backoff_base_ms: millis(self.settings.retry.base),
            backoff_max_ms: millis(self.settings.retry.max),
            concurrency: self.settings.concurrency,
            lease_ms,
            http,
        }
    }
}

/// A type that cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("task type {name:?}: {source}")]
    InvalidName {
        name: String,
        #[source]
        source: InvalidTypeName,
    },
    #[error("task type {name:?}: {source}")]
    InvalidOption {
        name: String,
        #[source]
        source: InvalidTypeOption,
    },
    #[error("task type {0:?} is registered twice")]
    Duplicate(String),
}

/// The task types this engine accepts, by name.
#[derive(Clone)]
pub struct TaskTypeRegistry {
    defaults: EngineTypeDefaults,
    types: BTreeMap<String, RegisteredType>,
}

impl TaskTypeRegistry {
    /// No types yet; settings a type does not declare come from `defaults`.
    pub fn new(defaults: EngineTypeDefaults) -> Self {
        Self {
            defaults,
            types: BTreeMap::new(),
        }
    }

    /// The three demo types: `demo`, `demo-slow`, `demo-fail`.
    pub fn with_demo_types(defaults: EngineTypeDefaults) -> Self {
        let mut registry = Self::new(defaults);
        registry
            .add_demo_types()
            .unwrap_or_else(|e| unreachable!("the demo types are valid and distinct: {e}"));
        registry
    }

    /// Adds `demo` (succeeds at once), `demo-slow` (sleeps `sleepMs`) and `demo-fail`
    /// (fails `failTimes` attempts).
    pub fn add_demo_types(&mut self) -> Result<(), RegistryError> {
        self.register_handler("demo", TypeOptions::default(), Arc::new(demo::Demo))?;
        self.register_handler("demo-slow", TypeOptions::default(), Arc::new(demo_slow::DemoSlow))?;
        self.register_handler("demo-fail", TypeOptions::default(), Arc::new(demo_fail::DemoFail))
    }

    /// Registers a typed Rust handler under `T::TYPE`.
    pub fn register_task<T: Task>(&mut self, task: T) -> Result<(), RegistryError> {
        let options = task.options();
        self.register_handler(T::TYPE, options, Arc::new(Typed(Arc::new(task))))
    }

    /// Registers untyped Rust code under `name`.
    pub fn register_handler(
        &mut self,
        name: &str,
        options: TypeOptions,
        handler: Arc<dyn TaskHandler>,
    ) -> Result<(), RegistryError> {
        self.insert(name, TypeKind::Handler, options, Some(handler))
    }

    /// Registers an HTTP target (`target` as `GET /task-types` shows it).
    pub fn register_http(
        &mut self,
        name: &str,
        target: HttpTargetInfo,
        options: TypeOptions,
        handler: Arc<dyn TaskHandler>,
    ) -> Result<(), RegistryError> {
        self.insert(name, TypeKind::Http(target), options, Some(handler))
    }

    /// Registers a type that workers lease; `lease` defaults to the engine's.
    pub fn register_external(
        &mut self,
        name: &str,
        options: TypeOptions,
        lease: Option<Duration>,
    ) -> Result<(), RegistryError> {
        let lease = lease.unwrap_or(self.defaults.lease);
        self.insert(name, TypeKind::External { lease }, options, None)
    }

    fn insert(
        &mut self,
        name: &str,
        kind: TypeKind,
        options: TypeOptions,
        handler: Option<Arc<dyn TaskHandler>>,
    ) -> Result<(), RegistryError> {
        check_type_name(name).map_err(|source| RegistryError::InvalidName {
            name: name.to_owned(),
            source,
        })?;
        if self.types.contains_key(name) {
            return Err(RegistryError::Duplicate(name.to_owned()));
        }
        let settings = options
            .resolve(&self.defaults)
            .map_err(|source| RegistryError::InvalidOption {
                name: name.to_owned(),
                source,
            })?;
        self.types.insert(
            name.to_owned(),
            RegisteredType {
                name: name.to_owned(),
                kind,
                settings,
                handler,
            },
        );
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&RegisteredType> {
        self.types.get(name)
    }

    /// Every type, by name.
    pub fn types(&self) -> impl Iterator<Item = &RegisteredType> {
        self.types.values()
    }

    /// The types this engine runs from their own queue, with their concurrency limits.
    pub fn limited_engine_types(&self) -> Vec<(String, u32)> {
        self.types
            .values()
            .filter(|t| t.handler.is_some())
            .filter_map(|t| Some((t.name.clone(), t.settings.concurrency?)))
            .collect()
    }
}

impl TaskTypes for TaskTypeRegistry {
    fn submission_defaults(&self, task_type: &str) -> Option<SubmissionDefaults> {
        self.types.get(task_type).map(|t| SubmissionDefaults {
            max_attempts: t.settings.max_attempts,
            timeout_ms: t.settings.timeout_ms,
            max_timeout_ms: t.settings.max_timeout_ms,
            queue: t.queue(),
        })
    }

    fn check_payload(&self, task_type: &str, payload: &serde_json::Value) -> Result<(), String> {
        match self.types.get(task_type).and_then(|t| t.handler.as_ref()) {
            Some(handler) => handler.check_payload(payload),
            None => Ok(()),
        }
    }

    fn names(&self) -> Vec<String> {
        self.types.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RetryPolicy;

    fn defaults() -> EngineTypeDefaults {
        EngineTypeDefaults {
            max_attempts: 3,
            timeout_ms: 300_000,
            retry: RetryPolicy::default(),
            lease: Duration::from_secs(30),
        }
    }

    #[test]
    fn knows_the_demo_types_in_order() {
        let registry = TaskTypeRegistry::with_demo_types(defaults());
        assert_eq!(registry.names(), vec!["demo", "demo-fail", "demo-slow"]);
        let demo = registry.submission_defaults("demo").unwrap();
        assert_eq!((demo.max_attempts, demo.timeout_ms), (3, 300_000));
        assert_eq!(demo.queue, TaskQueue::Shared);
        assert!(registry.submission_defaults("nope").is_none());
        assert!(registry.limited_engine_types().is_empty());
    }

    #[test]
    fn refuses_bad_names_bad_options_and_repeats() {
        let mut registry = TaskTypeRegistry::with_demo_types(defaults());
        assert_eq!(
            registry.register_external("demo", TypeOptions::default(), None),
            Err(RegistryError::Duplicate("demo".into()))
        );
        assert!(matches!(
            registry.register_external("no spaces", TypeOptions::default(), None),
            Err(RegistryError::InvalidName { .. })
        ));
        let zero = TypeOptions {
            concurrency: Some(0),
            ..TypeOptions::default()
        };
        let err = registry.register_external("resize", zero, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "task type \"resize\": concurrency: must be between 1 and 10000, got 0"
        );
        assert!(
            registry.get("resize").is_none(),
            "a refused type is not registered"
        );
    }

    #[test]
    fn external_and_limited_types_wait_in_their_own_queue() {
        let mut registry = TaskTypeRegistry::with_demo_types(defaults());
        registry
            .register_external("resize", TypeOptions::default(), Some(Duration::from_secs(90)))
            .unwrap();
        let limited = TypeOptions {
            concurrency: Some(4),
            ..TypeOptions::default()
        };
        registry
            .register_handler("limited", limited, Arc::new(demo::Demo))
            .unwrap();
        assert_eq!(registry.get("resize").unwrap().queue(), TaskQueue::OwnType);
        assert_eq!(registry.get("limited").unwrap().queue(), TaskQueue::OwnType);
        assert_eq!(registry.limited_engine_types(), vec![("limited".to_owned(), 4)]);
        let info = registry.get("resize").unwrap().info();
        assert_eq!((info.kind, info.lease_ms), (TaskTypeKind::External, Some(90_000)));
        assert_eq!(registry.get("demo").unwrap().info().kind, TaskTypeKind::Handler);
    }
}
