//! One storage test suite, run against every backend.
//!
//! Each test is a generic async function over `&dyn Database` or `&dyn StateStore`;
//! the macros at the bottom instantiate it once per backend, so adding a test or a
//! backend is one line. SQLite always runs (a temp file per test). PostgreSQL runs
//! when `AUTHFLOW_TEST_POSTGRES_URL` is set (each test gets a fresh database, dropped
//! afterwards), Redis when `AUTHFLOW_TEST_REDIS_URL` is set (random key prefix per
//! test; every key the store writes has an expiry, so nothing needs cleaning up).
//! Without the variables those variants pass trivially after printing a notice.

#[macro_use]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use authflow_core::model::*;
use authflow_core::store::{Change, Database, RateDecision, StateStore, StoreError};
use futures::future::join_all;
use serde_json::json;

use support::*;

// ---------------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------------

async fn reads_back_what_was_committed(db: &dyn Database) {
    let u = user(DEFAULT_ORG_ID);
    let email = identity(&u, "email", "alice@example.com");
    let username = identity(&u, "username", "alice");
    let password = authenticator(
        &u,
        AuthenticatorType::Password,
        json!({"password_hash": "h"}),
    );
    let otp = authenticator(&u, AuthenticatorType::OobOtpEmail, json!({"target": "a@x"}));
    let claim = VerifiedClaim {
        user_id: u.id.clone(),
        name: "email".into(),
        value: "alice@example.com".into(),
        created_at: now(),
    };
    commit_ok(
        db,
        vec![
            Change::CreateUser(u.clone()),
            Change::CreateIdentity(email.clone()),
            Change::CreateIdentity(username.clone()),
            Change::CreateAuthenticator(password.clone()),
            Change::CreateAuthenticator(otp.clone()),
            Change::AddVerifiedClaim(claim.clone()),
            // The same claim again is a no-op, not a failure of the set.
            Change::AddVerifiedClaim(claim.clone()),
        ],
    )
    .await;

    assert_eq!(db.get_user(&u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(db.get_user("nobody").await.unwrap(), None);
    assert_eq!(
        db.list_identities(&u.id).await.unwrap(),
        vec![email.clone(), username]
    );
    assert_eq!(
        db.find_identity(DEFAULT_ORG_ID, "email", "alice@example.com")
            .await
            .unwrap(),
        Some(email)
    );
    assert_eq!(
        db.find_identity("other-org", "email", "alice@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.list_authenticators(&u.id).await.unwrap(),
        vec![password, otp]
    );
    assert_eq!(db.list_verified_claims(&u.id).await.unwrap(), vec![claim]);
}

async fn commit_is_all_or_nothing(db: &dyn Database) {
    let alice = user(DEFAULT_ORG_ID);
    commit_ok(
        db,
        vec![
            Change::CreateUser(alice.clone()),
            Change::CreateIdentity(identity(&alice, "email", "taken@example.com")),
        ],
    )
    .await;

    let bob = user(DEFAULT_ORG_ID);
    let result = db
        .commit(vec![
            Change::CreateUser(bob.clone()),
            Change::CreateIdentity(identity(&bob, "username", "bob")),
            Change::CreateAuthenticator(authenticator(
                &bob,
                AuthenticatorType::Password,
                json!({}),
            )),
            Change::CreateIdentity(identity(&bob, "email", "taken@example.com")),
            Change::AuditEvent(audit(&bob, "user.signed_up")),
        ])
        .await;

    assert!(
        matches!(&result, Err(StoreError::DuplicateIdentity { login_id_key }) if login_id_key == "email"),
        "got {result:?}"
    );
    assert_eq!(db.get_user(&bob.id).await.unwrap(), None);
    assert_eq!(
        db.find_identity(DEFAULT_ORG_ID, "username", "bob")
            .await
            .unwrap(),
        None
    );
    assert!(db.list_authenticators(&bob.id).await.unwrap().is_empty());
    assert!(db.list_audit_events(&bob.id).await.unwrap().is_empty());
    // The same login ID in another organization is a different login ID.
    let carol = user("org-2");
    commit_ok(
        db,
        vec![
            Change::CreateUser(carol.clone()),
            Change::CreateIdentity(identity(&carol, "email", "taken@example.com")),
        ],
    )
    .await;
}

async fn concurrent_signups_of_one_login_id_admit_exactly_one(db: &dyn Database) {
    let attempts = (0..30).map(|_| {
        let u = user("race");
        let i = identity(&u, "email", "same@example.com");
        db.commit(vec![Change::CreateUser(u), Change::CreateIdentity(i)])
    });
    let results = join_all(attempts).await;

    let won = results.iter().filter(|r| r.is_ok()).count();
    let duplicate = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::DuplicateIdentity { .. })))
        .count();
    assert_eq!((won, duplicate), (1, 29), "results: {results:?}");
    assert_eq!(db.list_users("race", 100, 0).await.unwrap().len(), 1);
}

