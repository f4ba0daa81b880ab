//! The auth service driven through HTTP like a client, on real RabbitMQ, Redis and the
//! MongoDB-wire server (`TEST_MONGODB_URI`), plus the storage conformance suite run on
//! both adapters.

mod api {
    mod helpers;

    mod flows;
    mod input;
    mod schema;
    mod store;
    mod throttle;
    mod timing;
    mod tokens;
}
