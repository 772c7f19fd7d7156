"""Applying the Alembic history (migrations/) to a database, from code."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["alembic_config", "downgrade", "history_root", "upgrade"]

ROOT = Path(__file__).resolve().parents[2]


def history_root() -> Path:
    """The folder holding alembic.ini and migrations/: the source tree this package runs from
    (a checkout, an editable install), else the working directory. An installed package
    (`pip install .`, as the Dockerfile does) lives in site-packages, away from migrations/;
    the image copies them into its WORKDIR, where `ciuic serve` runs."""
    for root in (ROOT, Path.cwd()):
        if (root / "migrations" / "env.py").is_file():
            return root
    raise FileNotFoundError(
        f"the Alembic history (migrations/env.py) is neither in the source tree ({ROOT}) nor "
        f"in the working directory ({Path.cwd()}): run ciuic from the folder holding "
        "alembic.ini and migrations/ (the Docker image's WORKDIR does)"
    )


def alembic_config(database_url: str) -> Config:
    root = history_root()
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["database_url"] = database_url
    return config


async def upgrade(database_url: str, revision: str = "head") -> None:
    # env.py runs its own event loop, so Alembic gets a thread of its own.
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), revision)


async def downgrade(database_url: str, revision: str = "base") -> None:
    await asyncio.to_thread(command.downgrade, alembic_config(database_url), revision)