async fn concurrent_distinct_commits_all_succeed(db: &dyn Database) {
    let users: Vec<User> = (0..40).map(|_| user("busy")).collect();
    let commits = users.iter().map(|u| {
        db.commit(vec![
            Change::CreateUser(u.clone()),
            Change::CreateIdentity(identity(u, "email", &format!("{}@example.com", u.id))),
            Change::AuditEvent(audit(u, "user.signed_up")),
        ])
    });
    for result in join_all(commits).await {
        result.expect("every distinct signup commits");
    }
    let stored: HashSet<String> = db
        .list_users("busy", 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    let expected: HashSet<String> = users.into_iter().map(|u| u.id).collect();
    assert_eq!(stored, expected);
}

async fn list_users_pages_in_creation_order(db: &dyn Database) {
    let users: Vec<User> = (0..5i64)
        .map(|n| User {
            created_at: at(n),
            ..user("paged")
        })
        .collect();
    // Created in two change sets, one of them holding rows with equal timestamps
    // apart from the millisecond offsets above.
    commit_ok(
        db,
        users[..3].iter().cloned().map(Change::CreateUser).collect(),
    )
    .await;
    commit_ok(
        db,
        users[3..].iter().cloned().map(Change::CreateUser).collect(),
    )
    .await;
    commit_ok(db, vec![Change::CreateUser(user("elsewhere"))]).await;

    assert_eq!(db.list_users("paged", 2, 0).await.unwrap(), users[0..2]);
    assert_eq!(db.list_users("paged", 2, 2).await.unwrap(), users[2..4]);
    assert_eq!(db.list_users("paged", 2, 4).await.unwrap(), users[4..]);
    assert!(db.list_users("paged", 2, 6).await.unwrap().is_empty());
}

async fn rows_with_equal_timestamps_keep_insertion_order(db: &dyn Database) {
    let u = user(DEFAULT_ORG_ID);
    let same = now();
    let identities: Vec<Identity> = ["zeta", "alpha", "mid"]
        .iter()
        .map(|name| Identity {
            created_at: same,
            ..identity(&u, "username", name)
        })
        .collect();
    let mut changes = vec![Change::CreateUser(u.clone())];
    changes.extend(identities.iter().cloned().map(Change::CreateIdentity));
    commit_ok(db, changes).await;
    assert_eq!(db.list_identities(&u.id).await.unwrap(), identities);
}

async fn timestamps_round_trip_at_millisecond_precision(db: &dyn Database) {
    let precise = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
    let u = User {
        created_at: precise,
        ..user(DEFAULT_ORG_ID)
    };
    commit_ok(db, vec![Change::CreateUser(u.clone())]).await;
    let stored = db.get_user(&u.id).await.unwrap().unwrap();
    assert_eq!(
        stored.created_at.timestamp_millis(),
        precise.timestamp_millis()
    );
    assert_eq!(stored.created_at.timestamp_subsec_nanos(), 123_000_000);
}

async fn disable_user_and_missing_rows(db: &dyn Database) {
    let u = user(DEFAULT_ORG_ID);
    commit_ok(db, vec![Change::CreateUser(u.clone())]).await;
    commit_ok(
        db,
        vec![Change::SetUserDisabled {
            user_id: u.id.clone(),
            disabled: true,
            reason: Some("abuse".into()),
        }],
    )
    .await;
    let stored = db.get_user(&u.id).await.unwrap().unwrap();
    assert!(stored.disabled);
    assert_eq!(stored.disabled_reason.as_deref(), Some("abuse"));

    // A change on a missing row fails the set; the set's other changes are not written.
    let audit_event = audit(&u, "user.disabled");
    let result = db
        .commit(vec![
            Change::AuditEvent(audit_event),
            Change::SetUserDisabled {
                user_id: "missing".into(),
                disabled: true,
                reason: None,
            },
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "got {result:?}"
    );
    assert!(db.list_audit_events(&u.id).await.unwrap().is_empty());
    let missing_authenticator = db
        .commit(vec![Change::UpdateAuthenticatorData {
            authenticator_id: "missing".into(),
            data: json!({}),
            updated_at: now(),
        }])
        .await;
    assert!(matches!(
        missing_authenticator,
        Err(StoreError::NotFound(_))
    ));
}

async fn authenticator_data_updates(db: &dyn Database) {
    let u = user(DEFAULT_ORG_ID);
    let a = authenticator(
        &u,
        AuthenticatorType::Password,
        json!({"password_hash": "old"}),
    );
    commit_ok(
        db,
        vec![
            Change::CreateUser(u.clone()),
            Change::CreateAuthenticator(a.clone()),
        ],
    )
    .await;
    let later = at(60_000);
    commit_ok(
        db,
        vec![Change::UpdateAuthenticatorData {
            authenticator_id: a.id.clone(),
            data: json!({"password_hash": "new"}),
            updated_at: later,
        }],
    )
    .await;
    let stored = db.list_authenticators(&u.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].password_hash(), Some("new"));
    assert_eq!(stored[0].updated_at, later);
    assert_eq!(stored[0].created_at, a.created_at);
}

async fn delete_user_removes_everything_of_theirs(db: &dyn Database) {
    let u = user(DEFAULT_ORG_ID);
    let keep = user(DEFAULT_ORG_ID);
    let s = session(&u, "token-of-u");
    commit_ok(
        db,
        vec![
            Change::CreateUser(u.clone()),
            Change::CreateUser(keep.clone()),
            Change::CreateIdentity(identity(&u, "email", "gone@example.com")),
            Change::CreateIdentity(identity(&keep, "email", "kept@example.com")),
            Change::CreateAuthenticator(authenticator(&u, AuthenticatorType::Totp, json!({}))),
            Change::AddVerifiedClaim(VerifiedClaim {
                user_id: u.id.clone(),
                name: "email".into(),
                value: "gone@example.com".into(),
                created_at: now(),
            }),
            Change::AddPasswordHistory(history(&u, "h1", 0)),
            Change::CreateRecoveryCodes(vec![recovery_code(&u)]),
            Change::CreateSession(s.clone()),
            Change::AuditEvent(audit(&u, "user.signed_up")),
        ],
    )
    .await;

    commit_ok(
        db,
        vec![Change::DeleteUser {
            user_id: u.id.clone(),
        }],
    )
    .await;

    assert_eq!(db.get_user(&u.id).await.unwrap(), None);
    assert!(db.list_identities(&u.id).await.unwrap().is_empty());
    assert!(db.list_authenticators(&u.id).await.unwrap().is_empty());
    assert!(db.list_verified_claims(&u.id).await.unwrap().is_empty());
    assert!(
        db.list_password_history(&u.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(db.list_recovery_codes(&u.id).await.unwrap().is_empty());
    assert_eq!(db.get_session(&s.id).await.unwrap(), None);
    assert_eq!(
        db.find_session_by_token_hash(&s.token_hash).await.unwrap(),
        None
    );
    // Audit events are a trail of what happened and outlive the user.
    assert_eq!(db.list_audit_events(&u.id).await.unwrap().len(), 1);
    // Other users are untouched, and the deleted login ID is free again.
    assert!(db.get_user(&keep.id).await.unwrap().is_some());
    assert_eq!(db.list_identities(&keep.id).await.unwrap().len(), 1);
    let next = user(DEFAULT_ORG_ID);
    commit_ok(
        db,
        vec![
            Change::CreateUser(next.clone()),
            Change::CreateIdentity(identity(&next, "email", "gone@example.com")),
        ],
    )
    .await;
    let again = db.commit(vec![Change::DeleteUser { user_id: u.id }]).await;
    assert!(
        matches!(again, Err(StoreError::NotFound(_))),
        "got {again:?}"
    );
}

async fn sessions_find_touch_and_revoke(db: &dyn Database) {
    let u = user(DEFAULT_ORG_ID);
    let other = user(DEFAULT_ORG_ID);
    let (s1, s2, s3) = (session(&u, "t1"), session(&u, "t2"), session(&u, "t3"));
    let foreign = session(&other, "t4");
    commit_ok(
        db,
        vec![
            Change::CreateUser(u.clone()),
            Change::CreateUser(other.clone()),
            Change::CreateSession(s1.clone()),
            Change::CreateSession(s2.clone()),
            Change::CreateSession(s3.clone()),
            Change::CreateSession(foreign.clone()),
        ],
    )
    .await;
    assert_eq!(
        db.find_session_by_token_hash("t2").await.unwrap(),
        Some(s2.clone())
    );
    assert_eq!(db.find_session_by_token_hash("nope").await.unwrap(), None);
    assert_eq!(
        db.list_user_sessions(&u.id).await.unwrap(),
        vec![s1.clone(), s2.clone(), s3.clone()]
    );

    let touched = at(1_000);
    commit_ok(
        db,
        vec![Change::TouchSession {
            session_id: s1.id.clone(),
            at: touched,
        }],
    )
    .await;
    // An older touch arriving late does not move the clock back.
    commit_ok(
        db,
        vec![Change::TouchSession {
            session_id: s1.id.clone(),
            at: at(500),
        }],
    )
    .await;
    let s1_now = db.get_session(&s1.id).await.unwrap().unwrap();
    assert_eq!(s1_now.last_accessed_at, touched);

    let revoked_at = at(2_000);
    commit_ok(
        db,
        vec![Change::RevokeUserSessions {
            user_id: u.id.clone(),
            except: Some(s1.id.clone()),
            at: revoked_at,
        }],
    )
    .await;
    let revoked = |id: &str| {
        let id = id.to_string();
        async move { db.get_session(&id).await.unwrap().unwrap().revoked_at }
    };
    assert_eq!(revoked(&s1.id).await, None);
    assert_eq!(revoked(&s2.id).await, Some(revoked_at));
    assert_eq!(revoked(&s3.id).await, Some(revoked_at));
    assert_eq!(revoked(&foreign.id).await, None);

    commit_ok(
        db,
        vec![Change::RevokeSession {
            session_id: s1.id.clone(),
            at: at(3_000),
        }],
    )
    .await;
    assert_eq!(revoked(&s1.id).await, Some(at(3_000)));
    // Revoking again (double logout) is not an error and keeps the first time.
    commit_ok(
        db,
        vec![Change::RevokeSession {
            session_id: s1.id.clone(),
            at: at(4_000),
        }],
    )
    .await;
    assert_eq!(revoked(&s1.id).await, Some(at(3_000)));

    let clash = db
        .commit(vec![Change::CreateSession(session(&u, "t1"))])
        .await;
    assert!(
        matches!(clash, Err(StoreError::AlreadyExists(_))),
        "got {clash:?}"
    );
}

async fn password_history_is_newest_first_and_limited(db: &dyn Database) {
    let u = user(DEFAULT_ORG_ID);
    let entries: Vec<PasswordHistoryEntry> =
        (0..5).map(|n| history(&u, &format!("h{n}"), n)).collect();
    let mut changes = vec![Change::CreateUser(u.clone())];
    changes.extend(entries.iter().cloned().map(Change::AddPasswordHistory));
    commit_ok(db, changes).await;

    let newest: Vec<PasswordHistoryEntry> = entries.iter().rev().take(3).cloned().collect();
    assert_eq!(db.list_password_history(&u.id, 3).await.unwrap(), newest);
    assert_eq!(db.list_password_history(&u.id, 10).await.unwrap().len(), 5);
    assert!(db.list_password_history(&u.id, 0).await.unwrap().is_empty());
}

async fn recovery_codes_are_consumed_once(db: &dyn Database) {
    let u = user(DEFAULT_ORG_ID);
    let codes: Vec<RecoveryCode> = (0..3).map(|_| recovery_code(&u)).collect();
    commit_ok(
        db,
        vec![
            Change::CreateUser(u.clone()),
            Change::CreateRecoveryCodes(codes.clone()),
        ],
    )
    .await;
    assert_eq!(db.list_recovery_codes(&u.id).await.unwrap(), codes);

    // Ten logins racing with one code: exactly one consumes it.
    let used_at = at(5_000);
    let attempts = (0..10).map(|_| {
        db.commit(vec![Change::ConsumeRecoveryCode {
            recovery_code_id: codes[1].id.clone(),
            at: used_at,
        }])
    });
    let results = join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::NotFound(_))))
    );

    let stored = db.list_recovery_codes(&u.id).await.unwrap();
    assert_eq!(stored[0].consumed_at, None);
    assert_eq!(stored[1].consumed_at, Some(used_at));
    assert_eq!(stored[2].consumed_at, None);
}

