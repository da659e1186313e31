//! TLS for the broker connection: embedded-tls 0.19 (TLS 1.3, TLS_AES_128_GCM_SHA256, P-256
//! key exchange) over the TCP connection, with the server's certificate verified by
//! `hearth_device::tls` (the one CA of `mqttca`, the host name, the `mqttpin`; ECDSA P-256).
//!
//! - The session (its record buffers and its state) is static and leased to one connection at
//!   a time ([`TlsStream`]); it returns when the connection is dropped, so reconnecting never
//!   allocates, and the socket the runtime moves around is a pointer, not 1.3 KB of state.
//! - Time: the firmware has no wall clock, so certificates are checked against the build time
//!   as a lower bound (`Clock::AtLeast`): a certificate that expired before the firmware was
//!   built is refused; one that expired later, and the "not before" dates, are not checked.
//!   Every handshake logs this.
//! - embedded-tls calls the verifier only for the handshake messages the server sends. TLS 1.3
//!   without a pre-shared key requires a Certificate and a CertificateVerify, but embedded-tls
//!   does not insist on them, so a handshake counts only after the CertificateVerify was
//!   checked here ([`Verifier::authenticated`]).
//! - Randomness (the ephemeral key share and the ClientHello random): the chip's RNG, which is
//!   a true RNG while the Wi-Fi radio runs or the ADC entropy source is on (the Ethernet path
//!   switches it on for good before the network starts); TLS only runs with the network up.

use core::cell::{Cell, UnsafeCell};
use core::mem::MaybeUninit;

use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embedded_tls::{
    Aes128GcmSha256, Certificate, CertificateEntryRef, CertificateRef, CertificateVerifyRef,
    CryptoProvider, SignatureScheme, TlsConfig, TlsConnection, TlsContext, TlsVerifier,
};
use hearth_device::tls::{client_key, verify_server, Clock, Rejection, ServerKey, Trust};
use hearth_device::{TlsError, TlsSettings};

use super::Guarded;
use p256::ecdsa::{DerSignature, SigningKey};
use sha2_010::Digest;

/// The receive record buffer: one whole TLS 1.3 record (2^14 bytes of data + 256 of
/// expansion); the record header is read separately. No maximum fragment length is
/// negotiated, so any broker works.
const RECORD_READ: usize = 16_640;
/// The send record buffer: the runtime's packets are small; longer writes go out as several
/// records.
const RECORD_WRITE: usize = 4096;
/// Certificates the server may send (its own and the intermediates).
const MAX_CHAIN: usize = 6;

/// The firmware's build time (seconds since 1970): the lower bound of the time for the
/// certificates' expiry (`build.rs`).
const BUILD_TIME: u64 = match u64::from_str_radix(env!("HEARTH_BUILD_TIME"), 10) {
    Ok(t) => t,
    Err(_) => panic!("HEARTH_BUILD_TIME is not a number"),
};

/// The TLS session over the broker's TCP connection.
type Session = TlsConnection<'static, Guarded, Aes128GcmSha256>;

/// An open TLS session: the lease of the static session slot. Dropping it drops the session
/// (and with it the TCP connection) and frees the slot.
pub struct TlsStream {
    session: &'static mut Session,
}

impl TlsStream {
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, embedded_tls::TlsError> {
        self.session.read(buf).await
    }

    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, embedded_tls::TlsError> {
        self.session.write(buf).await
    }

    pub async fn flush(&mut self) -> Result<(), embedded_tls::TlsError> {
        self.session.flush().await
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        // SAFETY: `self.session` was initialised by `TlsStream::start` and is dropped exactly
        // once, here; the slot is marked free only afterwards.
        unsafe { core::ptr::drop_in_place(core::ptr::from_mut(self.session)) };
        SLOT.taken.lock(|t| t.set(false));
    }
}

impl TlsStream {
    /// A new session over `socket` in the static slot, or `None` while another holds it.
    fn start(socket: Guarded) -> Option<Self> {
        let free = SLOT.taken.lock(|t| !t.replace(true));
        if !free {
            return None;
        }
        // SAFETY: the flag was clear, so nothing else refers to the slot's cells; everything
        // handed out here lives in this `TlsStream`, whose `Drop` ends their use before the
        // flag is cleared again.
        let (read, write, session) = unsafe {
            (
                &mut *SLOT.read.get(),
                &mut *SLOT.write.get(),
                &mut *SLOT.session.get(),
            )
        };
        let session = session.write(TlsConnection::new(socket, read, write));
        Some(Self { session })
    }
}

