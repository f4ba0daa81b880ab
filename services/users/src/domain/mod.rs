//! The rules of profiles: input types that can only hold valid values ([`input`]), what a
//! profile is and how registrations and edits change it ([`profile`]), and the operations
//! the API and the event consumer call ([`Users`]).

pub mod input;
pub mod profile;
mod users;

pub use input::{AvatarUrl, Bio, DisplayName, ProfileChanges, SearchLimit, SearchQuery, UserId};
pub use profile::{Profile, Registration, RegistrationEffect};
pub use users::{Users, UsersError};
