//! The TLS 1.3 handshake with embedded-tls (feature `embedded-tls`), verified by
//! [`crate::tls`]: what the firmware runs over its TCP socket, and what the host tests run
//! against a rustls server.
//!
//! embedded-tls calls the verifier only for the handshake messages the server sends. TLS 1.3
//! without a pre-shared key requires a Certificate and a CertificateVerify, but embedded-tls
//! does not insist on them, so [`handshake`] accepts a session only after the CertificateVerify
//! was checked with the verified certificate's key.

use embedded_io_async::{Read, Write};
use embedded_tls::{
    Aes128GcmSha256, Certificate, CertificateEntryRef, CertificateRef, CertificateVerifyRef,
    CryptoProvider, CryptoRngCore, SignatureScheme, TlsConfig, TlsConnection, TlsContext,
    TlsVerifier,
};
use p256::ecdsa::{DerSignature, SigningKey};
use sha2_010::Digest;

use crate::tls::{client_key, verify_server, Clock, Rejection, ServerKey, Trust};
use hearth_platform::TlsError;
use hearth_platform::TlsSettings;

/// The one cipher suite: TLS_AES_128_GCM_SHA256.
pub type Suite = Aes128GcmSha256;

/// Certificates the server may send (its own and the intermediates).
const MAX_CHAIN: usize = 6;

/// Runs the handshake on `connection` (new, over a connected socket) and verifies the server
/// as `tls` says, at the time `clock`. The error says what failed, for the log.
pub async fn handshake<S: Read + Write>(
    connection: &mut TlsConnection<'_, S, Suite>,
    tls: &TlsSettings,
    clock: Clock,
    rng: impl CryptoRngCore,
) -> Result<(), Rejection> {
    let client = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some((client_key(key)?, &cert[..])),
        (None, None) => None,
        _ => {
            return Err(Rejection {
                error: TlsError::BadConfig,
                reason: "mqttclientcert and mqttclientkey go together",
            })
        }
    };
    let mut provider = Provider {
        rng,
        verifier: Verifier {
            trust: Trust {
                server_name: &tls.server_name,
                ca: tls.ca.as_deref(),
                pin: tls.pin.as_ref(),
            },
            clock,
            transcript: None,
            key: None,
            rejection: None,
            authenticated: false,
        },
        client,
    };
    // Server Name Indication carries DNS names only (RFC 6066); an IP address is checked
    // against the certificate all the same.
    let config = if tls.server_name.parse::<core::net::IpAddr>().is_ok() {
        TlsConfig::new()
    } else {
        TlsConfig::new().with_server_name(&tls.server_name)
    };
    let result = connection
        .open(TlsContext::new(&config, &mut provider))
        .await;
    let verifier = &provider.verifier;
    match (result, verifier.rejection) {
        (_, Some(rejection)) => Err(rejection),
        (Ok(()), None) if verifier.authenticated => Ok(()),
        (Ok(()), None) => Err(Rejection {
            error: TlsError::Handshake,
            reason: "the server did not prove its identity (no CertificateVerify)",
        }),
        (Err(e), None) => Err(classify(e)),
    }
}

/// The user-facing error for an embedded-tls failure that the verifier did not cause.
pub fn classify(e: embedded_tls::TlsError) -> Rejection {
    use embedded_tls::alert::AlertDescription as A;
    use embedded_tls::TlsError as E;
    match e {
        E::HandshakeAborted(
            _,
            A::CertificateRequired
            | A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCa
            | A::AccessDenied,
        ) => Rejection {
            error: TlsError::Refused,
            reason: "the server sent an alert about the client's certificate",
        },
        E::HandshakeAborted(..) => Rejection {
            error: TlsError::Handshake,
            reason: "the server aborted the handshake; this device speaks TLS 1.3 with \
                     AES-128-GCM, P-256 and ECDSA P-256 only",
        },
        E::Io(_) | E::ConnectionClosed => Rejection {
            error: TlsError::Handshake,
            reason: "the connection failed during the handshake",
        },
        _ => Rejection {
            error: TlsError::Handshake,
            reason: "the server's handshake was not understood (not TLS 1.3?)",
        },
    }
}

