//! The firmware's TLS client path (`hearth_device::tls_client`: embedded-tls plus our
//! verifier) against a real TLS server on loopback: rustls with rcgen certificates. What the
//! chip runs, minus the chip: the same handshake code, the same record buffer sizes, over a
//! blocking std socket instead of embassy-net.
#![cfg(feature = "embedded-tls")]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use embassy_futures::block_on;
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use embedded_tls::TlsConnection;
use hearth_device::tls::Clock;
use hearth_device::tls_client::{handshake, Suite};
use hearth_platform::{TlsError, TlsSettings};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A blocking std socket as an embedded-io-async transport (the test's stand-in for
/// embassy-net's `TcpSocket`).
struct Blocking(TcpStream);

impl ErrorType for Blocking {
    type Error = ErrorKind;
}

impl Read for Blocking {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.read(buf).map_err(|_| ErrorKind::ConnectionReset)
    }
}

impl Write for Blocking {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.write(buf).map_err(|_| ErrorKind::ConnectionReset)
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.flush().map_err(|_| ErrorKind::ConnectionReset)
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// A certificate and its PKCS#8 key, issued by `issuer`.
fn issue(
    names: &[&str],
    issuer: &CertifiedIssuer<'static, KeyPair>,
    eku: ExtendedKeyUsagePurpose,
) -> (Vec<u8>, Vec<u8>) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("params");
    params.distinguished_name.push(DnType::CommonName, "test");
    params.extended_key_usages = vec![eku];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("sign");
    (cert.der().to_vec(), key.serialize_der())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct ServerOptions {
    /// Only TLS 1.2 (the chip must refuse to talk).
    tls12_only: bool,
    /// Demand a client certificate signed by this CA.
    client_ca: Option<Vec<u8>>,
}

/// A TLS server for one connection that echoes one message. Returns its port and a handle
/// whose result says whether the session worked.
fn serve(
    cert: (Vec<u8>, Vec<u8>),
    options: ServerOptions,
) -> (u16, JoinHandle<Result<(), String>>) {
    let versions: &[&rustls::SupportedProtocolVersion] = if options.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions");
    let builder = match options.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(ca)).expect("root");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.into(),
                provider(),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(
            vec![CertificateDer::from(cert.0)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.1)),
        )
        .expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let (socket, _) = listener.accept().map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let connection =
            rustls::ServerConnection::new(Arc::new(config)).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(connection, socket);
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).map_err(|e| e.to_string())?;
        tls.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
        Ok(())
    });
    (port, handle)
}

fn plain_server(cert: (Vec<u8>, Vec<u8>)) -> (u16, JoinHandle<Result<(), String>>) {
    serve(
        cert,
        ServerOptions {
            tls12_only: false,
            client_ca: None,
        },
    )
}

fn settings(name: &str, ca: Option<&[u8]>, pin: Option<[u8; 32]>) -> TlsSettings {
    TlsSettings {
        server_name: name.into(),
        ca: ca.map(<[u8]>::to_vec),
        pin,
        client_cert: None,
        client_key: None,
    }
}

