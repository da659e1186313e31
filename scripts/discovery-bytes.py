#!/usr/bin/env python3
"""Bytes a device sends for its Home Assistant discovery at each connect: its per-entity
configs as captured from the broker, against the same entities as one device-based config
(Home Assistant 2024.12 and later), with the MQTT PUBLISH overhead of each.

Usage:
    mosquitto_sub -t 'homeassistant/+/NAME/#' -v -W 1 > cfg.txt
    scripts/discovery-bytes.py cfg.txt
"""

import json
import sys


def publish_bytes(topic: str, payload: str) -> int:
    """A QoS 0 MQTT 5 PUBLISH: fixed header, remaining length, topic, empty properties."""
    body = 2 + len(topic.encode()) + 1 + len(payload.encode())
    length = 1 if body < 128 else 2 if body < 16384 else 3
    return 1 + length + body


def main(path: str) -> None:
    messages = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                topic, payload = line.rstrip("\n").split(" ", 1)
                messages.append((topic, payload))
    if not messages:
        raise SystemExit(f"{path}: no discovery configs")
    per_entity = sum(publish_bytes(t, p) for t, p in messages)

    # The same entities as one device config: the device block and the availability once,
    # an origin (required there), every entity under "components" with its platform.
    components, shared, device = {}, {}, None
    for topic, payload in messages:
        config = json.loads(payload)
        device = config.pop("device")
        for key in ("availability_topic", "payload_available", "payload_not_available"):
            if key in config:
                shared[key] = config.pop(key)
        config["platform"] = topic.split("/")[1]
        components[topic.split("/")[3]] = config
    name = messages[0][0].split("/")[2]
    one = {
        "device": device,
        "origin": {"name": "Hearth", "sw_version": device["sw_version"]},
        **shared,
        "components": components,
    }
    payload = json.dumps(one, separators=(",", ":"), ensure_ascii=False)
    device_based = publish_bytes(f"homeassistant/device/{name}/config", payload)
    saved = 100 * (per_entity - device_based) / per_entity
    print(f"{len(messages)} entity configs: {per_entity} bytes in {len(messages)} PUBLISH packets")
    print(
        f"device-based: {device_based} bytes in 1 PUBLISH ({len(payload)} of payload), "
        f"{saved:.0f} % less"
    )


if __name__ == "__main__":
    main(sys.argv[1])
