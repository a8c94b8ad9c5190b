//! A Zuul-protocol load: workers that each run jobs ([`ZuulClient`]'s submit, wait, accept,
//! use, return) one after the other, for a number of jobs or until stopped, and tally what
//! happened. The benchmark and the fault tests drive launchers with it.
//!
//! A worker rides out a suspended store connection the way Zuul's kazoo client does: the
//! step that failed is tried again once the connection is back. Any other failure ends that
//! job (counted in [`Tally::errors`], with the first few messages kept) and the worker goes
//! on with the next one, unless the load was started with `stop_on_error`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nodepool_model::{NodeId, RequestId, RequestState};
use nodepool_store::{SessionState, StoreError};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::zuul::{RequestOptions, ZuulClient, ZuulError, ZuulResult};

/// How many error messages a tally keeps.
const KEPT_ERRORS: usize = 10;

/// What the load does.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Jobs run at once.
    pub workers: usize,
    /// Each job's node set; worker `i` asks for `label_sets[i % len]`.
    pub label_sets: Vec<Vec<String>>,
    /// Jobs in all; `None`: until [`Load::stop`].
    pub jobs: Option<usize>,
    /// How long a job waits for its request.
    pub request_timeout: Duration,
    /// End the whole load at the first error (a benchmark), instead of counting it.
    pub stop_on_error: bool,
    /// The project recorded on used nodes.
    pub project: String,
}

impl LoadOptions {
    /// `workers` jobs at once for `label`, until stopped, counting errors.
    pub fn continuous(workers: usize, label: &str) -> LoadOptions {
        LoadOptions {
            workers,
            label_sets: vec![vec![label.to_string()]],
            jobs: None,
            request_timeout: Duration::from_secs(600),
            stop_on_error: false,
            project: crate::zuul::DEFAULT_PROJECT_NAME.to_string(),
        }
    }
}

/// What a load did so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Jobs that ran on their nodes and returned them.
    pub completed: usize,
    /// Requests the launcher failed (Zuul's NODE_FAILURE).
    pub failed_requests: usize,
    /// Jobs ended by another error.
    pub errors: usize,
    /// The first few errors' messages.
    pub first_errors: Vec<String>,
    /// Milliseconds from submit to fulfilled, per completed job.
    pub latencies_ms: Vec<f64>,
    /// Every node a completed job returned.
    pub returned_nodes: Vec<NodeId>,
    /// How many of those nodes each provider gave.
    pub nodes_by_provider: BTreeMap<String, usize>,
    /// Times a step was tried again after a suspended connection.
    pub retries: usize,
}

/// A running load.
#[derive(Debug)]
pub struct Load {
    stop: watch::Sender<bool>,
    tally: watch::Receiver<Tally>,
    tasks: JoinSet<ZuulResult<()>>,
    steps: Steps,
}

/// Where each worker is: the step it is in, since when, and for which request. A worker
/// that stays in one step far longer than the step can take shows a call that hangs.
#[derive(Debug, Clone, Default)]
pub struct Steps(Arc<Mutex<Vec<Step>>>);

#[derive(Debug, Clone)]
struct Step {
    name: &'static str,
    request: Option<RequestId>,
    since: Instant,
}

/// A worker found in one step for longer than asked about.
#[derive(Debug, Clone, PartialEq)]
pub struct Stall {
    pub worker: usize,
    /// `submit`, `wait`, `cancel`, `accept`, `use` or `return`.
    pub step: &'static str,
    pub request: Option<RequestId>,
    pub for_: Duration,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worker {} in {} for {:.1} s",
            self.worker,
            self.step,
            self.for_.as_secs_f64()
        )?;
        match &self.request {
            Some(request) => write!(f, " (request {request})"),
            None => Ok(()),
        }
    }
}

impl Steps {
    fn new(workers: usize) -> Steps {
        let idle = Step {
            name: "idle",
            request: None,
            since: Instant::now(),
        };
        Steps(Arc::new(Mutex::new(vec![idle; workers])))
    }

    fn enter(&self, worker: usize, name: &'static str, request: Option<&RequestId>) {
        let mut steps = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(step) = steps.get_mut(worker) {
            *step = Step {
                name,
                request: request.cloned(),
                since: Instant::now(),
            };
        }
    }

