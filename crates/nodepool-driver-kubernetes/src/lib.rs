//! Nodepool's `driver: kubernetes` (spec 4.5, 7.6): nodes that are namespaces (Zuul gets a
//! service account's token for the namespace) or pods in their own namespace (Zuul runs
//! `kubectl exec` in them), on any Kubernetes API server, through a small REST client of our
//! own (no kube-rs: the driver needs about a dozen calls).
//!
//! * `kubeconfig.rs`: which server and identity, from a kubeconfig or in-cluster.
//! * `client.rs`: the REST calls, API errors typed as the driver uses them.
//! * `objects.rs`: the namespace, service account, token secret, role, role binding and pod
//!   of a node, its quota and the credentials Zuul receives (pure).
//! * `machines.rs`: the create and delete state machines.
//! * `provider.rs`, `driver.rs`: the provider contract.
//! * `openshiftpods/`: Nodepool's `driver: openshiftpods` on the same client and pod body:
//!   one pod per node in the existing namespace its pool names, with the launcher's own
//!   credentials.
//! * `testing.rs`: the local cluster of `scripts/kubernetes/` for tests.

mod client;
mod driver;
pub mod kubeconfig;
mod machines;
pub mod objects;
pub mod openshiftpods;
mod provider;
pub mod testing;

pub use client::{ApiError, ApiErrorKind, Kind, KubeClient, classify};
pub use driver::KubernetesDriver;
pub use kubeconfig::{ClusterAccess, Credential, KubeconfigSource, Secret};
pub use machines::{KubernetesCreateMachine, KubernetesDeleteMachine, POD_WAIT, TOKEN_WAIT};
pub use openshiftpods::{OpenShiftPodsDriver, OpenShiftPodsProvider};
pub use provider::{KubernetesProvider, LEAK_KIND};
