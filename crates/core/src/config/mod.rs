//! `authflow.yaml`: types, loading (YAML, `${ENV}`), validation and generated flows.
//!
//! Entry points: [`load_file`] / [`load_str`] give a [`Loaded`] (the typed [`Config`],
//! the [`FlowCatalog`] of declared and generated flows, and warnings) or every
//! [`Problem`] in file order; [`check_file`] gives the output of `authflow check`;
//! [`Config::builtin_defaults`] is the configuration without a file.

mod check;
mod de;
mod duration;
mod env;
mod flows;
mod later;
mod load;
mod node;
mod problem;
mod rate_limit;
mod types;
mod validate;
mod values;

pub use check::{CheckOutcome, check_file};
pub use de::DeError;
pub use duration::{DurationError, format_duration, parse_duration};
pub use env::{InterpolationError, interpolate};
pub use flows::grammar::{is_later_branch, is_later_step};
pub use load::{Loaded, load_file, load_str};
pub use problem::{Problem, Seg, YamlPath};
pub use rate_limit::*;
pub use types::*;
pub use values::{IpNet, Pattern, Secret, decode_encryption_key, parse_origin};

pub use crate::flow::def::FlowCatalog;
