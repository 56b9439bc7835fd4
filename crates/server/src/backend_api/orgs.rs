//! Organization administration behind `authflow org ...` (backend-auth-api.md 1): create
//! an organization with its first key, list, rotate a key with a grace period, revoke one.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use authflow_core::clock::OsRandom;
use authflow_core::model::{ApiKey, DEFAULT_ORG_ID, Organization};
use authflow_core::store::{Database, StoreError};

use super::keys;

/// Longest accepted organization name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum OrgAdminError {
    #[error("organization name must not be empty")]
    EmptyName,
    #[error("organization name is longer than {MAX_NAME_CHARS} characters")]
    NameTooLong,
    #[error("an organization named {0:?} already exists")]
    DuplicateName(String),
    #[error("no organization with the name or id {0:?}")]
    UnknownOrganization(String),
    #[error("the default organization of the flow APIs has no API keys")]
    DefaultOrganization,
    #[error("organization {org:?} has no API key {key_id:?}")]
    UnknownKey { org: String, key_id: String },
    #[error("API key {0:?} is already revoked")]
    AlreadyRevoked(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// An organization and a key shown once: the `{"org_id", "api_key"}` line.
pub struct IssuedKey {
    pub org_id: String,
    pub api_key: String,
}

impl IssuedKey {
    pub fn to_json(&self) -> Value {
        json!({"org_id": self.org_id, "api_key": self.api_key})
    }
}

fn valid_name(name: &str) -> Result<&str, OrgAdminError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(OrgAdminError::EmptyName);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(OrgAdminError::NameTooLong);
    }
    Ok(name)
}

/// A new organization named `name` and its first API key. A taken name creates nothing.
pub async fn create(db: &dyn Database, name: &str) -> Result<IssuedKey, OrgAdminError> {
    let name = valid_name(name)?;
    let now = Utc::now();
    let org = Organization {
        id: keys::uuid_v4(&OsRandom),
        name: name.to_string(),
        created_at: now,
    };
    db.create_organization(org.clone())
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists(_) => OrgAdminError::DuplicateName(name.to_string()),
            other => other.into(),
        })?;
    issue_key(db, &org.id, now).await
}

async fn issue_key(
    db: &dyn Database,
    org_id: &str,
    now: DateTime<Utc>,
) -> Result<IssuedKey, OrgAdminError> {
    let new = keys::generate(org_id, now, &OsRandom);
    db.insert_api_key(new.record).await?;
    Ok(IssuedKey {
        org_id: org_id.to_string(),
        api_key: new.key,
    })
}

/// One JSON object per organization (the default one excepted): id, name, creation time
/// and the ids of its active keys. Never a key.
pub async fn list(db: &dyn Database) -> Result<Vec<Value>, OrgAdminError> {
    let now = Utc::now();
    let mut lines = Vec::new();
    for org in db.list_organizations().await? {
        if org.id == DEFAULT_ORG_ID {
            continue;
        }
        let active: Vec<String> = db
            .list_api_keys(&org.id)
            .await?
            .into_iter()
            .filter(|k| keys::is_active(k, now))
            .map(|k| k.id)
            .collect();
        lines.push(json!({
            "org_id": org.id,
            "name": org.name,
            "created_at": org.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "active_key_ids": active,
        }));
    }
    Ok(lines)
}

/// The organization named or identified by `org`; never the default organization.
pub async fn find(db: &dyn Database, org: &str) -> Result<Organization, OrgAdminError> {
    let found = match db.get_organization(org).await? {
        Some(o) => Some(o),
        None => db.find_organization_by_name(org.trim()).await?,
    };
    match found {
        Some(o) if o.id == DEFAULT_ORG_ID => Err(OrgAdminError::DefaultOrganization),
        Some(o) => Ok(o),
        None => Err(OrgAdminError::UnknownOrganization(org.to_string())),
    }
}

/// A new key for `org`; every active key keeps working for `grace` (or until its own,
/// earlier, end).
pub async fn rotate_key(
    db: &dyn Database,
    org: &str,
    grace: Duration,
) -> Result<IssuedKey, OrgAdminError> {
    let org = find(db, org).await?;
    let now = Utc::now();
    let old_keys = db.list_api_keys(&org.id).await?;
    let issued = issue_key(db, &org.id, now).await?;
    let grace_end = chrono::Duration::from_std(grace)
        .ok()
        .and_then(|g| now.checked_add_signed(g))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    for key in old_keys.into_iter().filter(|k| keys::is_active(k, now)) {
        let until = key.expires_at.map_or(grace_end, |t| t.min(grace_end));
        db.update_api_key(ApiKey {
            expires_at: Some(until),
            ..key
        })
        .await?;
    }
    Ok(issued)
}

/// End `key_id` of `org` now.
pub async fn revoke_key(db: &dyn Database, org: &str, key_id: &str) -> Result<(), OrgAdminError> {
    let org = find(db, org).await?;
    let unknown = || OrgAdminError::UnknownKey {
        org: org.name.clone(),
        key_id: key_id.to_string(),
    };
    let key = db.get_api_key(key_id).await?.ok_or_else(unknown)?;
    if key.org_id != org.id {
        return Err(unknown());
    }
    if key.revoked_at.is_some() {
        return Err(OrgAdminError::AlreadyRevoked(key_id.to_string()));
    }
    db.update_api_key(ApiKey {
        revoked_at: Some(Utc::now()),
        ..key
    })
    .await?;
    Ok(())
}
