"""Reading ComfyUI's progress socket must never swallow a cancellation: a cancelled
attempt (a job cancelled, a worker told to stop) that carried on would keep running
the prompt to the end."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from websockets.asyncio.client import ClientConnection

from imagegate.providers.comfyui_socket import next_message


class _Socket:
    """A socket whose next message arrives when the test says so."""

    def __init__(self) -> None:
        self.message: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.reading = asyncio.Event()

    async def recv(self) -> str:
        self.reading.set()
        return await self.message


async def test_a_cancel_that_meets_a_message_is_not_lost() -> None:
    """The message and the cancel land in the same turn of the loop, as they do when
    progress messages stream in while a busy machine delivers the cancel late. Python
    3.11's ``asyncio.wait_for`` returns the message then and drops the cancel."""
    socket = _Socket()
    reader = asyncio.create_task(next_message(cast(ClientConnection, socket), 5))
    await socket.reading.wait()
    socket.message.set_result('{"type": "progress", "data": {"value": 1, "max": 4}}')
    reader.cancel()

    with pytest.raises(asyncio.CancelledError):
        await reader


async def test_silence_is_no_message_and_keeps_the_socket() -> None:
    socket = _Socket()

    message, kept = await next_message(cast(ClientConnection, socket), 0.05)

    assert message is None and kept is cast(Any, socket)
