//! authflow's domain: configuration, the flow graph and its engine, credential rules and
//! the storage traits. Knows nothing of HTTP or SQL.

pub mod clock;
pub mod config;
pub mod credentials;
pub mod flow;
pub mod model;
pub mod store;
