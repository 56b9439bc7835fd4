//! Flows: the definition tree and the engine that runs it.

pub mod action;
pub mod def;
pub mod device_token;
pub mod engine;
pub mod error;
mod input;
pub mod limits;
pub mod lockout;
pub mod oauth;
pub mod oob;
pub mod otp;
pub mod profile;
mod reads;
pub mod reauth;
pub mod recovery;
mod second_factor;
pub mod settings;
mod state;
mod steps;

pub use action::{Action, CookieEffect, StateView};
pub use engine::{CreateRequest, Engine, EngineDeps, InputError, RequestContext};
pub use error::{Cause, FlowError, FlowResult};
pub use reauth::{IdTokenVerifier, InvalidIdToken};
pub use settings::EngineSettings;
