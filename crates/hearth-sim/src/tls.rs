//! TLS on the host, shared by the simulated device (`net`) and the fleet commands (`fleet`):
//! the rustls client configuration built from a device's [`TlsSettings`] (one CA, an optional
//! SPKI pin, an optional client certificate), the mapping of rustls errors to the
//! [`TlsError`]s the runtime reports, the PEM helpers of the CLI, and `hearth tls
//! config-lines`.
//!
//! Verification: with a CA, rustls's webpki verifier checks the chain to that CA alone, the
//! validity period against the wall clock and the host name, and then [`key_usage`] checks the
//! keyUsage of the chain webpki found (which webpki itself ignores; the chip checks it too, so
//! that both verifiers give the same verdicts: `tests/tls_verdicts.rs`); with a pin as well,
//! the server's public key must also match it. With a pin only, the pinned key is the trust anchor: the
//! key and the host name are checked, the validity period is not (like an SSH host key, the
//! pin is the decision to trust that key). There is no way to accept any certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearth_platform::{TlsError, TlsSettings};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};

/// Why a [`TlsSettings`] cannot make a client configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA certificate is not a usable trust anchor.
    #[error("the CA certificate cannot be used: {0}")]
    Ca(Box<dyn std::error::Error + Send + Sync>),
    /// Neither a CA nor a pin: nothing to verify the server with.
    #[error("TLS needs a CA certificate or a pin to verify the server")]
    NoTrust,
    /// rustls refused the protocol versions.
    #[error("TLS setup: {0}")]
    Protocols(rustls::Error),
    /// The client key is not a private key rustls reads.
    #[error("the client key cannot be used: {0}")]
    ClientKey(&'static str),
    /// rustls refused the client certificate and key.
    #[error("the client certificate or key cannot be used: {0}")]
    ClientAuth(rustls::Error),
    /// One of the client certificate and key without the other.
    #[error("a client certificate needs its key, and a key its certificate")]
    HalfClientAuth,
    /// The host to verify is not a name.
    #[error("{0:?} is neither a DNS name nor an IP address")]
    ServerName(String),
}

/// Why a PEM file gives no certificate or key.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// Unreadable, or not PEM.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rustls::pki_types::pem::Error,
    },
    /// PEM without a certificate.
    #[error("{}: no \"BEGIN CERTIFICATE\" block in this file", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// No private key rustls reads.
    #[error("{}: no usable private key: {source}", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate that does not parse.
    #[error("not an X.509 certificate: {0}")]
    NotX509(webpki::Error),
}

/// Why `hearth tls config-lines` has nothing to print.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLinesError {
    /// A file it was given.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// `--client-cert` without `--client-key`, or the reverse.
    #[error("--client-cert and --client-key go together")]
    HalfClientAuth,
    /// No file at all.
    #[error("give --ca FILE, --pin-from FILE and/or --client-cert FILE --client-key FILE")]
    Nothing,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `tls` (TLS 1.2 and 1.3, ring). An error says which
/// part of the configuration cannot be used.
pub fn client_config(tls: &TlsSettings) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    let verifier = Verifier::new(tls, &provider)?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Protocols)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::try_from(key.clone()).map_err(TlsSetupError::ClientKey)?;
            builder
                .with_client_auth_cert(vec![CertificateDer::from(cert.clone())], key)
                .map_err(TlsSetupError::ClientAuth)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsSetupError::HalfClientAuth),
    };
    Ok(Arc::new(config))
}

/// The server name to verify: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsSetupError> {
    ServerName::try_from(host.to_string()).map_err(|_| TlsSetupError::ServerName(host.into()))
}

