//! Store throughput figures for benchmarks (never asserted by tests).

use std::sync::Arc;
use std::time::Instant;

use crate::backend::{Backend, CreateMode, StoreResult};
use crate::lock::{self, LockWait};

/// Operations per second of one kind of operation.
#[derive(Debug, Clone)]
pub struct Figure {
    pub operation: &'static str,
    pub count: usize,
    pub concurrency: usize,
    pub per_second: f64,
}

/// Runs `count` operations of each kind with `concurrency` tasks, under a fresh root.
pub async fn measure(
    backend: Arc<dyn Backend>,
    count: usize,
    concurrency: usize,
) -> StoreResult<Vec<Figure>> {
    let root = format!("/bench-{}", uuid::Uuid::new_v4().simple());
    backend
        .create(&root, b"", CreateMode::Persistent, true)
        .await?;
    let payload = vec![b'x'; 800]; // about the size of a node record
    let per_task = count.div_ceil(concurrency);
    let mut figures = Vec::new();
    for operation in [
        "create",
        "get",
        "set",
        "sequential-create",
        "lock-unlock",
        "delete",
    ] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..concurrency {
            let backend = backend.clone();
            let root = root.clone();
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..per_task {
                    let path = format!("{root}/n{task}-{i}");
                    match operation {
                        "create" => {
                            backend
                                .create(&path, &payload, CreateMode::Persistent, false)
                                .await?;
                        }
                        "get" => {
                            backend.get(&path).await?;
                        }
                        "set" => {
                            backend.set(&path, &payload, None).await?;
                        }
                        "sequential-create" => {
                            backend
                                .create(
                                    &format!("{root}/s-"),
                                    &payload,
                                    CreateMode::PersistentSequential,
                                    false,
                                )
                                .await?;
                        }
                        "lock-unlock" => {
                            let dir = format!("{path}/lock");
                            if let Some(held) =
                                lock::acquire(backend.clone(), &dir, "", LockWait::NonBlocking)
                                    .await?
                            {
                                held.release().await?;
                            }
                        }
                        _ => {
                            backend.delete(&format!("{path}/lock"), None).await.ok();
                            backend.delete(&path, None).await?;
                        }
                    }
                }
                StoreResult::Ok(())
            }));
        }
        for task in tasks {
            task.await
                .map_err(|e| crate::StoreError::Backend(e.to_string()))??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let done = per_task * concurrency;
        figures.push(Figure {
            operation,
            count: done,
            concurrency,
            per_second: done as f64 / elapsed,
        });
    }
    Ok(figures)
}

/// One JSON object per figure, one per line.
pub fn to_json_lines(backend: &str, figures: &[Figure]) -> String {
    figures
        .iter()
        .map(|f| {
            format!(
                "{{\"backend\": \"{backend}\", \"operation\": \"{}\", \"count\": {}, \"concurrency\": {}, \"ops_per_second\": {:.0}}}",
                f.operation, f.count, f.concurrency, f.per_second
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
