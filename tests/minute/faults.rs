//! Fault injection over the split deployment (issue 12): each test runs the seven role
//! processes on a RabbitMQ node, a Redis and a MongoDB-wire server of its own, streams
//! messages through the gateway between users connected to both realtime replicas, injects
//! one fault, and checks the ledger — every acknowledged `sendMessage` is in the history
//! exactly once with its seq, seqs have no gaps, and every member received it (live, or by
//! catching up after a reconnect or a seq gap as real clients do).
//!
//! They stop and freeze processes, so they are `#[ignore]`d in the parallel run and run in
//! their own serial step (the crash points need the `failpoints` feature):
//! `cargo test -p minute --features failpoints --test minute faults:: -- --ignored --test-threads=1`
//! Each prints one line of the fault table and appends it to `target/faults/report.md`.

mod client;
mod infra;
mod ledger;
mod stack;

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use client::{gql, open};
use ledger::{World, retry};
use stack::Stack;

/// Sends per second per conversation (four conversations).
const RATE: f64 = 6.0;

/// Starts the stack (with `armed` failpoints) and the workload, lets it run warm, calls
/// `fault`, keeps streaming for a while after it healed, and checks the ledger.
async fn run<F>(name: &str, armed: &[(&str, &str)], fault: F)
where
    F: AsyncFnOnce(&mut Stack, &mut World) -> String,
{
    let mut stack = Stack::start(name, armed).await;
    let mut world = World::setup(
        stack.port("gateway"),
        [stack.port("realtime-a"), stack.port("realtime-b")],
    )
    .await;
    world.start_stream(RATE);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        world.wait_delivered(Duration::from_secs(20)).await,
        "the stream flows before the fault"
    );
    let start = Instant::now();
    let note = fault(&mut stack, &mut world).await;
    if world.fault.is_none() {
        world.fault = Some((start, Instant::now()));
    }
    for svc in ["messaging", "realtime-a", "realtime-b", "gateway"] {
        stack.wait_ready(svc).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let report = world.finish(name, &note).await;
    report.check();
    drop(stack);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault injection: run by scripts/test in its serial fault step"]
async fn rabbitmq_restarted() {
    run(
        "RabbitMQ stop_app / start_app (10 s down)",
        &[],
        async |stack, _world| {
            stack.rabbit.ctl(&["stop_app"]);
            tokio::time::sleep(Duration::from_secs(10)).await;
            stack.rabbit.start_app().await;
            "broker down 10 s".to_owned()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault injection: run by scripts/test in its serial fault step"]
async fn realtime_replica_killed_and_restarted() {
    run(
        "realtime replica SIGKILL, restarted after 5 s",
        &[],
        async |stack, _world| {
            stack.service("realtime-a").proc.signal("KILL");
            tokio::time::sleep(Duration::from_secs(5)).await;
            stack.restart("realtime-a").await;
            "clients of the killed replica fail over to the other".to_owned()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault injection: run by scripts/test in its serial fault step"]
async fn realtime_replica_frozen_for_20_seconds() {
    run(
        "realtime replica SIGSTOP 20 s, SIGCONT",
        &[],
        async |stack, _world| {
            stack.service("realtime-b").proc.signal("STOP");
            tokio::time::sleep(Duration::from_secs(20)).await;
            stack.service("realtime-b").proc.signal("CONT");
            "clients detect the silent socket by protocol ping and fail over".to_owned()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault injection: run by scripts/test in its serial fault step"]
async fn mongodb_wire_server_restarted() {
    run(
        "MongoDB-wire server restarted (3 s down)",
        &[],
        async |stack, _world| {
            stack.mongo.proc.stop(Duration::from_secs(10));
            tokio::time::sleep(Duration::from_secs(3)).await;
            stack.mongo.restart().await;
            "same data dir".to_owned()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault injection: run by scripts/test in its serial fault step"]
async fn messaging_killed_between_database_write_and_publish() {
    // The 120th outbox item: a few seconds into the stream.
    let armed = [(
        "messaging",
        "messaging.relay.before_publish=messaging.message.created@120",
    )];
    run(
        "messaging aborted between outbox write and publish",
        &armed,
        async |stack, world| {
            let died = stack.wait_exit("messaging", Duration::from_secs(60)).await;
            assert!(died.is_some(), "the failpoint fired");
            let start = Instant::now();
            stack.restart("messaging").await;
            world.fault = Some((start, Instant::now()));
            // The aborted item (and any written meanwhile) is published by the restarted relay.
            let db = mongo(stack, "minute_messaging").await;
            let drained = minute_testkit::eventually(Duration::from_secs(20), || async {
                count(&db, "messages", mongodb::bson::doc! {"pending": true}).await == 0
            })
            .await;
            assert!(drained, "the restarted relay publishes the pending outbox");
            format!("abort ({}), restarted at once", died.unwrap_or_default())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault injection: run by scripts/test in its serial fault step"]
async fn messaging_killed_between_taking_a_seq_and_writing_the_message() {
    // The 300th send: some ten seconds into the stream. The client retries the send that died
    // with it; other conversations' sends in flight fail and are retried too.
    let armed = [("messaging", "messaging.send.before_insert@300")];
    run(
        "messaging aborted between choosing a seq and the insert",
        &armed,
        async |stack, world| {
            let died = stack.wait_exit("messaging", Duration::from_secs(60)).await;
            assert!(died.is_some(), "the failpoint fired");
            let start = Instant::now();
            stack.restart("messaging").await;
            world.fault = Some((start, Instant::now()));
            format!("abort ({}), restarted at once", died.unwrap_or_default())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault injection: run by scripts/test in its serial fault step"]
async fn consumer_killed_after_taking_a_message_before_acking() {
    let point = "bus.consumer.before_handle=conversations.member.added.v1";
    let armed = [
        ("messaging", point),
        ("realtime-a", point),
        ("realtime-b", point),
    ];
    run("consumers aborted holding an unacked member.added", &armed, async |stack, world| {
        // A new member joins the big group: the membership consumers of messaging and
        // realtime take the event and die before handling or acking it.
        let api = world.api.clone();
        let late = ledger::register(&world.http, &api, &unique_name("late")).await.id;
        let group = world.convs[2].id.clone();
        let owner = world.users[world.convs[2].members[0]].token.clone();
        retry(Duration::from_secs(30), || {
            gql(&world.http, &api, Some(&owner),
                "mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) { id } }",
                json!({"c": group, "u": [late]}))
        })
        .await;
        let start = Instant::now();
        assert!(
            stack.wait_exit("messaging", Duration::from_secs(20)).await.is_some(),
            "messaging's consumer took the event and aborted"
        );
        let mut died = vec!["messaging"];
        tokio::time::sleep(Duration::from_secs(2)).await;
        for r in ["realtime-a", "realtime-b"] {
            if stack.service(r).proc.exited().is_some() {
                died.push(r);
            }
        }
        assert!(died.len() > 1, "a realtime replica's consumer took the event and aborted");
        for name in &died {
            stack.restart(name).await;
        }
        world.fault = Some((start, Instant::now()));
        // Redelivered to the restarted consumers, handled, acked: both replicas know the
        // new member and the queues are empty, nothing dead-lettered.
        let messaging = mongo(stack, "minute_messaging").await;
        let realtime = mongo(stack, "minute_realtime").await;
        let applied = minute_testkit::eventually(Duration::from_secs(20), || async {
            count(&messaging, "members", mongodb::bson::doc! {"conv": &group, "user": &late}).await == 1
                && count(&realtime, "memberships", mongodb::bson::doc! {"conversation_id": &group, "user_id": &late, "member": true}).await == 1
        })
        .await;
        assert!(applied, "the redelivered member.added reached both membership replicas");
        let settled = minute_testkit::eventually(Duration::from_secs(20), || async {
            stack.rabbit.queues().iter().filter(|(n, ..)| n.contains("memberships")).all(|(_, r, u)| r + u == 0)
        })
        .await;
        assert!(settled, "membership queues and DLQs empty: {:?}", stack.rabbit.queues());
        format!("{} aborted and restarted; the event was redelivered and applied", died.join(", "))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "fault injection: run by scripts/test in its serial fault step"]
async fn redis_stopped_for_20_seconds() {
    run("Redis stopped 20 s", &[], async |stack, world| {
        let ports = [stack.port("realtime-a"), stack.port("realtime-b")];
        let conv = world.convs[0].id.clone();
        let typing = "mutation($c: ID!) { typing(conversationId: $c) }";
        let revoked = revoked_token(world).await;
        stack.redis.proc.stop(Duration::from_secs(5));
        let down = Instant::now();
        tokio::time::sleep(Duration::from_secs(2)).await;
        // A second device of user 0 connects while Redis is down and types in the direct
        // conversation with user 1: refused (presence and typing live in Redis), the
        // socket stays open.
        let mut ws = open(ports[0], &world.users[0].token)
            .await
            .expect("a socket opens while Redis is down");
        let during = client::execute(&mut ws, "t0", typing, json!({"c": conv})).await;
        // The check fails open while Redis is down, but not for a session already known
        // to be revoked.
        let refused = gql(
            &world.http,
            &world.api,
            Some(&revoked),
            "{ me { id } }",
            json!({}),
        )
        .await
        .is_err_and(|e| e.contains("UNAUTHENTICATED"));
        assert!(
            refused,
            "a session known to be revoked stays refused while Redis is down"
        );
        client::drain(&mut ws, down + Duration::from_secs(20)).await;
        tokio::time::sleep_until(down + Duration::from_secs(20)).await;
        stack.redis.proc.spawn();
        infra::wait_port(
            &mut stack.redis.proc,
            stack.redis.port,
            Duration::from_secs(20),
        )
        .await;
        let up = Instant::now();
        let flowed = world.acked_between(down, up);
        assert!(
            flowed as f64 >= RATE * 4.0 * 20.0 * 0.25,
            "messages flow while Redis is down: {flowed} acknowledged in {:?}",
            up - down
        );
        // Typing recovers on the same socket and reaches the peer again.
        let mut typed = false;
        for n in 1..=40 {
            let r = client::execute(&mut ws, &format!("t{n}"), typing, json!({"c": conv})).await;
            if r.is_ok_and(|v| v["data"]["typing"] == true) {
                typed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            typed,
            "typing works again after Redis is back, on the socket opened during the outage"
        );
        let typist = world.users[0].id.clone();
        let reached = minute_testkit::eventually(Duration::from_secs(10), || async {
            world
                .seen
                .other
                .lock()
                .expect("seen")
                .iter()
                .any(|(u, e, at)| {
                    *u == 1
                        && e["__typename"] == "TypingStarted"
                        && e["userId"] == typist.as_str()
                        && *at >= up
                })
        })
        .await;
        assert!(
            reached,
            "the peer receives TypingStarted after Redis is back"
        );
        presence_after_recovery(world, ports).await;
        world.fault = Some((down, up));
        let during = match during {
            Ok(v) if v["data"]["typing"] == true => "accepted".to_owned(),
            Ok(v) => format!("refused: {v}"),
            Err(e) if e.contains("\"error\"") => "refused with an error frame".to_owned(),
            Err(e) => format!("failed: {e}"),
        };
        format!(
            "{flowed} sends acknowledged while down; typing while down {during}, socket kept; \
             typing and presence work again after"
        )
    })
    .await;
}

/// The access token of a user who logged out, refused once through the gateway (so the
/// services have seen its revocation in Redis).
async fn revoked_token(world: &World) -> String {
    let api = world.api.clone();
    let token = ledger::register(&world.http, &api, &unique_name("gone"))
        .await
        .token;
    gql(
        &world.http,
        &api,
        Some(&token),
        "mutation { logout }",
        json!({}),
    )
    .await
    .expect("logout");
    let refused = gql(&world.http, &api, Some(&token), "{ me { id } }", json!({}))
        .await
        .is_err_and(|e| e.contains("UNAUTHENTICATED"));
    assert!(refused, "a logged-out session is refused");
    token
}

/// A user connecting after Redis came back is announced online to their direct peer.
async fn presence_after_recovery(world: &World, ports: [u16; 2]) {
    let api = world.api.clone();
    let ledger::User { token, id } =
        ledger::register(&world.http, &api, &unique_name("pres")).await;
    let peer = world.users[1].token.clone();
    let peer_id = world.users[1].id.clone();
    retry(Duration::from_secs(30), || {
        gql(
            &world.http,
            &api,
            Some(&token),
            "mutation($u: ID!) { createDirectConversation(userId: $u) { id } }",
            json!({"u": peer_id}),
        )
    })
    .await;
    let mut watcher = open(ports[1], &peer).await.expect("the peer connects");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _socket = open(ports[0], &token).await.expect("the new user connects");
    let seen = client::wait_event(&mut watcher, Duration::from_secs(10), |e| {
        e["__typename"] == "PresenceChanged" && e["userId"] == id.as_str() && e["online"] == true
    })
    .await;
    assert!(
        seen.is_some(),
        "presence recovered: the direct peer sees the new user online"
    );
}

/// A valid username unique to this run.
fn unique_name(prefix: &str) -> String {
    minute_testkit::unique(prefix).replace('-', "_")
}

async fn mongo(stack: &Stack, db: &str) -> mongodb::Database {
    mongodb::Client::with_uri_str(stack.mongo.url())
        .await
        .expect("the test's MongoDB-wire server")
        .database(db)
}

async fn count(db: &mongodb::Database, collection: &str, filter: mongodb::bson::Document) -> u64 {
    db.collection::<mongodb::bson::Document>(collection)
        .count_documents(filter)
        .await
        .unwrap_or(u64::MAX)
}

/// The crash points exist only in builds with the `failpoints` feature: the binary built
/// without it (every normal and release build) cannot even read `MINUTE_FAILPOINTS`.
#[cfg(not(feature = "failpoints"))]
#[test]
fn builds_without_the_feature_have_no_crash_points() {
    assert!(
        !stack::has_crash_points(std::path::Path::new(env!("CARGO_BIN_EXE_minute"))),
        "a build without the failpoints feature must not contain crash points"
    );
}
