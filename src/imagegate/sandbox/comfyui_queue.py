"""The ComfyUI emulator's state and its prompt worker: prompts queued by number, run
one at a time, each sending ComfyUI's message sequence to its client and leaving a
history entry and image files behind."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket
from PIL import Image

from imagegate.imaging import encode_png
from imagegate.sandbox import comfyui_graph as graphs
from imagegate.sandbox import comfyui_nodes as nodes
from imagegate.sandbox.base import Decision, Sandbox

_OOM_MESSAGE = (
    "Allocation on device \nThis error means you ran out of memory on your GPU.\n\n"
    "TIPS: If the workflow worked before you might have accidentally set the batch_size "
    "to a large number."
)
# What each injected job failure raises, as (node it fails at, exception type, message).
_FAILURES = {
    "oom": ("sampler", "torch.OutOfMemoryError", _OOM_MESSAGE),
    "fail": ("sampler", "RuntimeError", "sandbox: injected failure\n"),
    "moderate": ("output", "comfy_extras.safety.NSFWContentError", "NSFW content detected\n"),
}


@dataclass
class ComfySandbox(Sandbox):
    """The emulator's state beyond the shared one: the queue, the history, the saved
    files, the open sockets, and an optional proxy token."""

    queue: asyncio.PriorityQueue[tuple[float, str]] = field(default_factory=asyncio.PriorityQueue)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    sockets: dict[str, WebSocket] = field(default_factory=dict)
    token: str | None = None
    number: int = 0
    saved: int = 0  # files written, for ComfyUI-style numbered file names
    running: str | None = None
    interrupted: bool = False

    def reset(self) -> None:
        super().reset()
        self.history.clear()
        self.files.clear()
        self.token = None
        self.number = self.saved = 0
        self.interrupted = self.running is not None

    def remaining(self) -> int:
        return sum(job["state"] != "done" for job in self.jobs.values())

    async def send(self, event: str, data: dict[str, Any], sid: str | None) -> None:
        """One message, to one client (``sid``) or, with ``None``, to every client."""
        targets = list(self.sockets.values()) if sid is None else [self.sockets.get(sid)]
        for socket in targets:
            if socket is not None:
                with suppress(Exception):  # a client gone mid-send is the client's business
                    await socket.send_json({"type": event, "data": data})

    async def status(self) -> None:
        await self.send("status", {"status": self.queue_info()}, None)

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.remaining()}}


async def enqueue(
    sandbox: ComfySandbox,
    body: dict[str, Any],
    graph: graphs.Graph,
    outputs: list[str],
    decision: Decision,
) -> dict[str, Any]:
    """Queue a validated prompt as ComfyUI does; the answer to ``POST /prompt``."""
    number: float = sandbox.number
    sandbox.number += 1
    if "number" in body:
        number = float(body["number"])
    elif body.get("front"):
        number = -number
    prompt_id = str(body.get("prompt_id") or uuid.uuid4())
    extra_data = dict(body.get("extra_data") or {})
    if "client_id" in body:
        extra_data["client_id"] = body["client_id"]
    failure = None
    if decision.moderated:
        failure = "moderate"
    elif "sandbox:oom" in graphs.prompt_text(graph).lower():
        failure = "oom"
    elif decision.fail_job:
        failure = "fail"
    sandbox.jobs[prompt_id] = {
        "number": number, "prompt_id": prompt_id, "prompt": graph, "extra_data": extra_data,
        "outputs": outputs, "state": "pending", "failure": failure, "expired": decision.expired,
    }  # fmt: skip
    sandbox.count("submissions")
    await sandbox.queue.put((number, prompt_id))
    await sandbox.status()
    return {"prompt_id": prompt_id, "number": number, "node_errors": {}}


def queue_item(job: dict[str, Any]) -> list[Any]:
    return [job["number"], job["prompt_id"], job["prompt"], job["extra_data"], job["outputs"]]


async def run_queue(sandbox: ComfySandbox) -> None:
    """ComfyUI's prompt worker: one prompt at a time, in queue order."""
    while True:
        _, prompt_id = await sandbox.queue.get()
        job = sandbox.jobs.get(prompt_id)
        if job is None or job["state"] != "pending":
            continue  # deleted from the queue, or the sandbox was reset
        job["state"], sandbox.running, sandbox.interrupted = "running", prompt_id, False
        await sandbox.status()
        try:
            await _execute(sandbox, job)
        finally:
            job["state"], sandbox.running = "done", None
            await sandbox.status()


async def _execute(sandbox: ComfySandbox, job: dict[str, Any]) -> None:
    run = _Run(sandbox, job)
    await run.message("execution_start", {})
    await run.message("execution_cached", {"nodes": []})
    order = graphs.execution_order(job["prompt"], job["outputs"])
    total_steps = sum(graphs.sampler_steps(job["prompt"], n) for n in order) or 1
    step_s = sandbox.faults.job_duration_ms / 1000 / total_steps
    for node_id in order:
        if not await run.node(node_id, step_s):
            break
    else:
        await run.message("execution_success", {})
    if sandbox.jobs.get(job["prompt_id"]) is job:  # not reset meanwhile
        sandbox.history[job["prompt_id"]] = run.history_entry()
    await sandbox.send("executing", {"node": None, "prompt_id": job["prompt_id"]}, run.sid)


