//! 20 concurrent `createDirectConversation` calls for one pair give one conversation.

use futures_util::future::join_all;

use super::helpers::*;

#[tokio::test]
async fn twenty_racing_creations_give_one_conversation() {
    race(Db::Mongo).await;
}

#[tokio::test]
async fn twenty_racing_creations_give_one_conversation_on_sqlite() {
    race(Db::Sqlite).await;
}

async fn race(db: Db) {
    let app = spawn_with(Options {
        db,
        ..Options::default()
    })
    .await;
    let mut watch = app.observe().await;
    let (alice, bob) = (app.user("alice"), app.user("bob"));
    let calls = (0..20).map(|i| {
        let (me, other) = if i % 2 == 0 {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        async move {
            me.direct(&other.id).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    });
    let ids = join_all(calls).await;
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one conversation: {ids:?}"
    );
    assert_eq!(alice.list(50, None).await.0, [ids[0].clone()]);
    assert_eq!(bob.list(50, None).await.0, [ids[0].clone()]);
    let created: Vec<Seen> = watch
        .drain(std::time::Duration::from_secs(2))
        .await
        .into_iter()
        .filter(|s| s.routing_key == "conversations.conversation.created.v1")
        .collect();
    assert_eq!(created.len(), 1, "one creation event");
}
