//! `subscription { events { ... } }` as a projection: the selection of each `Event` member
//! type, computed once per distinct document (after async-graphql validated it) and shared by
//! every socket that sends the same document. Every field of the union's members is a scalar
//! or an enum, so executing the selection is picking fields from the event: no per-socket
//! executor state, which is most of what an idle subscription would otherwise cost.

use std::collections::HashMap;
use std::fmt::Write as _;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned};
use serde_json::{Map, Value};

/// What to put under one response key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pick {
    Typename,
    Field(String),
}

/// A validated `events` subscription, ready to render events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// Response key of the `events` field (its alias, if any).
    key: String,
    /// Per member type: `(response key, pick)` in selection order.
    by_type: HashMap<String, Vec<(String, Pick)>>,
}

/// Member types of the `Event` union.
pub const EVENT_TYPES: [&str; 12] = [
    "MessageCreated",
    "MessageEdited",
    "MessageDeleted",
    "ReactionChanged",
    "ReadMarkerUpdated",
    "DeliveredMarkerUpdated",
    "ConversationUpdated",
    "MemberAdded",
    "MemberRemoved",
    "TypingStarted",
    "PresenceChanged",
    "SessionRevoked",
];

struct Builder<'a> {
    doc: &'a ExecutableDocument,
    variables: &'a Map<String, Value>,
    depth: usize,
}

impl Projection {
    /// The projection of a subscription to `events`, or `None` when the document is not one
    /// (then it runs through the general executor).
    pub fn build(
        doc: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Map<String, Value>,
    ) -> Option<Self> {
        let op = match (&doc.operations, operation_name) {
            (DocumentOperations::Single(op), _) => op,
            (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name)?,
            (DocumentOperations::Multiple(_), None) => return None,
        };
        if op.node.ty != OperationType::Subscription {
            return None;
        }
        let [root] = op.node.selection_set.node.items.as_slice() else {
            return None;
        };
        let Selection::Field(field) = &root.node else {
            return None;
        };
        if field.node.name.node != "events" {
            return None;
        }
        let mut b = Builder {
            doc,
            variables,
            depth: 0,
        };
        let mut by_type = HashMap::new();
        for ty in EVENT_TYPES {
            let mut picks = Vec::new();
            b.collect(&field.node.selection_set.node, ty, true, &mut picks)?;
            by_type.insert(ty.to_owned(), picks);
        }
        Some(Self {
            key: field.node.response_key().node.to_string(),
            by_type,
        })
    }

    /// `{"data":{"<key>":{...}}}` for one event of type `typename` with `fields`.
    pub fn render(&self, typename: &str, fields: &Map<String, Value>) -> String {
        let mut out = String::with_capacity(256);
        out.push_str(r#"{"data":{"#);
        push_json(&mut out, &self.key);
        out.push_str(":{");
        for (i, (key, pick)) in self.by_type.get(typename).into_iter().flatten().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json(&mut out, key);
            out.push(':');
            match pick {
                Pick::Typename => push_json(&mut out, typename),
                Pick::Field(name) => {
                    let v = fields.get(name).unwrap_or(&Value::Null);
                    let _ = write!(out, "{v}");
                }
            }
        }
        out.push_str("}}}");
        out
    }
}

fn push_json(out: &mut String, s: &str) {
    let _ = write!(out, "{}", Value::String(s.to_owned()));
}