async fn organizations_have_unique_names(db: &dyn Database) {
    let default = db.get_organization(DEFAULT_ORG_ID).await.unwrap().unwrap();
    assert_eq!(default.name, "default");
    assert_eq!(
        db.find_organization_by_name("default").await.unwrap(),
        Some(default.clone())
    );

    let acme = org("acme");
    let beta = org("beta");
    db.create_organization(acme.clone()).await.unwrap();
    db.create_organization(beta.clone()).await.unwrap();
    let same_name = db
        .create_organization(Organization {
            id: new_id(),
            ..acme.clone()
        })
        .await;
    assert!(
        matches!(same_name, Err(StoreError::AlreadyExists(_))),
        "got {same_name:?}"
    );
    let same_id = db
        .create_organization(Organization {
            name: "other".into(),
            ..acme.clone()
        })
        .await;
    assert!(
        matches!(same_id, Err(StoreError::AlreadyExists(_))),
        "got {same_id:?}"
    );

    assert_eq!(
        db.get_organization(&acme.id).await.unwrap(),
        Some(acme.clone())
    );
    assert_eq!(
        db.find_organization_by_name("beta").await.unwrap(),
        Some(beta.clone())
    );
    assert_eq!(db.find_organization_by_name("other").await.unwrap(), None);
    assert_eq!(
        db.list_organizations().await.unwrap(),
        vec![default, acme, beta]
    );
}