/// Verifies the certificates a server sent (`chain[0]` its own, then intermediates) as a
/// connection with `tls` would at the time `now` (seconds since 1970): the certificate
/// checks of the handshake, without the handshake. [`classify`] says what an error means.
pub fn verify_server(tls: &TlsSettings, chain: &[Vec<u8>], now: u64) -> Result<(), rustls::Error> {
    let general = |e: TlsSetupError| rustls::Error::General(e.to_string());
    let verifier = Verifier::new(tls, &provider()).map_err(general)?;
    let name = server_name(&tls.server_name).map_err(general)?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or(rustls::Error::NoCertificatesPresented)?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.as_slice()),
            &intermediates,
            &name,
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(now)),
        )
        .map(|_| ())
}

/// The webpki verifier for the CA (if any) and the keyUsage check, plus the pin check.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Anchor>,
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The one CA: rustls's verifier for it, and what [`key_usage`] needs.
#[derive(Debug)]
struct Anchor {
    verifier: Arc<WebPkiServerVerifier>,
    anchor: rustls::pki_types::TrustAnchor<'static>,
    der: Vec<u8>,
}

impl Anchor {
    /// keyUsage on the path webpki finds to this CA: digitalSignature on the server's
    /// certificate, keyCertSign on every issuer (when they have a keyUsage). Before rustls's
    /// verifier, which checks the host name, so that the order is the chip's; a certificate
    /// or chain webpki refuses is left to that verifier, which says why.
    fn check_key_usage(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        algorithms: &[&dyn rustls::pki_types::SignatureVerificationAlgorithm],
    ) -> Result<(), rustls::Error> {
        let Ok(cert) = webpki::EndEntityCert::try_from(end_entity) else {
            return Ok(());
        };
        let Ok(path) = cert.verify_for_usage(
            algorithms,
            std::slice::from_ref(&self.anchor),
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        ) else {
            return Ok(());
        };
        let refused = |why: &'static str| {
            bad(CertificateError::Other(rustls::OtherError(Arc::new(
                KeyUsageRefused(why),
            ))))
        };
        let unreadable = |_| bad(CertificateError::BadEncoding);
        if !key_usage(end_entity, KU_DIGITAL_SIGNATURE).map_err(unreadable)? {
            return Err(refused(
                "the server's keyUsage does not allow digitalSignature",
            ));
        }
        let issuers: Vec<CertificateDer<'_>> =
            path.intermediate_certificates().map(|c| c.der()).collect();
        for issuer in issuers
            .iter()
            .map(|c| c.as_ref())
            .chain([self.der.as_slice()])
        {
            if !key_usage(issuer, KU_KEY_CERT_SIGN).map_err(unreadable)? {
                return Err(refused("an issuer's keyUsage does not allow keyCertSign"));
            }
        }
        Ok(())
    }
}

