//! TaskEventListener: the engine's subscription to the database's wake-ups (see the
//! `task_notifications` migration). A new task wakes the claim loop and waiting workers at
//! once; a canceled task stops its handler at once. Polling and heartbeats remain the
//! fallback when notifications are lost (listener reconnecting, database restarting).

use service_runtime::notifications::{Listener, Subscriber};
use tokio_util::sync::CancellationToken;

use super::Worker;

pub const TASK_AVAILABLE_CHANNEL: &str = "dtp_task_available";
pub const TASK_CANCELED_CHANNEL: &str = "dtp_task_canceled";

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
        let listener = Listener::new(
            self.database_url,
            &[TASK_AVAILABLE_CHANNEL, TASK_CANCELED_CHANNEL],
        );
        listener.run(WakeUps(self.worker), shutdown).await;
    }
}

struct WakeUps(Worker);

impl Subscriber for WakeUps {
    fn subscribed(&self) {
        // Tasks inserted while we were not listening sent their notification to nobody.
        self.0.notify_work_available();
    }

    fn notified(&self, channel: &str, payload: &str) {
        match channel {
            TASK_AVAILABLE_CHANNEL => self.0.notify_work_available(),
            TASK_CANCELED_CHANNEL => match payload.parse::<i64>() {
                Ok(task_id) => self.0.stop_attempts_of(task_id),
                Err(_) => tracing::warn!(payload, "ignoring a cancel notification without a task id"),
            },
            other => tracing::debug!(channel = other, "ignoring a notification"),
        }
    }
}
