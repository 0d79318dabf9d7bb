"""Which emulators exist: ``imagegate sandbox <name>`` imports ``<module>.create_app``."""

from __future__ import annotations

import importlib
from typing import Protocol

from fastapi import FastAPI

EMULATORS = {
    "openai": "imagegate.sandbox.openai",
    "stability": "imagegate.sandbox.stability",
    "replicate": "imagegate.sandbox.replicate",
    "fal": "imagegate.sandbox.fal",
    "bfl": "imagegate.sandbox.bfl",
    "comfyui": "imagegate.sandbox.comfyui",
    "a1111": "imagegate.sandbox.a1111",
    "midjourney_proxy": "imagegate.sandbox.midjourney_proxy",
}


class _AppFactory(Protocol):
    def __call__(self) -> FastAPI: ...


def create_app(provider: str) -> FastAPI:
    """A fresh emulator app for ``provider``; KeyError names the ones that exist."""
    module = importlib.import_module(EMULATORS[provider])
    factory: _AppFactory = module.create_app
    return factory()
