"""STATUS QUO baseline: the Action Queue as the existing Python backend builds it.

SQLAlchemy async ORM (the version pinned in requirements-dev.txt, 2.1.x; the bench
prints the installed one) over aiosqlite on a SQLite file, one session and one
commit per operation, written the idiomatic way (declarative models mirroring
the Server/Action fields of docs/contract/domain.md#action-fields,
``async_sessionmaker(expire_on_commit=False)``, ``session.get`` for lookups,
``select()`` for the duplicate check). To compare
like with like it gets the same durability as actionq's default: WAL journal,
``synchronous=NORMAL``, foreign keys on, a busy timeout; and it writes the same
audit event row in the same transaction.

Used three ways:

    python status_quo.py create --db PATH --n N      # creates/s on a fresh file
    python status_quo.py get --db PATH --n N --ids M [--rounds R] [--seed S]
    from status_quo import create_app                 # the same FastAPI routes

Each command prints one JSON line, e.g. ``{"per_s": 812.4}``. ``get`` seeds M
actions into the file only when it holds none, so the bench driver can run one
round per process (``--rounds 1 --seed <round>``) interleaved with the other
contenders on the same file.
"""


import argparse
import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

COMMANDS = {
    "restart_service": "systemctl restart {service_name}",
    "clear_logs": "journalctl --vacuum-time=7d",
    "apt_update": "DEBIAN_FRONTEND=noninteractive apt-get update -q -o APT::Sandbox::User=root",
    "apt_upgrade_all": (
        "DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -q -y "
        '-o Dpkg::Options::="--force-confdef" -o Dpkg::Options::="--force-confold" '
        "-o APT::Sandbox::User=root"
    ),
}
APT_TYPES = ("apt_update", "apt_upgrade_all")
ACTIVE = ("pending", "approved", "executing")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Server(Base):
    __tablename__ = "servers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    is_paused: Mapped[bool] = mapped_column(default=False)
    paused_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Action(Base):
    __tablename__ = "actions"
    __table_args__ = (
        Index("ix_actions_server_status", "server_id", "status"),
        Index("ix_actions_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    server_id: Mapped[str] = mapped_column(ForeignKey("servers.id"))
    action_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    service_name: Mapped[str | None] = mapped_column(String(255))
    command: Mapped[str]
    argv: Mapped[list[str]] = mapped_column(JSON)
    env: Mapped[dict[str, str]] = mapped_column(JSON)
    alert_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="dashboard")
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(100))
    rejected_at: Mapped[datetime | None]
    rejected_by: Mapped[str | None] = mapped_column(String(100))
    rejection_reason: Mapped[str | None]
    cancelled_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(100))
    executed_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    lease_token: Mapped[str | None] = mapped_column(String(36))
    completed_at: Mapped[datetime | None]
    exit_code: Mapped[int | None]
    stdout: Mapped[str | None]
    stderr: Mapped[str | None]


class ActionEvent(Base):
    __tablename__ = "action_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("actions.id"))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime]
    detail: Mapped[str | None]


class NotFound(Exception):
    pass


class Conflict(Exception):
    def __init__(self, message: str, existing_action_id: int) -> None:
        super().__init__(message)
        self.existing_action_id = existing_action_id


def make_engine(path: str) -> AsyncEngine:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return engine


