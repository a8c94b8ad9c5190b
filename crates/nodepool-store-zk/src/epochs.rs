//! Session epochs: the supervisor that follows the client's session state, opens a new
//! session when one expires, and the tasks that forward persistent watch events.
//!
//! ZooKeeper states map to the store's as kazoo's do to Nodepool's: Disconnected is
//! Suspended (the session may survive, the client is reconnecting), SyncConnected is
//! Connected, Expired is Lost. After a loss nothing of the old session is reused: its
//! ephemerals and locks are gone and its watches are dead, so the supervisor connects anew,
//! re-registers every watch callers still hold, sends each of them `Resync` (they must
//! re-list: changes in between were missed) and only then reports Connected.
//!
//! A reconnect within the same session keeps the watches (the client re-sends them), but
//! ZooKeeper does not replay changes made while disconnected (ZOOKEEPER-4698), so each
//! forwarder sends `Resync` after a Disconnected/SyncConnected pair as well.

use std::sync::{Arc, Weak};
use std::time::Duration;

use nodepool_store::{SessionState, WatchEvent};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::backend::Shared;

/// Pause between attempts to open a new session after a loss.
const RENEW_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Follows the session state of the current client until the backend is closed or dropped.
pub(crate) async fn supervise(shared: Weak<Shared>, mut states: zk::StateWatcher) {
    let Some(mut shutdown) = shared.upgrade().map(|s| s.shutdown.subscribe()) else {
        return;
    };
    // The state may have moved on between connecting and subscribing.
    let mut pending = Some(states.state());
    loop {
        let state = match pending.take() {
            Some(state) => state,
            None => tokio::select! {
                state = states.changed() => state,
                _ = shut_down(&mut shutdown) => return,
            },
        };
        if *shutdown.borrow() {
            return;
        }
        let Some(strong) = shared.upgrade() else {
            return;
        };
        match state {
            zk::SessionState::Disconnected => {
                tracing::warn!("ZooKeeper connection lost; the session is suspended");
                strong.state_tx.send_replace(SessionState::Suspended);
            }
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                if *strong.state_tx.borrow() != SessionState::Connected {
                    tracing::info!("ZooKeeper connection restored");
                }
                strong.state_tx.send_replace(SessionState::Connected);
            }
            zk::SessionState::Expired | zk::SessionState::AuthFailed => {
                let old = strong.current().session_id;
                tracing::warn!(
                    session = format_args!("{old:#x}"),
                    reason = %state,
                    "ZooKeeper session lost; opening a new session"
                );
                strong.state_tx.send_replace(SessionState::Lost);
                drop(strong);
                match renew(&shared).await {
                    Some(new_states) => {
                        states = new_states;
                        pending = Some(states.state());
                    }
                    None => return,
                }
            }
            // Only `close` (or dropping the backend) closes the client.
            zk::SessionState::Closed => return,
        }
    }
}

/// Opens a new session (retrying until the backend goes away), re-registers the watches on
/// it and installs it as the current one. Returns its state watcher, or `None` when the
/// backend was closed or dropped meanwhile.
async fn renew(shared: &Weak<Shared>) -> Option<zk::StateWatcher> {
    loop {
        let strong = shared.upgrade()?;
        let mut shutdown = strong.shutdown.subscribe();
        if *shutdown.borrow() {
            return None;
        }
        let deadline = Instant::now() + strong.prepared.options.connect_timeout;
        let opened = tokio::select! {
            opened = strong.prepared.open_session(deadline) => opened,
            _ = shut_down(&mut shutdown) => return None,
        };
        match opened {
            Ok(client) => return install(&strong, client).await,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a new ZooKeeper session; retrying");
                drop(strong);
                tokio::select! {
                    _ = tokio::time::sleep(RENEW_RETRY_INTERVAL) => {}
                    _ = shut_down(&mut shutdown) => return None,
                }
            }
        }
    }
}

