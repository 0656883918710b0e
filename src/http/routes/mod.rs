//! One handler per route, grouped by what they serve. The router has
//! decided the route and admitted the caller before any of these runs.

pub mod feedback;
pub mod page;
pub mod predict;
pub mod reload;
pub mod status;
