//! The users service driven through its HTTP API, on real RabbitMQ, Redis and the
//! MongoDB-wire server (`TEST_MONGODB_URI`), plus the store conformance suite on both
//! adapters.

#[path = "api/helpers.rs"]
mod helpers;

#[path = "api/embedded.rs"]
mod embedded;
#[path = "api/entities.rs"]
mod entities;
#[path = "api/events.rs"]
mod events;
#[path = "api/internal.rs"]
mod internal;
#[path = "api/profile.rs"]
mod profile;
#[path = "api/search.rs"]
mod search;
#[path = "api/store.rs"]
mod store;
#[path = "api/update.rs"]
mod update;
