//! One ngrok account's request budget, handed out fairly: a GCRA limiter (the rate and burst of
//! `--api-rate-limit`), and per namespace a queue of the requests waiting for a token; each
//! token goes to the next namespace in turn. A request waits without its reconcile's work slot
//! ([`super::off_slot`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};

use ngrok_api::{Budget, BudgetWait, Gcra};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::oneshot;

/// Requests waiting for a token, over every account of the process.
static WAITERS: LazyLock<Gauge> = LazyLock::new(Gauge::default);

/// The gauge of requests waiting for an ngrok token (all accounts together).
pub fn budget_waiters() -> Gauge {
    WAITERS.clone()
}

/// The fair budget of one account. Cheap to clone: clones share the budget.
#[derive(Clone)]
pub struct FairBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limiter: Gcra,
    queues: Mutex<Queues>,
}

#[derive(Default)]
struct Queues {
    waiting: HashMap<Arc<str>, VecDeque<oneshot::Sender<()>>>,
    /// The namespaces with requests waiting, in the order they are served next.
    ring: VecDeque<Arc<str>>,
    /// Requests waiting (some may have gone away since).
    count: usize,
    /// Whether the task handing out tokens runs.
    dispatching: bool,
}

/// The tenant of requests made outside any reconcile.
const ANONYMOUS: &str = "";

impl FairBudget {
    pub fn new(limiter: Gcra) -> Self {
        Self {
            inner: Arc::new(Inner {
                limiter,
                queues: Mutex::default(),
            }),
        }
    }

    /// Requests waiting for a token.
    pub fn waiting(&self) -> usize {
        self.inner.queues.lock().expect("budget lock").count
    }

    async fn take(&self) {
        let namespace = super::current_namespace().unwrap_or_else(|| ANONYMOUS.into());
        let receiver = {
            let mut queues = self.inner.queues.lock().expect("budget lock");
            // Nobody waits and a token is free: take it, keeping the work slot.
            if queues.count == 0 && self.inner.limiter.try_take() {
                return;
            }
            let (sender, receiver) = oneshot::channel();
            if !queues.waiting.contains_key(&namespace) {
                queues.ring.push_back(namespace.clone());
            }
            queues
                .waiting
                .entry(namespace)
                .or_default()
                .push_back(sender);
            queues.count += 1;
            WAITERS.inc();
            if !queues.dispatching {
                queues.dispatching = true;
                tokio::spawn(dispatch(self.inner.clone()));
            }
            receiver
        };
        // An error: the dispatcher is gone (the runtime is shutting down); nothing to wait for.
        super::off_slot(receiver).await.ok();
    }
}

impl Budget for FairBudget {
    fn ready(&self) -> BudgetWait<'_> {
        Box::pin(self.take())
    }
}

/// Hands out tokens while requests wait: one at a time, as the limiter allows, to the next
/// namespace in turn.
async fn dispatch(inner: Arc<Inner>) {
    loop {
        {
            let mut queues = inner.queues.lock().expect("budget lock");
            queues.prune();
            if queues.count == 0 {
                queues.dispatching = false;
                return;
            }
        }
        inner.limiter.take().await;
        let mut queues = inner.queues.lock().expect("budget lock");
        // A waiter that went away meanwhile passes the token on to the next one.
        while let Some(sender) = queues.next_waiter() {
            if sender.send(()).is_ok() {
                break;
            }
        }
    }
}

impl Queues {
    fn next_waiter(&mut self) -> Option<oneshot::Sender<()>> {
        let namespace = self.ring.pop_front()?;
        let queue = self.waiting.get_mut(&namespace)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(&namespace);
        } else {
            self.ring.push_back(namespace);
        }
        if next.is_some() {
            self.count -= 1;
            WAITERS.dec();
        }
        next
    }

    /// Forgets the waiters that went away.
    fn prune(&mut self) {
        let before = self.count;
        for queue in self.waiting.values_mut() {
            queue.retain(|sender| !sender.is_closed());
        }
        self.waiting.retain(|_, queue| !queue.is_empty());
        let waiting = &self.waiting;
        self.ring
            .retain(|namespace| waiting.contains_key(namespace));
        self.count = self.waiting.values().map(VecDeque::len).sum();
        WAITERS.dec_by((before - self.count) as i64);
    }
}
