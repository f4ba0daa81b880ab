//! The replica's routing table: which users have sockets here, which conversations those
//! users are in, and therefore which delivery bindings this replica's queue needs.
//!
//! Invariants (all changed under one lock, bindings changed in the same order):
//! - `user.<id>` is bound while the user has a socket here;
//! - `conv.<id>` is bound while a user with a socket here is a member of it;
//! - a conversation event reaches the sockets of the conversation's *local members* only,
//!   so a removed member gets `MemberRemoved` and then nothing from that conversation.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minute_bus::{Binding, DELIVERY_EXCHANGE, EventBus, Message};
use minute_events::{Envelope, conversation_delivery_key, user_delivery_key};
use minute_kit::auth::Viewer;
use minute_kit::error::ApiError;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::api::types::{Event, Outgoing};
use crate::domain::protocol::{Close, codes};
use crate::fallback::ConversationsClient;
use crate::store::{Ephemeral, MembershipStore};

/// Why the hub wants a socket closed.
#[derive(Debug, Clone)]
pub(crate) enum Kill {
    /// Close with this frame.
    Close(Close),
    /// Send `SessionRevoked` to the subscriptions, then close with 4401.
    Revoked(String),
}

/// A socket as the hub sees it.
pub(crate) struct SocketHandle {
    pub(crate) user_id: Arc<str>,
    pub(crate) session_id: Box<str>,
    id: u64,
    tx: mpsc::Sender<Arc<Outgoing>>,
    kill: Mutex<Option<Kill>>,
    notify: Notify,
    present: AtomicBool,
}

impl SocketHandle {
    /// Asks the socket task to close (the first reason wins).
    pub(crate) fn kill(&self, kill: Kill) {
        let mut k = self.kill.lock().unwrap_or_else(|p| p.into_inner());
        if k.is_none() {
            *k = Some(kill);
            self.notify.notify_one();
        }
    }

    /// Resolves when the hub asked this socket to close.
    pub(crate) async fn killed(&self) -> Kill {
        loop {
            if let Some(k) = self.kill.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return k;
            }
            self.notify.notified().await;
        }
    }

    fn push(&self, event: &Arc<Outgoing>) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event.clone()) {
            metrics::counter!("minute_realtime_slow_client_disconnects_total").increment(1);
            // Never wait for one slow client: everyone else shares this task.
            self.kill(Kill::Close(Close::new(
                codes::SLOW_CONSUMER,
                "slow consumer: outbound queue full",
            )));
        }
    }
}

#[derive(Default)]
struct LocalUser {
    sockets: Vec<Arc<SocketHandle>>,
    convs: HashSet<Arc<str>>,
    present: usize,
}

#[derive(Default)]
struct LocalConv {
    users: HashSet<Arc<str>>,
    version: u64,
}

#[derive(Default)]
struct State {
    users: HashMap<Arc<str>, LocalUser>,
    convs: HashMap<Arc<str>, LocalConv>,
}

enum BindOp {
    Bind(String),
    Unbind(String),
    Flush(oneshot::Sender<()>),
}

/// What the hub needs from outside.
pub(crate) struct HubDeps {
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) store: Arc<dyn MembershipStore>,
    pub(crate) ephemeral: Arc<dyn Ephemeral>,
    pub(crate) conversations: ConversationsClient,
    pub(crate) replica_id: String,
    pub(crate) queue: String,
    pub(crate) max_per_user: usize,
    pub(crate) outbound_queue: usize,
    pub(crate) presence_ttl: Duration,
}

/// The routing table of this replica.
pub(crate) struct Hub {
    state: Mutex<State>,
    binder: mpsc::UnboundedSender<BindOp>,
    presence: mpsc::UnboundedSender<(Arc<str>, Presence)>,
    next_id: AtomicU64,
    pub(crate) deps: HubDeps,
}

/// A change of a user's presence on this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Online,
    Offline,
    Same,
}

