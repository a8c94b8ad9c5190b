//! `/nodepool/components`: launcher, builder and pool registrations (spec 1.9).

use nodepool_model::{Component, ComponentKind, wire};

use crate::backend::{CreateMode, StoreError, StoreResult};
use crate::paths;
use crate::store::Store;
use crate::versioned::{Versioned, children_or_empty};

/// A component as registered, with the znode name it lives under.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// `<hostname><seq10>`.
    pub name: String,
    pub component: Versioned<Component>,
}

/// Our own registration: keep it to update or remove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub path: String,
    pub version: i32,
}

/// Typed access to component registrations; get one with [`Store::components`].
#[derive(Debug, Clone)]
pub struct Components {
    store: Store,
}

impl Components {
    pub(crate) fn new(store: Store) -> Components {
        Components { store }
    }

    /// Creates the three kind directories, as every Nodepool process does on connect.
    pub async fn ensure_dirs(&self) -> StoreResult<()> {
        for kind in ComponentKind::ALL {
            self.store
                .ensure_path(&paths::component_dir(kind.as_str()))
                .await?;
        }
        Ok(())
    }

    /// Registers a component: ephemeral and sequential, so it vanishes with our session.
    pub async fn register(&self, component: &Component) -> StoreResult<Registration> {
        let dir = paths::component_dir(component.kind().as_str());
        let path = self
            .store
            .backend()
            .create(
                &format!("{dir}/{}", component.hostname),
                &wire::component::to_json(component),
                CreateMode::EphemeralSequential,
                true,
            )
            .await?;
        Ok(Registration { path, version: 0 })
    }

    /// Writes changed attributes with a version check, as Nodepool does.
    pub async fn update(
        &self,
        registration: &mut Registration,
        component: &Component,
    ) -> StoreResult<()> {
        let stat = self
            .store
            .backend()
            .set(
                &registration.path,
                &wire::component::to_json(component),
                Some(registration.version),
            )
            .await?;
        registration.version = stat.version;
        Ok(())
    }

    pub async fn unregister(&self, registration: &Registration) -> StoreResult<()> {
        match self.store.backend().delete(&registration.path, None).await {
            Ok(()) | Err(StoreError::NoNode(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every registered component of a kind; unreadable registrations are skipped.
    pub async fn list(&self, kind: ComponentKind) -> StoreResult<Vec<Registered>> {
        let dir = paths::component_dir(kind.as_str());
        let mut out = Vec::new();
        for name in children_or_empty(self.store.backend().as_ref(), &dir).await? {
            let path = format!("{dir}/{name}");
            let Some((data, stat)) = self.store.backend().get(&path).await? else {
                continue;
            };
            match wire::component::from_json(kind, &name, &data) {
                Ok(component) => out.push(Registered {
                    name,
                    component: Versioned {
                        value: component,
                        stat,
                    },
                }),
                Err(e) => {
                    tracing::warn!(path, error = %e, "ignoring an unreadable component registration")
                }
            }
        }
        Ok(out)
    }
}
