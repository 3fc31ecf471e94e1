//! On-demand passes of the gateway's periodic jobs (the pruner, the quota measurer): tests hold
//! a [`PassTrigger`] so that a pass happens exactly when they ask, with a manual clock.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

/// Runs one pass of a periodic job on demand and waits for its report `R`. Cloneable; the first
/// Forge opened with it takes its receiving end.
#[derive(Debug)]
pub struct PassTrigger<R> {
    tx: mpsc::Sender<oneshot::Sender<R>>,
    rx: Arc<Mutex<Option<mpsc::Receiver<oneshot::Sender<R>>>>>,
}

// Not derived: a derive would ask `R: Clone`, which the channel ends do not need.
impl<R> Clone for PassTrigger<R> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            rx: Arc::clone(&self.rx),
        }
    }
}

impl<R> Default for PassTrigger<R> {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(4);
        Self {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
        }
    }
}

impl<R: Default> PassTrigger<R> {
    /// A trigger not yet given to a Forge.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one pass now and returns its report; an empty report when the gateway is gone.
    pub async fn run(&self) -> R {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(tx).await.is_err() {
            return R::default();
        }
        rx.await.unwrap_or_default()
    }

    /// The receiving end, for the job's loop; `None` once a Forge took it.
    pub(crate) fn take(&self) -> Option<mpsc::Receiver<oneshot::Sender<R>>> {
        self.rx.lock().ok()?.take()
    }
}
