//! `request-list` (spec 5.2).

use std::process::ExitCode;

use nodepool_web::status;

use crate::cli::OutputArgs;
use crate::commands::{Context, print_json, print_table};
use crate::store;
use nodepool_web::gather;

/// `request-list [--json]`: every node request, sorted by id.
pub fn request_list(context: &Context, args: &OutputArgs) -> anyhow::Result<ExitCode> {
    let requests = store::run(&context.config, async |store| {
        Ok(gather::requests(store).await?)
    })?;
    if args.json {
        print_json(&status::records::requests(&requests));
    } else {
        print_table(&status::request_list(&requests));
    }
    Ok(ExitCode::SUCCESS)
}
