"""Phone channel routes (webhooks)."""

from fastapi import APIRouter

router = APIRouter(tags=["phone"])
