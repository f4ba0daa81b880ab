//! A profile and the rules that change it.
//!
//! A profile is *provisional* while its display name is only a stand-in: it was created
//! from an access token's claims because `me` came before `auth.account.registered.v1`
//! (read-your-writes). The registration event then fills the display name, but only while
//! the profile is still provisional, so a name the user already chose is never overwritten.

use chrono::{DateTime, Utc};

use super::input::{ProfileChanges, UserId};

/// A user's profile as stored. Strings here were validated on their way in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The user (auth's id).
    pub id: UserId,
    /// Lower-case username (auth owns it).
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// Avatar (https).
    pub avatar_url: Option<String>,
    /// Bio.
    pub bio: Option<String>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// The display name is a stand-in until the registration event arrives.
    pub provisional: bool,
    /// Id of the registration event applied to this profile, if any.
    pub registered_event: Option<String>,
    /// Bumped by every change; writes compare it (optimistic concurrency).
    pub version: i64,
}

/// The facts of `auth.account.registered.v1` a profile needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The event's id (idempotency key).
    pub event_id: String,
    /// The user.
    pub user_id: UserId,
    /// Username.
    pub username: String,
    /// Display name chosen at registration (already valid), if any.
    pub display_name: Option<String>,
    /// Account creation time.
    pub created_at: DateTime<Utc>,
}

/// What a registration does to the stored profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEffect {
    /// No profile yet: create this one.
    Create(Profile),
    /// A provisional profile: replace it with this one.
    Fill(Profile),
    /// Already applied, or the user already chose their name.
    Nothing,
}

impl Profile {
    /// A stand-in created from a token's claims: the username is the display name.
    pub fn provisional(id: UserId, username: &str, now: DateTime<Utc>) -> Self {
        Self {
            id,
            username: username.to_lowercase(),
            display_name: username.to_owned(),
            avatar_url: None,
            bio: None,
            created_at: now,
            provisional: true,
            registered_event: None,
            version: 1,
        }
    }

    /// Decides what `registration` does to `current` (the stored profile, if any).
    pub fn on_registration(
        current: Option<&Profile>,
        registration: &Registration,
    ) -> RegistrationEffect {
        let display_name = registration
            .display_name
            .clone()
            .unwrap_or_else(|| registration.username.clone());
        match current {
            None => RegistrationEffect::Create(Profile {
                id: registration.user_id.clone(),
                username: registration.username.to_lowercase(),
                display_name,
                avatar_url: None,
                bio: None,
                created_at: registration.created_at,
                provisional: false,
                registered_event: Some(registration.event_id.clone()),
                version: 1,
            }),
            Some(p)
                if p.provisional
                    && p.registered_event.as_deref() != Some(&registration.event_id) =>
            {
                RegistrationEffect::Fill(Profile {
                    display_name,
                    username: registration.username.to_lowercase(),
                    created_at: registration.created_at,
                    provisional: false,
                    registered_event: Some(registration.event_id.clone()),
                    version: p.version + 1,
                    ..p.clone()
                })
            }
            Some(_) => RegistrationEffect::Nothing,
        }
    }

    /// The profile after `changes`, or `None` when they change nothing. Any edit by the
    /// user ends the provisional state: from then on the profile is theirs.
    pub fn edited(&self, changes: &ProfileChanges) -> Option<Profile> {
        let mut next = self.clone();
        if let Some(name) = &changes.display_name {
            next.display_name = name.as_str().to_owned();
        }
        if let Some(url) = &changes.avatar_url {
            next.avatar_url = url.clone().map(|u| u.into_inner());
        }
        if let Some(bio) = &changes.bio {
            next.bio = bio.clone().map(|b| b.into_inner());
        }
        next.provisional = false;
        if next == *self {
            return None;
        }
        next.version = self.version + 1;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(event: &str, name: Option<&str>) -> Registration {
        Registration {
            event_id: event.into(),
            user_id: UserId::parse("u1").unwrap(),
            username: "ada".into(),
            display_name: name.map(str::to_owned),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn registration_creates_then_is_a_no_op() {
        let r = reg("e1", None);
        let RegistrationEffect::Create(p) = Profile::on_registration(None, &r) else {
            panic!("creates");
        };
        assert_eq!(p.display_name, "ada");
        assert!(!p.provisional);
        assert_eq!(
            Profile::on_registration(Some(&p), &r),
            RegistrationEffect::Nothing
        );
    }

    #[test]
    fn registration_fills_only_provisional_profiles() {
        let p = Profile::provisional(UserId::parse("u1").unwrap(), "ada", Utc::now());
        let r = reg("e1", Some("Ada L."));
        let RegistrationEffect::Fill(filled) = Profile::on_registration(Some(&p), &r) else {
            panic!("fills");
        };
        assert_eq!(filled.display_name, "Ada L.");
        assert_eq!(filled.version, p.version + 1);

        let changes = ProfileChanges::parse(None, None, Some("hi")).unwrap();
        let edited = p.edited(&changes).unwrap();
        assert!(!edited.provisional);
        assert_eq!(
            Profile::on_registration(Some(&edited), &r),
            RegistrationEffect::Nothing
        );
    }

    #[test]
    fn edits_that_change_nothing_write_nothing() {
        let mut p = Profile::provisional(UserId::parse("u1").unwrap(), "ada", Utc::now());
        p.provisional = false;
        let same = ProfileChanges::parse(Some("ada"), Some(""), Some("")).unwrap();
        assert_eq!(p.edited(&same), None);
        let other = ProfileChanges::parse(Some("Ada"), None, None).unwrap();
        assert_eq!(p.edited(&other).unwrap().display_name, "Ada");
    }
}
