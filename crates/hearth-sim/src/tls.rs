//! TLS on the host, shared by the simulated device (`net`) and the fleet commands (`fleet`):
//! the rustls client configuration built from a device's [`TlsSettings`] (one CA, an optional
//! SPKI pin, an optional client certificate), the mapping of rustls errors to the
//! [`TlsError`]s the runtime reports, the PEM helpers of the CLI, and `hearth tls
//! config-lines`.
//!
//! Verification: with a CA, rustls's webpki verifier checks the chain to that CA alone, the
//! validity period against the wall clock and the host name; with a pin as well, the server's
//! public key must also match it. With a pin only, the pinned key is the trust anchor: the
//! key and the host name are checked, the validity period is not (like an SSH host key, the
//! pin is the decision to trust that key). There is no way to accept any certificate.

use std::path::Path;
use std::sync::Arc;

use hearth_device::{TlsError, TlsSettings};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `tls` (TLS 1.2 and 1.3, ring). An error says which
/// part of the configuration cannot be used.
pub fn client_config(tls: &TlsSettings) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let webpki = match &tls.ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from(ca.clone()))
                .map_err(|e| format!("the CA certificate cannot be used: {e}"))?;
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("the CA certificate cannot be used: {e}"))?,
            )
        }
        None => None,
    };
    if webpki.is_none() && tls.pin.is_none() {
        return Err("TLS needs a CA certificate or a pin to verify the server".into());
    }
    let verifier = Verifier {
        webpki,
        pin: tls.pin,
        algorithms: provider.signature_verification_algorithms,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::try_from(key.clone())
                .map_err(|e| format!("the client key cannot be used: {e}"))?;
            builder
                .with_client_auth_cert(vec![CertificateDer::from(cert.clone())], key)
                .map_err(|e| format!("the client certificate or key cannot be used: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("a client certificate needs its key, and a key its certificate".into()),
    };
    Ok(Arc::new(config))
}

/// The server name to verify: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|_| format!("{host:?} is neither a DNS name nor an IP address"))
}

/// The webpki verifier for the CA (if any), plus the pin check.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

fn bad(e: CertificateError) -> rustls::Error {
    rustls::Error::InvalidCertificate(e)
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(webpki) = &self.webpki {
            webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )?;
        }
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| bad(CertificateError::BadEncoding))?;
        if self.webpki.is_none() {
            cert.verify_is_valid_for_subject_name(server_name)
                .map_err(|_| bad(CertificateError::NotValidForName))?;
        }
        if let Some(pin) = self.pin {
            let spki = cert.subject_public_key_info();
            if Sha256::digest(spki.as_ref()).as_slice() != pin {
                // Our own check: the only source of this error, so it reads back as the pin.
                return Err(bad(CertificateError::ApplicationVerificationFailure));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a rustls error means to the user.
pub fn classify(e: &rustls::Error) -> TlsError {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => TlsError::UnknownCa,
            C::Expired | C::ExpiredContext { .. } => TlsError::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => TlsError::NotYetValid,
            C::NotValidForName | C::NotValidForNameContext { .. } => TlsError::WrongHost,
            C::ApplicationVerificationFailure => TlsError::PinMismatch,
            _ => TlsError::BadCertificate,
        },
        rustls::Error::AlertReceived(_) => TlsError::Refused,
        _ => TlsError::Handshake,
    }
}

/// The rustls error inside an I/O error from a rustls stream, if there is one.
pub fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// SHA-256 of the SubjectPublicKeyInfo of a DER certificate: the value of `mqttpin`.
pub fn spki_sha256(cert: &[u8]) -> Result<[u8; 32], String> {
    let der = CertificateDer::from(cert);
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(Sha256::digest(cert.subject_public_key_info().as_ref()).into())
}

/// The certificates of a PEM file.
pub fn pem_certs(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no \"BEGIN CERTIFICATE\" block in this file",
            path.display()
        ));
    }
    Ok(certs)
}

/// The one certificate of a PEM file (the first, when it holds a chain).
pub fn pem_cert(path: &Path) -> Result<Vec<u8>, String> {
    pem_certs(path).map(|mut c| c.swap_remove(0))
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC), as DER.
pub fn pem_key(path: &Path) -> Result<Vec<u8>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map(|k| k.secret_der().to_vec())
        .map_err(|e| format!("{}: no usable private key: {e}", path.display()))
}

/// `hearth tls config-lines`: the `config.txt` lines for a CA certificate, a client
/// certificate and key, and a pin of a server certificate, from PEM files.
pub fn config_lines(
    ca: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
    pin_from: Option<&Path>,
) -> Result<String, String> {
    use hearth_config::base64::encode;
    let mut out = String::new();
    if let Some(ca) = ca {
        out.push_str(&format!("mqttca {}\n", encode(&pem_cert(ca)?)));
    }
    if let Some(server) = pin_from {
        let pin = spki_sha256(&pem_cert(server)?)?;
        let hex: String = pin.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("mqttpin {hex}\n"));
    }
    match (client_cert, client_key) {
        (Some(c), Some(k)) => {
            out.push_str(&format!("mqttclientcert {}\n", encode(&pem_cert(c)?)));
            out.push_str(&format!("mqttclientkey {}\n", encode(&pem_key(k)?)));
        }
        (None, None) => {}
        _ => return Err("--client-cert and --client-key go together".into()),
    }
    if out.is_empty() {
        return Err(
            "give --ca FILE, --pin-from FILE and/or --client-cert FILE --client-key FILE".into(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        use rustls::AlertDescription;
        let c = |e| classify(&bad(e));
        assert_eq!(c(CertificateError::UnknownIssuer), TlsError::UnknownCa);
        assert_eq!(c(CertificateError::Expired), TlsError::Expired);
        assert_eq!(c(CertificateError::NotValidForName), TlsError::WrongHost);
        assert_eq!(
            c(CertificateError::ApplicationVerificationFailure),
            TlsError::PinMismatch
        );
        assert_eq!(c(CertificateError::Revoked), TlsError::BadCertificate);
        assert_eq!(
            classify(&rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            )),
            TlsError::Refused
        );
        assert_eq!(
            TlsError::WrongHost.explain("mqtt.lan"),
            "certificate not valid for host \"mqtt.lan\""
        );
    }

    #[test]
    fn a_config_needs_a_ca_or_a_pin() {
        let none = TlsSettings {
            server_name: "h".into(),
            ca: None,
            pin: None,
            client_cert: None,
            client_key: None,
        };
        assert!(client_config(&none).is_err());
        let pin = TlsSettings {
            pin: Some([0; 32]),
            ..none.clone()
        };
        assert!(client_config(&pin).is_ok());
        let junk_ca = TlsSettings {
            ca: Some(vec![0x30, 0]),
            ..none
        };
        assert!(client_config(&junk_ca)
            .unwrap_err()
            .contains("CA certificate cannot be used"));
    }
}
