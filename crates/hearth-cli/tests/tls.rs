//! MQTT over TLS against a real mosquitto with TLS, a password file and an ACL, using a
//! throw-away PKI made by the test (rcgen): simulated devices (`hearth sim`) and the fleet
//! commands connect with the right CA, pin and credentials, and refuse a server certificate
//! from another CA, an expired one and one for another host name, never falling back to plain
//! MQTT; the MQTT failure policy still reboots a device whose handshakes keep failing.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_fleet::client::{BrokerArgs, Client, FleetError, TlsArgs};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use support::{free_port, tool, wait_until, Sim, TempDir, HEARTH};

const T: Duration = Duration::from_secs(5);
const ADMIN_PASSWORD: &str = "admin-secret";

/// A certificate and its key, as PEM files.
struct Pem {
    cert: PathBuf,
    key: PathBuf,
}

/// The test's PKI: a CA, certificates it issues, and a second CA nobody trusts.
struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    other_ca: CertifiedIssuer<'static, KeyPair>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

impl Pki {
    fn new() -> Self {
        let dir = TempDir::new("pki");
        let pki = Self {
            dir,
            ca: ca("Hearth test CA"),
            other_ca: ca("Somebody else's CA"),
        };
        std::fs::write(pki.ca_pem(), pki.ca.pem()).expect("write CA");
        std::fs::write(pki.other_ca_pem(), pki.other_ca.pem()).expect("write CA");
        pki
    }

    fn ca_pem(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }

    fn other_ca_pem(&self) -> PathBuf {
        self.dir.0.join("other-ca.pem")
    }

