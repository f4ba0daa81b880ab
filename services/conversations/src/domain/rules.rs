//! Who may do what, and what each operation changes. Pure functions over loaded state:
//! [`super::service`] loads, calls one of these, and stores the [`Change`] only if the
//! conversation did not move in between.
//!
//! Policies (also in the crate docs):
//! - A direct conversation has exactly two `MEMBER`s, no title and fixed membership: adding,
//!   removing, renaming, role changes and leaving are `FORBIDDEN`. A direct conversation with
//!   oneself is `BAD_USER_INPUT`.
//! - OWNER and ADMIN add and remove members and rename; an ADMIN cannot remove an OWNER.
//! - Only an OWNER changes roles; an OWNER may make another member OWNER (hand over).
//! - The last OWNER cannot leave or demote themself while other members remain.
//! - Adding someone who is already a member, or naming a user twice, is `BAD_USER_INPUT`
//!   (nothing is written); the creator listed in their own `createGroup` is ignored.

use chrono::{DateTime, Utc};

use super::{
    Change, Conversation, ConversationId, Error, Kind, Member, NewConversation, Role, Title,
    UserId, UserIds,
};

fn group_only(conv: &Conversation) -> Result<(), Error> {
    match conv.kind {
        Kind::Group => Ok(()),
        Kind::Direct => Err(Error::forbidden(
            "a direct conversation's members and title cannot change",
        )),
    }
}

fn base_change(conv: &Conversation) -> Change {
    Change {
        conversation_id: Some(conv.id.clone()),
        expected_version: conv.version,
        member_count: conv.member_count,
        owner_count: conv.owner_count,
        activity_ms: conv.last_activity_ms,
        ..Change::default()
    }
}

fn member(conv: &ConversationId, user: &UserId, role: Role, now: DateTime<Utc>) -> Member {
    Member {
        conversation_id: conv.clone(),
        user_id: user.clone(),
        role,
        joined_at: now,
    }
}

/// The unique key of a direct conversation: the unordered pair.
pub fn direct_key(a: &UserId, b: &UserId) -> String {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    format!("{x}\n{y}")
}

/// A direct conversation between `me` and `other`.
pub fn create_direct(
    me: &UserId,
    other: &UserId,
    now: DateTime<Utc>,
) -> Result<NewConversation, Error> {
    if me == other {
        return Err(Error::bad_input("a direct conversation needs another user"));
    }
    let id = ConversationId::generate();
    let conversation = Conversation {
        id: id.clone(),
        kind: Kind::Direct,
        title: None,
        created_at: now,
        member_count: 2,
        owner_count: 0,
        version: 1,
        last_activity_ms: now.timestamp_millis(),
    };
    Ok(NewConversation {
        members: vec![
            member(&id, me, Role::Member, now),
            member(&id, other, Role::Member, now),
        ],
        direct_key: Some(direct_key(me, other)),
        conversation,
    })
}

/// A group created by `creator` (OWNER) with `others` as MEMBERs.
pub fn create_group(
    creator: &UserId,
    title: Title,
    others: UserIds,
    max_members: usize,
    now: DateTime<Utc>,
) -> Result<NewConversation, Error> {
    let others = others.without(creator);
    if others.len() + 1 > max_members {
        return Err(too_many(max_members));
    }
    let id = ConversationId::generate();
    let mut members = Vec::with_capacity(others.len() + 1);
    members.push(member(&id, creator, Role::Owner, now));
    members.extend(
        others
            .as_slice()
            .iter()
            .map(|u| member(&id, u, Role::Member, now)),
    );
    let conversation = Conversation {
        id,
        kind: Kind::Group,
        title: Some(title.into_string()),
        created_at: now,
        member_count: members.len() as u64,
        owner_count: 1,
        version: 1,
        last_activity_ms: now.timestamp_millis(),
    };
    Ok(NewConversation {
        conversation,
        members,
        direct_key: None,
    })
}

fn too_many(max: usize) -> Error {
    Error::bad_input(format!("a group holds at most {max} members"))
}

/// Checks that `actor` may add members (before the ids are looked up).
pub fn may_add_members(conv: &Conversation, actor: &Member) -> Result<(), Error> {
    group_only(conv)?;
    if !actor.role.manages_members() {
        return Err(Error::forbidden("only an OWNER or ADMIN adds members"));
    }
    Ok(())
}

/// Adds `ids` as MEMBERs; `already` are those of `ids` who are members now.
pub fn add_members(
    conv: &Conversation,
    actor: &Member,
    ids: &UserIds,
    already: &[Member],
    max_members: usize,
    now: DateTime<Utc>,
) -> Result<Change, Error> {
    may_add_members(conv, actor)?;
    if let Some(m) = already.first() {
        return Err(Error::bad_input(format!("already a member: {}", m.user_id)));
    }
    if ids.is_empty() {
        return Err(Error::bad_input("userIds must not be empty"));
    }
    let count = conv.member_count + ids.len() as u64;
    if count > max_members as u64 {
        return Err(too_many(max_members));
    }
    let mut change = base_change(conv);
    change.add = ids
        .as_slice()
        .iter()
        .map(|u| member(&conv.id, u, Role::Member, now))
        .collect();
    change.member_count = count;
    Ok(change)
}

