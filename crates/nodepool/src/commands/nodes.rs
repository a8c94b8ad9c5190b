//! `list`, `delete` and `hold` (spec 5.2).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use nodepool_driver::{DriverError, Provider};
use nodepool_model::{ExternalId, Node, NodeId, NodeState};
use nodepool_store::{Lock, LockWait, Store, StoreError, paths};
use nodepool_web::status::{self, NODE_LIST_BRIEF_KEYS};

use crate::cli::{DeleteArgs, ListArgs, NodeIdArgs};
use crate::commands::{Context, daemons, now, print_json, print_table};
use crate::store;
use nodepool_web::gather;

/// How long `delete` and `hold` wait for the node lock (Nodepool's `timeout=5`).
const NODE_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `delete --now` waits for the cloud to delete the instance.
const CLOUD_DELETE_TIMEOUT: Duration = Duration::from_secs(600);

/// `list [--detail] [--json]`: every node, in the store's order.
pub fn list(context: &Context, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let nodes = store::run(&context.config, async |store| {
        Ok(gather::nodes(store).await?)
    })?;
    if args.output.json {
        print_json(&status::records::nodes(&nodes));
    } else {
        print_node_table(&nodes, args.detail);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_node_table(nodes: &[(NodeId, Node, bool)], detail: bool) {
    let table = status::node_list(nodes, now());
    if detail {
        print_table(&table);
    } else {
        print_table(&table.select(&NODE_LIST_BRIEF_KEYS));
    }
}

/// What `delete` and `hold` print last: the short list of that one node (an empty table
/// once it is gone).
async fn print_one(store: &Store, id: NodeId) -> anyhow::Result<()> {
    let nodes: Vec<_> = gather::node(store, id).await?.into_iter().collect();
    print_node_table(&nodes, false);
    Ok(())
}

/// Reads the node named on the command line; `None` (after printing Nodepool's message)
/// when there is no such node. Ids that cannot be node ids cannot exist either.
async fn find(store: &Store, text: &str) -> anyhow::Result<Option<NodeId>> {
    let found = match NodeId::parse(text) {
        Ok(id) => store.nodes().get(id).await?.map(|_| id),
        Err(_) => None,
    };
    if found.is_none() {
        println!("Node id {text} not found");
    }
    Ok(found)
}

/// Takes the node lock as Nodepool's `lockNode(blocking=True, timeout=5)` does, failing
/// with its message when the lock is held elsewhere (e.g. by Zuul) for 5 s.
async fn lock(store: &Store, id: NodeId) -> anyhow::Result<Lock> {
    let path = paths::node_lock(id);
    match store
        .nodes()
        .lock(id, LockWait::Timeout(NODE_LOCK_TIMEOUT))
        .await
    {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => anyhow::bail!("Did not get lock on {path}"),
        Err(StoreError::Timeout) => anyhow::bail!("Timeout trying to acquire lock {path}"),
        Err(e) => Err(e).with_context(|| format!("cannot lock {path}")),
    }
}

/// Re-reads the node under its lock; it may have been deleted while we waited.
async fn read_locked(
    store: &Store,
    id: NodeId,
    lock: Lock,
) -> anyhow::Result<Option<(Node, Lock)>> {
    match store.nodes().get(id).await? {
        Some(node) => Ok(Some((node.value, lock))),
        None => {
            lock.release().await?;
            println!("Node id {id} not found");
            Ok(None)
        }
    }
}

/// `hold ID`: any state becomes `hold`.
pub fn hold(context: &Context, args: &NodeIdArgs) -> anyhow::Result<ExitCode> {
    store::run(&context.config, async |store| {
        let Some(id) = find(store, &args.id).await? else {
            return Ok(());
        };
        let lock = lock(store, id).await?;
        let Some((mut node, lock)) = read_locked(store, id, lock).await? else {
            return Ok(());
        };
        node.set_state(NodeState::Hold, now());
        store.nodes().store(id, &node).await?;
        lock.release().await?;
        print_one(store, id).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `delete ID [--now]`.
///
/// Without `--now` the node is marked `deleting` and a launcher deletes the instance.
/// With `--now` this process deletes the instance through the provider's driver and then
/// the record, as Nodepool runs the provider's node deleter in the foreground.
pub fn delete(context: &Context, args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    store::run(&context.config, async |store| {
        let Some(id) = find(store, &args.id).await? else {
            return Ok(());
        };
        let lock = lock(store, id).await?;
        let Some((mut node, lock)) = read_locked(store, id, lock).await? else {
            return Ok(());
        };
        if args.now {
            let provider_name = node.provider.clone().unwrap_or_default();
            let Some(provider) = context.config.providers.get(&provider_name) else {
                // As in Nodepool, the lock stays held until this process ends.
                println!(
                    "Provider {} for node {id} not defined on this launcher",
                    node.provider.as_deref().unwrap_or("None")
                );
                return Ok(());
            };
            match daemons::drivers().build(provider) {
                Ok(cloud) => {
                    delete_now(store, id, &mut node, cloud.as_ref()).await?;
                    lock.release().await?;
                }
                Err(e) => {
                    // Without the provider's driver in this binary the cloud cannot be
                    // reached from here: leave the instance to a launcher that has it, the
                    // same end state as a plain `delete`.
                    tracing::warn!(
                        node_id = %id,
                        "cannot delete the instance from here ({e}); marking the node deleting for a launcher to delete"
                    );
                    mark_deleting(store, id, &mut node, lock).await?;
                }
            }
        } else {
            mark_deleting(store, id, &mut node, lock).await?;
        }
        print_one(store, id).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn mark_deleting(
    store: &Store,
    id: NodeId,
    node: &mut Node,
    lock: Lock,
) -> anyhow::Result<()> {
    node.set_state(NodeState::Deleting, now());
    store.nodes().store(id, node).await?;
    lock.release().await?;
    Ok(())
}

/// The provider's node deleter, in the foreground: `deleting`, the cloud delete, then the
/// record (`deleted`, then removed with its lock directory).
async fn delete_now(
    store: &Store,
    id: NodeId,
    node: &mut Node,
    cloud: &dyn Provider,
) -> anyhow::Result<()> {
    node.set_state(NodeState::Deleting, now());
    store.nodes().store(id, node).await?;
    if let Some(external_id) = &node.external_id {
        delete_instance(cloud, external_id)
            .await
            .with_context(|| format!("cannot delete the instance of node {id}"))?;
    }
    store.nodes().delete(id, node, now()).await?;
    Ok(())
}

async fn delete_instance(
    cloud: &dyn Provider,
    external_id: &ExternalId,
) -> Result<(), DriverError> {
    nodepool_driver::run_delete_machine(cloud, external_id, CLOUD_DELETE_TIMEOUT).await
}