/// Runs the TLS handshake over `socket` (already connected to `host`) and verifies the
/// server as `tls` says. Every failure is logged with its reason.
pub async fn open(
    socket: Guarded,
    host: &str,
    tls: &TlsSettings,
    rng: esp_hal::rng::Rng,
) -> Result<TlsStream, TlsError> {
    let client = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some((client_key(key).map_err(|r| fail(host, r))?, &cert[..])),
        (None, None) => None,
        _ => {
            log::warn!("tls: {host}: mqttclientcert and mqttclientkey go together");
            return Err(TlsError::BadConfig);
        }
    };
    let Some(stream) = TlsStream::start(socket) else {
        // One broker connection at a time; the runtime drops the old one before reconnecting.
        log::warn!("tls: {host}: the TLS session is still in use by another connection");
        return Err(TlsError::Handshake);
    };
    log::info!(
        "tls: {host}: no wall clock; certificate expiry is checked against the build time only"
    );
    let mut provider = Provider {
        rng: ChipRng(rng),
        verifier: Verifier {
            trust: Trust {
                server_name: &tls.server_name,
                ca: tls.ca.as_deref(),
                pin: tls.pin.as_ref(),
            },
            clock: Clock::AtLeast(BUILD_TIME),
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
    let result = stream
        .session
        .open(TlsContext::new(&config, &mut provider))
        .await;
    let verifier = &provider.verifier;
    match (result, verifier.rejection) {
        (_, Some(rejection)) => Err(fail(host, rejection)),
        (Ok(()), None) if verifier.authenticated => Ok(stream),
        (Ok(()), None) => Err(fail(
            host,
            Rejection {
                error: TlsError::Handshake,
                reason: "the server did not prove its identity (no CertificateVerify)",
            },
        )),
        (Err(e), None) => {
            let error = classify(e);
            if error == TlsError::Handshake {
                log::warn!(
                    "tls: {host}: {error} ({e:?}; this firmware speaks TLS 1.3 with \
                     AES-128-GCM, P-256 and ECDSA P-256 only)"
                );
            } else {
                log::warn!("tls: {host}: {error} ({e:?})");
            }
            Err(error)
        }
    }
}

fn fail(host: &str, rejection: Rejection) -> TlsError {
    log::warn!(
        "tls: {host}: {} ({})",
        rejection.error.explain(host),
        rejection.reason
    );
    rejection.error
}

/// The user-facing error for an embedded-tls failure that the verifier did not cause.
fn classify(e: embedded_tls::TlsError) -> TlsError {
    use embedded_tls::alert::AlertDescription as A;
    use embedded_tls::TlsError as E;
    match e {
        // The server's alerts about our certificate (or the lack of one).
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
        ) => TlsError::Refused,
        E::InvalidPrivateKey => TlsError::BadConfig,
        // No common version, cipher suite or group (a TLS 1.2-only broker), a peer that is not
        // TLS, a dropped connection.
        _ => TlsError::Handshake,
    }
}

/// The static session: its record buffers, its state, and whether a connection holds it.
struct Slot {
    read: UnsafeCell<[u8; RECORD_READ]>,
    write: UnsafeCell<[u8; RECORD_WRITE]>,
    session: UnsafeCell<MaybeUninit<Session>>,
    taken: Mutex<CriticalSectionRawMutex, Cell<bool>>,
}

// SAFETY: the cells are only reached through `TlsStream::start`, which hands them out to one
// holder at a time (the flag is flipped inside a critical section).
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot {
    read: UnsafeCell::new([0; RECORD_READ]),
    write: UnsafeCell::new([0; RECORD_WRITE]),
    session: UnsafeCell::new(MaybeUninit::uninit()),
    taken: Mutex::new(Cell::new(false)),
};

/// The chip's RNG for embedded-tls (rand_core 0.6).
struct ChipRng(esp_hal::rng::Rng);

impl rand_core::RngCore for ChipRng {
    fn next_u32(&mut self) -> u32 {
        self.0.random()
    }

    fn next_u64(&mut self) -> u64 {
        (u64::from(self.0.random()) << 32) | u64::from(self.0.random())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.read(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.read(dest);
        Ok(())
    }
}

/// A true RNG while the radio or the ADC entropy source runs (see the module's notes).
impl rand_core::CryptoRng for ChipRng {}

struct Provider<'a> {
    rng: ChipRng,
    verifier: Verifier<'a>,
    /// The device's key and certificate (DER), for brokers that ask for one.
    client: Option<(SigningKey, &'a [u8])>,
}

impl CryptoProvider for Provider<'_> {
    type CipherSuite = Aes128GcmSha256;
    type Signature = DerSignature;

    fn rng(&mut self) -> impl embedded_tls::CryptoRngCore {
        &mut self.rng
    }

    fn verifier(
        &mut self,
    ) -> Result<&mut impl TlsVerifier<Aes128GcmSha256>, embedded_tls::TlsError> {
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
            // Only asked after the server requested a certificate and we sent one.
            None => Err(embedded_tls::TlsError::InvalidPrivateKey),
        }
    }

    fn client_cert(&mut self) -> Option<Certificate<impl AsRef<[u8]>>> {
        self.client
            .as_ref()
            .map(|(_, cert)| Certificate::X509(*cert))
    }
}

/// Checks the server's certificates and its handshake signature with `hearth_device::tls`.
struct Verifier<'a> {
    trust: Trust<'a>,
    clock: Clock,
    /// The handshake hash up to the server's Certificate message.
    transcript: Option<sha2_010::Sha256>,
    /// The verified certificate's key.
    key: Option<ServerKey>,
    /// Why the server was refused, for the log and the runtime.
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

impl TlsVerifier<Aes128GcmSha256> for Verifier<'_> {
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
