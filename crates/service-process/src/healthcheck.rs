//! The `healthcheck` command of each service binary, for container health checks (the image
//! has no curl): `GET /healthz` on the port the service listens on, exit code 0 on 200, else 1
//! and one line.

use std::error::Error;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use crate::error_line::one_line;

/// How long the check waits for an answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Checks the service of `binary` listening on `http_addr` (read from its settings, which
/// may have failed).
pub async fn check<C: Error + 'static>(binary: &str, http_addr: Result<String, C>) -> ExitCode {
    check_with(binary, http_addr, get_status).await
}

/// The status of `GET url`, within `TIMEOUT`.
async fn get_status(url: String) -> Result<u16, reqwest::Error> {
    let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    Ok(client.get(url).send().await?.status().as_u16())
}

/// `check`, with `get` answering the status of a GET of a URL.
async fn check_with<C, E, F, Fut>(binary: &str, http_addr: Result<String, C>, get: F) -> ExitCode
where
    C: Error + 'static,
    E: Error + 'static,
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<u16, E>>,
{
    let url = match http_addr
        .map_err(|e| one_line(&e))
        .and_then(|addr| healthz_url(&addr))
    {
        Ok(url) => url,
        Err(reason) => {
            eprintln!("{binary}: {reason}");
            return ExitCode::FAILURE;
        }
    };
    match get(url.clone()).await {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("{binary}: unhealthy: GET {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{binary}: unhealthy: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The `/healthz` URL of a service listening on `http_addr` (`host:port`), reached over
/// loopback when it listens on every interface.
pub fn healthz_url(http_addr: &str) -> Result<String, String> {
    let invalid = || format!("cannot tell the port from the listen address {http_addr:?}");
    let (host, port) = http_addr.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    let host = match host {
        "" | "0.0.0.0" | "[::]" => "127.0.0.1",
        named => named,
    };
    Ok(format!("http://{host}:{port}/healthz"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_on_every_interface_is_checked_over_loopback() {
        assert_eq!(
            healthz_url("0.0.0.0:8080").unwrap(),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(healthz_url("[::]:8081").unwrap(), "http://127.0.0.1:8081/healthz");
        assert_eq!(healthz_url(":8081").unwrap(), "http://127.0.0.1:8081/healthz");
    }

    #[test]
    fn a_service_on_one_address_is_checked_there() {
        assert_eq!(
            healthz_url("127.0.0.1:18080").unwrap(),
            "http://127.0.0.1:18080/healthz"
        );
        assert_eq!(healthz_url("[::1]:8080").unwrap(), "http://[::1]:8080/healthz");
    }

    #[test]
    fn an_address_without_a_port_is_refused() {
        assert!(healthz_url("localhost").is_err());
        assert!(healthz_url("0.0.0.0:http").is_err());
    }

    #[derive(Debug, thiserror::Error)]
    #[error("unused")]
    struct Never;

    #[tokio::test]
    async fn only_200_is_healthy() {
        let answering = |status: u16| move |_url: String| async move { Ok::<_, Never>(status) };
        let addr = || Ok::<_, Never>("0.0.0.0:8080".to_owned());
        assert_eq!(check_with("svc", addr(), answering(200)).await, ExitCode::SUCCESS);
        assert_eq!(check_with("svc", addr(), answering(503)).await, ExitCode::FAILURE);
        let unusable = Ok::<_, Never>("nowhere".to_owned());
        assert_eq!(
            check_with("svc", unusable, answering(200)).await,
            ExitCode::FAILURE
        );
    }
}
