//! The GraphQL object types of api.md's conversations part.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use minute_kit::GqlResultExt;

use crate::domain::service::{Page, View};
use crate::domain::{Kind, Member, MemberCursor, PageSize, Role};

/// `ConversationKind`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ConversationKind")]
pub enum GqlKind {
    /// Two users.
    Direct,
    /// A titled group.
    Group,
}

impl From<Kind> for GqlKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Direct => Self::Direct,
            Kind::Group => Self::Group,
        }
    }
}

/// `MemberRole`.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "MemberRole")]
pub enum GqlRole {
    /// Manages roles.
    Owner,
    /// Manages members and the title.
    Admin,
    /// Reads and writes.
    Member,
}

impl From<Role> for GqlRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => Self::Owner,
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
        }
    }
}

impl From<GqlRole> for Role {
    fn from(r: GqlRole) -> Self {
        match r {
            GqlRole::Owner => Self::Owner,
            GqlRole::Admin => Self::Admin,
            GqlRole::Member => Self::Member,
        }
    }
}

/// A reference to the users subgraph's `User`.
#[derive(SimpleObject)]
#[graphql(name = "User", unresolvable)]
pub struct UserRef {
    /// The user's id.
    pub id: ID,
}

/// `Member`.
pub struct MemberObj(Member);

#[Object(name = "Member")]
impl MemberObj {
    /// The user (resolved by the users subgraph).
    async fn user(&self) -> UserRef {
        UserRef {
            id: ID(self.0.user_id.to_string()),
        }
    }
    /// Role in the conversation.
    async fn role(&self) -> GqlRole {
        self.0.role.into()
    }
    /// When they joined.
    async fn joined_at(&self) -> DateTime<Utc> {
        self.0.joined_at
    }
}

impl From<Member> for MemberObj {
    fn from(m: Member) -> Self {
        Self(m)
    }
}

/// `MemberConnection`.
#[derive(SimpleObject)]
#[graphql(name = "MemberConnection")]
pub struct MemberConnection {
    /// Members ordered by user id.
    pub edges: Vec<MemberObj>,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    /// More after this page.
    pub has_next_page: bool,
}

/// `ConversationConnection`.
#[derive(SimpleObject)]
#[graphql(name = "ConversationConnection")]
pub struct ConversationConnection {
    /// Most recently active first.
    pub nodes: Vec<ConversationObj>,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    /// More after this page.
    pub has_next_page: bool,
}

impl From<Page<View>> for ConversationConnection {
    fn from(p: Page<View>) -> Self {
        Self {
            nodes: p.items.into_iter().map(ConversationObj).collect(),
            end_cursor: p.end_cursor,
            has_next_page: p.has_next_page,
        }
    }
}

/// `Conversation`, as seen by one member (the caller).
pub struct ConversationObj(pub View);

#[Object(name = "Conversation")]
impl ConversationObj {
    async fn id(&self) -> ID {
        ID(self.0.conversation.id.to_string())
    }
    async fn kind(&self) -> GqlKind {
        self.0.conversation.kind.into()
    }
    async fn title(&self) -> Option<&str> {
        self.0.conversation.title.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.conversation.created_at
    }
    async fn member_count(&self) -> i32 {
        i32::try_from(self.0.conversation.member_count).unwrap_or(i32::MAX)
    }
    /// Members ordered by user id; `first` 1..=100.
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<MemberConnection> {
        let first = PageSize::parse(first.unwrap_or(50)).gql()?;
        let after = after
            .as_deref()
            .map(MemberCursor::decode)
            .transpose()
            .gql()?;
        let page = super::service(ctx)
            .members(&self.0.conversation.id, first, after.as_ref())
            .await
            .gql()?;
        Ok(MemberConnection {
            edges: page.items.into_iter().map(MemberObj::from).collect(),
            end_cursor: page.end_cursor,
            has_next_page: page.has_next_page,
        })
    }
    async fn my_role(&self) -> GqlRole {
        self.0.me.role.into()
    }
}
