#!/usr/bin/env python3
"""Bytes a device sends for its Home Assistant discovery at each connect, both ways: one
device-based config (what Hearth sends, Home Assistant 2024.12 and later) against the same
entities as one config per entity (what Hearth sent before), with the MQTT PUBLISH overhead
of each.

Usage:
    mosquitto_sub -t 'homeassistant/+/NAME/config' -t 'homeassistant/+/NAME/+/config' -v -W 1 > cfg.txt
    scripts/discovery-bytes.py cfg.txt

The capture may hold the device config (`homeassistant/device/NAME/config`) or the
per-entity configs of earlier firmware; the other form is derived from it.
"""

import json
import sys

SHARED = ("availability_topic", "payload_available", "payload_not_available")


def publish_bytes(topic: str, payload: str) -> int:
    """A QoS 0 MQTT 5 PUBLISH: fixed header, remaining length, topic, empty properties."""
    body = 2 + len(topic.encode()) + 1 + len(payload.encode())
    length = 1 if body < 128 else 2 if body < 16384 else 3
    return 1 + length + body


def compact(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def per_entity_from_device(name: str, config: dict) -> list[tuple[str, str]]:
    """Each component as the per-entity config it stands for: the shared keys and the device
    block in every one, no platform or origin (as earlier firmware sent them)."""
    out = []
    for key, component in config["components"].items():
        entity = dict(component)
        platform = entity.pop("platform")
        for k in SHARED:
            if k in config:
                entity[k] = config[k]
        entity["device"] = config["device"]
        out.append((f"homeassistant/{platform}/{name}/{key}/config", compact(entity)))
    return out


def device_from_per_entity(messages: list[tuple[str, str]]) -> tuple[str, str]:
    """The same entities as one device config: the device block and the availability once, an
    origin (required there), every entity under "components" with its platform."""
    components, shared, device = {}, {}, None
    for topic, payload in messages:
        config = json.loads(payload)
        device = config.pop("device")
        for key in SHARED:
            if key in config:
                shared[key] = config.pop(key)
        components[topic.split("/")[3]] = {"platform": topic.split("/")[1], **config}
    name = messages[0][0].split("/")[2]
    one = {
        "device": device,
        "origin": {"name": "Hearth", "sw_version": device["sw_version"]},
        **shared,
        "components": components,
    }
    return f"homeassistant/device/{name}/config", compact(one)


def main(path: str) -> None:
    messages = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                topic, payload = line.rstrip("\n").split(" ", 1)
                if payload:
                    messages.append((topic, payload))
    devices = [m for m in messages if m[0].split("/")[1] == "device"]
    if devices:
        topic, payload = devices[-1]
        device = (topic, payload)
        entities = per_entity_from_device(topic.split("/")[2], json.loads(payload))
    elif messages:
        entities = messages
        device = device_from_per_entity(messages)
    else:
        raise SystemExit(f"{path}: no discovery configs")
    per_entity = sum(publish_bytes(t, p) for t, p in entities)
    device_based = publish_bytes(*device)
    saved = 100 * (per_entity - device_based) / per_entity
    print(f"{len(entities)} entity configs: {per_entity} bytes in {len(entities)} PUBLISH packets")
    print(
        f"device-based: {device_based} bytes in 1 PUBLISH ({len(device[1])} of payload), "
        f"{saved:.0f} % less"
    )


if __name__ == "__main__":
    main(sys.argv[1])
