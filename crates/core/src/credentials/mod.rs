//! Credential rules: passwords, login IDs, masking, random tokens, TOTP, recovery codes,
//! sealed secrets.

pub mod hash_pool;
pub mod login_id;
pub mod mask;
pub mod password;
pub mod recovery;
pub mod seal;
pub mod token;
pub mod totp;
