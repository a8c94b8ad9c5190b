//! Reading and writing typed documents with their znode versions.

use crate::backend::{Backend, Stat, StoreError, StoreResult};

/// A record together with the znode metadata it was read with.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub stat: Stat,
}

/// Reads and parses one document. Missing znodes and empty data (a znode re-created by a
/// lock attempt on a vanished node, spec 8.2) are `None`.
pub(crate) async fn read<T, E: std::fmt::Display>(
    backend: &dyn Backend,
    path: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> StoreResult<Option<Versioned<T>>> {
    let Some((data, stat)) = backend.get(path).await? else {
        return Ok(None);
    };
    if data.is_empty() {
        return Ok(None);
    }
    match parse(&data) {
        Ok(value) => Ok(Some(Versioned { value, stat })),
        Err(e) => Err(StoreError::Malformed {
            path: path.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Children of `path`, or nothing when it does not exist yet.
pub(crate) async fn children_or_empty(
    backend: &dyn Backend,
    path: &str,
) -> StoreResult<Vec<String>> {
    match backend.children(path).await {
        Ok(children) => Ok(children),
        Err(StoreError::NoNode(_)) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
