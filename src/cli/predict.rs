//! `predictd predict`: predictions for image files, in-process (the path
//! the daemon serves, with `--config` or the defaults) or through a
//! running daemon (`--socket`).

use super::error::CliError;
use super::{absolute, runtime, CLIENT_TIMEOUT};
use crate::client::{self, Client};
use crate::config::Config;
use crate::inference::Registry;
use crate::service::predict::{self, Params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, conflicts_with = "socket")]
    config: Option<PathBuf>,
    #[arg(long)]
    socket: Option<PathBuf>,
    #[arg(long, allow_negative_numbers = true)]
    x: f64,
    #[arg(long, allow_negative_numbers = true)]
    y: f64,
    /// Comma-separated model names (default: all).
    #[arg(long)]
    models: Option<String>,
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print the JSON answer, one line per image.
    #[arg(long)]
    json: bool,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// Where predictions are made.
enum Predictor {
    InProcess(Arc<Registry>, Config),
    Daemon(Client),
}

pub fn run(args: Args) -> Result<(), CliError> {
    runtime(1)?.block_on(predict_files(args))
}

async fn predict_files(args: Args) -> Result<(), CliError> {
    // The same parser as the daemon's query string, so the same refusals.
    let params = Params::from_text(
        Some(&args.x.to_string()),
        Some(&args.y.to_string()),
        args.models.as_deref(),
        Some(&args.top.to_string()),
    )
    .map_err(|e| CliError::Predict("arguments".into(), e))?;
    let predictor = match args.socket {
        Some(socket) => Predictor::Daemon(
            Client::new(&socket)
                .timeout(CLIENT_TIMEOUT)
                .circuit_breaker(0, Duration::ZERO),
        ),
        None => {
            let config = Config::load(absolute(args.config).as_deref())?;
            let (registry, config) = tokio::task::spawn_blocking(move || {
                Registry::load(&config).map(|r| (Arc::new(r), config))
            })
            .await
            .map_err(|e| CliError::Os(e.to_string()))??;
            Predictor::InProcess(registry, config)
        }
    };
    for path in &args.images {
        let bytes = std::fs::read(path).map_err(|source| CliError::ReadInput {
            path: path.clone(),
            source,
        })?;
        let answer = match &predictor {
            Predictor::InProcess(registry, config) => {
                in_process(registry, config, bytes, &params, path).await?
            }
            Predictor::Daemon(client) => {
                through_daemon(client, bytes, &params, args.x, args.y, path).await?
            }
        };
        if args.json {
            println!("{answer}");
        } else {
            print_prediction(&path.display().to_string(), &answer);
        }
    }
    Ok(())
}

async fn in_process(
    registry: &Arc<Registry>,
    config: &Config,
    bytes: Vec<u8>,
    params: &Params,
    path: &Path,
) -> Result<serde_json::Value, CliError> {
    let p = predict::predict(
        registry.clone(),
        bytes.into(),
        params,
        config.server.max_pixels,
        None,
        None,
    )
    .await
    .map_err(|e| CliError::Predict(path.display().to_string(), e))?;
    Ok(serde_json::to_value(&p).expect("prediction serializes"))
}

async fn through_daemon(
    client: &Client,
    bytes: Vec<u8>,
    params: &Params,
    x: f64,
    y: f64,
    path: &Path,
) -> Result<serde_json::Value, CliError> {
    let options = client::Options {
        models: params.models.clone(),
        top: params.top,
    };
    let answer = client.predict(bytes, x, y, &options).await;
    let what = path.display().to_string();
    match (answer.body, answer.error, answer.status) {
        (Some(body), _, _) => Ok(body),
        (None, error, Some(status)) if status != 503 => Err(CliError::Refused {
            what,
            status,
            code: error.unwrap_or_default(),
            message: answer.message.unwrap_or_default(),
        }),
        (None, error, _) => Err(CliError::Unavailable {
            what,
            code: error.unwrap_or_default(),
            message: answer.message.unwrap_or_default(),
        }),
    }
}

fn print_prediction(name: &str, answer: &serde_json::Value) {
    let w = &answer["image"]["width"];
    let h = &answer["image"]["height"];
    let point = &answer["point"];
    println!("{name} ({w}x{h}) at ({}, {})", point[0], point[1]);
    if let Some(predictions) = answer["predictions"].as_object() {
        for (model, labels) in predictions {
            let version = answer["models"][model].as_str().unwrap_or("");
            let short = version.get(..version.len().min(19)).unwrap_or(version);
            println!("  {model} [{short}] {} ms", answer["timing_ms"][model]);
            for entry in labels.as_array().into_iter().flatten() {
                let p = entry["probability"].as_f64().unwrap_or(0.0);
                println!(
                    "    {:<24} {:>6.3}",
                    entry["label"].as_str().unwrap_or(""),
                    p
                );
            }
        }
    }
}
