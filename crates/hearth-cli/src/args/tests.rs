use super::*;

use hearth_fleet::client::TlsArgs;
use hearth_sim::espnow_tool::{Command as Espnow, FrameArgs, Payload};

/// Parse `line` (words split at spaces) with the environment `vars`.
fn pe(line: &str, vars: &[(&str, &str)]) -> Result<Run, String> {
    let words = std::iter::once("hearth").chain(line.split_whitespace());
    let cli = Cli::try_parse_from(words).map_err(|e| e.to_string())?;
    cli.check(&|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .map_err(|e| e.to_string())
}

fn p(line: &str) -> Result<Run, String> {
    pe(line, &[])
}

fn err(line: &str) -> String {
    match p(line) {
        Ok(run) => panic!("{line}: parsed as {run:?}"),
        Err(e) => e,
    }
}

fn broker(host: &str, port: u16, user: Option<&str>, password: Option<&str>) -> BrokerArgs {
    BrokerArgs {
        host: host.into(),
        port,
        user: user.map(String::from),
        password: password.map(String::from),
        tls: None,
    }
}

#[test]
fn the_declaration_is_consistent() {
    Cli::command_tree().debug_assert();
}

#[test]
fn every_subcommand_answers_help() {
    fn walk(cmd: &clap::Command, path: &mut Vec<String>, seen: &mut usize) {
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            path.push(sub.get_name().to_string());
            let words = std::iter::once("hearth".to_string())
                .chain(path.iter().cloned())
                .chain(std::iter::once("--help".to_string()));
            let e = Cli::try_parse_from(words).expect_err("--help stops the parse");
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{path:?}: {e}");
            let text = e.to_string();
            assert!(text.contains("Usage: hearth"), "{path:?}: {text}");
            *seen += 1;
            walk(sub, path, seen);
            path.pop();
        }
    }
    let mut seen = 0;
    walk(&Cli::command_tree(), &mut Vec::new(), &mut seen);
    // demo, sim, sim ctl, sim-device, flash, flash monitor, provision, config, check, push,
    // keygen, image, ota, release, cmd, mon, pub, ls, tls, config-lines, espnow, sniff, send, air,
    // completions.
    assert_eq!(seen, 25);
}

#[test]
fn a_usage_error_is_one_line_and_a_hint() {
    let e = Cli::try_parse_from(["hearth", "demo", "--port", "70000"]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ValueValidation);
    assert_eq!(e.exit_code(), 2);
    let text = e.render().to_string();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("--port"),
        "{text}"
    );
    assert!(lines.len() <= 3, "{text}");
    assert!(text.contains("try '--help'"), "{text}");
    // Combinations found after parsing look the same.
    let e = p("ota a,b img --all --key k").unwrap_err();
    assert!(e.starts_with("error: with --all"), "{e}");
    assert!(e.contains("try '--help'"), "{e}");
}

