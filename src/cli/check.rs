//! `predictd check`: load every model and run one inference each, as the
//! daemon would at start; print what loaded, or exit with the reason.

use super::absolute;
use super::error::CliError;
use crate::config::Config;
use crate::daemon::logging;
use crate::inference::Registry;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let _ = logging::init_stderr();
    let config = Config::load(absolute(args.config).as_deref())?;
    let registry = Registry::load(&config)?;
    println!("kernels {}", crate::inference::kernels::describe());
    for m in &registry.models {
        println!(
            "ok {} {} {} labels, input {:?}, loaded in {:.0} ms",
            m.info.name, m.info.version, m.info.labels, m.info.input_shape, m.info.load_ms
        );
    }
    Ok(())
}