struct Provider<'a, R> {
    rng: R,
    verifier: Verifier<'a>,
    /// The device's key and certificate (DER), for brokers that ask for one.
    client: Option<(SigningKey, &'a [u8])>,
}

impl<R: CryptoRngCore> CryptoProvider for Provider<'_, R> {
    type CipherSuite = Suite;
    type Signature = DerSignature;

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Suite>, embedded_tls::TlsError> {
        Ok(&mut self.verifier)
    }

    fn signer(
        &mut self,
    ) -> Result<
        (
            impl p256::ecdsa::signature::SignerMut<DerSignature>,
            SignatureScheme,
        ),
        embedded_tls::TlsError,
    > {
        match &self.client {
            Some((key, _)) => Ok((key.clone(), SignatureScheme::EcdsaSecp256r1Sha256)),
            // Only asked after the server requested a certificate and one was sent.
            None => Err(embedded_tls::TlsError::InvalidPrivateKey),
        }
    }

    fn client_cert(&mut self) -> Option<Certificate<impl AsRef<[u8]>>> {
        self.client
            .as_ref()
            .map(|(_, cert)| Certificate::X509(*cert))
    }
}

/// Checks the server's certificates and its handshake signature with [`crate::tls`].
struct Verifier<'a> {
    trust: Trust<'a>,
    clock: Clock,
    /// The handshake hash up to the server's Certificate message.
    transcript: Option<sha2_010::Sha256>,
    /// The verified certificate's key.
    key: Option<ServerKey>,
    /// Why the server was refused.
    rejection: Option<Rejection>,
    /// The server's CertificateVerify was checked with its verified certificate's key.
    authenticated: bool,
}

impl Verifier<'_> {
    fn refuse(&mut self, rejection: Rejection) -> embedded_tls::TlsError {
        self.rejection = Some(rejection);
        self.authenticated = false;
        embedded_tls::TlsError::InvalidCertificate
    }
}

impl TlsVerifier<Suite> for Verifier<'_> {
    fn set_hostname_verification(&mut self, _hostname: &str) -> Result<(), embedded_tls::TlsError> {
        // The name is `trust.server_name`, checked in `verify_certificate`.
        Ok(())
    }

    fn verify_certificate(
        &mut self,
        transcript: &sha2_010::Sha256,
        certificate: CertificateRef,
    ) -> Result<(), embedded_tls::TlsError> {
        self.authenticated = false;
        self.key = None;
        let mut chain: [&[u8]; MAX_CHAIN] = [&[]; MAX_CHAIN];
        let mut n = 0;
        for entry in &certificate.entries {
            let CertificateEntryRef::X509(der) = entry else {
                return Err(self.refuse(Rejection {
                    error: TlsError::BadCertificate,
                    reason: "the server sent a raw public key, not a certificate",
                }));
            };
            if n == MAX_CHAIN {
                return Err(self.refuse(Rejection {
                    error: TlsError::UnknownCa,
                    reason: "the server sent more certificates than this device accepts",
                }));
            }
            chain[n] = der;
            n += 1;
        }
        match verify_server(&chain[..n], &self.trust, self.clock) {
            Ok(key) => {
                self.key = Some(key);
                self.transcript = Some(transcript.clone());
                Ok(())
            }
            Err(rejection) => Err(self.refuse(rejection)),
        }
    }

    fn verify_signature(
        &mut self,
        verify: CertificateVerifyRef,
    ) -> Result<(), embedded_tls::TlsError> {
        let (Some(key), Some(transcript)) = (self.key.take(), self.transcript.take()) else {
            return Err(self.refuse(Rejection {
                error: TlsError::Handshake,
                reason: "CertificateVerify without a verified certificate",
            }));
        };
        let hash: [u8; 32] = transcript.finalize().into();
        match key.verify_handshake(verify.signature_scheme.as_u16(), verify.signature, &hash) {
            Ok(()) => {
                self.authenticated = true;
                Ok(())
            }
            Err(rejection) => Err(self.refuse(rejection)),
        }
    }
}