    /// Workers that have been in one step (other than between jobs) for at least `limit`.
    pub fn stalled(&self, limit: Duration) -> Vec<Stall> {
        let steps = self.0.lock().unwrap_or_else(|e| e.into_inner());
        steps
            .iter()
            .enumerate()
            .filter(|(_, step)| step.name != "idle" && step.since.elapsed() >= limit)
            .map(|(worker, step)| Stall {
                worker,
                step: step.name,
                request: step.request.clone(),
                for_: step.since.elapsed(),
            })
            .collect()
    }
}

impl Load {
    pub fn start(zuul: Arc<ZuulClient>, options: LoadOptions) -> Load {
        let (stop, _) = watch::channel(false);
        let (tally_tx, tally) = watch::channel(Tally::default());
        let tally_tx = Arc::new(tally_tx);
        let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(
            options.jobs.unwrap_or(usize::MAX),
        ));
        let mut tasks = JoinSet::new();
        let workers = match options.jobs {
            Some(jobs) => options.workers.min(jobs).max(1),
            None => options.workers.max(1),
        };
        let steps = Steps::new(workers);
        for worker in 0..workers {
            let labels = options.label_sets[worker % options.label_sets.len().max(1)].clone();
            let context = Worker {
                zuul: zuul.clone(),
                index: worker,
                steps: steps.clone(),
                tally: tally_tx.clone(),
            };
            tasks.spawn(work(
                context,
                labels,
                options.clone(),
                remaining.clone(),
                stop.subscribe(),
            ));
        }
        Load {
            stop,
            tally,
            tasks,
            steps,
        }
    }

    /// Where the workers are, for reports of workers that do not move on.
    pub fn steps(&self) -> Steps {
        self.steps.clone()
    }

    /// The tally so far.
    pub fn tally(&self) -> Tally {
        self.tally.borrow().clone()
    }

    /// Waits until `condition` holds for the tally (checked on every change), for at most
    /// `timeout`; returns the tally then, or `Err` with the tally at the deadline.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        condition: impl Fn(&Tally) -> bool,
    ) -> Result<Tally, Tally> {
        let mut tally = self.tally.clone();
        match tokio::time::timeout(timeout, tally.wait_for(|t| condition(t))).await {
            Ok(Ok(t)) => Ok(t.clone()),
            _ => Err(self.tally()),
        }
    }

    /// Waits for every job to end (a load of `jobs` jobs) and returns the tally, or the
    /// first error of a `stop_on_error` load.
    pub async fn finish(mut self) -> ZuulResult<Tally> {
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(result) => result?,
                Err(e) => panic!("a load worker panicked: {e}"),
            }
        }
        Ok(self.tally())
    }

    /// Lets each worker finish the job in hand, then returns the tally.
    pub async fn stop(self) -> ZuulResult<Tally> {
        self.stop.send_replace(true);
        self.finish().await
    }

    /// As [`Load::stop`], but gives the workers at most `limit` to finish their jobs; the
    /// workers still busy then are abandoned and returned, each with the step it hung in.
    /// Every job has its own request timeout, so a worker still busy past it shows a store
    /// call that never returned.
    pub async fn stop_within(mut self, limit: Duration) -> ZuulResult<(Tally, Vec<Stall>)> {
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(None) => return Ok((self.tally(), Vec::new())),
                Ok(Some(Ok(result))) => result?,
                Ok(Some(Err(e))) => panic!("a load worker panicked: {e}"),
                Err(_) => {
                    let stalled = self.steps.stalled(Duration::ZERO);
                    self.tasks.abort_all();
                    return Ok((self.tally(), stalled));
                }
            }
        }
    }
}

/// What one worker works with.
struct Worker {
    zuul: Arc<ZuulClient>,
    index: usize,
    steps: Steps,
    tally: Arc<watch::Sender<Tally>>,
}

impl Worker {
    fn enter(&self, step: &'static str, request: Option<&RequestId>) {
        self.steps.enter(self.index, step, request);
    }
}

