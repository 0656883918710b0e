//! `predictd inspect GRAPH`: a graph's inputs, likely outputs, ops (and
//! those not supported) and a ready `[[model]]` section for it.

use super::error::CliError;
use crate::inference::ModelError;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    graph: PathBuf,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let text = crate::inference::inspect::report_file(&args.graph).map_err(|e| {
        CliError::Model(ModelError::Load {
            model: "inspect".into(),
            path: args.graph.clone(),
            reason: e,
        })
    })?;
    print!("{text}");
    Ok(())
}