/// `actor` removes `target` (`None`: not a member).
pub fn remove_member(
    conv: &Conversation,
    actor: &Member,
    target: Option<&Member>,
) -> Result<Change, Error> {
    group_only(conv)?;
    if !actor.role.manages_members() {
        return Err(Error::forbidden("only an OWNER or ADMIN removes members"));
    }
    let target = target.ok_or_else(|| Error::bad_input("that user is not a member"))?;
    if target.user_id == actor.user_id {
        return Err(Error::bad_input("use leaveConversation to leave"));
    }
    if target.role == Role::Owner && actor.role != Role::Owner {
        return Err(Error::forbidden("only an OWNER removes an OWNER"));
    }
    Ok(without(conv, target))
}

fn without(conv: &Conversation, target: &Member) -> Change {
    let mut change = base_change(conv);
    change.remove = vec![target.user_id.clone()];
    change.member_count = conv.member_count.saturating_sub(1);
    if target.role == Role::Owner {
        change.owner_count = conv.owner_count.saturating_sub(1);
    }
    change
}

/// `actor` leaves.
pub fn leave(conv: &Conversation, actor: &Member) -> Result<Change, Error> {
    group_only(conv)?;
    if is_last_owner(conv, actor) && conv.member_count > 1 {
        return Err(Error::forbidden(
            "the last OWNER must make another member OWNER before leaving",
        ));
    }
    Ok(without(conv, actor))
}

fn is_last_owner(conv: &Conversation, m: &Member) -> bool {
    m.role == Role::Owner && conv.owner_count <= 1
}

/// `actor` renames the group.
pub fn rename(conv: &Conversation, actor: &Member, title: Title) -> Result<Change, Error> {
    group_only(conv)?;
    if !actor.role.manages_members() {
        return Err(Error::forbidden("only an OWNER or ADMIN renames"));
    }
    let mut change = base_change(conv);
    change.title = Some(title);
    Ok(change)
}

/// `actor` gives `target` the role `role`. Returns an empty change when nothing moves.
pub fn set_role(
    conv: &Conversation,
    actor: &Member,
    target: Option<&Member>,
    role: Role,
) -> Result<Change, Error> {
    group_only(conv)?;
    if actor.role != Role::Owner {
        return Err(Error::forbidden("only an OWNER changes roles"));
    }
    let target = target.ok_or_else(|| Error::bad_input("that user is not a member"))?;
    let mut change = base_change(conv);
    if target.role == role {
        return Ok(change);
    }
    if is_last_owner(conv, target) {
        return Err(Error::forbidden(
            "make another member OWNER before giving up the last OWNER role",
        ));
    }
    change.set_roles = vec![(target.user_id.clone(), role)];
    match (target.role, role) {
        (Role::Owner, _) => change.owner_count -= 1,
        (_, Role::Owner) => change.owner_count += 1,
        _ => {}
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn group(now: DateTime<Utc>) -> (Conversation, Vec<Member>) {
        let ids = UserIds::parse(&["b".to_owned(), "c".to_owned()], 10).unwrap();
        let g = create_group(&uid("a"), Title::parse("t").unwrap(), ids, 10, now).unwrap();
        (g.conversation, g.members)
    }

    #[test]
    fn roles_and_the_last_owner() {
        let now = Utc::now();
        let (conv, m) = group(now);
        let (owner, member) = (&m[0], &m[1]);
        assert!(matches!(leave(&conv, owner), Err(Error::Forbidden(_))));
        assert!(leave(&conv, member).is_ok());
        assert!(matches!(
            set_role(&conv, member, Some(owner), Role::Member),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            set_role(&conv, owner, Some(owner), Role::Admin),
            Err(Error::Forbidden(_))
        ));
        let c = set_role(&conv, owner, Some(member), Role::Owner).unwrap();
        assert_eq!(c.owner_count, 2);
        assert!(matches!(
            remove_member(&conv, member, Some(owner)),
            Err(Error::Forbidden(_))
        ));
        let admin = Member {
            role: Role::Admin,
            ..member.clone()
        };
        assert!(matches!(
            remove_member(&conv, &admin, Some(owner)),
            Err(Error::Forbidden(_))
        ));
        assert_eq!(
            remove_member(&conv, &admin, Some(&m[2]))
                .unwrap()
                .member_count,
            2
        );
    }

    #[test]
    fn limits_and_direct_policy() {
        let now = Utc::now();
        let (conv, m) = group(now);
        let ids = UserIds::parse(&["d".to_owned()], 10).unwrap();
        assert!(matches!(
            add_members(&conv, &m[0], &ids, &[], 3, now),
            Err(Error::BadInput(_))
        ));
        assert_eq!(
            add_members(&conv, &m[0], &ids, &[], 4, now)
                .unwrap()
                .member_count,
            4
        );
        assert!(create_direct(&uid("a"), &uid("a"), now).is_err());
        let d = create_direct(&uid("b"), &uid("a"), now).unwrap();
        assert_eq!(d.direct_key.as_deref(), Some("a\nb"));
        assert!(matches!(
            leave(&d.conversation, &d.members[0]),
            Err(Error::Forbidden(_))
        ));
    }
}
