//! `POST /v1/reload`: config and models reloaded, answered when the new
//! ones are checked (or the old ones kept).

use crate::http::error::{json_response, ApiError, Body};
use crate::service::state::State;
use hyper::{Response, StatusCode};

pub async fn reload(state: &State) -> Result<Response<Body>, ApiError> {
    let report = state.reload().await?;
    Ok(json_response(StatusCode::OK, &report))
}
