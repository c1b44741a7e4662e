//! TLS settings: rustls, verifying the server's certificate against the
//! webpki roots or the CAs of a `ca_file`.

use std::path::Path;
use std::sync::Arc;

use crate::error::Error;

/// The TLS client settings of a client; `None` in a build without TLS.
#[cfg(feature = "tls")]
pub(crate) type TlsConfig = Arc<rustls::ClientConfig>;
#[cfg(not(feature = "tls"))]
pub(crate) type TlsConfig = NoTls;

/// The TLS settings of a build without TLS: none.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub(crate) struct NoTls;

/// The settings for verifying servers against the CAs of `ca_pem`, or the
/// webpki roots when there is none.
#[cfg(feature = "tls")]
pub(crate) fn config(ca_pem: Option<&[u8]>) -> TlsConfig {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in certificates(pem) {
                // A certificate webpki cannot use is skipped; load_ca_file
                // has checked that the file holds at least one.
                let _ = roots.add(cert);
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[cfg(not(feature = "tls"))]
pub(crate) fn config(_: Option<&[u8]>) -> TlsConfig {
    NoTls
}

#[cfg(feature = "tls")]
fn certificates(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// Reads and checks a PEM file of CA certificates.
pub(crate) fn load_ca_file(path: &Path) -> Result<Arc<[u8]>, Error> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| Error::InvalidArgument(format!("ca_file {shown} cannot be read: {e}")))?;
    #[cfg(feature = "tls")]
    {
        if certificates(&pem).is_empty() {
            return Err(Error::InvalidArgument(format!(
                "ca_file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )));
        }
        Ok(pem.into())
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = pem;
        Err(Error::InvalidArgument(format!(
            "ca_file {shown}: this build of modelapi has no TLS (feature \"tls\" is off)"
        )))
    }
}