fn now() -> Clock {
    Clock::Now(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
}

/// Connects, runs the handshake with the chip's buffer sizes and, when it succeeds, sends
/// "ping" and expects it back.
fn client(port: u16, tls: &TlsSettings) -> Result<(), TlsError> {
    let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut read = vec![0u8; 16_640];
    let mut write = vec![0u8; 4096];
    let mut session: TlsConnection<'_, Blocking, Suite> =
        TlsConnection::new(Blocking(socket), &mut read, &mut write);
    block_on(async {
        handshake(&mut session, tls, now(), rand_core::OsRng)
            .await
            .map_err(|r| {
                eprintln!("refused: {r}");
                r.error
            })?;
        session
            .write(b"ping")
            .await
            .map_err(|_| TlsError::Handshake)?;
        session.flush().await.map_err(|_| TlsError::Handshake)?;
        let mut buf = [0u8; 16];
        let n = session
            .read(&mut buf)
            .await
            .map_err(|_| TlsError::Refused)?;
        assert_eq!(&buf[..n], b"ping");
        Ok(())
    })
}

#[test]
fn a_broker_of_the_ca_is_reached_by_name_and_by_address() {
    let ca = ca("Hearth test CA");
    for host in ["localhost", "127.0.0.1"] {
        let cert = issue(
            &["localhost", "127.0.0.1"],
            &ca,
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (port, server) = plain_server(cert);
        client(port, &settings(host, Some(ca.der()), None)).expect(host);
        server.join().expect("thread").expect("server side");
    }
}

#[test]
fn a_pinned_key_is_enough_and_another_is_refused() {
    let ca = ca("Hearth test CA");
    let cert = issue(&["localhost"], &ca, ExtendedKeyUsagePurpose::ServerAuth);
    let pin = hearth_device::tls::spki_sha256(&cert.0).expect("pin");
    let (port, server) = plain_server(cert.clone());
    client(port, &settings("localhost", None, Some(pin))).expect("pin only");
    server.join().expect("thread").expect("server side");

    let (port, _server) = plain_server(cert);
    assert_eq!(
        client(port, &settings("localhost", Some(ca.der()), Some([1; 32]))),
        Err(TlsError::PinMismatch)
    );
}

#[test]
fn wrong_host_and_unknown_ca_are_refused() {
    let ca = ca("Hearth test CA");
    let cert = issue(&["mqtt.lan"], &ca, ExtendedKeyUsagePurpose::ServerAuth);
    let (port, _server) = plain_server(cert);
    assert_eq!(
        client(port, &settings("localhost", Some(ca.der()), None)),
        Err(TlsError::WrongHost)
    );

    let other = self::ca("Somebody else's CA");
    let cert = issue(&["localhost"], &other, ExtendedKeyUsagePurpose::ServerAuth);
    let (port, _server) = plain_server(cert);
    assert_eq!(
        client(port, &settings("localhost", Some(ca.der()), None)),
        Err(TlsError::UnknownCa)
    );
}

#[test]
fn a_tls12_only_broker_is_a_handshake_failure() {
    let ca = ca("Hearth test CA");
    let cert = issue(&["localhost"], &ca, ExtendedKeyUsagePurpose::ServerAuth);
    let (port, _server) = serve(
        cert,
        ServerOptions {
            tls12_only: true,
            client_ca: None,
        },
    );
    assert_eq!(
        client(port, &settings("localhost", Some(ca.der()), None)),
        Err(TlsError::Handshake)
    );
}

#[test]
fn client_certificates() {
    let ca = ca("Hearth test CA");
    let devices = self::ca("Device CA");
    let device = issue(&["balcony"], &devices, ExtendedKeyUsagePurpose::ClientAuth);

    // Shown when asked: the broker accepts the device.
    let cert = issue(&["localhost"], &ca, ExtendedKeyUsagePurpose::ServerAuth);
    let (port, server) = serve(
        cert.clone(),
        ServerOptions {
            tls12_only: false,
            client_ca: Some(devices.der().to_vec()),
        },
    );
    let mut tls = settings("localhost", Some(ca.der()), None);
    tls.client_cert = Some(device.0.clone());
    tls.client_key = Some(device.1.clone());
    client(port, &tls).expect("with a client certificate");
    server.join().expect("thread").expect("server side");

    // Without one, the broker refuses. In TLS 1.3 the client finishes its side of the
    // handshake before the server's verdict arrives, so the refusal shows on the first read.
    let (port, server) = serve(
        cert,
        ServerOptions {
            tls12_only: false,
            client_ca: Some(devices.der().to_vec()),
        },
    );
    let refused = client(port, &settings("localhost", Some(ca.der()), None));
    assert!(
        matches!(refused, Err(TlsError::Refused | TlsError::Handshake)),
        "{refused:?}"
    );
    assert!(server.join().expect("thread").is_err());

    // Half a client identity is the config's fault.
    let mut half = settings("localhost", Some(ca.der()), None);
    half.client_cert = Some(device.0);
    assert_eq!(client_without_server(&half), Err(TlsError::BadConfig));
}

/// The handshake against a socket nobody answers on, for errors found before sending.
fn client_without_server(tls: &TlsSettings) -> Result<(), TlsError> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    client(port, tls)
}
