"""`ciuic` command line: serve, migrate, openapi (and simulate, in app.cli.simulate)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["main", "uvicorn_options"]


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What `serve` passes uvicorn besides the app and the address: our logging, not
    uvicorn's (log_config=None), its access log as CIUIC_ACCESS_LOG says."""
    return {"log_config": None, "access_log": settings.access_log, "proxy_headers": True}


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logs import configure_logging
    from app.main import create_app
    from app.settings import get_settings
    from app.store.migrate import upgrade

    settings = get_settings()
    host = args.host or settings.host
    port = args.port or settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    configure_logging(
        settings.log_level, json_lines=settings.log_json, access_log=settings.access_log
    )
    if not settings.auth_enabled and not settings.bind_is_loopback(host):
        print(
            f"ciuic: refusing to serve on {host}: no CIUIC_ADMIN_TOKEN is set, so the API would "
            "be open to the network. Set CIUIC_ADMIN_TOKEN, or bind to 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    asyncio.run(upgrade(settings.database_url))
    if args.workers > 1:
        # Each worker process builds its own app from the environment; only the elected
        # leader among them runs the background loops.
        uvicorn.run(
            "app.main:create_worker_app",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            **uvicorn_options(settings),
        )
        return 0
    uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_options(settings))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from app.settings import get_settings
    from app.store.migrate import downgrade, upgrade

    url = get_settings().database_url
    if args.downgrade:
        asyncio.run(downgrade(url, args.downgrade))
    else:
        asyncio.run(upgrade(url, args.revision))
    print(f"ciuic: database at {args.downgrade or args.revision}", file=sys.stderr)
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from app.openapi import export_openapi

    text = json.dumps(export_openapi(), indent=2, sort_keys=True) + "\n"
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ciuic")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ciuic", description="Predictive GPU autoscaler")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service (applies pending migrations first)")
    serve.add_argument("--host", help="bind address (default CIUIC_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default CIUIC_PORT or 8080)")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (default 1)"
    )
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="apply the database migrations and exit")
    migrate.add_argument(
        "--revision", default="head", help="migrate up to this Alembic revision (default head)"
    )
    migrate.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION")
    migrate.set_defaults(func=_migrate)

    openapi = sub.add_parser("openapi", help="write the OpenAPI document")
    openapi.add_argument(
        "--output",
        "-o",
        default="openapi/openapi.json",
        help="file to write, or - for stdout (default openapi/openapi.json)",
    )
    openapi.set_defaults(func=_openapi)
    from app.cli import demo, simulate

    demo.add_parser(sub)
    simulate.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import httpx

    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except httpx.TransportError as exc:  # demo and friends talk to a running service
        url = getattr(args, "url", None) or "the service"
        print(
            f"ciuic {args.command}: cannot reach {url}: {exc or type(exc).__name__} "
            "(is `ciuic serve` running there?)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
