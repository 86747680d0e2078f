//! TLS for the connections the services open themselves (the LISTEN connection), honouring
//! the database URL's `sslmode` and `sslrootcert` as libpq does for the pooled ones:
//! `disable`; `prefer` (libpq's default: TLS when the server offers it, unverified);
//! `require` (TLS, unverified, or verified as `verify-ca` when `sslrootcert` is given);
//! `verify-ca` (the chain must lead to `sslrootcert`); `verify-full` (and name the host).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// `sslmode`, as libpq spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// Why a connection's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSettingsError {
    #[error("the database URL cannot be read: {0}")]
    Url(String),
    #[error("sslmode={0:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    Mode(String),
    #[error("sslmode={0} needs sslrootcert=<file of the CA's certificates>")]
    NoRootCert(&'static str),
    #[error("cannot read sslrootcert {path}: {reason}")]
    RootCert { path: String, reason: String },
    #[error("{0} is not supported for the services' own connections")]
    Unsupported(&'static str),
    #[error("the database URL is not one tokio-postgres reads: {0}")]
    Config(#[from] tokio_postgres::Error),
}

/// The TLS a database URL asks for, and the URL without the settings tokio-postgres does
/// not read itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
    /// The URL without `sslmode` and `sslrootcert`.
    pub url: String,
}

impl TlsSettings {
    pub fn from_url(database_url: &str) -> Result<Self, TlsSettingsError> {
        let mut url = url::Url::parse(database_url).map_err(|e| TlsSettingsError::Url(e.to_string()))?;
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => {
                    mode = SslMode::parse(&value).ok_or_else(|| TlsSettingsError::Mode(value.to_string()))?
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(value.as_ref())),
                "sslcert" | "sslkey" => {
                    return Err(TlsSettingsError::Unsupported(
                        "a client certificate (sslcert, sslkey)",
                    ))
                }
                _ => kept.push((key.into_owned(), value.into_owned())),
            }
        }
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
        // As libpq: `require` with a root certificate verifies the chain.
        if mode == SslMode::Require && root_cert.is_some() {
            mode = SslMode::VerifyCa;
        }
        Ok(Self {
            mode,
            root_cert,
            url: url.into(),
        })
    }

    /// The tokio-postgres configuration and TLS connector for these settings.
    pub fn connector(&self) -> Result<(tokio_postgres::Config, MakeRustlsConnect), TlsSettingsError> {
        let mut config: tokio_postgres::Config = self.url.parse()?;
        config.ssl_mode(match self.mode {
            SslMode::Disable => WireSslMode::Disable,
            SslMode::Prefer => WireSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireSslMode::Require,
        });
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => {
                Arc::new(Unverified(Arc::clone(&provider)))
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let name = if self.mode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                };
                let path = self
                    .root_cert
                    .as_deref()
                    .ok_or(TlsSettingsError::NoRootCert(name))?;
                let roots = Arc::new(read_roots(path)?);
                let chain = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                    .build()
                    .map_err(|e| TlsSettingsError::RootCert {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                if self.mode == SslMode::VerifyFull {
                    chain
                } else {
                    Arc::new(ChainOnly(chain))
                }
            }
        };
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSettingsError::Url(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok((config, MakeRustlsConnect::new(tls)))
    }
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsSettingsError> {
    let unreadable = |reason: String| TlsSettingsError::RootCert {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(e.to_string()))? {
        roots
            .add(cert.map_err(|e| unreadable(e.to_string()))?)
            .map_err(|e| unreadable(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(unreadable("it holds no certificate".into()));
    }
    Ok(roots)
}

/// `prefer` and `require`: encrypted, but any certificate will do (as libpq). The handshake's
/// signatures are still checked, so the session is with the holder of the certificate shown.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the certificate need not name the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_modes_libpq_knows_and_leaves_the_rest_of_the_url() {
        let settings = TlsSettings::from_url(
            "postgres://u@db.example.com:5433/dtp?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(settings.mode, SslMode::VerifyFull);
        assert_eq!(settings.root_cert.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(
            settings.url,
            "postgres://u@db.example.com:5433/dtp?application_name=x"
        );
        let plain = TlsSettings::from_url("postgres://u@localhost/dtp").unwrap();
        assert_eq!(
            (plain.mode, plain.url.as_str()),
            (SslMode::Prefer, "postgres://u@localhost/dtp")
        );
        for (query, mode) in [
            ("sslmode=disable", SslMode::Disable),
            ("sslmode=require", SslMode::Require),
            ("sslmode=require&sslrootcert=/ca.pem", SslMode::VerifyCa),
            ("sslmode=verify-ca&sslrootcert=/ca.pem", SslMode::VerifyCa),
        ] {
            let settings = TlsSettings::from_url(&format!("postgres://u@h/d?{query}")).unwrap();
            assert_eq!(settings.mode, mode, "{query}");
        }
        assert!(matches!(
            TlsSettings::from_url("postgres://u@h/d?sslmode=allowed"),
            Err(TlsSettingsError::Mode(_))
        ));
        assert!(matches!(
            TlsSettings::from_url("postgres://u@h/d?sslcert=/c.pem"),
            Err(TlsSettingsError::Unsupported(_))
        ));
        let no_root = TlsSettings::from_url("postgres://u@h/d?sslmode=verify-full").unwrap();
        assert!(matches!(
            no_root.connector(),
            Err(TlsSettingsError::NoRootCert("verify-full"))
        ));
        let missing =
            TlsSettings::from_url("postgres://u@h/d?sslmode=verify-ca&sslrootcert=/nonexistent.pem").unwrap();
        assert!(matches!(
            missing.connector(),
            Err(TlsSettingsError::RootCert { .. })
        ));
        assert!(TlsSettings::from_url("postgres://u@h/d?sslmode=require")
            .unwrap()
            .connector()
            .is_ok());
    }
}
