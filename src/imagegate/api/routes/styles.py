"""/api/image/styles (being built: see issue 10)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/image/styles", tags=["styles"])
