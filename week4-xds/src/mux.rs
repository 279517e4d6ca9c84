//! The aggregated (ADS) client: every resource type on one stream, in Envoy's
//! order (Envoy's `GrpcMuxImpl` for SotW and `NewGrpcMuxImpl` for Delta, plus
//! the warming rules of the cluster and listener managers).
//!
//! [`AdsMux`] is sans-IO: it never touches a socket or a clock. A driver (the
//! gRPC transport, or a test) feeds it what happened and sends what it asks:
//!
//! ```text
//!            subscribe(type, interest)         connected() / disconnected() -> backoff
//!                     │                                 │
//!  response ──► handle_sotw / handle_delta ──► Outcome (Accepted update | Rejected | ...)
//!                     │    (caller's validate closure gives the verdict)
//!                     ├──► poll_request()  → ACK / NACK, then requests for dependencies
//!                     └──► poll_event()    → Warmed, InitialFetchTimeout, Initialized
//!  handle_timeout(now) ◄── poll_timeout()  (initial fetch and warming deadlines)
//! ```
//!
//! Ordering (the xDS spec's "eventual consistency considerations"): the
//! Listener subscription starts only when CDS has initialised (first response
//! handled and its clusters warmed, or the initial fetch timed out). A resource
//! that declares [`XdsResource::dependencies`] (an EDS cluster needs its
//! `ClusterLoadAssignment`, a listener its `RouteConfiguration`) makes the mux
//! subscribe to those names; the request for them goes out right after the ACK
//! of the response that introduced them, and the resource stays *warming* until
//! they arrive. On a new stream every type is re-requested in CDS, EDS, LDS, RDS
//! order with the last accepted versions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, RandomSource};
use crate::delta::DeltaState;
use crate::protocol::{DeltaDiscoveryResponse, DiscoveryResponse, Node, Request};
use crate::resource::{ResourceRef, TypeUrl, XdsResource};
use crate::sotw::SotwState;
use crate::subscription::{Handled, IgnoreReason, Interest, Outcome};

/// Which protocol variant the stream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// State of the World (`StreamAggregatedResources`).
    Sotw,
    /// Incremental (`DeltaAggregatedResources`).
    Delta,
}

/// Settings of an [`AdsMux`].
#[derive(Debug, Clone)]
pub struct MuxConfig {
    /// SotW or Delta.
    pub mode: Mode,
    /// Who this client is.
    pub node: Node,
    /// `ConfigSource.initial_fetch_timeout` (Envoy's default 15 s; zero waits forever).
    pub initial_fetch_timeout: Duration,
    /// `ApiConfigSource.set_node_on_first_message_only`.
    pub set_node_on_first_message_only: bool,
    /// Reconnection delays.
    pub backoff: Backoff,
}

impl MuxConfig {
    /// Envoy's defaults for `mode` and `node`.
    pub fn new(mode: Mode, node: Node) -> Self {
        Self {
            mode,
            node,
            initial_fetch_timeout: Duration::from_secs(15),
            set_node_on_first_message_only: false,
            backoff: Backoff::xds(),
        }
    }
}

/// Something the driver should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A warming resource may now serve: what it depends on arrived, or the
    /// initial fetch timeout passed without it (`timed_out`; Envoy then goes on
    /// with what it has, e.g. a cluster with no endpoints).
    Warmed {
        /// The resource's type.
        type_url: TypeUrl,
        /// Its name.
        name: String,
        /// Whether it stopped waiting because time ran out.
        timed_out: bool,
    },
    /// The first response for a type did not arrive in time.
    InitialFetchTimeout(TypeUrl),
    /// A type finished its initial fetch (responded, was rejected, or timed
    /// out); Envoy's init manager waits for this before serving.
    Initialized(TypeUrl),
}

#[derive(Debug, Clone)]
enum TypeState {
    Sotw(SotwState),
    Delta(DeltaState),
}

impl TypeState {
    fn has(&self, name: &str) -> bool {
        match self {
            Self::Sotw(s) => s.has(name),
            Self::Delta(s) => s.has(name),
        }
    }

