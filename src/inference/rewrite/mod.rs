//! The graph rewrites applied to every loaded graph, and the fused
//! operators they put in.

pub mod dense;
pub mod fold;
pub mod fused;
