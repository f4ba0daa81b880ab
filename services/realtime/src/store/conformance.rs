//! The one behaviour both membership adapters must have; `tests/api/store.rs` runs it on
//! MongoDB and on SQLite.

use crate::domain::membership::{MemberState, MembershipChange};
use crate::store::MembershipStore;
use minute_events::MemberRole;

fn change(
    conv: &str,
    version: u64,
    direct: Option<bool>,
    members: &[(&str, bool)],
) -> MembershipChange {
    MembershipChange {
        conversation_id: conv.into(),
        version,
        direct,
        members: members
            .iter()
            .map(|(u, m)| MemberState {
                user_id: (*u).into(),
                member: *m,
                role: m.then_some(MemberRole::Member),
            })
            .collect(),
    }
}

async fn sorted(store: &dyn MembershipStore, user: &str) -> Option<Vec<String>> {
    store
        .conversations_of(user)
        .await
        .expect("conversations_of")
        .map(|mut v| {
            v.sort();
            v
        })
}

/// Runs every check; panics on the first difference.
pub async fn run(store: &dyn MembershipStore) {
    store.ping().await.expect("ping");
    assert_eq!(sorted(store, "alice").await, None, "unknown user");

    store
        .apply(&change(
            "d1",
            1,
            Some(true),
            &[("alice", true), ("bob", true)],
        ))
        .await
        .expect("apply");
    store
        .apply(&change(
            "g1",
            1,
            Some(false),
            &[("alice", true), ("carol", true)],
        ))
        .await
        .expect("apply");
    assert_eq!(
        sorted(store, "alice").await,
        Some(vec!["d1".into(), "g1".into()])
    );
    assert_eq!(
        store.direct_peers("alice").await.expect("peers"),
        vec!["bob".to_owned()]
    );
    assert_eq!(
        store.direct_peers("carol").await.expect("peers"),
        Vec::<String>::new()
    );

    // Removal: the user stays known, without the conversation.
    store
        .apply(&change("g1", 3, None, &[("carol", false)]))
        .await
        .expect("apply");
    assert_eq!(sorted(store, "carol").await, Some(vec![]));
    // An older add arriving late does not undo the removal; a replay changes nothing.
    store
        .apply(&change(
            "g1",
            2,
            Some(false),
            &[("carol", true), ("dave", true)],
        ))
        .await
        .expect("apply");
    assert_eq!(sorted(store, "carol").await, Some(vec![]));
    assert_eq!(sorted(store, "dave").await, Some(vec!["g1".into()]));
    store
        .apply(&change("g1", 3, None, &[("carol", false)]))
        .await
        .expect("replay");
    // A newer add brings the member back; the kind is kept when the event omits it.
    store
        .apply(&change("g1", 4, None, &[("carol", true)]))
        .await
        .expect("apply");
    assert_eq!(sorted(store, "carol").await, Some(vec!["g1".into()]));
    assert_eq!(
        store.direct_peers("carol").await.expect("peers"),
        Vec::<String>::new()
    );
}
