//! The realtime service driven through `/ws` with a real graphql-transport-ws client, on real
//! RabbitMQ, Redis and the MongoDB-wire server. Events are published on the bus exactly as
//! messaging, conversations and auth publish them (built from `minute_events` payloads).

// Test modules share helpers through `pub` items of this one binary.
#![allow(unreachable_pub)]
mod api {
    pub mod bad_input;
    pub mod embedded;
    pub mod failover;
    pub mod flows;
    pub mod helpers;
    pub mod presence;
    pub mod schema;
    pub mod store;
}
