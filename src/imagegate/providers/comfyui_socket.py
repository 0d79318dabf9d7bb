"""Reading ComfyUI's ``/ws`` socket: the next message, whether it concerns a prompt,
whether the prompt has stopped, and progress summed over its samplers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection


async def next_message(
    socket: ClientConnection | None, wait_s: float
) -> tuple[dict[str, Any] | None, ClientConnection | None]:
    """The next JSON message within ``wait_s`` (``None`` on silence), and the socket,
    ``None`` once it has failed. Without a socket, just waits (the caller polls)."""
    if socket is None:
        await asyncio.sleep(wait_s)
        return None, None
    try:
        # Not asyncio.wait_for: on Python 3.11 it returns a message that arrives in the
        # same turn of the loop as a cancel and drops the cancel, so a cancelled attempt
        # would run its prompt to the end. asyncio.timeout re-raises the cancel.
        async with asyncio.timeout(wait_s):
            raw = await socket.recv()
    except TimeoutError:
        return None, socket
    except Exception:
        return None, None  # closed or broken: poll from now on
    if isinstance(raw, bytes):
        return await next_message(socket, wait_s)  # a preview image
    try:
        message = json.loads(raw)
    except ValueError:
        return None, socket
    return (message if isinstance(message, dict) else None), socket


def about(message: dict[str, Any], data: dict[str, Any], prompt_id: str) -> bool:
    """Whether a message concerns our prompt. ComfyUI sends execution messages only to
    the submitting client id (ours); older servers leave ``prompt_id`` out of some.
    ``status`` is a broadcast about the whole queue."""
    return message.get("type") != "status" and data.get("prompt_id") in (None, prompt_id)


def finished(message: dict[str, Any], data: dict[str, Any]) -> bool:
    """Whether the prompt has stopped running: ``executing`` with no node means done."""
    kind = message.get("type")
    if kind == "executing":
        return data.get("node") is None
    return kind in ("execution_success", "execution_error", "execution_interrupted")
