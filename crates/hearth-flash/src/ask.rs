//! `hearth flash` without `--config`, in a terminal: ask for the values a first config needs
//! (appliance, device name, Wi-Fi, broker, broker login), each checked as it is typed by the
//! same parser the device uses, then the whole config by every rule of the chip
//! ([`crate::check_config`]) before anything is written. Wi-Fi may be left empty: the board
//! then waits for it on its USB console (`hearth provision`).
//!
//! ESP-NOW centrals and battery peripherals (`scale_manager`, `tnowc`, `scale_sensor`, `tnowp`)
//! need keys they share; they are made with a config file, not here.

use std::io::{BufRead, Write};

use hearth_appliances::{Runs, APPLIANCES};

use crate::{FlashError, Target};

/// One value to ask for.
struct Field {
    key: &'static str,
    prompt: &'static str,
    /// Empty answer: this value (None: required, ask again).
    default: Option<&'static str>,
    /// A valid stand-in while the field is not answered yet.
    stand_in: &'static str,
}

const APPLIANCE: Field = Field {
    key: "profile",
    prompt: "appliance",
    default: Some("weather"),
    stand_in: "weather",
};
const NAME: Field = Field {
    key: "mqttname",
    prompt: "device name (its MQTT topics: stat/NAME/...)",
    default: None,
    stand_in: "device",
};
const SSID: Field = Field {
    key: "ssid",
    prompt: "Wi-Fi network (empty: give it later on the USB console with `hearth provision`)",
    default: Some(""),
    stand_in: "network",
};
const PASSWORD: Field = Field {
    key: "password",
    prompt: "Wi-Fi password (empty: an open network; the text is shown as typed)",
    default: Some(""),
    stand_in: "None",
};
const BROKER: Field = Field {
    key: "mqttbroker",
    prompt: "MQTT broker (host, host:port, or mqtts://host for TLS)",
    default: None,
    stand_in: "192.0.2.1",
};
const USER: Field = Field {
    key: "mqttuser",
    prompt: "MQTT user (empty: none)",
    default: Some(""),
    stand_in: "None",
};
const BROKER_PASSWORD: Field = Field {
    key: "mqttpassword",
    prompt: "MQTT password (the text is shown as typed)",
    default: Some(""),
    stand_in: "None",
};

const ORDER: [&Field; 7] = [
    &APPLIANCE,
    &NAME,
    &SSID,
    &PASSWORD,
    &BROKER,
    &USER,
    &BROKER_PASSWORD,
];

