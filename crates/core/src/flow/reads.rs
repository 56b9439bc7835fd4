//! Records read from the database once per engine call.
//!
//! One request renders options, checks inputs and runs the following steps, and each of
//! those asks for the user's authenticators (a login asked seven times). Within one call
//! the answer cannot change except by the call's own commit, so the first read is kept for
//! the rest of the call and dropped at the commit. Outside [`within_call`] every read goes
//! to the database.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;

use crate::model::{Authenticator, User};
use crate::store::Database;

use super::error::FlowResult;

#[derive(Default)]
struct CallReads {
    authenticators: HashMap<String, Vec<Authenticator>>,
    users: HashMap<String, Option<User>>,
}

tokio::task_local! {
    static READS: RefCell<CallReads>;
}

/// Runs one engine call with its own read memo.
pub(super) async fn within_call<T>(call: impl Future<Output = T>) -> T {
    READS.scope(RefCell::new(CallReads::default()), call).await
}

/// The stored authenticators of `user_id` (without the flow's pending ones).
pub(super) async fn authenticators(
    db: &dyn Database,
    user_id: &str,
) -> FlowResult<Vec<Authenticator>> {
    if let Some(list) = remembered(|reads| reads.authenticators.get(user_id).cloned()) {
        return Ok(list);
    }
    let list = db.list_authenticators(user_id).await?;
    remember(|reads| {
        reads
            .authenticators
            .insert(user_id.to_owned(), list.clone());
    });
    Ok(list)
}

pub(super) async fn user(db: &dyn Database, user_id: &str) -> FlowResult<Option<User>> {
    if let Some(user) = remembered(|reads| reads.users.get(user_id).cloned()) {
        return Ok(user);
    }
    let user = db.get_user(user_id).await?;
    remember(|reads| {
        reads.users.insert(user_id.to_owned(), user.clone());
    });
    Ok(user)
}

/// The call wrote to the database: later reads must see the writes.
pub(super) fn forget() {
    remember(|reads| *reads = CallReads::default());
}

fn remembered<T>(lookup: impl FnOnce(&CallReads) -> Option<T>) -> Option<T> {
    READS
        .try_with(|reads| lookup(&reads.borrow()))
        .ok()
        .flatten()
}

fn remember(update: impl FnOnce(&mut CallReads)) {
    let _ = READS.try_with(|reads| update(&mut reads.borrow_mut()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_call_nothing_is_kept() {
        remember(|reads| {
            reads.users.insert("u".into(), None);
        });
        assert!(remembered(|reads| reads.users.get("u").cloned()).is_none());
    }

    #[tokio::test]
    async fn within_a_call_reads_are_kept_until_forgotten() {
        within_call(async {
            remember(|reads| {
                reads.users.insert("u".into(), None);
            });
            assert_eq!(
                remembered(|reads| reads.users.get("u").cloned()),
                Some(None)
            );
            forget();
            assert!(remembered(|reads| reads.users.get("u").cloned()).is_none());
        })
        .await;
        assert!(remembered(|reads| reads.users.get("u").cloned()).is_none());
    }
}
