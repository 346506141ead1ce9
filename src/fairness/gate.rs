//! The admission gate: at most `capacity` reconciles of one kind work at once, and a freed
//! slot goes first to a reconcile coming back from an ngrok wait, then round-robin to the next
//! namespace with waiters.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::oneshot;

use super::PARK_BOUND;

/// The work slots of one kind. Cheap to clone: clones share the slots.
#[derive(Clone)]
pub struct Gate {
    state: Arc<Mutex<State>>,
}

struct State {
    /// 0: unbounded.
    capacity: usize,
    park_bound: usize,
    working: usize,
    /// Reconciles that hold an ngrok token and want their slot back: served first.
    returning: VecDeque<oneshot::Sender<Slot>>,
    /// New admissions, per namespace, in arrival order.
    waiting: HashMap<Arc<str>, VecDeque<oneshot::Sender<Slot>>>,
    /// The namespaces with new admissions waiting, in the order they are served next.
    ring: VecDeque<Arc<str>>,
    /// Per namespace, its reconciles waiting off their slot ([`super::off_slot`]).
    parked: HashMap<Arc<str>, usize>,
    /// Reconciles waiting for a slot (returning or new), for the metrics.
    waiters: Gauge,
    /// Closed: the controller is stopping, and admits nothing new.
    closed: tokio::sync::watch::Sender<bool>,
}

/// A work slot; dropping it frees it.
pub struct Slot {
    gate: Option<Gate>,
}

/// A reconcile of a namespace waiting off its slot; dropping it ends the wait's count.
pub struct Parked {
    gate: Gate,
    namespace: Arc<str>,
}

impl Gate {
    /// `capacity` reconciles at once (0: no bound); `waiters` counts those waiting.
    pub fn new(capacity: usize, waiters: Gauge) -> Self {
        Self::with_park_bound(capacity, PARK_BOUND, waiters)
    }

    pub(super) fn with_park_bound(capacity: usize, park_bound: usize, waiters: Gauge) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                capacity,
                park_bound: park_bound.max(1),
                working: 0,
                returning: VecDeque::new(),
                waiting: HashMap::new(),
                ring: VecDeque::new(),
                parked: HashMap::new(),
                waiters,
                closed: tokio::sync::watch::Sender::new(false),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("gate lock")
    }

    /// A slot for a new reconcile of `namespace`, in its turn; `None` once the gate is closed.
    pub async fn admit(&self, namespace: &Arc<str>) -> Option<Slot> {
        let receiver = {
            let mut state = self.lock();
            if *state.closed.borrow() {
                return None;
            }
            if state.capacity == 0 {
                return Some(Slot { gate: None });
            }
            let nobody_waits = state.returning.is_empty() && state.ring.is_empty();
            if nobody_waits && state.working < state.capacity && state.may_admit(namespace) {
                state.working += 1;
                return Some(Slot {
                    gate: Some(self.clone()),
                });
            }
            let (sender, receiver) = oneshot::channel();
            if !state.waiting.contains_key(namespace) {
                state.ring.push_back(namespace.clone());
            }
            state
                .waiting
                .entry(namespace.clone())
                .or_default()
                .push_back(sender);
            state.waiters.inc();
            receiver
        };
        // Slots may be free for this namespace while others wait at their bound.
        self.dispatch();
        // An error: the gate closed.
        receiver.await.ok()
    }

    /// Stops admitting: every reconcile waiting for admission, and every later one, gets
    /// `None`; reconciles already admitted go on (see [`Gate::closed`]).
    pub fn close(&self) {
        let waiting = {
            let mut state = self.lock();
            state.closed.send_replace(true);
            state.ring.clear();
            let waiting = std::mem::take(&mut state.waiting);
            state
                .waiters
                .dec_by(waiting.values().map(VecDeque::len).sum::<usize>() as i64);
            waiting
        };
        drop(waiting);
    }

    /// Completes once the gate is closed.
    pub async fn closed(&self) {
        let mut closed = self.lock().closed.subscribe();
        closed.wait_for(|closed| *closed).await.ok();
    }

    /// A slot for a reconcile that gave its own back to wait, ahead of new admissions.
    pub async fn readmit(&self) -> Slot {
        let receiver = {
            let mut state = self.lock();
            if state.capacity == 0 {
                return Slot { gate: None };
            }
            if state.returning.is_empty() && state.working < state.capacity {
                state.working += 1;
                return Slot {
                    gate: Some(self.clone()),
                };
            }
            let (sender, receiver) = oneshot::channel();
            state.returning.push_back(sender);
            state.waiters.inc();
            receiver
        };
        // The sender lives in the gate's state, which `self` keeps alive: it is only dropped
        // once it has sent.
        receiver.await.unwrap_or(Slot { gate: None })
    }

    /// Counts a reconcile of `namespace` as waiting off its slot until the guard is dropped.
    pub fn park(&self, namespace: &Arc<str>) -> Parked {
        *self.lock().parked.entry(namespace.clone()).or_default() += 1;
        Parked {
            gate: self.clone(),
            namespace: namespace.clone(),
        }
    }

    /// Reconciles waiting for a slot (new and returning).
    pub fn waiting(&self) -> usize {
        let state = self.lock();
        state.returning.len() + state.waiting.values().map(VecDeque::len).sum::<usize>()
    }

    /// Reconciles holding a slot.
    pub fn working(&self) -> usize {
        self.lock().working
    }

    /// Hands free slots to waiters.
    fn dispatch(&self) {
        // Slots whose waiter went away are dropped after the lock is released (their drop
        // frees them, which takes the lock).
        let mut unclaimed = Vec::new();
        {
            let mut state = self.lock();
            while state.capacity > 0 && state.working < state.capacity {
                let Some(sender) = state.next_waiter() else {
                    break;
                };
                state.waiters.dec();
                state.working += 1;
                if let Err(slot) = sender.send(Slot {
                    gate: Some(self.clone()),
                }) {
                    unclaimed.push(slot);
                }
            }
        }
        drop(unclaimed);
    }
}

impl State {
    fn may_admit(&self, namespace: &str) -> bool {
        self.parked.get(namespace).copied().unwrap_or(0) < self.park_bound
    }

    /// The next waiter in turn: a returning reconcile, else the head of the next namespace in
    /// the ring that is under its park bound.
    fn next_waiter(&mut self) -> Option<oneshot::Sender<Slot>> {
        while let Some(sender) = self.returning.pop_front() {
            if !sender.is_closed() {
                return Some(sender);
            }
            self.waiters.dec();
        }
        for _ in 0..self.ring.len() {
            let namespace = self.ring.pop_front()?;
            if !self.may_admit(&namespace) {
                self.ring.push_back(namespace);
                continue;
            }
            let queue = self.waiting.get_mut(&namespace)?;
            let mut next = None;
            while let Some(sender) = queue.pop_front() {
                if !sender.is_closed() {
                    next = Some(sender);
                    break;
                }
                self.waiters.dec();
            }
            if queue.is_empty() {
                self.waiting.remove(&namespace);
            } else {
                self.ring.push_back(namespace);
            }
            if next.is_some() {
                return next;
            }
        }
        None
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.lock().working -= 1;
            gate.dispatch();
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        {
            let mut state = self.gate.lock();
            if let Some(count) = state.parked.get_mut(&self.namespace) {
                *count -= 1;
                if *count == 0 {
                    state.parked.remove(&self.namespace);
                }
            }
        }
        // The namespace may be under its bound again.
        self.gate.dispatch();
    }
}
