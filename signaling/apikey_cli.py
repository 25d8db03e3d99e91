"""`telemed apikey create NAME | list | revoke KEY_ID`: API keys from the command line.

It writes to the configured store directly, so it needs a store the server shares (not the
in-process "memory" store); otherwise use `POST /api/keys` with the admin key.
"""

from __future__ import annotations

import asyncio
import sys

from rooms import ApiKey, open_credential_store

from .config import Settings


def run(settings: Settings, args: list[str]) -> None:
    if settings.room_store.strip() in ("", "memory", "memory://"):
        sys.exit("telemed: the memory store lives inside the running server; "
                 "create API keys with POST /api/keys and the admin key instead")
    asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: list[str]) -> None:
    store = open_credential_store(settings.room_store, settings.data_dir)
    try:
        match args:
            case ["create", name]:
                try:
                    key, secret = ApiKey.new(name)
                except ValueError as exc:
                    sys.exit(f"telemed: {exc}")
                await store.add_api_key(key)
                print(f"key id:  {key.key_id}\nsecret:  {secret}\n"
                      f"use as:  Authorization: Bearer {key.key_id}.{secret}\n"
                      "The secret is shown only now; it is stored hashed.")
            case ["list"]:
                for key in await store.list_api_keys():
                    print(f"{key.key_id}  {'revoked' if key.revoked else 'active '}  {key.name}")
            case ["revoke", key_id]:
                if not await store.revoke_api_key(key_id):
                    sys.exit(f"telemed: no API key {key_id!r}")
                print(f"revoked {key_id}")
            case _:
                sys.exit("usage: telemed apikey create NAME | list | revoke KEY_ID")
    finally:
        await store.close()