async fn organization_name_race_admits_one(db: &dyn Database) {
    let attempts = (0..10).map(|_| db.create_organization(org("contested")));
    let results = join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::AlreadyExists(_))))
    );
}

async fn api_keys_insert_list_update(db: &dyn Database) {
    let first = api_key(DEFAULT_ORG_ID, 0);
    let second = api_key(DEFAULT_ORG_ID, 1);
    let foreign = api_key("org-2", 2);
    for key in [&first, &second, &foreign] {
        db.insert_api_key(key.clone()).await.unwrap();
    }
    let duplicate = db.insert_api_key(first.clone()).await;
    assert!(
        matches!(duplicate, Err(StoreError::AlreadyExists(_))),
        "got {duplicate:?}"
    );

    assert_eq!(
        db.get_api_key(&first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(db.get_api_key("nope").await.unwrap(), None);
    assert_eq!(
        db.list_api_keys(DEFAULT_ORG_ID).await.unwrap(),
        vec![first.clone(), second.clone()]
    );

    let rotated = ApiKey {
        expires_at: Some(at(86_400_000)),
        ..first.clone()
    };
    db.update_api_key(rotated.clone()).await.unwrap();
    assert_eq!(
        db.get_api_key(&first.id).await.unwrap(),
        Some(rotated.clone())
    );
    let revoked = ApiKey {
        revoked_at: Some(at(10)),
        ..rotated
    };
    db.update_api_key(revoked.clone()).await.unwrap();
    assert_eq!(db.get_api_key(&first.id).await.unwrap(), Some(revoked));

    let missing = db.update_api_key(api_key(DEFAULT_ORG_ID, 3)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "got {missing:?}"
    );
}

async fn server_secret_first_writer_wins(db: &dyn Database) {
    let candidates: Vec<String> = (0..20).map(|n| format!("secret-{n}")).collect();
    let racers = candidates
        .iter()
        .map(|value| db.get_or_insert_server_secret("encryption_key", value));
    let results: Vec<String> = join_all(racers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winner = results[0].clone();
    assert!(candidates.contains(&winner));
    assert!(results.iter().all(|v| *v == winner), "{results:?}");
    assert_eq!(
        db.get_or_insert_server_secret("encryption_key", "late")
            .await
            .unwrap(),
        winner
    );
    assert_eq!(
        db.get_or_insert_server_secret("signing_key", "other")
            .await
            .unwrap(),
        "other"
    );
}

async fn audit_events_in_creation_order(db: &dyn Database) {
    let u = user(DEFAULT_ORG_ID);
    let events: Vec<AuditEvent> = ["user.signed_up", "user.authenticated", "user.logged_out"]
        .iter()
        .enumerate()
        .map(|(n, kind)| AuditEvent {
            created_at: at(n as i64),
            ..audit(&u, kind)
        })
        .collect();
    let mut changes = vec![Change::CreateUser(u.clone())];
    changes.extend(events.iter().cloned().map(Change::AuditEvent));
    commit_ok(db, changes).await;
    let anonymous = AuditEvent {
        user_id: None,
        ..audit(&u, "login.failed")
    };
    commit_ok(db, vec![Change::AuditEvent(anonymous)]).await;
    assert_eq!(db.list_audit_events(&u.id).await.unwrap(), events);
}

async fn database_ping(db: &dyn Database) {
    db.ping().await.unwrap();
    // An empty change set is a valid (empty) transaction.
    db.commit(Vec::new()).await.unwrap();
}

// ---------------------------------------------------------------------------------
// StateStore
// ---------------------------------------------------------------------------------

const LONG: Duration = Duration::from_secs(60);

async fn put_get_delete(state: &dyn StateStore) {
    state.ping().await.unwrap();
    assert_eq!(state.get("k").await.unwrap(), None);
    state.put("k", "v1", LONG).await.unwrap();
    assert_eq!(state.get("k").await.unwrap().as_deref(), Some("v1"));
    state.put("k", "v2", LONG).await.unwrap();
    assert_eq!(state.get("k").await.unwrap().as_deref(), Some("v2"));
    assert_eq!(
        state.get("K").await.unwrap(),
        None,
        "keys are case-sensitive"
    );
    state.delete("k").await.unwrap();
    assert_eq!(state.get("k").await.unwrap(), None);
    state.delete("k").await.unwrap();
}

async fn expired_values_are_absent(state: &dyn StateStore) {
    state
        .put("short", "v", Duration::from_secs(1))
        .await
        .unwrap();
    state.put("long", "v", LONG).await.unwrap();
    assert_eq!(state.get("short").await.unwrap().as_deref(), Some("v"));
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(state.get("short").await.unwrap(), None);
    assert_eq!(state.take("short").await.unwrap(), None);
    assert_eq!(state.get("long").await.unwrap().as_deref(), Some("v"));
    // An expired key counts as absent for put_if_absent too.
    assert!(state.put_if_absent("short", "new", LONG).await.unwrap());
    assert_eq!(state.get("short").await.unwrap().as_deref(), Some("new"));
}

async fn put_if_absent_keeps_the_first(state: &dyn StateStore) {
    assert!(state.put_if_absent("once", "first", LONG).await.unwrap());
    assert!(!state.put_if_absent("once", "second", LONG).await.unwrap());
    assert_eq!(state.get("once").await.unwrap().as_deref(), Some("first"));

    let racers = (0..20).map(|n| {
        let value = format!("v{n}");
        async move { state.put_if_absent("raced", &value, LONG).await.unwrap() }
    });
    let inserted = join_all(racers).await.into_iter().filter(|&ok| ok).count();
    assert_eq!(inserted, 1);
}

async fn take_is_single_use_under_concurrency(state: &dyn StateStore) {
    state.put("code", "secret", LONG).await.unwrap();
    let takers = (0..20).map(|_| state.take("code"));
    let got: Vec<Option<String>> = join_all(takers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners: Vec<&String> = got.iter().flatten().collect();
    assert_eq!(winners, vec!["secret"]);
    assert_eq!(state.get("code").await.unwrap(), None);
    assert_eq!(state.take("code").await.unwrap(), None);
}

async fn incr_counts_and_keeps_first_expiry(state: &dyn StateStore) {
    assert_eq!(state.incr("n", 1, LONG).await.unwrap(), 1);
    assert_eq!(state.incr("n", 5, LONG).await.unwrap(), 6);
    assert_eq!(state.incr("n", -2, LONG).await.unwrap(), 4);

    assert_eq!(
        state.incr("ttl", 1, Duration::from_secs(1)).await.unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The existing counter keeps its 1 s expiry despite the longer ttl here.
    assert_eq!(state.incr("ttl", 1, LONG).await.unwrap(), 2);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        state.incr("ttl", 1, LONG).await.unwrap(),
        1,
        "expired counter restarts"
    );
}

async fn incr_is_atomic(state: &dyn StateStore) {
    let adders = (0..50).map(|_| state.incr("hits", 1, LONG));
    let mut seen: Vec<i64> = join_all(adders)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<i64>>());
}

async fn take_token_allows_burst_then_limits(state: &dyn StateStore) {
    let period = Duration::from_secs(30);
    for n in 0..3 {
        assert_eq!(
            state.take_token("login", period, 3).await.unwrap(),
            RateDecision::Allowed,
            "token {n}"
        );
    }
    let interval = period / 3;
    match state.take_token("login", period, 3).await.unwrap() {
        RateDecision::Limited { retry_after } => {
            assert!(retry_after <= interval, "{retry_after:?}");
            assert!(
                retry_after > interval - Duration::from_secs(2),
                "{retry_after:?}"
            );
        }
        RateDecision::Allowed => panic!("fourth token within the period"),
    }
    // Being limited costs nothing: still limited, other buckets unaffected.
    assert!(matches!(
        state.take_token("login", period, 3).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    assert_eq!(
        state.take_token("other", period, 3).await.unwrap(),
        RateDecision::Allowed
    );
}

async fn take_token_refills_over_time(state: &dyn StateStore) {
    let period = Duration::from_secs(1);
    assert_eq!(
        state.take_token("r", period, 2).await.unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(
        state.take_token("r", period, 2).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(matches!(
        state.take_token("r", period, 2).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    // One emission interval (500 ms) brings back exactly one token.
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(
        state.take_token("r", period, 2).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(matches!(
        state.take_token("r", period, 2).await.unwrap(),
        RateDecision::Limited { .. }
    ));
}

async fn return_token_gives_one_back_never_beyond_burst(state: &dyn StateStore) {
    let period = Duration::from_secs(60);
    assert_eq!(
        state.take_token("b", period, 2).await.unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(
        state.take_token("b", period, 2).await.unwrap(),
        RateDecision::Allowed
    );
    state.return_token("b", period, 2).await.unwrap();
    assert_eq!(
        state.take_token("b", period, 2).await.unwrap(),
        RateDecision::Allowed
    );
    assert!(matches!(
        state.take_token("b", period, 2).await.unwrap(),
        RateDecision::Limited { .. }
    ));

    // Returning to a full (or unknown) bucket does not bank extra tokens.
    for _ in 0..3 {
        state.return_token("full", period, 2).await.unwrap();
    }
    let mut allowed = 0;
    for _ in 0..4 {
        if state.take_token("full", period, 2).await.unwrap() == RateDecision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 2);
}

async fn take_token_is_atomic(state: &dyn StateStore) {
    let takers = (0..20).map(|_| state.take_token("shared", Duration::from_secs(60), 5));
    let allowed = join_all(takers)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap() == RateDecision::Allowed)
        .count();
    assert_eq!(allowed, 5);
}

async fn buckets_and_values_do_not_collide(state: &dyn StateStore) {
    state.put("same", "value", LONG).await.unwrap();
    assert_eq!(
        state
            .take_token("same", Duration::from_secs(60), 1)
            .await
            .unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(state.get("same").await.unwrap().as_deref(), Some("value"));
    assert_eq!(state.incr("same-counter", 1, LONG).await.unwrap(), 1);
}

// ---------------------------------------------------------------------------------
// One line per test: instantiated for every backend.
// ---------------------------------------------------------------------------------

database_tests!(
    reads_back_what_was_committed,
    commit_is_all_or_nothing,
    concurrent_signups_of_one_login_id_admit_exactly_one,
    concurrent_distinct_commits_all_succeed,
    list_users_pages_in_creation_order,
    rows_with_equal_timestamps_keep_insertion_order,
    timestamps_round_trip_at_millisecond_precision,
    disable_user_and_missing_rows,
    authenticator_data_updates,
    delete_user_removes_everything_of_theirs,
    sessions_find_touch_and_revoke,
    password_history_is_newest_first_and_limited,
    recovery_codes_are_consumed_once,
    organizations_have_unique_names,
    organization_name_race_admits_one,
    api_keys_insert_list_update,
    server_secret_first_writer_wins,
    audit_events_in_creation_order,
    database_ping,
);

state_tests!(
    put_get_delete,
    expired_values_are_absent,
    put_if_absent_keeps_the_first,
    take_is_single_use_under_concurrency,
    incr_counts_and_keeps_first_expiry,
    incr_is_atomic,
    take_token_allows_burst_then_limits,
    take_token_refills_over_time,
    return_token_gives_one_back_never_beyond_burst,
    take_token_is_atomic,
    buckets_and_values_do_not_collide,
);

// ---------------------------------------------------------------------------------
// The in-process state store of the SQLite mode (`MemoryStateStore`): the same state
// tests, in memory only and written behind to a SQLite file, plus what only it has
// (persistence across a restart, one server per file).
// ---------------------------------------------------------------------------------

mod memory_state {
    use std::sync::Arc;
    use std::time::Duration;

    use authflow_core::store::StateStore;
    use authflow_store::{ConnectError, MemoryStateStore, SqliteStore};

    /// A temp SQLite file and its state store.
    struct Persistent {
        state: MemoryStateStore,
        path: std::path::PathBuf,
        db: Arc<SqliteStore>,
        _dir: tempfile::TempDir,
    }

    async fn persistent() -> Persistent {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let db = Arc::new(
            SqliteStore::connect(&format!("sqlite://{}", path.display()), 4)
                .await
                .unwrap(),
        );
        let state = MemoryStateStore::open(db.clone(), &path).await.unwrap();
        Persistent {
            state,
            path,
            db,
            _dir: dir,
        }
    }

    macro_rules! memory_state_tests {
        ($($name:ident),* $(,)?) => { $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn in_memory() {
                    let state = authflow_store::MemoryStateStore::in_memory();
                    crate::$name(&state).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite_backed() {
                    let fx = super::persistent().await;
                    crate::$name(&fx.state).await;
                    fx.state.flush().await.unwrap();
                }
            }
        )* };
    }

    memory_state_tests!(
        put_get_delete,
        expired_values_are_absent,
        put_if_absent_keeps_the_first,
        take_is_single_use_under_concurrency,
        incr_counts_and_keeps_first_expiry,
        incr_is_atomic,
        take_token_allows_burst_then_limits,
        take_token_refills_over_time,
        return_token_gives_one_back_never_beyond_burst,
        take_token_is_atomic,
        buckets_and_values_do_not_collide,
    );

    const LONG: Duration = Duration::from_secs(60);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_keeps_live_values_but_not_consumed_or_expired_ones() {
        let fx = persistent().await;
        fx.state.put("flowstate:a", "state a", LONG).await.unwrap();
        fx.state.put("flow:1", "live", LONG).await.unwrap();
        fx.state.put("replaced", "old", LONG).await.unwrap();
        fx.state.put("replaced", "new", LONG).await.unwrap();
        fx.state.put("code", "single use", LONG).await.unwrap();
        assert_eq!(fx.state.incr("counter", 3, LONG).await.unwrap(), 3);
        fx.state
            .put("short", "v", Duration::from_millis(300))
            .await
            .unwrap();
        fx.state.put("gone", "v", LONG).await.unwrap();
        // Consuming writes are in the file when they return.
        assert_eq!(
            fx.state.take("code").await.unwrap().as_deref(),
            Some("single use")
        );
        fx.state.delete("gone").await.unwrap();
        fx.state.put("later", "v", LONG).await.unwrap();
        fx.state.close().await;
        tokio::time::sleep(Duration::from_millis(400)).await;

        let state = MemoryStateStore::open(fx.db.clone(), &fx.path)
            .await
            .unwrap();
        let get = |key: &'static str| {
            let state = &state;
            async move { state.get(key).await.unwrap() }
        };
        assert_eq!(get("flowstate:a").await.as_deref(), Some("state a"));
        assert_eq!(get("flow:1").await.as_deref(), Some("live"));
        assert_eq!(get("replaced").await.as_deref(), Some("new"));
        assert_eq!(get("later").await.as_deref(), Some("v"));
        assert_eq!(get("code").await, None, "a taken value stays taken");
        assert_eq!(get("gone").await, None);
        assert_eq!(get("short").await, None, "expired while down");
        assert_eq!(state.incr("counter", 1, LONG).await.unwrap(), 4);
        state.close().await;

        // A consumed or deleted value is overwritten in the file at once (an expired, empty
        // row), and the sweep removes the row.
        let stored = |key: &'static str| {
            let db = fx.db.clone();
            async move {
                sqlx::query_scalar::<_, String>("SELECT value FROM ephemeral WHERE key = $1")
                    .bind(key)
                    .fetch_optional(db.pool())
                    .await
                    .unwrap()
            }
        };
        for key in ["code", "gone"] {
            assert!(
                matches!(stored(key).await.as_deref(), None | Some("")),
                "{key}"
            );
        }
        fx.db.sweep_expired().await.unwrap();
        assert_eq!(stored("code").await, None);
        assert_eq!(stored("gone").await, None);
        assert_eq!(stored("later").await.as_deref(), Some("v"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_server_on_the_same_file_is_refused() {
        let fx = persistent().await;
        let second = MemoryStateStore::open(fx.db.clone(), &fx.path).await;
        match second {
            Err(e @ ConnectError::Locked { .. }) => {
                let message = e.to_string();
                assert!(!message.contains('\n'), "{message}");
                assert!(message.contains("PostgreSQL + Redis"), "{message}");
            }
            Err(other) => panic!("expected Locked, got {other}"),
            Ok(_) => panic!("a second state store opened the same database"),
        }
        // Closing releases the lock.
        fx.state.close().await;
        let again = MemoryStateStore::open(fx.db.clone(), &fx.path)
            .await
            .unwrap();
        again.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_pairs_sqlite_with_the_locked_memory_store() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let stores = authflow_store::connect(&url, 4, None).await.unwrap();
        stores.state.put("k", "v", LONG).await.unwrap();
        let second = authflow_store::connect(&url, 4, None).await;
        assert!(
            matches!(second, Err(ConnectError::Locked { .. })),
            "second serve on one file must fail"
        );
        // Commands that need only the database still connect next to a server.
        let db = authflow_store::connect_database(&url, 4).await.unwrap();
        db.ping().await.unwrap();
    }
}