impl Builder<'_> {
    /// Adds the picks of `set` for an object of type `ty`; `on_union` is true at the level of
    /// the union itself (only `__typename` and fragments are allowed there).
    fn collect(
        &mut self,
        set: &SelectionSet,
        ty: &str,
        on_union: bool,
        picks: &mut Vec<(String, Pick)>,
    ) -> Option<()> {
        self.depth += 1;
        if self.depth > 32 {
            return None;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    if !self.included(&f.node.directives)? {
                        continue;
                    }
                    let key = f.node.response_key().node.to_string();
                    let pick = match f.node.name.node.as_str() {
                        "__typename" => Pick::Typename,
                        _ if on_union => return None,
                        name => Pick::Field(name.to_owned()),
                    };
                    if !picks.iter().any(|(k, _)| *k == key) {
                        picks.push((key, pick));
                    }
                }
                Selection::InlineFragment(frag) => {
                    if !self.included(&frag.node.directives)? {
                        continue;
                    }
                    let cond = frag.node.type_condition.as_ref().map(|c| &c.node.on.node);
                    self.fragment(cond, &frag.node.selection_set.node, ty, on_union, picks)?;
                }
                Selection::FragmentSpread(spread) => {
                    if !self.included(&spread.node.directives)? {
                        continue;
                    }
                    let def = self.doc.fragments.get(&spread.node.fragment_name.node)?;
                    let cond = Some(&def.node.type_condition.node.on.node);
                    self.fragment(cond, &def.node.selection_set.node, ty, on_union, picks)?;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    fn fragment(
        &mut self,
        cond: Option<&Name>,
        set: &SelectionSet,
        ty: &str,
        on_union: bool,
        picks: &mut Vec<(String, Pick)>,
    ) -> Option<()> {
        match cond.map(Name::as_str) {
            None => self.collect(set, ty, on_union, picks),
            Some("Event") => self.collect(set, ty, true, picks),
            Some(t) if t == ty => self.collect(set, ty, false, picks),
            Some(_) => Some(()),
        }
    }

    /// `@skip(if:)` / `@include(if:)`.
    fn included(
        &self,
        directives: &[Positioned<async_graphql::parser::types::Directive>],
    ) -> Option<bool> {
        let mut include = true;
        for d in directives {
            let arg = d.node.get_argument("if")?;
            let value = arg
                .node
                .clone()
                .into_const_with(|name| {
                    let v = self.variables.get(name.as_str()).cloned();
                    Ok::<_, ()>(
                        v.and_then(|v| async_graphql::Value::from_json(v).ok())
                            .unwrap_or(async_graphql::Value::Null),
                    )
                })
                .ok()?;
            let value = match value {
                async_graphql::Value::Boolean(b) => b,
                async_graphql::Value::Null => false,
                _ => return None,
            };
            match d.node.name.node.as_str() {
                "skip" => include &= !value,
                "include" => include &= value,
                _ => return None,
            }
        }
        Some(include)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;
    use serde_json::json;

    fn build(q: &str, vars: Value) -> Option<Projection> {
        let doc = parse_query(q).expect("parses");
        Projection::build(&doc, None, vars.as_object().expect("object"))
    }

    #[test]
    fn picks_fields_per_member_type_in_order() {
        let p = build(
            "subscription { e: events { __typename ... on MessageCreated { seq b: body } ...F } }
             fragment F on TypingStarted { userId __typename }",
            json!({}),
        )
        .expect("projection");
        let fields = json!({"seq": 3, "body": "hi", "userId": "u"});
        let fields = fields.as_object().expect("object");
        assert_eq!(
            p.render("MessageCreated", fields),
            r#"{"data":{"e":{"__typename":"MessageCreated","seq":3,"b":"hi"}}}"#
        );
        assert_eq!(
            p.render("TypingStarted", fields),
            r#"{"data":{"e":{"__typename":"TypingStarted","userId":"u"}}}"#
        );
        assert_eq!(
            p.render("MemberRemoved", fields),
            r#"{"data":{"e":{"__typename":"MemberRemoved"}}}"#
        );
    }

    #[test]
    fn honours_skip_and_include() {
        let p = build(
            "subscription($x: Boolean!) { events { __typename @skip(if: $x) ... on MessageCreated @include(if: true) { seq } } }",
            json!({"x": true}),
        )
        .expect("projection");
        let f = json!({"seq": 1});
        assert_eq!(
            p.render("MessageCreated", f.as_object().expect("object")),
            r#"{"data":{"events":{"seq":1}}}"#
        );
    }

    #[test]
    fn other_operations_are_not_projections() {
        assert!(build("query { serverTime }", json!({})).is_none());
        assert!(build("mutation { setPresence(online: true) }", json!({})).is_none());
    }
}
