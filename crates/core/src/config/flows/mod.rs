//! `authentication_flow` (flow-config.md 7): the grammar of declared flows, the checks
//! of 7.7 and the generated `default` flows of 7.8.

pub(crate) mod check;
pub(crate) mod generate;
pub(crate) mod grammar;
pub(crate) mod parse;
