"""Home Assistant's WebSocket API for the tests.

Usage:
    python ha_watch.py HA_URL TOKEN ENTITY_ID
    python ha_watch.py HA_URL TOKEN --call COMMAND_JSON

The first subscribes to Home Assistant's state_changed events and prints `ready` once the
subscription stands, then the new state of ENTITY_ID (JSON, one line each) at every change,
until it is killed. The second sends one command (e.g. `{"type": "config/entity_registry/get",
"entity_id": "sensor.x"}`) and prints Home Assistant's answer (JSON, one line). Runs with the
Python of Home Assistant's own virtual environment, whose aiohttp it uses.
"""

import asyncio
import json
import sys

import aiohttp


async def authenticated(ws: aiohttp.ClientWebSocketResponse, token: str) -> None:
    await ws.receive_json()  # auth_required
    await ws.send_json({"type": "auth", "access_token": token})
    ok = await ws.receive_json()
    if ok.get("type") != "auth_ok":
        raise SystemExit(f"websocket auth failed: {ok}")


async def watch(url: str, token: str, entity: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url}/api/websocket") as ws:
            await authenticated(ws, token)
            await ws.send_json(
                {"id": 1, "type": "subscribe_events", "event_type": "state_changed"}
            )
            subscribed = await ws.receive_json()
            if not subscribed.get("success"):
                raise SystemExit(f"subscription refused: {subscribed}")
            print("ready", flush=True)
            while True:
                msg = await ws.receive_json()
                data = msg.get("event", {}).get("data", {})
                if data.get("entity_id") == entity and data.get("new_state"):
                    print(json.dumps(data["new_state"]), flush=True)


async def call(url: str, token: str, command: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url}/api/websocket") as ws:
            await authenticated(ws, token)
            await ws.send_json({"id": 1, **json.loads(command)})
            print(json.dumps(await ws.receive_json()), flush=True)


if __name__ == "__main__":
    if sys.argv[3] == "--call":
        asyncio.run(call(sys.argv[1], sys.argv[2], sys.argv[4]))
    else:
        asyncio.run(watch(sys.argv[1], sys.argv[2], sys.argv[3]))
