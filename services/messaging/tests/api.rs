//! The messaging service's integration tests, driving the real service over HTTP against
//! real RabbitMQ, Redis and the MongoDB-wire server (and SQLite in a temp dir).

mod api {
    mod authz;
    mod concurrency;
    mod flows;
    pub(crate) mod helpers;
    mod outbox;
    mod schema;
    mod store;
}
