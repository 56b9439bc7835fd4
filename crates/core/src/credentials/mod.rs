//! Credential rules: passwords, login IDs, masking, random tokens.

pub mod login_id;
pub mod mask;
pub mod password;
pub mod token;
