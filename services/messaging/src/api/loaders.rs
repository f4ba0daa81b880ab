//! Batch loaders: many keys asked during one execution become one store call.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::domain::service::{Messaging, Summary};
use crate::domain::{MarkerKind, Markers, Message, Page};

/// Receipts shown per message and marker kind.
pub(super) const RECEIPTS_SHOWN: usize = 50;
/// Markers read per conversation to answer `readBy`/`deliveredTo` of a page of messages.
const MARKERS_READ: i64 = 200;

/// `(viewer, conversation)` -> the viewer's summary of it.
pub(super) struct SummaryLoader(pub(super) Messaging);

impl Loader<(String, String)> for SummaryLoader {
    type Value = Summary;
    type Error = String;

    async fn load(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), Summary>, String> {
        let mut by_user: HashMap<&str, Vec<String>> = HashMap::new();
        for (u, c) in keys {
            by_user.entry(u).or_default().push(c.clone());
        }
        let mut out = HashMap::new();
        for (user, convs) in by_user {
            let s = self
                .0
                .summaries(user, &convs)
                .await
                .map_err(|e| format!("{e:?}"))?;
            out.extend(s.into_iter().map(|(c, v)| ((user.to_owned(), c), v)));
        }
        Ok(out)
    }
}

/// `(conversation, kind)` -> the members with the highest markers of that kind.
pub(super) struct MarkersLoader(pub(super) Messaging);

impl Loader<(String, u8)> for MarkersLoader {
    type Value = Vec<Markers>;
    type Error = String;

    async fn load(
        &self,
        keys: &[(String, u8)],
    ) -> Result<HashMap<(String, u8), Vec<Markers>>, String> {
        let mut out = HashMap::new();
        for (conv, k) in keys {
            let kind = if *k == 0 {
                MarkerKind::Read
            } else {
                MarkerKind::Delivered
            };
            let m = self
                .0
                .store()
                .top_markers(conv, kind, MARKERS_READ)
                .await
                .map_err(|e| e.to_string())?;
            out.insert((conv.clone(), *k), m);
        }
        Ok(out)
    }
}

/// Message id -> message (replied-to messages; visibility follows the replying message).
pub(super) struct MessageLoader(pub(super) Messaging);

impl Loader<String> for MessageLoader {
    type Value = Message;
    type Error = String;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, Message>, String> {
        let found = self.0.store().get(keys).await.map_err(|e| e.to_string())?;
        Ok(found.into_iter().map(|m| (m.id.clone(), m)).collect())
    }
}

/// `(viewer, conversation, page)` -> that page of history (membership checked in one batch).
pub(super) struct HistoryLoader(pub(super) Messaging);

/// A page and whether more lie beyond it.
pub(super) type HistoryPage = (Vec<Message>, bool);

impl Loader<(String, String, Page)> for HistoryLoader {
    type Value = HistoryPage;
    type Error = String;

    async fn load(
        &self,
        keys: &[(String, String, Page)],
    ) -> Result<HashMap<(String, String, Page), HistoryPage>, String> {
        let mut by_user: HashMap<&str, Vec<(String, Page)>> = HashMap::new();
        for (u, c, p) in keys {
            by_user.entry(u).or_default().push((c.clone(), *p));
        }
        let mut out = HashMap::new();
        for (user, requests) in by_user {
            let pages = self
                .0
                .histories(user, &requests)
                .await
                .map_err(|e| format!("{e:?}"))?;
            out.extend(
                pages
                    .into_iter()
                    .map(|((c, p), v)| ((user.to_owned(), c, p), v)),
            );
        }
        Ok(out)
    }
}
