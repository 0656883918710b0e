//! What the daemon serves, without HTTP: the served state and its reload
//! owner, one prediction, feedback, metrics, the per-caller limits, and
//! the path jail.

pub mod feedback;
pub mod metrics;
pub mod paths;
pub mod predict;
pub mod ratelimit;
pub mod state;
