"""The database probe behind /readyz."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def database_answers(engine: AsyncEngine) -> bool:
    """A fresh connection runs a query. Any failure means 'not ready', never an error:
    the probe must answer while the database is away."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True
