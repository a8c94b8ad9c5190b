//! `info` and `erase`: what the store holds for one provider (spec 5.2).

use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;

use nodepool_model::{Node, NodeId};
use nodepool_web::status::{self, ProviderBuild};

use crate::cli::{EraseArgs, InfoArgs};
use crate::commands::{Context, now, print_json};
use crate::store;
use nodepool_web::gather;

/// The provider's builds (those with its upload directory) and nodes.
async fn provider_data(
    store: &nodepool_store::Store,
    provider: &str,
) -> anyhow::Result<(Vec<ProviderBuild>, Vec<(NodeId, Node)>)> {
    let images = gather::images(store).await?;
    let builds = images
        .provider_builds
        .into_iter()
        .filter(|(p, _)| p == provider)
        .map(|(_, build)| build)
        .collect();
    let nodes = gather::nodes(store)
        .await?
        .into_iter()
        .filter(|(_, node, _)| node.provider.as_deref() == Some(provider))
        .map(|(id, node, _)| (id, node))
        .collect();
    Ok((builds, nodes))
}

/// `info PROVIDER [--json]`.
pub fn info(context: &Context, args: &InfoArgs) -> anyhow::Result<ExitCode> {
    let (builds, nodes) = store::run(&context.config, async |store| {
        provider_data(store, &args.provider).await
    })?;
    let view = status::info(&args.provider, &builds, &nodes);
    if args.output.json {
        print_json(&status::records::info(&view, &nodes));
    } else {
        print!("{}", status::render_info(&view));
    }
    Ok(ExitCode::SUCCESS)
}

/// Nodepool's prompt: anything but `y`/`Y` aborts. End of input is an error (Python's
/// `input()` raises EOFError).
fn confirm(provider: &str) -> anyhow::Result<bool> {
    println!("\nWARNING! This action is not reversible!");
    print!("Erase ZooKeeper data for provider {provider}? [N/y] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer)? == 0 {
        anyhow::bail!("EOF when reading a line");
    }
    let answer = answer.strip_suffix('\n').unwrap_or(&answer);
    Ok(answer.to_lowercase() == "y")
}

/// `erase PROVIDER [--force]`: removes the provider's upload records and node records from
/// the store. No cloud calls and no locks: meant for a provider that is gone.
pub fn erase(context: &Context, args: &EraseArgs) -> anyhow::Result<ExitCode> {
    let provider = args.provider.as_str();
    store::run(&context.config, async |store| {
        // Read first, as Nodepool does, then ask.
        let (builds, nodes) = provider_data(store, provider).await?;
        if !args.force && !confirm(provider)? {
            println!("Aborting. No data erased.");
            return Ok(());
        }
        println!("Erasing build data for {provider}...");
        for build in &builds {
            let path = format!(
                "{}/{provider}",
                nodepool_store::paths::build_providers(&build.image, &build.build_id)
            );
            store.delete_recursive(&path).await?;
        }
        println!("Erasing node data for {provider}...");
        for (id, mut node) in nodes {
            store.nodes().delete(id, &mut node, now()).await?;
        }
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
