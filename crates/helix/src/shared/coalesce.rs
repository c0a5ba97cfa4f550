//! Requests coalesced into batches: callers hand in one item each and wait; a few tasks each take
//! every item waiting (up to a bound), do one piece of batch work for all of them (one statement,
//! one commit), and answer each caller with its own result. Under load one round trip then serves
//! many callers; when idle a lone item goes at once.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

/// Why an item got no answer of its own.
#[derive(Debug, thiserror::Error)]
pub enum Failed<E> {
    /// The batch work failed; every item of that batch gets the same error.
    #[error("{0}")]
    Batch(Arc<E>),
    #[error("the service is stopping")]
    Stopped,
}

type Reply<R, E> = oneshot::Sender<Result<R, Arc<E>>>;
/// The items waiting, shared by the tasks.
type Waiting<T, R, E> = Arc<Mutex<mpsc::Receiver<(T, Reply<R, E>)>>>;

/// The handle callers submit through; cheap to clone. Its tasks end when every handle is gone.
pub struct Coalescer<T, R, E> {
    tx: mpsc::Sender<(T, Reply<R, E>)>,
}

impl<T, R, E> Clone for Coalescer<T, R, E> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<T, R, E> Coalescer<T, R, E>
where
    T: Send + 'static,
    R: Send + 'static,
    E: Send + Sync + 'static,
{
    /// Start `tasks` tasks that run `work` on batches of at most `max`; `work` answers with one
    /// result per item, in order.
    pub fn start<F, Fut>(tasks: usize, max: usize, work: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>, E>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(max * tasks * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..tasks {
            tokio::spawn(run(rx.clone(), max, work.clone()));
        }
        Self { tx }
    }

    /// Hand in one item; its result once its batch is done.
    pub async fn submit(&self, item: T) -> Result<R, Failed<E>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((item, reply))
            .await
            .map_err(|_| Failed::Stopped)?;
        answer
            .await
            .map_err(|_| Failed::Stopped)?
            .map_err(Failed::Batch)
    }
}

async fn run<T, R, E, F, Fut>(rx: Waiting<T, R, E>, max: usize, work: F)
where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, E>>,
{
    let mut waiting = Vec::with_capacity(max);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut waiting, max).await == 0 {
                return;
            }
        }
        let (items, replies): (Vec<T>, Vec<Reply<R, E>>) = waiting.drain(..).unzip();
        match work(items).await {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_caller_gets_its_own_result_and_a_failed_batch_fails_all() {
        let doubler = Coalescer::start(2, 8, |items: Vec<i32>| async move {
            if items.contains(&-1) {
                return Err("negative");
            }
            Ok(items.into_iter().map(|i| i * 2).collect())
        });
        let answers = futures::future::join_all((0..20).map(|i| doubler.submit(i))).await;
        let got: Vec<i32> = answers.into_iter().map(|a| a.unwrap()).collect();
        assert_eq!(got, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        assert!(matches!(doubler.submit(-1).await, Err(Failed::Batch(_))));
    }
}