impl Verifier {
    fn new(tls: &TlsSettings, provider: &Arc<CryptoProvider>) -> Result<Self, TlsSetupError> {
        let webpki = match &tls.ca {
            Some(ca) => {
                let der = CertificateDer::from(ca.clone());
                let anchor = webpki::anchor_from_trusted_cert(&der)
                    .map_err(|e| TlsSetupError::Ca(e.into()))?
                    .to_owned();
                let mut roots = RootCertStore::empty();
                roots.add(der).map_err(|e| TlsSetupError::Ca(e.into()))?;
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| TlsSetupError::Ca(e.into()))?;
                Some(Anchor {
                    verifier,
                    anchor,
                    der: ca.clone(),
                })
            }
            None => None,
        };
        if webpki.is_none() && tls.pin.is_none() {
            return Err(TlsSetupError::NoTrust);
        }
        Ok(Verifier {
            webpki,
            pin: tls.pin,
            algorithms: provider.signature_verification_algorithms,
        })
    }
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
            webpki.check_key_usage(end_entity, intermediates, now, self.algorithms.all)?;
            webpki.verifier.verify_server_cert(
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

/// A keyUsage that does not allow what the certificate is used for.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct KeyUsageRefused(&'static str);

/// keyUsage bits (RFC 5280 4.2.1.3), counted from the first byte's top bit.
const KU_DIGITAL_SIGNATURE: usize = 0;
const KU_KEY_CERT_SIGN: usize = 5;

/// The certificate (DER) has no keyUsage extension, or one with bit `bit` set. An error when
/// the certificate cannot be read that far.
fn key_usage(cert: &[u8], bit: usize) -> Result<bool, ()> {
    /// One DER element at the start of `der`: (tag, contents, what follows).
    fn element(der: &[u8]) -> Result<(u8, &[u8], &[u8]), ()> {
        let (&tag, rest) = der.split_first().ok_or(())?;
        let (&first, rest) = rest.split_first().ok_or(())?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(());
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |l, &b| (l << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(());
        }
        Ok((tag, &rest[..len], &rest[len..]))
    }
    const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    let (_, certificate, _) = element(cert)?;
    let (_, mut tbs, _) = element(certificate)?;
    // Skip to the extensions, [3], the last field of the TBSCertificate.
    let mut extensions = None;
    while !tbs.is_empty() {
        let (tag, contents, rest) = element(tbs)?;
        if tag == 0xa3 {
            extensions = Some(element(contents)?.1);
        }
        tbs = rest;
    }
    let mut list = extensions.unwrap_or(&[]);
    while !list.is_empty() {
        let (_, extension, rest) = element(list)?;
        list = rest;
        let (_, id, mut fields) = element(extension)?;
        if id != KEY_USAGE {
            continue;
        }
        // critical BOOLEAN (optional), then the OCTET STRING with the BIT STRING.
        let mut field = element(fields)?;
        if field.0 == 0x01 {
            fields = field.2;
            field = element(fields)?;
        }
        let (_, bit_string, _) = element(field.1)?;
        let bits = bit_string.get(1..).ok_or(())?;
        return Ok(bits
            .get(bit / 8)
            .is_some_and(|b| b & (0x80 >> (bit % 8)) != 0));
    }
    Ok(true)
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
pub fn spki_sha256(cert: &[u8]) -> Result<[u8; 32], PemError> {
    let der = CertificateDer::from(cert);
    let cert = webpki::EndEntityCert::try_from(&der).map_err(PemError::NotX509)?;
    Ok(Sha256::digest(cert.subject_public_key_info().as_ref()).into())
}

/// The certificates of a PEM file.
pub fn pem_certs(path: &Path) -> Result<Vec<Vec<u8>>, PemError> {
    let read = |source| PemError::Read {
        path: path.into(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(PemError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

/// The one certificate of a PEM file (the first, when it holds a chain).
pub fn pem_cert(path: &Path) -> Result<Vec<u8>, PemError> {
    pem_certs(path).map(|mut c| c.swap_remove(0))
}

/// The private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC), as DER.
pub fn pem_key(path: &Path) -> Result<Vec<u8>, PemError> {
    PrivateKeyDer::from_pem_file(path)
        .map(|k| k.secret_der().to_vec())
        .map_err(|source| PemError::NoKey {
            path: path.into(),
            source,
        })
}

/// `hearth tls config-lines`: the `config.txt` lines for a CA certificate, a client
/// certificate and key, and a pin of a server certificate, from PEM files.
pub fn config_lines(
    ca: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
    pin_from: Option<&Path>,
) -> Result<String, ConfigLinesError> {
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
        _ => return Err(ConfigLinesError::HalfClientAuth),
    }
    if out.is_empty() {
        return Err(ConfigLinesError::Nothing);
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
        assert!(matches!(client_config(&none), Err(TlsSetupError::NoTrust)));
        let pin = TlsSettings {
            pin: Some([0; 32]),
            ..none.clone()
        };
        assert!(client_config(&pin).is_ok());
        let junk_ca = TlsSettings {
            ca: Some(vec![0x30, 0]),
            ..none
        };
        let e = client_config(&junk_ca).unwrap_err();
        assert!(matches!(e, TlsSetupError::Ca(_)), "{e}");
        assert!(
            e.to_string().contains("CA certificate cannot be used"),
            "{e}"
        );
    }
}
