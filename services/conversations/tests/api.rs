//! The conversations service driven through HTTP, on real RabbitMQ, Redis and the
//! MongoDB-wire server (SQLite where a test says so).

mod api {
    mod authz;
    mod events;
    mod flows;
    mod helpers;
    mod inputs;
    mod race;
    mod schema;
}