    fn interest(&self) -> &Interest {
        match self {
            Self::Sotw(s) => s.interest(),
            Self::Delta(s) => s.interest(),
        }
    }

    fn set_interest(&mut self, interest: Interest) -> bool {
        match self {
            Self::Sotw(s) => s.set_interest(interest).0,
            Self::Delta(s) => s.set_interest(interest).0,
        }
    }

    fn on_stream_reset(&mut self) {
        match self {
            Self::Sotw(s) => s.on_stream_reset(),
            Self::Delta(s) => s.on_stream_reset(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Init {
    /// Gated behind another type's initialisation (LDS behind CDS).
    NotStarted,
    /// Waiting for the first response.
    Waiting { deadline: Option<Instant> },
    /// First response handled or timed out.
    Done,
}

#[derive(Debug, Clone)]
struct Sub {
    state: TypeState,
    /// What the driver asked for (dependencies are added on top).
    user: Interest,
    init: Init,
    /// A request for this type went out on the current stream.
    sent_on_stream: bool,
}

#[derive(Debug, Clone)]
struct Warming {
    waiting: BTreeSet<ResourceRef>,
    deadline: Option<Instant>,
}

/// The ADS client state machine. See the module docs.
#[derive(Debug)]
pub struct AdsMux {
    config: MuxConfig,
    subs: BTreeMap<TypeUrl, Sub>,
    queue: VecDeque<TypeUrl>,
    connected: bool,
    node_sent: bool,
    /// Dependencies of every resource held: owner type → owner name → needs.
    deps: BTreeMap<TypeUrl, BTreeMap<String, Vec<ResourceRef>>>,
    warming: BTreeMap<(TypeUrl, String), Warming>,
    events: VecDeque<Event>,
    backoff: Backoff,
}

/// `gated` waits for `on` to initialise before its first request (Envoy's
/// server init: the cluster manager initialises before LDS starts).
const GATES: [(TypeUrl, TypeUrl); 1] = [(TypeUrl::Listener, TypeUrl::Cluster)];

impl AdsMux {
    /// A client with no subscriptions, not connected.
    pub fn new(config: MuxConfig) -> Self {
        let backoff = config.backoff.clone();
        Self {
            config,
            subs: BTreeMap::new(),
            queue: VecDeque::new(),
            connected: false,
            node_sent: false,
            deps: BTreeMap::new(),
            warming: BTreeMap::new(),
            events: VecDeque::new(),
            backoff,
        }
    }

    /// The protocol variant.
    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    /// Whether a stream is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Sets what the driver wants of `type_url` (dependency names are added on
    /// top). `Interest::default()` withdraws the driver's own interest.
    pub fn subscribe(&mut self, type_url: TypeUrl, interest: Interest, now: Instant) {
        if !self.subs.contains_key(&type_url) {
            let state = self.new_state(type_url, Interest::default());
            let init = if self.gate_open(type_url) { self.waiting(now) } else { Init::NotStarted };
            self.subs.insert(
                type_url,
                Sub { state, user: Interest::default(), init, sent_on_stream: false },
            );
            if init != Init::NotStarted {
                self.enqueue(type_url);
            }
        }
        if let Some(sub) = self.subs.get_mut(&type_url) {
            sub.user = interest;
        }
        self.refresh_interest(type_url, now);
        self.check_gates(now);
    }

    /// The stream is up: every started subscription is re-requested, in ADS
    /// order, with the last accepted versions.
    pub fn connected(&mut self) {
        self.connected = true;
        self.node_sent = false;
        self.queue.clear();
        for (t, sub) in self.subs.iter_mut() {
            sub.state.on_stream_reset();
            sub.sent_on_stream = false;
            if sub.init != Init::NotStarted {
                self.queue.push_back(*t);
            }
        }
        let mut q: Vec<TypeUrl> = self.queue.drain(..).collect();
        q.sort_by_key(|t| t.ads_rank());
        self.queue.extend(q);
    }

    /// The stream failed: returns how long to wait before reconnecting
    /// (jittered exponential backoff; reset by any response received).
    pub fn disconnected(&mut self, random: &mut dyn RandomSource) -> Duration {
        self.connected = false;
        self.queue.clear();
        self.backoff.next_delay(random)
    }

    /// The next request to send, if the stream is up and one is due.
    pub fn poll_request(&mut self) -> Option<Request> {
        if !self.connected {
            return None;
        }
        while let Some(t) = self.queue.pop_front() {
            let node = if self.config.set_node_on_first_message_only && self.node_sent {
                None
            } else {
                Some(self.config.node.clone())
            };
            let Some(sub) = self.subs.get_mut(&t) else { continue };
            if sub.init == Init::NotStarted {
                continue;
            }
            let req = match &mut sub.state {
                TypeState::Sotw(s) => {
                    let i = s.interest();
                    if !sub.sent_on_stream && !i.wildcard && i.names.is_empty() {
                        // An empty first request would mean "everything".
                        continue;
                    }
                    Request::Sotw(s.build_request(node))
                }
                TypeState::Delta(s) => {
                    if !s.request_due() {
                        continue;
                    }
                    let r = Request::Delta(s.build_request(node));
                    if s.request_due() {
                        self.queue.push_front(t);
                    }
                    r
                }
            };
            sub.sent_on_stream = true;
            self.node_sent = true;
            return Some(req);
        }
        None
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline the driver should call [`AdsMux::handle_timeout`] at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let init = self.subs.values().filter_map(|s| match s.init {
            Init::Waiting { deadline } => deadline,
            _ => None,
        });
        let warm = self.warming.values().filter_map(|w| w.deadline);
        init.chain(warm).min()
    }

    /// Fires the initial-fetch and warming deadlines that have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (t, sub) in self.subs.iter_mut() {
            if let Init::Waiting { deadline: Some(d) } = sub.init
                && d <= now
            {
                sub.init = Init::Done;
                self.events.push_back(Event::InitialFetchTimeout(*t));
                self.events.push_back(Event::Initialized(*t));
            }
        }
        let expired: Vec<(TypeUrl, String)> = self
            .warming
            .iter()
            .filter(|(_, w)| w.deadline.is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.warming.remove(&key);
            self.events.push_back(Event::Warmed { type_url: key.0, name: key.1, timed_out: true });
        }
        self.check_gates(now);
    }

    /// Handles a SotW response; `validate` decodes and checks its resources
    /// (an `Err` NACKs it). Queues the ACK or NACK and any dependency requests.
    pub fn handle_sotw<P, R, F>(
        &mut self,
        resp: DiscoveryResponse<P>,
        now: Instant,
        validate: F,
    ) -> Outcome<R>
    where
        R: XdsResource,
        F: FnOnce(&DiscoveryResponse<P>) -> Result<Vec<R>, String>,
    {
        self.backoff.reset();
        let t = match self.lookup(&resp.type_url) {
            Ok(t) => t,
            Err(reason) => return Outcome::Ignored(reason),
        };
        let handled = match self.subs.get_mut(&t).map(|s| &mut s.state) {
            Some(TypeState::Sotw(s)) => s.handle_response(resp, validate),
            _ => return Outcome::Ignored(IgnoreReason::NotSubscribed(t)),
        };
        self.after_response(t, handled, now)
    }

    /// Handles a Delta response; see [`AdsMux::handle_sotw`].
    pub fn handle_delta<P, R, F>(
        &mut self,
        resp: DeltaDiscoveryResponse<P>,
        now: Instant,
        validate: F,
    ) -> Outcome<R>
    where
        R: XdsResource,
        F: FnOnce(&DeltaDiscoveryResponse<P>) -> Result<Vec<R>, String>,
    {
        self.backoff.reset();
        let t = match self.lookup(&resp.type_url) {
            Ok(t) => t,
            Err(reason) => return Outcome::Ignored(reason),
        };
        let handled = match self.subs.get_mut(&t).map(|s| &mut s.state) {
            Some(TypeState::Delta(s)) => s.handle_response(resp, validate),
            _ => return Outcome::Ignored(IgnoreReason::NotSubscribed(t)),
        };
        self.after_response(t, handled, now)
    }

    /// The last accepted SotW version of a type.
    pub fn version_info(&self, type_url: TypeUrl) -> Option<&str> {
        match &self.subs.get(&type_url)?.state {
            TypeState::Sotw(s) => Some(s.version_info()),
            TypeState::Delta(s) => Some(s.system_version_info()),
        }
    }

    /// The per-resource versions of a delta subscription.
    pub fn resource_versions(&self, type_url: TypeUrl) -> Option<&BTreeMap<String, String>> {
        match &self.subs.get(&type_url)?.state {
            TypeState::Sotw(_) => None,
            TypeState::Delta(s) => Some(s.resource_versions()),
        }
    }

    /// The names currently subscribed for a type (the driver's plus dependencies).
    pub fn interest(&self, type_url: TypeUrl) -> Option<&Interest> {
        self.subs.get(&type_url).map(|s| s.state.interest())
    }

    /// Whether a resource is warming.
    pub fn is_warming(&self, type_url: TypeUrl, name: &str) -> bool {
        self.warming.contains_key(&(type_url, name.to_string()))
    }

    /// Whether a type finished its initial fetch.
    pub fn is_initialized(&self, type_url: TypeUrl) -> bool {
        self.subs.get(&type_url).is_some_and(|s| s.init == Init::Done)
    }

    fn lookup(&self, type_url: &str) -> Result<TypeUrl, IgnoreReason> {
        let t = TypeUrl::parse(type_url)
            .ok_or_else(|| IgnoreReason::UnknownType(type_url.to_string()))?;
        match self.subs.get(&t) {
            Some(sub) if sub.init != Init::NotStarted => Ok(t),
            _ => Err(IgnoreReason::NotSubscribed(t)),
        }
    }

    fn new_state(&self, t: TypeUrl, interest: Interest) -> TypeState {
        match self.config.mode {
            Mode::Sotw => TypeState::Sotw(SotwState::new(t, interest)),
            Mode::Delta => TypeState::Delta(DeltaState::new(t, interest)),
        }
    }

    fn waiting(&self, now: Instant) -> Init {
        let t = self.config.initial_fetch_timeout;
        Init::Waiting { deadline: (!t.is_zero()).then(|| now + t) }
    }

    fn enqueue(&mut self, t: TypeUrl) {
        if !self.queue.contains(&t) {
            self.queue.push_back(t);
        }
    }

    // ANCHOR: ads_ordering
    /// Bookkeeping after a type's state handled a response: queue the ACK/NACK
    /// first, then track dependencies (which may queue requests for EDS/RDS
    /// names after it), warm resources whose dependencies arrived, and open
    /// the LDS gate when CDS has initialised.
    fn after_response<R: XdsResource>(
        &mut self,
        t: TypeUrl,
        handled: Handled<R>,
        now: Instant,
    ) -> Outcome<R> {
        if handled.request_due {
            self.enqueue(t);
        }
        if let Some(sub) = self.subs.get_mut(&t)
            && matches!(sub.init, Init::Waiting { .. })
        {
            sub.init = Init::Done;
            self.events.push_back(Event::Initialized(t));
        }
        let mut outcome = handled.outcome;
        if let Outcome::Accepted(update) = &mut outcome {
            let mut touched: BTreeSet<TypeUrl> = BTreeSet::new();
            let owned = self.deps.entry(t).or_default();
            for name in &update.removed {
                if let Some(old) = owned.remove(name) {
                    touched.extend(old.iter().map(|r| r.type_url));
                }
                self.warming.remove(&(t, name.clone()));
            }
            let mut fresh: Vec<(String, Vec<ResourceRef>)> = Vec::new();
            for r in &update.resources {
                let needs = r.dependencies();
                let name = r.name().to_string();
                touched.extend(needs.iter().map(|d| d.type_url));
                if let Some(old) = owned.insert(name.clone(), needs.clone()) {
                    touched.extend(old.iter().map(|d| d.type_url));
                }
                fresh.push((name, needs));
            }
            // Subscribe to what the new resources need (requests queue after the ACK).
            let mut touched: Vec<TypeUrl> = touched.into_iter().collect();
            touched.sort_by_key(|t| t.ads_rank());
            for dep_type in touched {
                self.refresh_interest(dep_type, now);
            }
            // A resource warms until every dependency is held.
            let deadline = match self.waiting(now) {
                Init::Waiting { deadline } => deadline,
                _ => None,
            };
            for (name, needs) in fresh {
                let waiting: BTreeSet<ResourceRef> =
                    needs.into_iter().filter(|d| !self.holds(d)).collect();
                let key = (t, name.clone());
                if waiting.is_empty() {
                    self.warming.remove(&key);
                } else {
                    update.warming.insert(name);
                    self.warming.insert(key, Warming { waiting, deadline });
                }
            }
            // Resources of this type may be what others wait for.
            let arrived: Vec<ResourceRef> =
                update.resources.iter().map(|r| ResourceRef::new(t, r.name())).collect();
            self.satisfy(&arrived);
        }
        self.check_gates(now);
        outcome
    }
    // ANCHOR_END: ads_ordering

    fn holds(&self, r: &ResourceRef) -> bool {
        self.subs.get(&r.type_url).is_some_and(|s| s.state.has(&r.name))
    }

    fn satisfy(&mut self, arrived: &[ResourceRef]) {
        if arrived.is_empty() {
            return;
        }
        let mut ready = Vec::new();
        for (key, w) in self.warming.iter_mut() {
            for a in arrived {
                w.waiting.remove(a);
            }
            if w.waiting.is_empty() {
                ready.push(key.clone());
            }
        }
        for key in ready {
            self.warming.remove(&key);
            self.events.push_back(Event::Warmed { type_url: key.0, name: key.1, timed_out: false });
        }
    }

    /// Recomputes a type's interest: the driver's plus every dependency on it.
    fn refresh_interest(&mut self, t: TypeUrl, now: Instant) {
        let mut wanted = self.subs.get(&t).map(|s| s.user.clone()).unwrap_or_default();
        for owned in self.deps.values() {
            for needs in owned.values() {
                wanted
                    .names
                    .extend(needs.iter().filter(|d| d.type_url == t).map(|d| d.name.clone()));
            }
        }
        if !self.subs.contains_key(&t) {
            if !wanted.wildcard && wanted.names.is_empty() {
                return;
            }
            let state = self.new_state(t, Interest::default());
            let init = if self.gate_open(t) { self.waiting(now) } else { Init::NotStarted };
            self.subs
                .insert(t, Sub { state, user: Interest::default(), init, sent_on_stream: false });
        }
        let Some(sub) = self.subs.get_mut(&t) else { return };
        if sub.state.set_interest(wanted) && sub.init != Init::NotStarted {
            self.enqueue(t);
        }
    }

    fn gate_open(&self, t: TypeUrl) -> bool {
        GATES.iter().filter(|(gated, _)| *gated == t).all(|(_, on)| self.type_ready(*on))
    }

    /// A gating type is ready when it is not subscribed at all, or has
    /// initialised and none of its resources is still warming.
    fn type_ready(&self, t: TypeUrl) -> bool {
        match self.subs.get(&t) {
            None => true,
            Some(sub) => sub.init == Init::Done && !self.warming.keys().any(|(wt, _)| *wt == t),
        }
    }

    fn check_gates(&mut self, now: Instant) {
        for (gated, _) in GATES {
            let blocked = self.subs.get(&gated).is_some_and(|s| s.init == Init::NotStarted);
            if blocked && self.gate_open(gated) {
                let init = self.waiting(now);
                if let Some(sub) = self.subs.get_mut(&gated) {
                    sub.init = init;
                }
                self.enqueue(gated);
            }
        }
    }
}
