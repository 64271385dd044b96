"""Phone channel routes (media)."""

from fastapi import APIRouter

router = APIRouter(tags=["phone"])
