//! TLS to Postgres: on a cluster that refuses unencrypted connections, an engine whose URL
//! says `sslmode=verify-full` runs with every connection encrypted, the LISTEN one included;
//! `verify-full` refuses a certificate that does not name the host, `verify-ca` takes it,
//! `disable` means no TLS at all.

use std::time::Instant;

use diesel::prelude::*;
use dtp_engine::startup::Application;
use dtp_engine::testing::TestEngine;
use serde_json::json;
use service_postgres::postgres_tls::TlsSettings;
use service_postgres::testing::tls_cluster::TlsCluster;

use crate::api::EngineApi;
use crate::sql::count;
use crate::{stepped, PATIENCE, POLL_EVERY};

/// Connects as the LISTEN connection does; the error's text when refused.
async fn listen_connection(url: &str) -> Result<(), String> {
    let (config, tls) = TlsSettings::from_url(url).unwrap().connector().unwrap();
    let (client, connection) = config.connect(tls).await.map_err(|e| format!("{e:?}"))?;
    tokio::spawn(connection);
    client
        .batch_execute("LISTEN anything")
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_honours_sslmode() {
    let cluster = TlsCluster::start();
    let ca = cluster.ca_certificate();
    let verified = |host: &str, mode: &str| {
        cluster.url(
            host,
            "dtp_tls",
            &format!("sslmode={mode}&sslrootcert={}", ca.display()),
        )
    };
    let url = verified("localhost", "verify-full");
    let dtp = TestEngine::spawn_with(|config| {
        stepped(config);
        config.database_url = url.clone();
    })
    .await;
    let api = EngineApi::new(&dtp);
    api.create_task(&json!({"type": "demo"})).await;

    // The LISTEN connection is up, and it and every other connection are encrypted.
    let mut conn = PgConnection::establish(&url).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let listening = "SELECT count(*) AS n FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                     WHERE a.datname = 'dtp_tls' AND a.query LIKE 'LISTEN%' AND s.ssl";
    while count(&mut conn, listening) == 0 {
        assert!(
            Instant::now() < deadline,
            "the engine's LISTEN connection never came up over TLS"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
    let unencrypted = "SELECT count(*) AS n FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                       WHERE a.datname = 'dtp_tls' AND NOT s.ssl";
    assert_eq!(count(&mut conn, unencrypted), 0);

    // verify-full names the host: the certificate is for localhost, not 127.0.0.1.
    let refused = listen_connection(&verified("127.0.0.1", "verify-full"))
        .await
        .unwrap_err();
    assert!(refused.contains("NotValidForName"), "{refused}");
    listen_connection(&verified("127.0.0.1", "verify-ca"))
        .await
        .unwrap();
    listen_connection(&cluster.url("127.0.0.1", "dtp_tls", "sslmode=require"))
        .await
        .unwrap();
    let plain = listen_connection(&cluster.url("localhost", "dtp_tls", "sslmode=disable"))
        .await
        .unwrap_err();
    assert!(
        plain.contains("no encryption") || plain.contains("pg_hba.conf"),
        "{plain}"
    );

    // An engine told to verify a host the certificate does not name does not start.
    let mut config = dtp.config().clone();
    config.database_url = verified("127.0.0.1", "verify-full");
    config.http_addr = "127.0.0.1:0".into();
    let error = Application::build(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("127.0.0.1") && !error.contains('\n'), "{error}");
}
