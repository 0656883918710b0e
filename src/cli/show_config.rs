//! `predictd config`: the effective configuration as TOML, every key with
//! its value.

use super::absolute;
use super::error::CliError;
use crate::config::Config;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let config = Config::load(absolute(args.config).as_deref())?;
    print!("{}", config.to_toml());
    Ok(())
}
