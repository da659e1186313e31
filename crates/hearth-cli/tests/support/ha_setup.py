"""Sets up a fresh Home Assistant for the Hearth tests, through its own APIs.

Usage: python ha_setup.py HA_URL BROKER_PORT

Creates the owner (the onboarding API), logs in, makes a long-lived access token (the WebSocket
API), and adds the MQTT integration for the broker on 127.0.0.1:BROKER_PORT (the config-flow
API), with discovery on its default prefix. Prints the token on standard output and the Home
Assistant version on standard error. Runs with the Python of Home Assistant's own virtual
environment, whose aiohttp it uses.
"""

import asyncio
import sys

import aiohttp


async def setup(url: str, broker_port: int) -> str:
    client_id = url + "/"
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            f"{url}/api/onboarding/users",
            json={
                "client_id": client_id,
                "name": "Hearth test",
                "username": "hearth",
                "password": "hearth-test-password",
                "language": "en",
            },
        )
        r.raise_for_status()
        code = (await r.json())["auth_code"]
        r = await http.post(
            f"{url}/auth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": client_id,
            },
        )
        r.raise_for_status()
        access = (await r.json())["access_token"]

        async with http.ws_connect(f"{url}/api/websocket") as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": access})
            ok = await ws.receive_json()
            if ok.get("type") != "auth_ok":
                raise SystemExit(f"websocket auth failed: {ok}")
            print(f"home assistant {ok['ha_version']}", file=sys.stderr)
            await ws.send_json(
                {
                    "id": 1,
                    "type": "auth/long_lived_access_token",
                    "client_name": "hearth-test",
                    "lifespan": 1,
                }
            )
            made = await ws.receive_json()
            if not made.get("success"):
                raise SystemExit(f"long-lived token refused: {made}")
            token = made["result"]

        async def flow(path: str, body: dict) -> dict:
            r = await http.post(
                f"{url}/api/config/config_entries/flow{path}",
                headers={"Authorization": f"Bearer {token}"},
                json=body,
            )
            r.raise_for_status()
            return await r.json()

        started = await flow("", {"handler": "mqtt", "show_advanced_options": False})
        entry = await flow(
            f"/{started['flow_id']}", {"broker": "127.0.0.1", "port": broker_port}
        )
        if entry.get("type") != "create_entry" or entry["result"]["state"] != "loaded":
            raise SystemExit(f"the MQTT integration was not set up: {entry}")
        return token


if __name__ == "__main__":
    print(asyncio.run(setup(sys.argv[1], int(sys.argv[2]))))