@dataclass
class _Run:
    """One prompt's execution: the messages it sends and the history it leaves."""

    sandbox: ComfySandbox
    job: dict[str, Any]
    messages: list[list[Any]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    values: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    success: bool = True

    @property
    def sid(self) -> str | None:
        client: str | None = self.job["extra_data"].get("client_id")
        return client

    async def message(self, event: str, data: dict[str, Any], broadcast: bool = False) -> None:
        data = {**data, "prompt_id": self.job["prompt_id"], "timestamp": int(time.time() * 1000)}
        self.messages.append([event, data])
        if self.sid is not None or broadcast:
            await self.sandbox.send(event, data, self.sid)

    async def send(self, event: str, data: dict[str, Any]) -> None:
        """A message that is not kept in the history (as ComfyUI keeps none of these)."""
        await self.sandbox.send(event, {**data, "prompt_id": self.job["prompt_id"]}, self.sid)

    async def node(self, node_id: str, step_s: float) -> bool:
        """Run one node; ``False`` when the prompt stops there."""
        graph = self.job["prompt"]
        await self.send("executing", {"node": node_id, "display_node": node_id})
        steps = graphs.sampler_steps(graph, node_id)
        for value in range(1, steps + 1):
            await asyncio.sleep(step_s)
            if self.sandbox.interrupted:
                return await self.stop(node_id, None)
            await self.send("progress", {"value": value, "max": steps, "node": node_id})
        failure = _FAILURES.get(self.job["failure"] or "")
        is_output = graph[node_id]["class_type"] in graphs.OUTPUT_NODES
        if failure and (failure[0] == "output") == is_output and (steps or is_output):
            return await self.stop(node_id, failure)
        inputs = self._resolved(node_id)
        try:
            kind = graph[node_id]["class_type"]
            self.values[node_id] = await asyncio.to_thread(nodes.run, kind, inputs, self.read_input)
        except nodes.NodeError as error:
            return await self.stop(node_id, ("", error.exception_type, f"{error}\n"))
        if is_output:
            ui = {"images": await self._save(node_id, inputs["images"])}
            self.outputs[node_id] = ui
            await self.send("executed", {"node": node_id, "display_node": node_id, "output": ui})
        self.executed.append(node_id)
        return True

    async def stop(self, node_id: str, failure: tuple[str, str, str] | None) -> bool:
        self.success = False
        common = {"node_id": node_id, "node_type": self.job["prompt"][node_id]["class_type"],
                  "executed": list(self.executed)}  # fmt: skip
        if failure is None:
            await self.message("execution_interrupted", common, broadcast=True)
        else:
            _, kind, text = failure
            await self.message("execution_error", {
                **common, "exception_message": text, "exception_type": kind,
                "traceback": [f'  File "nodes.py", line 1, in sample\n{kind}: {text}'],
                "current_inputs": {}, "current_outputs": list(self.executed),
            })  # fmt: skip
        return False

    def _resolved(self, node_id: str) -> dict[str, Any]:
        """The node's inputs, each link replaced by the output it names."""
        resolved = {}
        for name, value in self.job["prompt"][node_id].get("inputs", {}).items():
            if graphs.is_link(value):
                outputs = self.values.get(str(value[0]), ())
                value = outputs[value[1]] if 0 <= value[1] < len(outputs) else None
            resolved[name] = value
        return resolved

    def read_input(self, name: str) -> bytes | None:
        """A file of the input folder (``subfolder/name`` or ``name``)."""
        subfolder, _, filename = name.rpartition("/")
        return self.sandbox.files.get(("input", subfolder, filename))

    async def _save(self, node_id: str, images: list[Image.Image]) -> list[dict[str, str]]:
        graph = self.job["prompt"]
        temp = graph[node_id]["class_type"] == "PreviewImage"
        prefix = "ComfyUI_temp" if temp else str(graph[node_id]["inputs"]["filename_prefix"])
        saved = []
        for image in images:
            self.sandbox.saved += 1
            name = f"{prefix}_{self.sandbox.saved:05}_.png"
            ref = {"filename": name, "subfolder": "", "type": "temp" if temp else "output"}
            data = await asyncio.to_thread(encode_png, image)
            if not self.job["expired"]:  # an expired result: listed, but gone from disk
                self.sandbox.files[ref["type"], "", name] = data
            saved.append(ref)
        return saved

    def history_entry(self) -> dict[str, Any]:
        job = self.job
        return {
            "prompt": queue_item(job),
            "outputs": self.outputs,
            "status": {
                "status_str": "success" if self.success else "error",
                "completed": self.success,
                "messages": self.messages,
            },
            "meta": {
                node: {"node_id": node, "display_node": node, "parent_node": None}
                for node in self.outputs
            },
        }
