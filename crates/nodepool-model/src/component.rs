//! Component registration: who is alive in the cluster (spec 1.9).
//!
//! Every launcher, builder and provider-pool worker keeps an ephemeral
//! sequential znode `/nodepool/components/<kind>/<hostname><seq10>`. Pool
//! components matter most: a request fails once every *registered pool* has
//! declined it, so a drop-in launcher must register one per provider-pool.

use serde_json::{Map, Value};

use crate::states::{ComponentKind, ComponentState};

/// The only data-model version Nodepool 11 knows (`MODEL_API`).
pub const MODEL_API: i64 = 0;

/// `priority` a pool component has unless configured otherwise.
pub const DEFAULT_POOL_PRIORITY: i64 = 100;

/// A registered component.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// `socket.gethostname()`; also the znode name prefix.
    pub hostname: String,
    /// Launchers go from `stopped` to `running` after their first loop;
    /// builders stay `stopped`; pools register as `running`.
    pub state: ComponentState,
    /// Software version, e.g. `"11.0.0"`.
    pub version: Option<String>,
    pub model_api: i64,
    /// Kind, plus the pool fields for pool components.
    pub role: ComponentRole,
    /// Keys this version does not know. Nodepool's registry keeps a
    /// component's whole JSON object, so we keep them too and write them back
    /// (known fields win on a clash).
    pub extra: Map<String, Value>,
}

/// What kind of component this is; pools carry their pool fields.
#[derive(Debug, Clone, PartialEq)]
pub enum ComponentRole {
    Launcher,
    Builder,
    Pool(PoolDetails),
}

/// Fields only pool components have.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolDetails {
    /// The pool worker id (`<fqdn>-PoolWorker.<provider>-<pool>-<uuid4hex>`),
    /// the same string the worker writes into `declined_by`.
    pub id: Option<String>,
    /// Pool name.
    pub name: Option<String>,
    pub provider_name: Option<String>,
    /// Labels the pool can launch, in configuration order.
    pub supported_labels: Vec<String>,
    /// Lower is preferred when several pools can serve a request.
    pub priority: i64,
    /// True while the worker has paused request handlers.
    pub paused: bool,
}

impl Default for PoolDetails {
    /// `PoolComponent`'s initial state.
    fn default() -> PoolDetails {
        PoolDetails {
            id: None,
            name: None,
            provider_name: None,
            supported_labels: Vec::new(),
            priority: DEFAULT_POOL_PRIORITY,
            paused: false,
        }
    }
}

impl ComponentRole {
    pub fn kind(&self) -> ComponentKind {
        match self {
            ComponentRole::Launcher => ComponentKind::Launcher,
            ComponentRole::Builder => ComponentKind::Builder,
            ComponentRole::Pool(_) => ComponentKind::Pool,
        }
    }

    /// The role a component of `kind` has before its own fields are read.
    pub fn default_for(kind: ComponentKind) -> ComponentRole {
        match kind {
            ComponentKind::Launcher => ComponentRole::Launcher,
            ComponentKind::Builder => ComponentRole::Builder,
            ComponentKind::Pool => ComponentRole::Pool(PoolDetails::default()),
        }
    }
}

impl Component {
    /// A component as Nodepool constructs it before registering: `stopped`,
    /// `model_api` 0.
    pub fn new(hostname: &str, version: Option<&str>, role: ComponentRole) -> Component {
        Component {
            hostname: hostname.to_owned(),
            state: ComponentState::Stopped,
            version: version.map(str::to_owned),
            model_api: MODEL_API,
            role,
            extra: Map::new(),
        }
    }

    pub fn kind(&self) -> ComponentKind {
        self.role.kind()
    }

    /// The pool fields, for pool components.
    pub fn pool(&self) -> Option<&PoolDetails> {
        match &self.role {
            ComponentRole::Pool(details) => Some(details),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_components_start_stopped() {
        let launcher = Component::new("np1", Some("11.0.0"), ComponentRole::Launcher);
        assert_eq!(launcher.kind(), ComponentKind::Launcher);
        assert_eq!(launcher.state, ComponentState::Stopped);
        assert_eq!(launcher.model_api, 0);
        assert!(launcher.pool().is_none());

        let pool = Component::new("np1", None, ComponentRole::default_for(ComponentKind::Pool));
        assert_eq!(pool.kind(), ComponentKind::Pool);
        let details = pool.pool().unwrap();
        assert_eq!(details.priority, 100);
        assert!(!details.paused);
        assert!(details.supported_labels.is_empty());
    }
}