async def init_db(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return async_sessionmaker(engine, expire_on_commit=False)


async def create_server(session: AsyncSession, server_id: str, hostname: str | None = None) -> Server:
    server = Server(id=server_id, hostname=hostname)
    session.add(server)
    await session.commit()
    return server


async def create_action(
    session: AsyncSession,
    server_id: str,
    action_type: str,
    service_name: str | None = None,
    alert_id: int | None = None,
    created_by: str = "dashboard",
) -> Action:
    """Create rules 2-5 (docs/contract/create-rules.md#order; shape checks are
    pydantic's job upstream)."""
    server = await session.get(Server, server_id)
    if server is None:
        raise NotFound(f"Server '{server_id}' not found")
    command = COMMANDS[action_type].format(service_name=service_name)
    if action_type == "restart_service":
        existing = await session.scalar(
            select(Action.id).where(
                Action.server_id == server_id,
                Action.action_type == action_type,
                Action.service_name == service_name,
                Action.status == "pending",
            )
        )
        if existing is not None:
            raise Conflict(
                f"Pending action already exists for service '{service_name}' on server '{server_id}'",
                existing,
            )
    elif action_type in APT_TYPES:
        existing = await session.scalar(
            select(Action.id).where(
                Action.server_id == server_id,
                Action.action_type.in_(APT_TYPES),
                Action.status.in_(ACTIVE),
            )
        )
        if existing is not None:
            raise Conflict(
                f"An APT action is already pending/in-progress for server '{server_id}'", existing
            )
    env: dict[str, str] = {}
    argv = command.split()
    if argv[0].startswith("DEBIAN_FRONTEND="):
        key, value = argv.pop(0).split("=", 1)
        env[key] = value
    now = utcnow()
    paused = server.is_paused
    action = Action(
        server_id=server_id,
        action_type=action_type,
        status="pending" if paused else "approved",
        service_name=service_name,
        command=command,
        argv=argv,
        env=env,
        alert_id=alert_id,
        created_at=now,
        created_by=created_by,
        approved_at=None if paused else now,
        approved_by=None if paused else "auto",
    )
    session.add(action)
    await session.flush()
    session.add(
        ActionEvent(action_id=action.id, from_status=None, to_status=action.status, actor=created_by, at=now)
    )
    await session.commit()
    return action


async def get_action(session: AsyncSession, action_id: int) -> Action:
    action = await session.get(Action, action_id)
    if action is None:
        raise NotFound(f"Action {action_id} not found")
    return action


# Benchmarks --------------------------------------------------------------------


async def bench_create(path: str, n: int) -> float:
    engine = make_engine(path)
    sessions = await init_db(engine)
    async with sessions() as session:
        await create_server(session, "bench-0")
    start = time.perf_counter()
    for i in range(n):
        async with sessions() as session:
            await create_action(session, "bench-0", "restart_service", f"svc-{i}.service")
    elapsed = time.perf_counter() - start
    await engine.dispose()
    return n / elapsed


async def bench_get(path: str, n: int, ids: int, rounds: int, seed: int = 0) -> float:
    engine = make_engine(path)
    sessions = await init_db(engine)
    async with sessions() as session:
        if await session.get(Server, "bench-0") is None:
            await seed_get(session, ids)
    rates = []
    for r in range(rounds):
        rng = random.Random(seed + r)
        picks = [rng.randrange(ids) + 1 for _ in range(n)]
        start = time.perf_counter()
        for action_id in picks:
            async with sessions() as session:
                await get_action(session, action_id)
        rates.append(n / (time.perf_counter() - start))
    await engine.dispose()
    return sorted(rates)[len(rates) // 2]


async def seed_get(session: AsyncSession, ids: int) -> None:
    await create_server(session, "bench-0")
    now = utcnow()
    rows = [
        {
            "server_id": "bench-0",
            "action_type": "restart_service",
            "status": "approved",
            "service_name": f"svc-{i}.service",
            "command": f"systemctl restart svc-{i}.service",
            "argv": ["systemctl", "restart", f"svc-{i}.service"],
            "env": {},
            "created_at": now,
            "created_by": "dashboard",
            "approved_at": now,
            "approved_by": "auto",
        }
        for i in range(ids)
    ]
    await session.execute(insert(Action), rows)
    await session.commit()


# The same FastAPI routes --------------------------------------------------------


def create_app(db_path: str, api_key: str) -> Any:
    """The status quo behind the contract's routes for servers and actions
    (create, get; docs/contract/http.md#routes),
    with the request/response models of the real backend (actionq.server)."""
    import secrets
    from typing import Annotated

    from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
    from fastapi.security import APIKeyHeader

    from pydantic import create_model

    from actionq.server import models
    from actionq.server.models import ActionCreate, ServerCreate, ServerOut

    # The seed's action record: actionq's without the fields the approval
    # policy added (approvals, digest, whitelist_version), which the status
    # quo never had.
    policy_fields = {"approvals", "digest", "whitelist_version"}
    ActionOut = create_model(  # noqa: N806 (a model class)
        "ActionOut",
        __base__=models.Record,
        **{
            name: (field.annotation, field)
            for name, field in models.ActionOut.model_fields.items()
            if name not in policy_fields
        },
    )

    engine = make_engine(db_path)
    state: dict[str, async_sessionmaker[AsyncSession]] = {}
    api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    async def require_api_key(given: Annotated[str | None, Depends(api_key_header)]) -> None:
        if given is None or not secrets.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, {"code": "UNAUTHORIZED", "message": "Missing or invalid X-API-Key header"})

    async def session() -> AsyncIterator[AsyncSession]:
        async with state["sessions"]() as s:
            yield s

    Session = Annotated[AsyncSession, Depends(session)]

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state["sessions"] = await init_db(engine)
        yield
        await engine.dispose()

    app = FastAPI(title="status quo", lifespan=lifespan)

    @app.exception_handler(NotFound)
    async def not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": {"code": "NOT_FOUND", "message": str(exc)}})

    @app.exception_handler(Conflict)
    async def conflict(_request: Request, exc: Conflict) -> JSONResponse:
        detail = {"code": "CONFLICT", "message": str(exc), "existing_action_id": exc.existing_action_id}
        return JSONResponse(status_code=409, content={"detail": detail})

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)])

    @api.post("/servers", status_code=201, response_model=ServerOut)
    async def create_server_route(body: ServerCreate, s: Session) -> Server:
        return await create_server(s, body.id, body.hostname)

    @api.get("/actions/{action_id}", response_model=ActionOut)
    async def get_action_route(action_id: int, s: Session) -> Action:
        return await get_action(s, action_id)

    @api.post("/actions", status_code=201, response_model=ActionOut)
    async def create_action_route(body: ActionCreate, s: Session) -> Action:
        if body.action_type not in COMMANDS:  # the model takes any name; the app checks its whitelist
            raise HTTPException(422, [{"type": "enum", "loc": ["body", "action_type"], "msg": "not whitelisted"}])
        return await create_action(s, body.server_id, body.action_type, body.service_name, body.alert_id)

    app.include_router(api)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["create", "get"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--ids", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="get: first round's id sequence")
    args = parser.parse_args()
    if args.mode == "create":
        per_s = asyncio.run(bench_create(args.db, args.n))
    else:
        per_s = asyncio.run(bench_get(args.db, args.n, args.ids, args.rounds, args.seed))
    print(json.dumps({"per_s": per_s}))


if __name__ == "__main__":
    main()