/// Makes `client` the current session: watches first (each starting with `Resync`), then
/// the client, then the epoch. `None` (and the new session closed again) when the backend
/// was closed meanwhile.
async fn install(shared: &Arc<Shared>, client: zk::Client) -> Option<zk::StateWatcher> {
    let states = client.state_watcher();
    // `close` takes this lock before it takes the client, so checking here is enough.
    let watches = shared.watches.lock().await;
    if *shared.shutdown.borrow() {
        return None;
    }
    for (id, entry) in &watches.entries {
        match client
            .watch(&entry.prefix, zk::AddWatchMode::PersistentRecursive)
            .await
        {
            Ok(watcher) => spawn_forwarder(shared, *id, watcher, entry.events.clone(), true),
            // This session is failing too; the supervisor sees it and renews again.
            Err(e) => tracing::warn!(
                prefix = %entry.prefix,
                error = %e,
                "cannot re-register a ZooKeeper watch on the new session"
            ),
        }
    }
    let session_id = client.session_id().0;
    let epoch = {
        let mut current = shared.current();
        current.client = Some(client);
        current.session_id = session_id;
        current.epoch += 1;
        current.epoch
    };
    drop(watches);
    shared.epoch_tx.send_replace(epoch);
    tracing::info!(
        session = format_args!("{session_id:#x}"),
        epoch,
        "opened a new ZooKeeper session"
    );
    Some(states)
}

/// Forwards one persistent recursive watch's events to its caller for as long as the
/// session lives. Ends when the caller drops its receiver (the watch is then forgotten and,
/// with the client's watcher dropped, removed from the server), when the session ends (the
/// supervisor registers the watch on the next session), or when the backend shuts down.
pub(crate) fn spawn_forwarder(
    shared: &Arc<Shared>,
    id: u64,
    mut watcher: zk::PersistentWatcher,
    events: mpsc::UnboundedSender<WatchEvent>,
    resync_first: bool,
) {
    let weak = Arc::downgrade(shared);
    let mut shutdown = shared.shutdown.subscribe();
    tokio::spawn(async move {
        if resync_first && events.send(WatchEvent::Resync).is_err() {
            forget_watch(&weak, id).await;
            return;
        }
        let mut disconnected = false;
        loop {
            let event = tokio::select! {
                event = watcher.changed() => event,
                _ = events.closed() => {
                    forget_watch(&weak, id).await;
                    return;
                }
                _ = shut_down(&mut shutdown) => return,
            };
            let forwarded = match event.event_type {
                zk::EventType::NodeCreated => WatchEvent::Created(event.path),
                zk::EventType::NodeDataChanged => WatchEvent::Changed(event.path),
                zk::EventType::NodeDeleted => WatchEvent::Deleted(event.path),
                // Recursive watches do not report child lists; nothing else is expected.
                zk::EventType::NodeChildrenChanged => continue,
                zk::EventType::Session => match event.session_state {
                    zk::SessionState::Disconnected => {
                        disconnected = true;
                        continue;
                    }
                    zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {
                        if !disconnected {
                            continue;
                        }
                        disconnected = false;
                        WatchEvent::Resync
                    }
                    // Terminal: the client delivers nothing more on this watcher.
                    _ => return,
                },
            };
            if events.send(forwarded).is_err() {
                forget_watch(&weak, id).await;
                return;
            }
        }
    });
}

/// Resolves once the backend is shutting down (or gone).
pub(crate) async fn shut_down(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which is a shutdown too.
    let _ = shutdown.wait_for(|closed| *closed).await;
}

/// Resolves with `true` once an epoch newer than `epoch` is installed, `false` if the
/// backend is gone.
pub(crate) async fn newer_epoch(epochs: &mut watch::Receiver<u64>, epoch: u64) -> bool {
    epochs.wait_for(|current| *current > epoch).await.is_ok()
}

async fn forget_watch(shared: &Weak<Shared>, id: u64) {
    if let Some(shared) = shared.upgrade() {
        shared.watches.lock().await.entries.remove(&id);
    }
}
