//! The committed SDL is the code's SDL.

#[test]
fn committed_sdl_matches_the_code() {
    let sdl = minute_messaging::api::sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    if std::env::var("UPDATE_SDL").is_ok() {
        std::fs::write(path, &sdl).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "services/messaging/schema.graphql differs from the code's SDL; review the change and \
         run `UPDATE_SDL=1 cargo test -p minute-messaging committed_sdl` to update it"
    );
}