/// The config text of `answers` (by key); with `stand_ins`, the fields not answered yet get a
/// valid stand-in, without, they are left out.
fn text(answers: &[(&'static str, String)], stand_ins: bool) -> String {
    let mut out = String::new();
    for f in ORDER {
        let value = match answers.iter().find(|(k, _)| *k == f.key) {
            Some((_, v)) if v.is_empty() => continue,
            Some((_, v)) => v.as_str(),
            None if stand_ins => f.stand_in,
            None => continue,
        };
        // Wi-Fi left out: no password either; the device waits for both on its console.
        let no_wifi = answers.iter().any(|(k, v)| *k == "ssid" && v.is_empty());
        if f.key == "password" && no_wifi {
            continue;
        }
        out.push_str(&format!("{} {value}\n", f.key));
    }
    out
}

/// What the parser says about `key` in `text`, if anything.
fn problem(text: &str, key: &str) -> Option<String> {
    let errors = match hearth_device::profiles::parse_config(text) {
        Ok(_) => return None,
        Err(e) => e,
    };
    let line = text
        .lines()
        .position(|l| l.split(' ').next() == Some(key))?
        + 1;
    errors
        .as_slice()
        .iter()
        .find(|e| e.line == Some(line))
        .map(|e| e.kind.to_string())
}

fn read_line(input: &mut dyn BufRead) -> Result<String, FlashError> {
    let mut line = String::new();
    match input.read_line(&mut line) {
        Ok(0) => Err(FlashError::Usage(
            "no answer (end of input): nothing was written".into(),
        )),
        Ok(_) => Ok(line.trim().to_string()),
        Err(e) => Err(FlashError::Usage(format!("cannot read the answer: {e}"))),
    }
}

/// Ask for a first config for `target`; the checked text.
pub fn ask_config(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    target: Target,
) -> Result<String, FlashError> {
    let w = |out: &mut dyn Write, s: &str| {
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    };
    let mqtt: Vec<&str> = APPLIANCES
        .iter()
        .filter(|a| matches!(a.runs, Runs::Mqtt))
        .map(|a| a.name)
        .collect();
    w(
        out,
        &format!(
            "No --config: a first config for the {target}. Appliances: {}.\n\
         (ESP-NOW centrals and battery peripherals need keys they share: use --config.)\n",
            mqtt.join(", ")
        ),
    );
    let mut answers: Vec<(&'static str, String)> = Vec::new();
    for f in ORDER {
        let skip = match f.key {
            "password" => answers.iter().any(|(k, v)| *k == "ssid" && v.is_empty()),
            "mqttpassword" => answers
                .iter()
                .any(|(k, v)| *k == "mqttuser" && v.is_empty()),
            _ => false,
        };
        if skip {
            continue;
        }
        loop {
            let shown = match f.default {
                Some(d) if !d.is_empty() => format!("{} [{d}]: ", f.prompt),
                _ => format!("{}: ", f.prompt),
            };
            w(out, &shown);
            let mut value = read_line(input)?;
            if value.is_empty() {
                match f.default {
                    Some(d) => value = d.to_string(),
                    None => {
                        w(out, "  a value is needed\n");
                        continue;
                    }
                }
            }
            if f.key == "profile" && !mqtt.contains(&value.as_str()) {
                w(out, &format!("  expected one of: {}\n", mqtt.join(", ")));
                continue;
            }
            let mut trial = answers.clone();
            trial.push((f.key, value.clone()));
            match problem(&text(&trial, true), f.key) {
                Some(why) => w(out, &format!("  {why}\n")),
                None => {
                    answers.push((f.key, value));
                    break;
                }
            }
        }
    }
    let config = text(&answers, false);
    crate::check_config(&config, "the config", target)?;
    w(out, "The config to write (passwords hidden):\n");
    for line in config.lines() {
        let hidden = match line.split_once(' ') {
            Some((k @ ("password" | "mqttpassword"), _)) => format!("{k} ********"),
            _ => line.to_string(),
        };
        w(out, &format!("  {hidden}\n"));
    }
    w(out, "Write it? [Y/n]: ");
    match read_line(input)?.to_ascii_lowercase().as_str() {
        "" | "y" | "yes" => Ok(config),
        _ => Err(FlashError::Usage(
            "not confirmed: nothing was written".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(script: &str) -> (Result<String, FlashError>, String) {
        let mut out = Vec::new();
        let got = ask_config(&mut script.as_bytes(), &mut out, Target::Esp32c3);
        (got, String::from_utf8(out).unwrap())
    }

    #[test]
    fn asks_checks_each_value_and_writes_what_the_chip_accepts() {
        // A name with a slash, a short passphrase and a bad port are asked again.
        let (got, shown) = run(
            "\nbal/cony\nbalcony\nHome Net\nshort\ncorrect-horse\n10.0.0.2:99999\n10.0.0.2\nhass\nsecret\n\n",
        );
        let config = got.unwrap();
        assert_eq!(
            config,
            "profile weather\nmqttname balcony\nssid Home Net\npassword correct-horse\n\
             mqttbroker 10.0.0.2\nmqttuser hass\nmqttpassword secret\n"
        );
        for asked_twice in ["device name", "Wi-Fi password", "MQTT broker"] {
            assert_eq!(
                shown.matches(asked_twice).count(),
                2,
                "{asked_twice}: {shown}"
            );
        }
        assert!(
            shown.contains("password ********") && !shown.contains("  password correct"),
            "{shown}"
        );
        assert!(hearth_device::chips::check_text(
            &config,
            "esp32c3",
            hearth_device::chips::FULL_IMAGE
        )
        .is_ok());
    }

    #[test]
    fn wifi_may_be_left_for_the_console() {
        let (got, _) = run("relay\nr1\n\nbroker.lan\n\ny\n");
        let config = got.unwrap();
        assert_eq!(
            config,
            "profile relay\nmqttname r1\nmqttbroker broker.lan\n"
        );
        let parsed = hearth_device::profiles::parse_config(&config);
        assert!(hearth_config::provision::awaits_wifi(&parsed));
    }

    #[test]
    fn refusals_and_end_of_input_write_nothing() {
        let (got, shown) = run("scale_manager\nweather\nwx\nN\nsecret-pass\n10.0.0.2\n\nn\n");
        assert!(shown.contains("expected one of"), "{shown}");
        assert!(got.unwrap_err().to_string().contains("not confirmed"));
        let (got, _) = run("weather\nwx\n");
        assert!(got.unwrap_err().to_string().contains("end of input"));
    }
}
