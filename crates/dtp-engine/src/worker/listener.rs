//! TaskEventListener: one dedicated connection LISTENing for the database's wake-ups
//! (see the `task_notifications` migration). A new task wakes the claim loop at once; a
//! canceled task stops its handler at once. Polling and heartbeats remain the fallback
//! when notifications are lost (listener reconnecting, database restarting).

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

use super::Worker;

pub const TASK_AVAILABLE_CHANNEL: &str = "dtp_task_available";
pub const TASK_CANCELED_CHANNEL: &str = "dtp_task_canceled";
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

pub struct TaskEventListener {
    database_url: String,
    worker: Worker,
}

impl TaskEventListener {
    pub fn new(database_url: String, worker: Worker) -> Self {
        Self { database_url, worker }
    }

    /// Listens until `shutdown` fires, reconnecting with backoff after any failure.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        loop {
            let outcome = tokio::select! {
                outcome = self.listen_once() => outcome,
                () = shutdown.cancelled() => return,
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "task listener lost its connection");
            }
            // Anything may have happened while we were deaf: let the loop look now.
            self.worker.notify_work_available();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    }

    async fn listen_once(&self) -> Result<(), tokio_postgres::Error> {
        let (client, mut connection) = tokio_postgres::connect(&self.database_url, NoTls).await?;
        let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
        let worker = self.worker.clone();
        let subscribe = async move {
            client
                .batch_execute(&format!(
                    "LISTEN {TASK_AVAILABLE_CHANNEL}; LISTEN {TASK_CANCELED_CHANNEL};"
                ))
                .await?;
            tracing::debug!("task listener subscribed");
            // Tasks inserted before we listened sent their notification to nobody.
            worker.notify_work_available();
            // Keep the client alive while the connection delivers notifications.
            std::future::pending::<()>().await;
            Ok::<(), tokio_postgres::Error>(())
        };
        tokio::pin!(subscribe);
        loop {
            tokio::select! {
                result = &mut subscribe => return result,
                message = messages.next() => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => self.dispatch(n.channel(), n.payload()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
            }
        }
    }

    fn dispatch(&self, channel: &str, payload: &str) {
        match channel {
            TASK_AVAILABLE_CHANNEL => self.worker.notify_work_available(),
            TASK_CANCELED_CHANNEL => match payload.parse::<i64>() {
                Ok(task_id) => self.worker.stop_attempts_of(task_id),
                Err(_) => tracing::warn!(payload, "ignoring a cancel notification without a task id"),
            },
            other => tracing::debug!(channel = other, "ignoring a notification"),
        }
    }
}
