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
use crate::store::{Database, StoreResult};

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
    read_once(
        |reads| &mut reads.authenticators,
        user_id,
        db.list_authenticators(user_id),
    )
    .await
}

pub(super) async fn user(db: &dyn Database, user_id: &str) -> FlowResult<Option<User>> {
    read_once(|reads| &mut reads.users, user_id, db.get_user(user_id)).await
}

/// The memo's entry for `user_id` in `table`, or else `read`'s answer, remembered. `read` is
/// not polled when the memo has the entry.
async fn read_once<T: Clone>(
    table: fn(&mut CallReads) -> &mut HashMap<String, T>,
    user_id: &str,
    read: impl Future<Output = StoreResult<T>>,
) -> FlowResult<T> {
    if let Some(found) = remembered(|reads| table(reads).get(user_id).cloned()) {
        return Ok(found);
    }
    let found = read.await?;
    remember(|reads| {
        table(reads).insert(user_id.to_owned(), found.clone());
    });
    Ok(found)
}

/// The call wrote to the database: later reads must see the writes.
pub(super) fn forget() {
    remember(|reads| *reads = CallReads::default());
}

fn remembered<T>(lookup: impl FnOnce(&mut CallReads) -> Option<T>) -> Option<T> {
    READS
        .try_with(|reads| lookup(&mut reads.borrow_mut()))
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

    #[tokio::test]
    async fn read_once_reads_the_database_once_per_call_and_again_after_a_commit() {
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(None)
        };
        fn users(reads: &mut CallReads) -> &mut HashMap<String, Option<User>> {
            &mut reads.users
        }
        within_call(async {
            assert_eq!(read_once(users, "u", read()).await.unwrap(), None);
            assert_eq!(read_once(users, "u", read()).await.unwrap(), None);
            assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
            forget();
            read_once(users, "u", read()).await.unwrap();
            assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2);
        })
        .await;
        read_once(users, "u", read()).await.unwrap();
        read_once(users, "u", read()).await.unwrap();
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::SeqCst),
            4,
            "outside a call"
        );
    }
}
