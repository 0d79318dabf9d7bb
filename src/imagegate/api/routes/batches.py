"""/api/image/batches (being built: see issue 10)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/image/batches", tags=["batches"])
