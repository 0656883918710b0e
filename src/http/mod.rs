//! The HTTP front end: the socket, the routes, reading requests and
//! mapping every refusal to its answer. Nothing below this layer knows
//! HTTP.

pub mod error;
pub mod input;
pub mod peer;
pub mod router;
pub mod routes;
pub mod server;