impl Hub {
    /// The hub and its binder task (stops with `stop`).
    pub(crate) fn start(deps: HubDeps, stop: CancellationToken) -> Arc<Self> {
        let (binder, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_binder(
            deps.bus.clone(),
            deps.queue.clone(),
            rx,
            stop.clone(),
        ));
        let (presence, presence_rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Self {
            state: Mutex::default(),
            binder,
            presence,
            next_id: AtomicU64::new(1),
            deps,
        });
        tokio::spawn(run_presence(Arc::downgrade(&hub), presence_rx, stop));
        hub
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bind(&self, key: String) {
        let _ = self.binder.send(BindOp::Bind(key));
    }

    fn unbind(&self, key: String) {
        let _ = self.binder.send(BindOp::Unbind(key));
    }

    /// Waits until every binding change requested so far reached the broker.
    async fn flush_bindings(&self) {
        let (tx, rx) = oneshot::channel();
        if self.binder.send(BindOp::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Registers a socket of `viewer`; its events arrive on the returned receiver.
    pub(crate) async fn connect(
        &self,
        viewer: &Viewer,
    ) -> Result<(Arc<SocketHandle>, mpsc::Receiver<Arc<Outgoing>>), Close> {
        let user: Arc<str> = viewer.user_id.as_str().into();
        let (tx, rx) = mpsc::channel(self.deps.outbound_queue.max(1));
        let handle = Arc::new(SocketHandle {
            user_id: user.clone(),
            session_id: viewer.session_id.as_str().into(),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
            kill: Mutex::new(None),
            notify: Notify::new(),
            present: AtomicBool::new(true),
        });
        let known = self.add_socket_if_known(&handle)?;
        let presence = match known {
            Some(p) => p,
            None => {
                let convs = self.load_conversations(&user).await;
                let p = self.add_first_socket(&handle, convs)?;
                self.flush_bindings().await;
                p
            }
        };
        self.announce(&user, presence).await;
        Ok((handle, rx))
    }

    fn too_many(&self, u: &LocalUser) -> Result<(), Close> {
        if u.sockets.len() >= self.deps.max_per_user {
            return Err(Close::new(
                codes::POLICY,
                "too many connections for this user",
            ));
        }
        Ok(())
    }

    fn add_socket_if_known(&self, handle: &Arc<SocketHandle>) -> Result<Option<Presence>, Close> {
        let mut st = self.state();
        let Some(u) = st.users.get_mut(&handle.user_id) else {
            return Ok(None);
        };
        self.too_many(u)?;
        u.sockets.push(handle.clone());
        u.present += 1;
        Ok(Some(if u.present == 1 {
            Presence::Online
        } else {
            Presence::Same
        }))
    }

    fn add_first_socket(
        &self,
        handle: &Arc<SocketHandle>,
        convs: Vec<String>,
    ) -> Result<Presence, Close> {
        if let Some(p) = self.add_socket_if_known(handle)? {
            return Ok(p);
        }
        let mut st = self.state();
        let user = handle.user_id.clone();
        self.bind(user_delivery_key(&user));
        let mut local = LocalUser {
            sockets: vec![handle.clone()],
            convs: HashSet::new(),
            present: 1,
        };
        for c in convs {
            let conv: Arc<str> = c.into();
            self.join_local(&mut st, &conv, &user);
            local.convs.insert(conv);
        }
        st.users.insert(user, local);
        Ok(Presence::Online)
    }

    fn join_local(&self, st: &mut State, conv: &Arc<str>, user: &Arc<str>) {
        let entry = st.convs.entry(conv.clone()).or_insert_with(|| {
            self.bind(conversation_delivery_key(conv));
            LocalConv::default()
        });
        entry.users.insert(user.clone());
    }

    fn leave_local(&self, st: &mut State, conv: &str, user: &str) {
        if let Some(c) = st.convs.get_mut(conv) {
            c.users.remove(user);
            if c.users.is_empty() {
                st.convs.remove(conv);
                self.unbind(conversation_delivery_key(conv));
            }
        }
    }

    async fn load_conversations(&self, user: &str) -> Vec<String> {
        match self.deps.store.conversations_of(user).await {
            Ok(Some(convs)) => convs,
            Ok(None) => match self.deps.conversations.conversations_of(user).await {
                Ok(convs) => convs,
                Err(e) => {
                    tracing::warn!(error = %e, "conversations fallback failed; starting with none");
                    Vec::new()
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "membership replica unavailable; starting with none");
                Vec::new()
            }
        }
    }

    /// Unregisters a socket.
    pub(crate) async fn disconnect(&self, handle: &Arc<SocketHandle>) {
        let presence = {
            let mut st = self.state();
            let user = handle.user_id.clone();
            let Some(u) = st.users.get_mut(&user) else {
                return;
            };
            u.sockets.retain(|s| s.id != handle.id);
            let was_present = handle.present.swap(false, Ordering::AcqRel);
            if was_present {
                u.present = u.present.saturating_sub(1);
            }
            let presence = if was_present && u.present == 0 {
                Presence::Offline
            } else {
                Presence::Same
            };
            if u.sockets.is_empty()
                && let Some(u) = st.users.remove(&user)
            {
                for conv in &u.convs {
                    self.leave_local(&mut st, conv, &user);
                }
                self.unbind(user_delivery_key(&user));
            }
            presence
        };
        self.announce(&handle.user_id, presence).await;
    }

    /// `setPresence` from one socket.
    pub(crate) async fn set_present(&self, handle: &SocketHandle, online: bool) {
        let presence = {
            let mut st = self.state();
            let Some(u) = st.users.get_mut(&handle.user_id) else {
                return;
            };
            if handle.present.swap(online, Ordering::AcqRel) == online {
                Presence::Same
            } else if online {
                u.present += 1;
                if u.present == 1 {
                    Presence::Online
                } else {
                    Presence::Same
                }
            } else {
                u.present = u.present.saturating_sub(1);
                if u.present == 0 {
                    Presence::Offline
                } else {
                    Presence::Same
                }
            }
        };
        self.announce(&handle.user_id, presence).await;
    }

    /// True when `user` (connected here) is a member of `conv`.
    pub(crate) fn is_member(&self, user: &str, conv: &str) -> bool {
        self.state()
            .users
            .get(user)
            .is_some_and(|u| u.convs.contains(conv))
    }

    /// Users with a present socket here (for the presence heartbeat).
    pub(crate) fn present_users(&self) -> Vec<String> {
        self.state()
            .users
            .iter()
            .filter(|(_, u)| u.present > 0)
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// Delivers `event` to the local members of `conv`.
    pub(crate) fn deliver_conv(&self, conv: &str, event: Event) {
        let event = Arc::new(Outgoing::new(event));
        let st = self.state();
        let Some(c) = st.convs.get(conv) else {
            return;
        };
        for user in &c.users {
            if let Some(u) = st.users.get(user) {
                u.sockets.iter().for_each(|s| s.push(&event));
            }
        }
    }

    /// Delivers `event` to every socket of `user` here.
    pub(crate) fn deliver_user(&self, user: &str, event: Event) {
        let event = Arc::new(Outgoing::new(event));
        if let Some(u) = self.state().users.get(user) {
            u.sockets.iter().for_each(|s| s.push(&event));
        }
    }

    /// Closes the sockets of revoked sessions with `SessionRevoked` then 4401.
    pub(crate) fn revoke(&self, user: &str, sessions: &[String], reason: &str) {
        if let Some(u) = self.state().users.get(user) {
            for s in &u.sockets {
                if sessions.iter().any(|sid| **sid == *s.session_id) {
                    s.kill(Kill::Revoked(reason.to_owned()));
                }
            }
        }
    }

    /// Whether an event of membership `version` is newer than what this replica routed for
    /// `conv` (unknown conversations accept anything).
    fn newer(st: &mut State, conv: &str, version: u64) -> bool {
        match st.convs.get_mut(conv) {
            Some(c) if c.version >= version && c.version != 0 => false,
            Some(c) => {
                c.version = version;
                true
            }
            None => true,
        }
    }

    /// Local users in `users` join `conv`; then `events` reach all local members.
    pub(crate) async fn members_added(
        &self,
        conv: &str,
        version: u64,
        users: &[String],
        events: Vec<(Option<String>, Event)>,
    ) {
        {
            let mut st = self.state();
            let conv_id: Arc<str> = conv.into();
            if Self::newer(&mut st, conv, version) {
                for user in users {
                    let Some((uid, _)) = st.users.get_key_value(user.as_str()) else {
                        continue;
                    };
                    let uid = uid.clone();
                    self.join_local(&mut st, &conv_id, &uid);
                    if let Some(u) = st.users.get_mut(&uid) {
                        u.convs.insert(conv_id.clone());
                    }
                    if let Some(c) = st.convs.get_mut(conv) {
                        c.version = c.version.max(version);
                    }
                }
            }
        }
        self.flush_bindings().await;
        for (only, event) in events {
            match only {
                Some(user) => self.deliver_user_in(conv, &user, event),
                None => self.deliver_conv(conv, event),
            }
        }
    }

    fn deliver_user_in(&self, conv: &str, user: &str, event: Event) {
        let event = Arc::new(Outgoing::new(event));
        let st = self.state();
        if let Some(u) = st.users.get(user)
            && u.convs.contains(conv)
        {
            u.sockets.iter().for_each(|s| s.push(&event));
        }
    }

    /// `MemberRemoved`: the local members and the removed user get `event`, then the removed
    /// user stops receiving the conversation.
    pub(crate) fn member_removed(&self, conv: &str, version: u64, user: &str, event: Event) {
        let event = Arc::new(Outgoing::new(event));
        let mut st = self.state();
        let mut reached: HashSet<Arc<str>> = HashSet::new();
        if let Some(c) = st.convs.get(conv) {
            for u in &c.users {
                if let Some(local) = st.users.get(u) {
                    local.sockets.iter().for_each(|s| s.push(&event));
                    reached.insert(u.clone());
                }
            }
        }
        if !reached.contains(user)
            && let Some(local) = st.users.get(user)
        {
            local.sockets.iter().for_each(|s| s.push(&event));
        }
        if Self::newer(&mut st, conv, version) {
            if let Some(u) = st.users.get_mut(user) {
                u.convs.remove(conv);
            }
            self.leave_local(&mut st, conv, user);
        }
    }

    /// Queues a presence transition: recorded and published by one task, in order, off the
    /// sockets' path (a slow broker must not delay a connect or a close).
    async fn announce(&self, user: &str, presence: Presence) {
        if presence != Presence::Same {
            let _ = self.presence.send((user.into(), presence));
        }
    }

    /// Records a presence transition in the shared store and tells the user's direct peers.
    async fn record_presence(&self, user: &str, presence: Presence) {
        let ttl = self.deps.presence_ttl;
        let replica = &self.deps.replica_id;
        let changed = match presence {
            Presence::Same => return,
            Presence::Online => self.deps.ephemeral.online(user, replica, ttl).await,
            Presence::Offline => self.deps.ephemeral.offline(user, replica).await,
        };
        match changed {
            Ok(true) => {
                self.publish_presence(user, presence == Presence::Online)
                    .await
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "presence store unavailable"),
        }
    }

    /// Publishes `PresenceChanged` to `user.<peer>` for each direct peer and the user.
    pub(crate) async fn publish_presence(&self, user: &str, online: bool) {
        let mut targets = match self.deps.store.direct_peers(user).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "direct peers unavailable; presence goes to the user only");
                Vec::new()
            }
        };
        targets.push(user.to_owned());
        let envelope = Envelope::new(minute_events::PresenceChanged {
            user_id: user.to_owned(),
            online,
            last_seen_at: (!online).then(chrono::Utc::now),
        });
        for target in targets {
            let mut message = Message::from_envelope(&envelope);
            message.routing_key = user_delivery_key(&target);
            if let Err(e) = self.deps.bus.publish(DELIVERY_EXCHANGE, message).await {
                tracing::warn!(error = %e, "presence not published");
            }
        }
    }

    /// `typing(conversationId)`: members only; at most one `TypingStarted` per 2 s.
    pub(crate) async fn typing(&self, user: &str, conv: &str) -> Result<(), ApiError> {
        if !self.is_member(user, conv) {
            return Err(ApiError::not_found("no such conversation"));
        }
        if !self
            .deps
            .ephemeral
            .typing(conv, user)
            .await
            .map_err(ApiError::internal)?
        {
            return Ok(());
        }
        let envelope = Envelope::new(minute_events::TypingStarted {
            conversation_id: conv.to_owned(),
            user_id: user.to_owned(),
        });
        let mut message = Message::from_envelope(&envelope);
        message.routing_key = conversation_delivery_key(conv);
        self.deps
            .bus
            .publish(DELIVERY_EXCHANGE, message)
            .await
            .map_err(ApiError::internal)
    }

    /// Closes every socket (shutdown).
    pub(crate) fn close_all(&self, close: Close) {
        for u in self.state().users.values() {
            u.sockets
                .iter()
                .for_each(|s| s.kill(Kill::Close(close.clone())));
        }
    }
}

async fn run_presence(
    hub: std::sync::Weak<Hub>,
    mut rx: mpsc::UnboundedReceiver<(Arc<str>, Presence)>,
    stop: CancellationToken,
) {
    loop {
        let (user, presence) = tokio::select! {
            _ = stop.cancelled() => return,
            next = rx.recv() => match next { Some(n) => n, None => return },
        };
        let Some(hub) = hub.upgrade() else { return };
        hub.record_presence(&user, presence).await;
    }
}

/// Applies binding changes one at a time, in the order the hub made them, so a bind and an
/// unbind of the same key can never overtake each other.
async fn run_binder(
    bus: Arc<dyn EventBus>,
    queue: String,
    mut rx: mpsc::UnboundedReceiver<BindOp>,
    stop: CancellationToken,
) {
    loop {
        let op = tokio::select! {
            _ = stop.cancelled() => return,
            op = rx.recv() => match op { Some(op) => op, None => return },
        };
        let result = match op {
            BindOp::Bind(key) => bus.bind(&queue, Binding::new(DELIVERY_EXCHANGE, key)).await,
            BindOp::Unbind(key) => {
                bus.unbind(&queue, Binding::new(DELIVERY_EXCHANGE, key))
                    .await
            }
            BindOp::Flush(done) => {
                let _ = done.send(());
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "delivery binding change failed");
        }
    }
}
