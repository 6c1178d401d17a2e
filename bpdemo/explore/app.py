"""The explorer's web server: the page, its static files, and the JSON endpoints it calls.

FastAPI validates each request body against its schema (`bpdemo.explore.schemas`, pydantic models
like the configs) before an endpoint runs; every refusal, of any kind, is answered as
`{"error": "one line"}` with a 4xx status, and an unexpected fault as a 500 with one line, never a
traceback. Endpoints are plain functions: FastAPI runs them in its thread pool, and a session runs one
request at a time (`bpdemo.explore.sessions`).
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from bpdemo.explore import schemas
from bpdemo.explore.playground import Playground
from bpdemo.explore.schemas import (
    EditRequest,
    PlaygroundSettings,
    StepRequest,
    TrainRequest,
    one_line,
)
from bpdemo.explore.sessions import ExploreError, SessionStore
from bpdemo.explore.stepper import WorkedStepper
from bpdemo.functional import ACTIVATIONS
from bpdemo.infra.errors import UsageError
from bpdemo.optim import OPTIMIZERS
from bpdemo.worked import WorkedConfig

STATIC = Path(str(files("bpdemo.explore") / "static"))
SESSION_HEADER = "X-Session"
log = logging.getLogger("bpdemo.explore")

SessionId = Annotated[str, Header(alias=SESSION_HEADER, max_length=64)]


def json_safe(value: Any) -> Any:
    """`value` with every inf and NaN written as the strings "inf", "-inf", "NaN" (JSON has none)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], int) and not isinstance(value[0], bool):
            return value  # a list of integers, such as the boundary's shades, is safe as it is
        return [json_safe(item) for item in value]
    return value


def answer(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(json_safe(content), status_code=status)


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def limits() -> dict[str, Any]:
    """Every limit a request is checked against, by name (the page shows some beside its fields)."""
    return {
        name.lower(): getattr(schemas, name)
        for name in dir(schemas)
        if name.startswith(("MAX_", "MIN_"))
    }


def create_app(
    config: WorkedConfig, source: str, *, max_sessions: int = schemas.MAX_SESSIONS
) -> FastAPI:
    """The app for one worked example (checked: `WorkedStepper` raises ConfigError if it is wrong)."""
    WorkedStepper(config, source).view(1, 0)  # checks the example, and warms torch up
    store = SessionStore(lambda: WorkedStepper(config, source), max_sessions=max_sessions)
    app = FastAPI(
        title="bpdemo explorer", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json"
    )
    app.state.store = store
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        chunked = "chunked" in request.headers.get("transfer-encoding", "")
        if chunked or (
            length is not None and (not length.isdigit() or int(length) > schemas.MAX_BODY_BYTES)
        ):
            return error(413, f"the request body is larger than {schemas.MAX_BODY_BYTES} bytes")
        # A fault, not a refusal: one line for the page, the details in the log.
        try:
            return await call_next(request)
        except Exception as exc:
            log.error("%s %s failed: %r", request.method, request.url.path, exc)
            log.debug("the traceback", exc_info=exc)
            message = f"the server could not answer: {type(exc).__name__}: {exc}"
            return error(500, message.splitlines()[0])

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, one_line(exc.errors()))

    @app.exception_handler(ExploreError)
    async def refused(request: Request, exc: ExploreError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(UsageError)
    async def usage(request: Request, exc: UsageError) -> JSONResponse:
        return error(422, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.post("/api/sessions")
    def open_session() -> JSONResponse:
        """A new session for one page: its id, the limits, the names the page's menus offer."""
        session = store.open()
        return answer(
            {
                "session": session.id,
                "header": SESSION_HEADER,
                "limits": limits(),
                "activations": list(ACTIVATIONS),
                "optimizers": list(OPTIMIZERS),
                "datasets": ["xor", "moons", "circles", "spiral"],
                "playground_defaults": PlaygroundSettings().model_dump(),
            }
        )

    @app.post("/api/worked/step")
    def worked_step(request: StepRequest, session_id: SessionId) -> JSONResponse:
        with store.use(session_id) as session:
            return answer(session.worked.view(request.step, request.sample))

    @app.post("/api/worked/edit")
    def worked_edit(request: EditRequest, session_id: SessionId) -> JSONResponse:
        with store.use(session_id) as session:
            session.worked.edit(request)
            return answer(session.worked.view(1, request.sample))

    @app.post("/api/worked/reset")
    def worked_reset(session_id: SessionId) -> JSONResponse:
        with store.use(session_id) as session:
            session.worked.reset()
            return answer(session.worked.view(1, 0))

    @app.post("/api/playground/setup")
    def playground_setup(settings: PlaygroundSettings, session_id: SessionId) -> JSONResponse:
        with store.use(session_id) as session:
            session.playground = Playground(settings)
            return answer(session.playground.setup_answer())

    @app.post("/api/playground/train")
    def playground_train(request: TrainRequest, session_id: SessionId) -> JSONResponse:
        with store.use(session_id) as session:
            if session.playground is None:
                raise ExploreError(409, "set up the playground first")
            return answer(session.playground.train(request))

    return app


def tcp_socket() -> socket.socket:
    """A TCP socket to serve from, for uvicorn's `sockets=`.

    Its protocol is named: asyncio turns Nagle's algorithm off only on connections whose socket says
    IPPROTO_TCP, and with it on, each answer on a kept-alive connection waits about 40 ms.
    """
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)


@contextmanager
def serving(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` from a background thread on a free port while the block runs; yields its URL.

    For the browser tests and the benchmark: `python -m demos.explore` serves from the main
    thread, where Ctrl-C reaches the server.
    """
    sock = tcp_socket()
    sock.bind((host, 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the explorer's server did not start")
            time.sleep(0.02)
        yield f"http://{host}:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
