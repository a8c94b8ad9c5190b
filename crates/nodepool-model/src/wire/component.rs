//! Component JSON, `/nodepool/components/<kind>/<hostname><seq10>` (spec 1.9;
//! np zk/components.py).
//!
//! Written with `json.dumps(content, sort_keys=True)`: keys of every object
//! in code point order. Launchers and builders write `hostname`, `kind`,
//! `model_api`, `state`, `version`; pools add `id`, `name`,
//! `provider_name`, `supported_labels`, `priority`, `paused`.
//!
//! Reading mirrors `Component.fromDict(None, <znode name>, data)`: start from
//! the class defaults and overlay the document. So an absent `hostname` is
//! the znode name, `state` is `stopped`, `version` null, `model_api` 0, and a
//! pool's `priority` 100, `paused` false, `supported_labels` `[]`. A null
//! where a value is needed reads as that default too. The kind comes from
//! the directory the znode is in; the document's own `kind` key is not
//! consulted (Nodepool picks the class from the directory as well).
//!
//! Unknown keys are **kept** in [`Component::extra`] and written back, since
//! the registry keeps the whole object (`content.update(data)`).

use serde_json::{Map, Value};

use super::fields::Fields;
use super::{DocumentKind, WireError};
use crate::component::{Component, ComponentRole, DEFAULT_POOL_PRIORITY, MODEL_API, PoolDetails};
use crate::python_json::to_python_json_sorted;
use crate::states::{ComponentKind, ComponentState};

/// The bytes a Nodepool component would store for `component`.
pub fn to_json(component: &Component) -> Vec<u8> {
    let mut object = component.extra.clone();
    object.insert(
        "hostname".to_owned(),
        Value::from(component.hostname.as_str()),
    );
    object.insert("kind".to_owned(), Value::from(component.kind().as_str()));
    object.insert("model_api".to_owned(), Value::from(component.model_api));
    object.insert("state".to_owned(), Value::from(component.state.as_str()));
    object.insert("version".to_owned(), optional_string(&component.version));
    if let ComponentRole::Pool(pool) = &component.role {
        object.insert("id".to_owned(), optional_string(&pool.id));
        object.insert("name".to_owned(), optional_string(&pool.name));
        object.insert(
            "provider_name".to_owned(),
            optional_string(&pool.provider_name),
        );
        object.insert(
            "supported_labels".to_owned(),
            Value::from(pool.supported_labels.clone()),
        );
        object.insert("priority".to_owned(), Value::from(pool.priority));
        object.insert("paused".to_owned(), Value::from(pool.paused));
    }
    to_python_json_sorted(&object)
}

fn optional_string(value: &Option<String>) -> Value {
    value.as_deref().map_or(Value::Null, Value::from)
}

/// Reads the data of component znode `znode_name` in the `kind` directory.
/// `b""` is [`WireError::Empty`].
pub fn from_json(
    kind: ComponentKind,
    znode_name: &str,
    data: &[u8],
) -> Result<Component, WireError> {
    let mut fields = Fields::parse(DocumentKind::Component, data)?;
    let hostname = fields
        .optional_string("hostname")?
        .unwrap_or_else(|| znode_name.to_owned());
    let state = fields
        .optional_string("state")?
        .map_or(ComponentState::Stopped, |text| ComponentState::parse(&text));
    let version = fields.optional_string("version")?;
    let model_api = fields.int_or("model_api", MODEL_API)?;
    // Decided by the directory; see the module docs.
    let _document_kind = fields.take("kind");
    let role = match kind {
        ComponentKind::Launcher => ComponentRole::Launcher,
        ComponentKind::Builder => ComponentRole::Builder,
        ComponentKind::Pool => ComponentRole::Pool(PoolDetails {
            id: fields.optional_string("id")?,
            name: fields.optional_string("name")?,
            provider_name: fields.optional_string("provider_name")?,
            supported_labels: fields.string_list("supported_labels")?,
            priority: fields.int_or("priority", DEFAULT_POOL_PRIORITY)?,
            paused: fields.bool_or("paused", false)?,
        }),
    };
    let extra: Map<String, Value> = fields.into_remaining();
    Ok(Component {
        hostname,
        state,
        version,
        model_api,
        role,
        extra,
    })
}
