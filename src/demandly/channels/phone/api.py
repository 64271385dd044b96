"""Phone channel routes (api)."""

from fastapi import APIRouter

router = APIRouter(tags=["phone"])
