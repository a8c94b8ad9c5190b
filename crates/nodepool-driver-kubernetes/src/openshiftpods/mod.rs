//! Nodepool's `driver: openshiftpods` (Nodepool 11's `openshiftpods`): each node is one pod,
//! `<label>-<node id>`, in the existing project (namespace) its pool names, made with the
//! launcher's own credentials. Zuul receives those credentials (server, CA, token) as the
//! node's `connection_port` and runs `kubectl exec` in the pod. Nothing but the pod is made:
//! no namespace, service account or role; the namespace must exist.
//!
//! It shares the kubernetes driver's client, pod body, labels and quota rules.
//!
//! * `objects.rs`: the pod's name, plan and external id, the credentials dict, and which
//!   pods are the provider's (pure).
//! * `machines.rs`: the create (`creating pod` -> `waiting for pod`) and delete (`deleting
//!   pod` -> `waiting for pod`) state machines.
//! * `provider.rs`, `driver.rs`: the provider contract.

mod driver;
mod machines;
pub mod objects;
mod provider;

pub use driver::OpenShiftPodsDriver;
pub use machines::{OpenShiftPodsCreateMachine, OpenShiftPodsDeleteMachine};
pub use provider::OpenShiftPodsProvider;
