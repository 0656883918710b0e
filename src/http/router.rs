//! The route table: method and path to a [`Route`], decided once per
//! request; the caller checked against it; one handler per route (in
//! `routes/`); one record per request (metrics and the log line).
//!
//! Who may call is [`crate::http::peer`]'s, reading the input
//! [`crate::http::input`]'s, the error mapping [`crate::http::error`]'s,
//! and what is served [`crate::service::state`]'s: nothing here knows
//! tract.

use crate::http::error::{secure_headers, ApiError, Body};
use crate::http::input::drain_small_body;
use crate::http::peer::{authorize, rate_limit, Access, Peer};
use crate::http::routes;
use crate::service::state::State;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a request asks for, decided from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Page,
    Predict,
    Feedback,
    Stats,
    Metrics,
    Models,
    Reload,
    Healthz,
    Readyz,
}

impl Route {
    /// The route of `path`, if there is one.
    fn of_path(path: &str) -> Option<Route> {
        Some(match path {
            "/" => Route::Page,
            "/v1/predict" => Route::Predict,
            "/v1/feedback" => Route::Feedback,
            "/v1/stats" => Route::Stats,
            "/metrics" => Route::Metrics,
            "/v1/models" => Route::Models,
            "/v1/reload" => Route::Reload,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            _ => return None,
        })
    }

    /// The path, as logs and the `route` label of metrics name it.
    fn path(self) -> &'static str {
        match self {
            Route::Page => "/",
            Route::Predict => "/v1/predict",
            Route::Feedback => "/v1/feedback",
            Route::Stats => "/v1/stats",
            Route::Metrics => "/metrics",
            Route::Models => "/v1/models",
            Route::Reload => "/v1/reload",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
        }
    }

    /// The one method the route answers (and HEAD where it is GET).
    fn method(self) -> &'static str {
        match self {
            Route::Predict | Route::Feedback | Route::Reload => "POST",
            _ => "GET",
        }
    }

    fn access(self) -> Access {
        match self {
            Route::Page => Access::Page,
            Route::Reload => Access::Admin,
            _ => Access::Service,
        }
    }

    /// Health checks and scrapes are not rate limited.
    fn rate_limited(self) -> bool {
        !matches!(self, Route::Healthz | Route::Readyz | Route::Metrics)
    }

    /// How long the request may take. A reload answers when the new models
    /// are checked, which may take longer than a prediction is allowed to.
    fn timeout_ms(self, state: &State) -> u64 {
        match self {
            Route::Reload => 600_000,
            _ => state.config().server.request_timeout_ms,
        }
    }
}