    /// A certificate for `names` (DNS names or IP addresses), issued by our CA or the other
    /// one, valid from `from` to `until` (years).
    fn issue(&self, file: &str, names: &[&str], other_ca: bool, years: (i32, i32)) -> Pem {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, file);
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        let key = KeyPair::generate().expect("key");
        let issuer = if other_ca { &self.other_ca } else { &self.ca };
        let cert = params.signed_by(&key, issuer).expect("sign");
        let pem = Pem {
            cert: self.dir.0.join(format!("{file}.pem")),
            key: self.dir.0.join(format!("{file}.key")),
        };
        std::fs::write(&pem.cert, cert.pem()).expect("write cert");
        std::fs::write(&pem.key, key.serialize_pem()).expect("write key");
        pem
    }

    /// A valid server certificate for 127.0.0.1 and localhost.
    fn server(&self) -> Pem {
        self.issue("server", &["127.0.0.1", "localhost"], false, (2020, 2200))
    }

    /// `hearth tls config-lines` for these files.
    fn config_lines(&self, args: &[&str]) -> String {
        let out = Command::new(HEARTH)
            .args(["tls", "config-lines"])
            .args(args)
            .output()
            .expect("run hearth tls config-lines");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

/// What the broker demands of clients.
struct Auth {
    /// Device users (name = password + "-pw"), plus `admin`.
    users: Vec<&'static str>,
    /// Require a client certificate signed by the CA.
    require_certificate: bool,
}

/// mosquitto with one TLS listener, a password file and the per-device ACL of docs/TLS.md.
struct TlsBroker {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl TlsBroker {
    fn start(ca: &Path, server: &Pem, auth: &Auth) -> Self {
        let port = free_port();
        let dir = TempDir::new("tls-broker");
        let passwd = dir.0.join("passwd");
        let mut first = true;
        for (user, password) in auth
            .users
            .iter()
            .map(|u| (*u, format!("{u}-pw")))
            .chain([("admin", ADMIN_PASSWORD.to_string())])
        {
            let mut cmd = Command::new(tool("mosquitto_passwd"));
            cmd.arg("-b");
            if first {
                cmd.arg("-c");
                first = false;
            }
            let status = cmd
                .arg(&passwd)
                .args([user, &password])
                .status()
                .expect("run mosquitto_passwd");
            assert!(status.success(), "mosquitto_passwd failed");
        }
        let acl = dir.0.join("acl");
        std::fs::write(
            &acl,
            "user admin\ntopic readwrite #\n\n\
             pattern write stat/%u/#\npattern write tele/%u/#\npattern read cmnd/%u/#\n\
             pattern write homeassistant/+/%u/#\npattern read homeassistant/status\npattern read homeassistant/+/%u/+/config\n",
        )
        .expect("write acl");
        let conf = dir.0.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                 require_certificate {}\nallow_anonymous false\npassword_file {}\nacl_file {}\n\
                 persistence false\nlog_dest stderr\nlog_type all\n",
                ca.display(),
                server.cert.display(),
                server.key.display(),
                auth.require_certificate,
                passwd.display(),
                acl.display()
            ),
        )
        .expect("write mosquitto.conf");
        let log = std::fs::File::create(dir.0.join("mosquitto.log")).expect("log");
        let child = Command::new(tool("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        let b = Self {
            port,
            child: Some(child),
            dir,
        };
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "mosquitto did not start listening on {port}:\n{}",
            b.log()
        );
        b
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("mosquitto.log")).unwrap_or_default()
    }

    /// Fleet-client arguments for `user` over TLS with `ca`.
    fn args(&self, ca: &Path, user: &str, password: &str) -> BrokerArgs {
        BrokerArgs {
            host: "127.0.0.1".into(),
            port: self.port,
            user: Some(user.into()),
            password: Some(password.into()),
            tls: Some(TlsArgs {
                ca: Some(ca.into()),
                ..TlsArgs::default()
            }),
        }
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A device config for `mqtts://HOST:PORT` with fast failure timings and `extra` lines.
fn device_config(name: &str, host: &str, port: u16, extra: &str) -> String {
    format!(
        "profile weather\nssid Test Network\npassword test-passphrase\n\
         mqttbroker mqtts://{host}:{port}\nmqttname {name}\nstartdelay 0\nwdgrace 0\n\
         mqttkeepalive 5\nmqttbackoffms 200\nmqttbackoffmaxms 2000\nnetretry 1\nnetretryfudge 1\n\
         netconnecttimeout 5\n{extra}"
    )
}

fn login(user: &str) -> String {
    format!("mqttuser {user}\nmqttpassword {user}-pw\n")
}

/// Watch everything as `admin`; returns the messages seen within `limit` that match.
fn watch_until(
    client: &mut Client,
    limit: Duration,
    mut done: impl FnMut(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    let end = Instant::now() + limit;
    let mut seen = Vec::new();
    while Instant::now() < end && !done(&seen) {
        if let Some(m) = client
            .recv(Duration::from_millis(200))
            .expect("admin connection")
        {
            seen.push((m.topic, String::from_utf8_lossy(&m.payload).into_owned()));
        }
    }
    seen
}

#[test]
fn devices_connect_with_the_ca_or_the_pin_and_credentials() {
    let pki = Pki::new();
    let server = pki.server();
    let broker = TlsBroker::start(
        &pki.ca_pem(),
        &server,
        &Auth {
            users: vec!["dev1", "dev2"],
            require_certificate: false,
        },
    );
    let ca_line = pki.config_lines(&["--ca", pki.ca_pem().to_str().expect("path")]);
    let pin_line = pki.config_lines(&["--pin-from", server.cert.to_str().expect("path")]);
    assert!(
        ca_line.starts_with("mqttca MII") && ca_line.ends_with('\n'),
        "{ca_line}"
    );
    assert!(
        pin_line.starts_with("mqttpin ") && pin_line.len() == 8 + 64 + 1,
        "{pin_line}"
    );

    let mut admin = Client::connect(
        &broker.args(&pki.ca_pem(), "admin", ADMIN_PASSWORD),
        "admin-watch",
        T,
    )
    .expect("admin connects over TLS");
    admin.subscribe("#").expect("subscribe");

    // dev1 trusts the CA (chain, expiry, host name 127.0.0.1); dev2 pins the server key and
    // checks the host name "localhost".
    let dev1 = Sim::start(&device_config(
        "dev1",
        "127.0.0.1",
        broker.port,
        &format!("{}{ca_line}", login("dev1")),
    ));
    let dev2 = Sim::start(&device_config(
        "dev2",
        "localhost",
        broker.port,
        &format!("{}{pin_line}", login("dev2")),
    ));
    let seen = watch_until(&mut admin, Duration::from_secs(20), |seen| {
        ["dev1", "dev2"].iter().all(|d| {
            seen.iter()
                .any(|(t, p)| t == &format!("tele/{d}/LWT") && p == "Online")
                && seen
                    .iter()
                    .any(|(t, _)| t == &format!("stat/{d}/RebootReason"))
        })
    });
    for (d, sim) in [("dev1", &dev1), ("dev2", &dev2)] {
        assert!(
            seen.iter()
                .any(|(t, p)| t == &format!("tele/{d}/LWT") && p == "Online"),
            "{d} not online over TLS: {seen:?}\n{}\n{}",
            sim.dump(),
            broker.log()
        );
        assert!(
            seen.iter()
                .any(|(t, _)| t == &format!("stat/{d}/RebootReason")),
            "{d}: {seen:?}"
        );
        assert!(sim.log().contains("mqtt connected"), "{}", sim.dump());
        assert!(!sim.log().contains("tls:"), "{}", sim.dump());
        // The secrets never reach the log.
        assert!(!sim.log().contains(&format!("{d}-pw")), "{}", sim.dump());
    }
    // Discovery is allowed by the ACL for the device's own name.
    assert!(
        seen.iter()
            .any(|(t, _)| t.starts_with("homeassistant/") && t.contains("/dev1/")),
        "{seen:?}"
    );
    // The ACL lets a device hear Home Assistant's birth message: it announces itself again.
    let before = seen.len();
    admin
        .publish("homeassistant/status", b"online", false)
        .expect("birth message");
    let again = watch_until(&mut admin, Duration::from_secs(15), |seen| {
        seen.iter()
            .any(|(t, p)| t == "tele/dev1/LWT" && p == "Online")
    });
    assert!(
        again
            .iter()
            .any(|(t, p)| t == "tele/dev1/LWT" && p == "Online"),
        "no answer to the birth message after {before} messages: {again:?}\n{}",
        broker.log()
    );
    admin.disconnect();
}

#[test]
fn devices_refuse_bad_server_certificates_and_never_fall_back() {
    let pki = Pki::new();
    let auth = || Auth {
        users: vec!["dev"],
        require_certificate: false,
    };
    let other = pki.issue("other", &["127.0.0.1", "localhost"], true, (2020, 2200));
    let expired = pki.issue("expired", &["127.0.0.1", "localhost"], false, (2001, 2002));
    let wrong_name = pki.issue("wrong-name", &["mqtt.example"], false, (2020, 2200));
    let ca_line = pki.config_lines(&["--ca", pki.ca_pem().to_str().expect("path")]);
    let wrong_pin = format!("mqttpin {}\n", "00".repeat(32));
    let good = pki.server();
    let cases = [
        (
            &other,
            "127.0.0.1",
            ca_line.clone(),
            "tls: unknown CA".to_string(),
        ),
        (
            &expired,
            "127.0.0.1",
            ca_line.clone(),
            "tls: certificate expired".to_string(),
        ),
        (
            &wrong_name,
            "localhost",
            ca_line.clone(),
            "tls: certificate not valid for host \"localhost\"".to_string(),
        ),
        (
            &good,
            "127.0.0.1",
            format!("{ca_line}{wrong_pin}"),
            "tls: server key does not match the pin".to_string(),
        ),
    ];
    let running: Vec<_> = cases
        .iter()
        .map(|(cert, host, lines, expect)| {
            let broker = TlsBroker::start(&pki.ca_pem(), cert, &auth());
            let sim = Sim::start(&device_config(
                "dev",
                host,
                broker.port,
                &format!("{}{lines}", login("dev")),
            ));
            (broker, sim, expect)
        })
        .collect();
    for (broker, sim, expect) in &running {
        assert!(
            sim.wait_log_count(expect, 2, Duration::from_secs(20)),
            "expected {expect:?} twice\n{}\n{}",
            sim.dump(),
            broker.log()
        );
        let log = sim.log();
        assert!(
            log.contains(&format!("mqtt connect failed: {expect}")),
            "{log}"
        );
        assert!(!log.contains("mqtt connected"), "{log}");
        // The broker saw TLS handshakes fail, never an MQTT CONNECT in the clear.
        assert!(
            !broker.log().contains("New client connected"),
            "{}",
            broker.log()
        );
    }
}

#[test]
fn the_broker_refuses_devices_without_credentials_or_certificate() {
    let pki = Pki::new();
    let server = pki.server();
    let ca_line = pki.config_lines(&["--ca", pki.ca_pem().to_str().expect("path")]);
    let broker = TlsBroker::start(
        &pki.ca_pem(),
        &server,
        &Auth {
            users: vec!["dev1"],
            require_certificate: false,
        },
    );
    let anonymous = Sim::start(&device_config("dev1", "127.0.0.1", broker.port, &ca_line));
    let wrong = Sim::start(&device_config(
        "dev1",
        "127.0.0.1",
        broker.port,
        &format!("mqttuser dev1\nmqttpassword nope\n{ca_line}"),
    ));
    for sim in [&anonymous, &wrong] {
        assert!(
            sim.wait_log_count("mqtt connect failed: connect", 2, Duration::from_secs(20)),
            "{}\n{}",
            sim.dump(),
            broker.log()
        );
        assert!(!sim.log().contains("mqtt connected"), "{}", sim.dump());
        assert!(
            !sim.log().contains("tls:"),
            "TLS itself was fine: {}",
            sim.dump()
        );
    }
    // The fleet commands: no login is refused as well.
    let mut args = broker.args(&pki.ca_pem(), "x", "y");
    args.user = None;
    args.password = None;
    let err = Client::connect(&args, "anon", T).err().expect("refused");
    assert!(matches!(err, FleetError::Refused { .. }), "{err:?}");

    // A broker that requires a client certificate: only the device with one gets in.
    let mtls = TlsBroker::start(
        &pki.ca_pem(),
        &server,
        &Auth {
            users: vec!["dev1", "dev2"],
            require_certificate: true,
        },
    );
    let client = pki.issue("dev1-client", &["dev1.devices"], false, (2020, 2200));
    let identity = pki.config_lines(&[
        "--client-cert",
        client.cert.to_str().expect("path"),
        "--client-key",
        client.key.to_str().expect("path"),
    ]);
    assert!(identity.contains("mqttclientcert MII") && identity.contains("\nmqttclientkey "));
    let with_cert = Sim::start(&device_config(
        "dev1",
        "127.0.0.1",
        mtls.port,
        &format!("{}{ca_line}{identity}", login("dev1")),
    ));
    let without = Sim::start(&device_config(
        "dev2",
        "127.0.0.1",
        mtls.port,
        &format!("{}{ca_line}", login("dev2")),
    ));
    assert!(
        with_cert.wait_log("mqtt connected", Duration::from_secs(20)),
        "{}\n{}",
        with_cert.dump(),
        mtls.log()
    );
    assert!(
        without.wait_log_count("mqtt connect failed", 2, Duration::from_secs(20)),
        "{}",
        without.dump()
    );
    assert!(
        !without.log().contains("mqtt connected"),
        "{}",
        without.dump()
    );
    // The client key never reaches the log.
    let key_b64 = identity
        .lines()
        .find_map(|l| l.strip_prefix("mqttclientkey "))
        .expect("key line");
    assert!(!with_cert.log().contains(key_b64));
}

#[test]
fn the_acl_keeps_a_device_to_its_own_topics() {
    let pki = Pki::new();
    let server = pki.server();
    let broker = TlsBroker::start(
        &pki.ca_pem(),
        &server,
        &Auth {
            users: vec!["dev1", "dev2"],
            require_certificate: false,
        },
    );
    let mut admin = Client::connect(
        &broker.args(&pki.ca_pem(), "admin", ADMIN_PASSWORD),
        "admin-watch",
        T,
    )
    .expect("admin");
    admin.subscribe("#").expect("subscribe");
    let mut dev1 = Client::connect(&broker.args(&pki.ca_pem(), "dev1", "dev1-pw"), "dev1-x", T)
        .expect("dev1 logs in");
    dev1.publish("stat/dev2/Temperature", b"99", false)
        .expect("send");
    dev1.publish("tele/dev2/LWT", b"Offline", false)
        .expect("send");
    dev1.publish("cmnd/dev2/OTA", b"reboot", false)
        .expect("send");
    dev1.publish("stat/dev1/Temperature", b"21", false)
        .expect("send");
    let seen = watch_until(&mut admin, Duration::from_secs(3), |seen| {
        seen.iter().any(|(t, _)| t == "stat/dev1/Temperature")
    });
    // Give anything that slipped through a moment to arrive.
    let more = watch_until(&mut admin, Duration::from_millis(700), |_| false);
    let all: Vec<_> = seen.into_iter().chain(more).collect();
    assert!(
        all.iter()
            .any(|(t, p)| t == "stat/dev1/Temperature" && p == "21"),
        "own topic: {all:?}\n{}",
        broker.log()
    );
    assert!(
        !all.iter().any(|(t, _)| t.contains("/dev2/")),
        "dev1 wrote dev2's topics: {all:?}"
    );
    // A device that calls itself dev2 but logs in as dev1 publishes nothing anyone sees.
    let impostor = Sim::start(&device_config(
        "dev2",
        "127.0.0.1",
        broker.port,
        &format!(
            "{}{}",
            login("dev1"),
            pki.config_lines(&["--ca", pki.ca_pem().to_str().expect("path")])
        ),
    ));
    assert!(
        impostor.wait_log("mqtt connect failed: subscr", Duration::from_secs(15))
            || impostor.wait_log("mqtt connected", Duration::from_secs(5)),
        "{}",
        impostor.dump()
    );
    let later = watch_until(&mut admin, Duration::from_secs(3), |_| false);
    assert!(
        !later.iter().any(|(t, _)| t.contains("/dev2/")),
        "the impostor reached dev2's topics: {later:?}"
    );
    dev1.disconnect();
    admin.disconnect();
}

#[test]
fn repeated_handshake_failures_reboot_the_device() {
    let pki = Pki::new();
    let other = pki.issue("other", &["127.0.0.1"], true, (2020, 2200));
    let broker = TlsBroker::start(
        &pki.ca_pem(),
        &other,
        &Auth {
            users: vec!["dev"],
            require_certificate: false,
        },
    );
    let ca_line = pki.config_lines(&["--ca", pki.ca_pem().to_str().expect("path")]);
    let start = Instant::now();
    let sim = Sim::start(&device_config(
        "dev",
        "127.0.0.1",
        broker.port,
        &format!("{}{ca_line}mqttreboot 60\n", login("dev")),
    ));
    assert!(
        sim.wait_log(
            "rebooting: mqtt: no broker for too long",
            Duration::from_secs(90)
        ),
        "{}",
        sim.dump()
    );
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(59), "rebooted after {took:?}");
    let log = sim.log();
    let head = &log[..log
        .find("rebooting: mqtt: no broker for too long")
        .unwrap_or(log.len())];
    let failures = head.matches("mqtt connect failed: tls: unknown CA").count();
    // Back-off 200 ms × 1.5 capped at 2 s (plus jitter and re-association) over 60 s: tens
    // of attempts, not thousands, and every one failed on the certificate.
    assert!((10..=120).contains(&failures), "{failures} failures\n{log}");
    assert!(!head.contains("mqtt connected"), "{log}");
    assert!(
        sim.wait_log(
            "reason: mqtt: no broker for too long",
            Duration::from_secs(15)
        ),
        "{}",
        sim.dump()
    );
}

#[test]
fn hearth_mon_speaks_tls_and_names_a_wrong_ca() {
    let pki = Pki::new();
    let server = pki.server();
    let broker = TlsBroker::start(
        &pki.ca_pem(),
        &server,
        &Auth {
            users: vec![],
            require_certificate: false,
        },
    );
    let mon = |ca: &Path| {
        Command::new(HEARTH)
            .args(["mon", "--for", "1", "--user", "admin", "--password"])
            .arg(ADMIN_PASSWORD)
            .arg("--broker")
            .arg(format!("mqtts://127.0.0.1:{}", broker.port))
            .arg("--ca")
            .arg(ca)
            .env_remove("HEARTH_BROKER")
            .env_remove("HEARTH_CA")
            .env_remove("HEARTH_PIN")
            .output()
            .expect("run hearth mon")
    };
    let ok = mon(&pki.ca_pem());
    let err = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{err}\n{}", broker.log());
    assert!(err.contains("subscribed to #"), "{err}");
    let bad = mon(&pki.other_ca_pem());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "TLS with 127.0.0.1:{} failed: unknown CA",
            broker.port
        )),
        "{err}"
    );
    // `cmd` takes the same options, and with --tls and a pin instead of a CA.
    let pin = pki
        .config_lines(&["--pin-from", server.cert.to_str().expect("path")])
        .trim()
        .trim_start_matches("mqttpin ")
        .to_string();
    let out = Command::new(HEARTH)
        .args([
            "mon", "--for", "1", "--tls", "--pin", &pin, "--user", "admin",
        ])
        .args(["--password", ADMIN_PASSWORD, "--broker"])
        .arg(format!("localhost:{}", broker.port))
        .env_remove("HEARTH_BROKER")
        .output()
        .expect("run hearth mon");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(HEARTH)
        .args(["mon", "--for", "1", "--tls", "--pin", &"00".repeat(32)])
        .arg("--broker")
        .arg(format!("127.0.0.1:{}", broker.port))
        .env_remove("HEARTH_BROKER")
        .output()
        .expect("run hearth mon");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("server key does not match the pin"), "{err}");
}
