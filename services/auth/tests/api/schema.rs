//! The committed SDL is the code's SDL (style.md §14). Regenerate with
//! `MINUTE_BLESS_SCHEMA=1 cargo test -p minute-auth schema`.

#[test]
fn committed_schema_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let sdl = minute_auth::api::sdl();
    if std::env::var_os("MINUTE_BLESS_SCHEMA").is_some() {
        std::fs::write(path, &sdl).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "services/auth/schema.graphql differs from the code; review and bless it:\n{sdl}"
    );
    for name in [
        "register(input: RegisterInput!): AuthPayload!",
        "login(input: LoginInput!): AuthPayload!",
        "refresh(refreshToken: String!): AuthPayload!",
        "logout: Boolean!",
        "logoutAll: Boolean!",
        "changePassword(currentPassword: String!, newPassword: String!): Boolean!",
        "expiresIn: Int!",
        "type User @key(fields: \"id\"",
    ] {
        assert!(sdl.contains(name), "api.md names `{name}`:\n{sdl}");
    }
}