async fn work(
    worker: Worker,
    labels: Vec<String>,
    options: LoadOptions,
    remaining: Arc<std::sync::atomic::AtomicUsize>,
    stop: watch::Receiver<bool>,
) -> ZuulResult<()> {
    let tally = &worker.tally;
    use std::sync::atomic::Ordering;
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    while !*stop.borrow()
        && remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        let outcome = job(&worker, &labels, &options).await;
        worker.enter("idle", None);
        match outcome {
            Ok(Outcome::Completed { latency_ms, nodes }) => tally.send_modify(|t| {
                t.completed += 1;
                t.latencies_ms.push(latency_ms);
                for (id, provider) in nodes {
                    t.returned_nodes.push(id);
                    *t.nodes_by_provider.entry(provider).or_default() += 1;
                }
            }),
            Ok(Outcome::Failed) => tally.send_modify(|t| t.failed_requests += 1),
            Err(e) if options.stop_on_error => return Err(e),
            Err(e) => tally.send_modify(|t| {
                t.errors += 1;
                if t.first_errors.len() < KEPT_ERRORS {
                    t.first_errors.push(e.to_string());
                }
            }),
        }
    }
    Ok(())
}

enum Outcome {
    Completed {
        latency_ms: f64,
        /// Each node with its provider.
        nodes: Vec<(NodeId, String)>,
    },
    Failed,
}

/// Evaluates `$step` (an expression giving a [`ZuulResult`]) again each time it fails
/// because the store connection is suspended, once the connection is back.
macro_rules! riding_out {
    ($zuul:expr, $tally:expr, $step:expr) => {
        loop {
            match $step {
                Err(ZuulError::Store(StoreError::Suspended)) => {
                    connection_back($zuul, $tally).await?
                }
                other => break other,
            }
        }
    };
}

async fn job(worker: &Worker, labels: &[&str], options: &LoadOptions) -> ZuulResult<Outcome> {
    let zuul = worker.zuul.as_ref();
    let tally = worker.tally.as_ref();
    let started = Instant::now();
    // As Zuul does, a request whose nodes could not be taken (accept deletes the request
    // whatever happens) is submitted again.
    let (id, latency_ms, mut node_set) = loop {
        worker.enter("submit", None);
        let id = riding_out!(
            zuul,
            tally,
            zuul.submit(labels, RequestOptions::default()).await
        )?;
        worker.enter("wait", Some(&id));
        let request = riding_out!(zuul, tally, zuul.wait(&id, options.request_timeout).await);
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                if matches!(e, ZuulError::Timeout { .. }) {
                    worker.enter("cancel", Some(&id));
                    riding_out!(zuul, tally, zuul.cancel(&id).await)?;
                }
                return Err(e);
            }
        };
        if request.state == RequestState::Failed {
            worker.enter("cancel", Some(&id));
            riding_out!(zuul, tally, zuul.cancel(&id).await)?;
            return Ok(Outcome::Failed);
        }
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        worker.enter("accept", Some(&id));
        match zuul.accept(&id, &request).await {
            Ok(node_set) => break (id, latency_ms, node_set),
            Err(ZuulError::Store(StoreError::Suspended)) => connection_back(zuul, tally).await?,
            Err(e) => return Err(e),
        }
    };
    let nodes = node_set
        .nodes()
        .iter()
        .map(|held| (held.id, held.node.provider.clone().unwrap_or_default()))
        .collect();
    worker.enter("use", Some(&id));
    riding_out!(
        zuul,
        tally,
        zuul.use_nodes(&mut node_set, &options.project).await
    )?;
    worker.enter("return", Some(&id));
    zuul.return_nodes(node_set).await?;
    Ok(Outcome::Completed { latency_ms, nodes })
}

/// Waits until the store connection is no longer suspended (connected again, or lost for
/// good, which the next try reports), counting the retry.
async fn connection_back(zuul: &ZuulClient, tally: &watch::Sender<Tally>) -> ZuulResult<()> {
    tally.send_modify(|t| t.retries += 1);
    let mut states = zuul.store().backend().session_state();
    // A call can fail a moment before the state says so.
    tokio::time::sleep(Duration::from_millis(100)).await;
    states
        .wait_for(|s| *s != SessionState::Suspended)
        .await
        .map(|_| ())
        .map_err(|_| StoreError::SessionLost.into())
}