#[test]
fn parses_the_commands() {
    assert!(matches!(
        p("demo"),
        Ok(Run::Demo {
            port: 1883,
            devices: 3,
            limit: None,
            raw: false,
        })
    ));
    match p("demo --port 0 --devices 5 --for 9 --raw") {
        Ok(Run::Demo {
            port: 0,
            devices: 5,
            limit: Some(l),
            raw: true,
        }) => assert_eq!(l, Duration::from_secs(9)),
        other => panic!("{other:?}"),
    }
    match p("sim --air kitchen --config c.txt --state d --ap Home:pass:word --ap Cafe") {
        Ok(Run::Sim {
            config,
            state,
            air,
            aps,
            fleet: None,
        }) => {
            assert_eq!((config, state), ("c.txt".into(), "d".into()));
            assert_eq!(air.as_deref(), Some("kitchen"));
            let aps: Vec<_> = aps.iter().map(|a| (&a.ssid[..], &a.password[..])).collect();
            assert_eq!(aps, [("Home", "pass:word"), ("Cafe", "")]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p("sim --fleet 300 --config c.txt --state d"),
        Ok(Run::Sim {
            fleet: Some(300),
            ..
        })
    ));
    assert!(p("sim --fleet 0 --config c.txt --state d").is_err());
    assert!(p("sim --fleet 100001 --config c.txt --state d").is_err());
    assert!(p("sim --fleet 3 --ap Home --config c.txt --state d").is_err());
    match p("sim ctl d wifi down --share 30") {
        Ok(Run::Ctl { command, .. }) => assert_eq!(command, "wifi down --share 30"),
        other => panic!("{other:?}"),
    }
    match p("sim ctl d wifi down") {
        Ok(Run::Ctl { state, command }) => {
            assert_eq!((state, command.as_str()), ("d".into(), "wifi down"))
        }
        other => panic!("{other:?}"),
    }
    match p("sim ctl d block -5") {
        Ok(Run::Ctl { command, .. }) => assert_eq!(command, "block -5"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p("sim-device --config c --state d"),
        Ok(Run::Device { .. })
    ));
    match p("config check x.txt --chip C3") {
        Ok(Run::ConfigCheck { file, chip }) => {
            assert_eq!(file, PathBuf::from("x.txt"));
            assert_eq!(chip.as_deref(), Some("esp32c3"));
        }
        other => panic!("{other:?}"),
    }
    match p("flash --chip esp32-c6 --config c --save-image o.bin") {
        Ok(Run::Flash {
            chip, save_image, ..
        }) => {
            assert_eq!(chip, "esp32c6");
            assert_eq!(save_image, Some("o.bin".into()));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p("flash monitor --port /dev/ttyACM0"),
        Ok(Run::Monitor { baud: 115_200, .. })
    ));
    match p("provision --port /dev/ttyACM0 --ssid My_Net") {
        Ok(Run::Provision {
            port,
            ssid,
            password: None,
        }) => assert_eq!((port.as_str(), ssid.as_str()), ("/dev/ttyACM0", "My_Net")),
        other => panic!("{other:?}"),
    }
    assert!(p("provision --port /dev/ttyACM0").is_err());
    match p("image --version 1.2.3 --health crash --out x.img") {
        Ok(Run::Image { info, size, out }) => {
            assert_eq!((info.version.as_str(), size), ("1.2.3", 64 * 1024));
            assert_eq!(info.health, hearth_sim::firmware::Health::Crash);
            assert_eq!(out, PathBuf::from("x.img"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(p("keygen --out k"), Ok(Run::Keygen { .. })));
    assert!(matches!(
        p("completions bash"),
        Ok(Run::Completions(clap_complete::Shell::Bash))
    ));
}

#[test]
fn parses_the_fleet_commands() {
    match p("ota a,b fw.img --key k --window 8 --no-wait") {
        Ok(Run::Ota {
            devices,
            all,
            image,
            options,
            ..
        }) => {
            assert_eq!(devices, ["a", "b"]);
            assert!(!all);
            assert_eq!(image, PathBuf::from("fw.img"));
            assert_eq!((options.window, options.wait_confirm), (8, false));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p("ota --all fw.img --key k"),
        Ok(Run::Ota { all: true, .. })
    ));
    match p("release fw.img --appliance relay --summary fixes --broker h:1") {
        Ok(Run::Release {
            broker: b,
            image,
            appliance,
            notes,
        }) => {
            assert_eq!(b, broker("h", 1, None, None));
            assert_eq!(image, PathBuf::from("fw.img"));
            assert_eq!(appliance.as_deref(), Some("relay"));
            assert_eq!((notes.summary.as_deref(), notes.url), (Some("fixes"), None));
        }
        other => panic!("{other:?}"),
    }
    assert!(err("release").contains("<IMAGE>"), "{}", err("release"));
    match p("cmd d1 mark 12 --key k --allow-clock-jump --json") {
        Ok(Run::Cmd {
            device,
            command,
            key,
            allow_clock_jump,
            json,
            ..
        }) => {
            assert_eq!((device.as_str(), command.as_str()), ("d1", "mark 12"));
            assert_eq!(key, Some("k".into()));
            assert!(allow_clock_jump && json);
        }
        other => panic!("{other:?}"),
    }
    match p("config push d1 c.txt --key k --chip c3 --rotate-key --no-local-check") {
        Ok(Run::ConfigPush { options, .. }) => {
            assert!(!options.local_check && options.rotate_key);
            assert_eq!(options.chip.as_deref(), Some("esp32c3"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p("mon --json d1"),
        Ok(Run::Mon {
            format: hearth_fleet::client::MonFormat::Json,
            ..
        })
    ));
}

#[test]
fn errors_name_the_problem() {
    assert!(err("demo --port 70000").contains("--port"));
    assert!(err("demo --devices 0").contains("--devices"));
    assert!(err("demo --port").contains("--port"));
    assert!(err("demo --for 0").contains("--for"));
    assert!(err("sim --config c").contains("--state"));
    assert!(err("sim --config c --state d --air").contains("--air"));
    assert!(err("sim ctl").contains("<STATE>"));
    assert!(err("sim ctl d").contains("<COMMAND>"));
    assert!(err("config check").contains("<FILE>"));
    assert!(err("config check x.txt y.txt").contains("y.txt"));
    assert!(err("config check x.txt --chip esp32").contains("esp32c3, esp32c6"));
    assert!(err("flash --config c.txt --port p").contains("--chip"));
    match p("flash --chip c3 --port p") {
        Ok(Run::Flash { config: None, .. }) => {}
        other => panic!("without --config the values are asked for: {other:?}"),
    }
    assert!(err("flash --chip c3 --config c").contains("--save-image"));
    assert!(err("flash --chip c3 --config c --port p --save-image o").contains("--port"));
    assert!(err("flash monitor").contains("--port"));
    assert!(err("frobnicate").contains("frobnicate"));
    assert!(err("image --version 1.2 --out x").contains("MAJOR.MINOR.PATCH"));
    assert!(err("image --version 1.2.3 --health maybe --out x").contains("--health"));
    assert!(err("ota d1 img").contains("--key"));
    assert!(err("ota d1 --key k").contains("IMAGE"));
    assert!(err("ota a/b img --key k").contains("'/'"));
    assert!(err("ota d1 img --key k --window 65").contains("--window"));
    assert!(err("cmd d1").contains("<COMMAND>"));
    assert!(err("cmd d#1 reboot").contains("'#'"));
    assert!(err("config push d1 c.txt").contains("--key"));
    assert!(err("config push d1 c.txt --key k --chip z80").contains("unknown chip"));
    assert!(err("keygen").contains("--out"));
}

#[test]
fn parses_mon() {
    let broker_of = |line: &str, env: &[(&str, &str)]| match pe(line, env) {
        Ok(Run::Mon {
            broker,
            device,
            limit,
            ..
        }) => (broker, device, limit),
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        broker_of("mon", &[]),
        (broker("127.0.0.1", 1883, None, None), None, None)
    );
    assert_eq!(
        broker_of(
            "mon --for 5 balcony --broker 10.0.0.2:1884 --user u --password p",
            &[]
        ),
        (
            broker("10.0.0.2", 1884, Some("u"), Some("p")),
            Some("balcony".into()),
            Some(Duration::from_secs(5))
        )
    );
    let env = [
        ("HEARTH_BROKER", "mqtt.lan"),
        ("HEARTH_MQTT_USER", "eve"),
        ("HEARTH_MQTT_PASSWORD", "pw"),
    ];
    assert_eq!(
        broker_of("mon d1", &env).0,
        broker("mqtt.lan", 1883, Some("eve"), Some("pw"))
    );
    // Options override the environment.
    assert_eq!(
        broker_of("mon --broker [::1]:2000 --user bob", &env).0,
        broker("::1", 2000, Some("bob"), Some("pw"))
    );
    // A bad $HEARTH_BROKER is an error unless --broker replaces it.
    let bad = [("HEARTH_BROKER", "mqtt.lan:0")];
    assert!(pe("mon", &bad).unwrap_err().contains("HEARTH_BROKER"));
    assert!(pe("mon --broker h", &bad).is_ok());
}

#[test]
fn mon_errors_name_the_problem() {
    assert!(err("mon --verbose").contains("--verbose"));
    assert!(err("mon --broker").contains("--broker"));
    assert!(err("mon --user").contains("--user"));
    assert!(err("mon --for soon").contains("--for"));
    assert!(err("mon --broker h:70000").contains("--broker"));
    assert!(err("mon --broker h:0").contains("port 0"));
    assert!(err("mon --broker :1883").contains("host is empty"));
    assert!(err("mon --password p").contains("user name"));
    assert!(err("mon a b").contains("'b'"));
    assert!(err("mon a/b").contains("'/'"));
    assert!(err("mon #").contains("'#'"));
}

#[test]
fn tls_options() {
    let pin = "ab".repeat(32);
    let tls = |ca: Option<&str>, pin: Option<[u8; 32]>| {
        Some(TlsArgs {
            ca: ca.map(PathBuf::from),
            pin,
            ..TlsArgs::default()
        })
    };
    let broker_of = |line: &str, env: &[(&str, &str)]| match pe(line, env) {
        Ok(Run::Mon { broker, .. }) => broker,
        other => panic!("{line}: {other:?}"),
    };
    // mqtts:// and --tls both mean TLS, on port 8883 unless one is given.
    let b = broker_of("mon --broker mqtts://h --ca ca.pem", &[]);
    assert_eq!(
        (b.host.as_str(), b.port, b.tls),
        ("h", 8883, tls(Some("ca.pem"), None))
    );
    let b = broker_of(&format!("mon --tls --broker h --pin {pin}"), &[]);
    assert_eq!((b.port, b.tls), (8883, tls(None, Some([0xab; 32]))));
    assert_eq!(
        broker_of("mon --broker h:9000 --tls --ca c", &[]).port,
        9000
    );
    // The environment: HEARTH_CA counts only with TLS.
    let env = [
        ("HEARTH_BROKER", "mqtts://m:8884"),
        ("HEARTH_CA", "/ca.pem"),
    ];
    let b = broker_of("mon", &env);
    assert_eq!((b.port, b.tls), (8884, tls(Some("/ca.pem"), None)));
    assert_eq!(broker_of("mon", &[("HEARTH_CA", "/ca.pem")]).tls, None);
    assert_eq!(broker_of("mon --broker mqtt://m", &env).tls, None);
    // Every fleet command takes them.
    match p("cmd d1 reboot --broker mqtts://h --ca c --client-cert a --client-key b") {
        Ok(Run::Cmd { broker, .. }) => {
            let t = broker.tls.expect("tls");
            assert_eq!(t.client_cert, Some("a".into()));
            assert_eq!(t.client_key, Some("b".into()));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p("ota d1 img --key k --tls --ca c"),
        Ok(Run::Ota {
            broker: BrokerArgs { tls: Some(_), .. },
            ..
        })
    ));
    assert!(matches!(
        p(&format!("config push d1 f --key k --tls --pin {pin}")),
        Ok(Run::ConfigPush {
            broker: BrokerArgs { tls: Some(_), .. },
            ..
        })
    ));
    assert!(err("mon --broker mqtts://h").contains("--ca FILE"));
    assert!(err("mon --ca c.pem").contains("--ca is for TLS"));
    assert!(err("mon --tls --broker mqtt://h --ca c").contains("contradicts"));
    assert!(err("mon --tls --pin 12").contains("64 hex digits"));
    assert!(err("mon --tls --ca c --client-cert a").contains("go together"));
    assert!(err("mon --broker ftp://h").contains("unknown scheme"));
    assert!(pe("mon --tls --ca c", &[("HEARTH_PIN", "zz")])
        .unwrap_err()
        .contains("HEARTH_PIN"));
    // --pin replaces a malformed $HEARTH_PIN.
    assert!(pe(&format!("mon --tls --pin {pin}"), &[("HEARTH_PIN", "zz")]).is_ok());
}

#[test]
fn parses_tls_config_lines() {
    match p("tls config-lines --ca a.pem --client-cert c.pem --client-key k.pem") {
        Ok(Run::TlsLines {
            ca,
            pin_from,
            client_cert,
            client_key,
        }) => {
            assert_eq!(ca, Some("a.pem".into()));
            assert_eq!(pin_from, None);
            assert_eq!(client_cert, Some("c.pem".into()));
            assert_eq!(client_key, Some("k.pem".into()));
        }
        other => panic!("{other:?}"),
    }
    assert!(err("tls config-lines").contains("--ca"));
    assert!(err("tls config-lines --client-key k").contains("--client-cert"));
    assert!(err("tls lines").contains("lines"));
}

#[test]
fn parses_espnow() {
    match p("espnow air --air /tmp/a --loss 30 --rssi -70") {
        Ok(Run::Espnow(Espnow::Air(a))) => {
            assert_eq!(a.air, PathBuf::from("/tmp/a"));
            assert_eq!((a.loss, a.rssi), (Some(30), Some(-70)));
        }
        other => panic!("{other:?}"),
    }
    match p("espnow sniff --air /a --count 2 --for 0.5") {
        Ok(Run::Espnow(Espnow::Sniff(s))) => {
            assert_eq!(s.air, PathBuf::from("/a"));
            assert_eq!(s.count, Some(2));
            assert_eq!(s.duration, Some(Duration::from_millis(500)));
        }
        other => panic!("{other:?}"),
    }
    match p("espnow send --channel 6 --psk k --group g --version 2 data --payload hi\\n --ts 5") {
        Ok(Run::Espnow(Espnow::Send(s))) => {
            assert_eq!(s.channel, 6);
            match s.what {
                Payload::Frame {
                    version: 2,
                    kind: FrameArgs::Data { payload, ts, .. },
                    ..
                } => assert_eq!((payload, ts), (b"hi\n".to_vec(), Some(5))),
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p("espnow send --channel 1 --hex 0102"),
        Ok(Run::Espnow(Espnow::Send(_)))
    ));
}

#[test]
fn espnow_errors_name_the_problem() {
    assert!(err("espnow").contains("sniff"));
    assert!(err("espnow listen").contains("listen"));
    assert!(err("espnow send --channel 0 --hex 00").contains("--channel"));
    assert!(err("espnow send --channel 14 --hex 00").contains("--channel"));
    assert!(err("espnow send --hex 00").contains("--channel"));
    assert!(err("espnow send --channel 1 --hex 0g").contains("--hex"));
    assert!(err("espnow send --channel 1 --to nope --hex 00").contains("--to"));
    assert!(err("espnow send --channel 1 --hex 00 --from ff:ff:ff:ff:ff:ff").contains("unicast"));
    assert!(err("espnow send --channel 1 --hex 00 data").contains("--hex"));
    assert!(err("espnow send --channel 1").contains("--hex"));
    assert!(err("espnow send --channel 1 --psk k").contains("--group"));
    let sealed = "espnow send --channel 1 --psk k --group g";
    assert!(err(sealed).contains("frame kind"));
    assert!(err(&format!("{sealed} blah")).contains("unknown frame kind"));
    assert!(err(&format!("{sealed} --bogus")).contains("--bogus"));
    assert!(err(&format!("{sealed} data")).contains("--payload"));
    assert!(err(&format!("{sealed} data ping")).contains("ping"));
    assert!(err(&format!("{sealed} --version 4 data")).contains("--version"));
    assert!(err(&format!("{sealed} data --payload x --epoch 00")).contains("24 hex digits"));
    assert!(err(&format!("{sealed} data --payload x --tid 00")).contains("--tid"));
    assert!(err(&format!("{sealed} data --payload \\q")).contains("escape"));
    assert!(err(&format!("{sealed} ts --subtype weird")).contains("--subtype"));
    assert!(err(&format!("{sealed} data --payload {}", "x".repeat(177))).contains("176"));
    assert!(err("espnow sniff --version 3").contains("--psk"));
    assert!(err("espnow sniff --count 0").contains("--count"));
    assert!(err("espnow sniff --for -1").contains("--for"));
    assert!(err("espnow sniff --air ..").contains("--air"));
    assert!(err("espnow air --loss 101").contains("--loss"));
    assert!(err("espnow air --rssi 5").contains("--rssi"));
}
