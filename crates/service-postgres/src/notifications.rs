//! Postgres notifications: one dedicated connection LISTENing on some channels, kept up
//! with backoff across failures. The subscriber hears each notification, and is told each
//! time the connection (re)subscribes: notifications sent while it was away are lost, so it
//! should then look for itself.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio_postgres::AsyncMessage;

use crate::postgres_tls::{TlsSettings, TlsSettingsError};
use tokio_util::sync::CancellationToken;

const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(100);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Why the listening connection was lost or could not be made.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Settings(#[from] TlsSettingsError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

/// What listens through a `Listener`.
pub trait Subscriber: Send + Sync {
    /// The connection is subscribed (again): anything may have happened meanwhile.
    fn subscribed(&self);
    /// A notification arrived on `channel`.
    fn notified(&self, channel: &str, payload: &str);
}

/// A listening connection to the database at `database_url`.
pub struct Listener {
    database_url: String,
    channels: Vec<&'static str>,
}

impl Listener {
    pub fn new(database_url: String, channels: &[&'static str]) -> Self {
        Self {
            database_url,
            channels: channels.to_vec(),
        }
    }

    /// Listens until `shutdown` fires, reconnecting with backoff after any failure.
    pub async fn run(self, subscriber: impl Subscriber, shutdown: CancellationToken) {
        let mut delay = FIRST_RECONNECT_DELAY;
        loop {
            let outcome = tokio::select! {
                outcome = self.listen_once(&subscriber) => outcome,
                () = shutdown.cancelled() => return,
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, channels = ?self.channels, retry_in_ms = delay.as_millis() as u64, "listener lost its connection");
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return,
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    }

    async fn listen_once(&self, subscriber: &impl Subscriber) -> Result<(), ListenError> {
        // The URL's sslmode and sslrootcert, as for every other connection of the service.
        let (config, tls) = TlsSettings::from_url(&self.database_url)?.connector()?;
        let (client, mut connection) = config.connect(tls).await?;
        let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
        let statement: String = self.channels.iter().map(|c| format!("LISTEN {c}; ")).collect();
        let subscribe = async move {
            client.batch_execute(&statement).await?;
            tracing::debug!("listener subscribed");
            subscriber.subscribed();
            // Keep the client alive while the connection delivers notifications.
            std::future::pending::<()>().await;
            Ok::<(), ListenError>(())
        };
        tokio::pin!(subscribe);
        loop {
            tokio::select! {
                result = &mut subscribe => return result,
                message = messages.next() => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => subscriber.notified(n.channel(), n.payload()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => return Ok(()),
                },
            }
        }
    }
}
