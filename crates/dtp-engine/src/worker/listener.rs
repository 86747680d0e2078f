//! TaskEventListener: the engine's subscription to the database's wake-ups (see the
//! `task_notifications` migration). A new task wakes the claim loop and waiting workers at
//! once; a canceled task stops its handler at once. Polling and heartbeats remain the
//! fallback when notifications are lost (listener reconnecting, database restarting). Every
//! wake-up also wakes the change feed's waiting readers.

use service_postgres::notifications::{Listener, Subscriber};
use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::change_feed::EVENTS_CHANNEL;

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
            &[TASK_AVAILABLE_CHANNEL, TASK_CANCELED_CHANNEL, EVENTS_CHANNEL],
        );
        listener.run(WakeUps(self.worker), shutdown).await;
    }
}

struct WakeUps(Worker);

impl Subscriber for WakeUps {
    fn subscribed(&self) {
        // Tasks inserted while we were not listening sent their notification to nobody.
        self.0.notify_work_available();
        self.0.feed_signal().wake_readers();
    }

    fn notified(&self, channel: &str, payload: &str) {
        // Every wake-up follows a change of some task, which the feed's readers wait for.
        self.0.feed_signal().wake_readers();
        match channel {
            TASK_AVAILABLE_CHANNEL => self.0.notify_work_available(),
            TASK_CANCELED_CHANNEL => match payload.parse::<i64>() {
                Ok(task_id) => self.0.stop_attempts_of(task_id),
                Err(_) => tracing::warn!(payload, "ignoring a cancel notification without a task id"),
            },
            EVENTS_CHANNEL => {}
            other => tracing::debug!(channel = other, "ignoring a notification"),
        }
    }
}