/// The route of a request whose path gave `found`, or why there is none
/// for its method and path.
fn route(found: Option<Route>, method: &Method, path: &str) -> Result<Route, ApiError> {
    let route = found.ok_or_else(|| ApiError::NotFound(format!("No route {path}")))?;
    let allow = route.method();
    let allowed = allow == method.as_str() || (allow == "GET" && method == Method::HEAD);
    if !allowed {
        return Err(ApiError::MethodNotAllowed {
            method: method.clone(),
            path: path.to_string(),
            allow,
        });
    }
    Ok(route)
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// Entry point for every request on every listener.
pub async fn handle(
    state: Arc<State>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let path = req.uri().path();
    let found = Route::of_path(path);
    let routed = route(found, req.method(), path);
    // Counted in flight, and logged, however the request ends: hyper drops
    // this future when the client hangs up, and the guard's Drop then
    // records the request as closed by the client.
    let mut record = RequestRecord::begin(
        state.clone(),
        peer,
        req.method().clone(),
        path.to_string(),
        found,
    );
    let timeout_ms = match &routed {
        Ok(route) => route.timeout_ms(&state),
        Err(_) => state.config().server.request_timeout_ms,
    };
    let outcome = tokio::time::timeout(
        Duration::from_millis(timeout_ms),
        admit_and_serve(&state, peer, routed, req),
    )
    .await;
    let mut resp = match outcome {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::Timeout(timeout_ms).into_response(),
    };
    secure_headers(resp.headers_mut());
    record.finish(resp.status().as_u16());
    Ok(resp)
}

/// Checks the caller against the route, then runs the route's handler.
async fn admit_and_serve(
    state: &Arc<State>,
    peer: Peer,
    routed: Result<Route, ApiError>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let admitted = routed.and_then(|route| {
        authorize(state, &peer, &req, route.access())?;
        if route.rate_limited() {
            rate_limit(state, &peer, req.headers())?;
        }
        Ok(route)
    });
    let route = match admitted {
        Ok(route) => route,
        Err(e) => return Err(refuse(state, e, req).await),
    };
    match route {
        Route::Page => Ok(routes::page::page()),
        Route::Predict => routes::predict::predict(state, peer, req).await,
        Route::Feedback => routes::feedback::feedback(state, req).await,
        Route::Stats => Ok(routes::feedback::stats(state)),
        Route::Metrics => Ok(routes::status::metrics(state)),
        Route::Models => routes::status::models(state),
        Route::Healthz => Ok(routes::status::healthz()),
        Route::Readyz => routes::status::readyz(state),
        Route::Reload => routes::reload::reload(state).await,
    }
}

/// The longest a 429 is held back (see [`refuse`]).
const MAX_RATE_LIMIT_PACE: Duration = Duration::from_secs(1);

/// A refused request: its small body read, and a caller over its rate told
/// so when its next token is due (at most [`MAX_RATE_LIMIT_PACE`] later,
/// and well inside the request timeout), not at once: a client looping on
/// 429s would otherwise spin through thousands a second, and the CPU that
/// costs, in the daemon and in the client, is taken from every other
/// caller. Each connection of a flooding caller gets about `rate-per-uid`
/// answers a second this way; a waiting answer holds no worker and no
/// queue slot.
async fn refuse(state: &State, e: ApiError, req: Request<Incoming>) -> ApiError {
    let refused = tokio::time::Instant::now();
    drain_small_body(req).await;
    if let ApiError::RateLimited(wait) = e {
        let timeout = Duration::from_millis(state.config().server.request_timeout_ms);
        let pace = wait.min(MAX_RATE_LIMIT_PACE).min(timeout / 2);
        tokio::time::sleep_until(refused + pace).await;
    }
    e
}

/// The status logged and counted for a request whose client went away
/// before its answer (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// One request's bookkeeping: in flight from `begin` until dropped, then
/// one metric sample and one log line with its status, or 499 when it
/// never finished because the client closed the connection.
struct RequestRecord {
    state: Arc<State>,
    seq: u64,
    peer: Peer,
    method: Method,
    path: String,
    /// The route of the path, whatever the method; unknown paths share one
    /// metrics label, so scanners cannot grow the metrics.
    route: Option<Route>,
    started: Instant,
    status: Option<u16>,
}

impl RequestRecord {
    fn begin(
        state: Arc<State>,
        peer: Peer,
        method: Method,
        path: String,
        route: Option<Route>,
    ) -> RequestRecord {
        state.metrics.in_flight.inc();
        RequestRecord {
            seq: REQUEST_SEQ.fetch_add(1, Ordering::Relaxed),
            state,
            peer,
            method,
            path,
            route,
            started: Instant::now(),
            status: None,
        }
    }

    fn finish(&mut self, status: u16) {
        self.status = Some(status);
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        let state = &self.state;
        state.metrics.in_flight.dec();
        let status = self.status.unwrap_or(CLIENT_CLOSED);
        let elapsed = self.started.elapsed();
        let label = self.route.map_or("other", Route::path);
        state.metrics.request(label, status, elapsed.as_secs_f64());
        let closed = if self.status.is_none() {
            " (client closed the connection)"
        } else {
            ""
        };
        log::info!(
            "request: seq={} {} method={} route={} status={status} ms={:.2}{closed}",
            self.seq,
            self.peer,
            self.method,
            self.path,
            elapsed.as_secs_f64() * 1000.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_methods() {
        assert_eq!(
            route(Route::of_path("/v1/predict"), &Method::POST, "/v1/predict").unwrap(),
            Route::Predict
        );
        assert_eq!(
            route(Route::of_path("/healthz"), &Method::HEAD, "/healthz").unwrap(),
            Route::Healthz
        );
        assert!(matches!(
            route(Route::of_path("/v1/predict"), &Method::GET, "/v1/predict"),
            Err(ApiError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(Route::of_path("/nope"), &Method::GET, "/nope"),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn every_route_is_found_by_its_own_path() {
        for r in [
            Route::Page,
            Route::Predict,
            Route::Feedback,
            Route::Stats,
            Route::Metrics,
            Route::Models,
            Route::Reload,
            Route::Healthz,
            Route::Readyz,
        ] {
            assert_eq!(Route::of_path(r.path()), Some(r));
        }
    }
}
