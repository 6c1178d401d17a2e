"""The explorer's web server: the page, its static files, and the JSON endpoints it calls.

FastAPI validates each request body against its schema (`bpdemo.explore.schemas`, pydantic models
like the configs) before an endpoint runs; every refusal, of any kind, is answered as
`{"error": "one line"}` with a 4xx status, and an unexpected fault as a 500 with one line, never a
traceback. Endpoints are plain functions: FastAPI runs them in its thread pool, and a session runs one
request at a time (`bpdemo.explore.sessions`).

Only the explorer's own page can drive it: a request must name the server's own address as its
`Host` (so a site that rebinds its name to 127.0.0.1 is refused), and a request a page sends from
another site (its `Origin`) is refused before it reaches an endpoint, so no other page can open or
end a session. The server (`explorer_server`) bounds its connections in number and in time: a
connection that has not delivered a whole request `REQUEST_SECONDS` after it opened, or after its
last answer, is closed, and past `MAX_CONNECTIONS` the longest-waiting idle one is closed to make
room. Stopped while a request is running, it answers that request with a 503 of one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import resource
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from bpdemo.explore import schemas
from bpdemo.explore.images import digits_network
from bpdemo.explore.playground import Playground, export, point_config
from bpdemo.explore.problems import FEATURES, PROBLEMS
from bpdemo.explore.schemas import (
    ClassifyRequest,
    EditRequest,
    NeuronRequest,
    PlaygroundSettings,
    PointRequest,
    StepRequest,
    TrainRequest,
    one_line,
)
from bpdemo.explore.sessions import ExploreError, SessionStore
from bpdemo.explore.stepper import WorkedStepper
from bpdemo.functional import ACTIVATIONS
from bpdemo.infra.config import validate
from bpdemo.infra.errors import ConfigError, UsageError
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


def answer(content: Any, status: int = 200) -> Response:
    """`content` as JSON, as `JSONResponse` writes it; an answer with an inf or a NaN is written
    through `json_safe`, the others at once (walking a large answer in Python takes longer than
    writing it)."""
    try:
        body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:  # an inf or a NaN somewhere
        return JSONResponse(json_safe(content), status_code=status)
    return Response(body.encode("utf-8"), status_code=status, media_type="application/json")


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
    small = PlaygroundSettings(points=schemas.MIN_POINTS, grid=schemas.MIN_GRID)
    Playground(small).train(TrainRequest())  # so that a page's first set-up is as quick as the rest
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
        except ClientDisconnect:  # cut off while sending its body (REQUEST_SECONDS): nobody to tell
            return error(408, f"the request did not arrive within {schemas.REQUEST_SECONDS} s")
        except Exception as exc:
            log.error("%s %s failed: %r", request.method, request.url.path, exc)
            log.debug("the traceback", exc_info=exc)
            message = f"the server could not answer: {type(exc).__name__}: {exc}"
            return error(500, message.splitlines()[0])

    app.add_middleware(Guard, state=app.state)  # added last, so it runs first

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
                "datasets": [
                    {"name": p.name, "kind": p.kind, "description": p.description}
                    for p in PROBLEMS.values()
                ],
                "features": [{"name": f.name, "label": f.label} for f in FEATURES.values()],
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

    def playground_of(session) -> Playground:
        if session.playground is None:
            raise ExploreError(409, "set up the playground first")
        return session.playground

    @app.post("/api/playground/train")
    def playground_train(request: TrainRequest, session_id: SessionId) -> JSONResponse:
        with store.use(session_id) as session:
            return answer(playground_of(session).train(request))

    @app.post("/api/playground/neuron")
    def playground_neuron(request: NeuronRequest, session_id: SessionId) -> JSONResponse:
        with store.use(session_id) as session:
            return answer(playground_of(session).neuron(request.depth, request.unit))

    @app.post("/api/playground/point")
    def playground_point(request: PointRequest, session_id: SessionId) -> JSONResponse:
        """One point's step as the worked tab's example (it replaces the tab's example)."""
        with store.use(session_id) as session:
            data = point_config(playground_of(session), request.index)
            try:
                config = validate(WorkedConfig, data, source="the point")
                stepper = WorkedStepper(config, f"playground point {request.index}", first_steps=1)
            except (ConfigError, UsageError) as problem:
                raise ExploreError(422, str(problem)) from None
            session.worked = stepper
            return answer(stepper.view(1, 0))

    @app.post("/api/playground/export")
    def playground_export(session_id: SessionId) -> JSONResponse:
        with store.use(session_id) as session:
            return answer(export(playground_of(session)))

    @app.post("/api/images/setup")
    def images_setup(session_id: SessionId) -> JSONResponse:
        with store.use(session_id):
            return answer(digits_network().setup_answer())

    @app.post("/api/images/classify")
    def images_classify(request: ClassifyRequest, session_id: SessionId) -> JSONResponse:
        with store.use(session_id):
            return answer(digits_network().classify(request.pixels, request.label))

    return app


class Guard:
    """Refuses a request that is not from the explorer's own page, before anything else sees it, and
    answers a request still running when the server stops (ASGI middleware around the app).

    Its own address is the one the connection was made to (`scope["server"]`): the `Host` must be
    127.0.0.1 or localhost at that port (or the server's own name there), and an `Origin`, which a
    browser sends with every request a page makes, must be that same address.
    """

    def __init__(self, app, state):
        self.app = app
        # each running request: a future the server's stop sets, and whether it has begun its answer
        self.running: dict[asyncio.Future, Callable[[], bool]] = {}
        state.guard = self  # for the server, which stops it

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        refusal = self.refusal(scope)
        if refusal is not None:
            return await _send_error(send, *refusal)
        answer = {"begun": False, "abandoned": False}

        async def answering(message) -> None:
            if answer["abandoned"]:
                return  # the page has had its answer: the server stopped
            answer["begun"] = True
            await send(message)

        # The work runs as a task of its own: a thread of torch cannot be cancelled, and waiting for
        # it would hold up the answer to the page and the server's stop.
        work = asyncio.ensure_future(self.app(scope, receive, answering))
        stop = asyncio.get_running_loop().create_future()
        self.running[stop] = lambda: answer["begun"]
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # uvicorn stopped waiting for this request
            pass
        finally:
            del self.running[stop]
        if work.done():
            return work.result()
        if answer["begun"]:  # the answer is on its way: let it finish
            return await work
        answer["abandoned"] = True
        work.cancel()
        await _send_error(send, 503, "the explorer was stopped before it could answer")

    def stop(self) -> None:
        """Answer every request that has not begun its answer with a 503, at once."""
        for stop, begun in self.running.items():
            if not begun() and not stop.done():
                stop.set_result(None)

    @staticmethod
    def refusal(scope) -> tuple[int, str] | None:
        """(status, message) for a request from anywhere but the explorer's own page, else None."""
        server_name, port = scope.get("server") or ("127.0.0.1", None)
        own = {f"{name}:{port}" for name in ("127.0.0.1", "localhost", server_name)}
        if port == 80:  # a Host may leave out the default port
            own |= {"127.0.0.1", "localhost", server_name}
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "").lower()
        if host not in own:
            return 421, (
                f"this server answers only at http://127.0.0.1:{port}/ (the request named "
                f"{host or 'no host'}): open the explorer at the address it printed"
            )
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in {f"http://{name}" for name in own}:
            return 403, f"a page from {origin} cannot use the explorer: only its own page can"
        return None


async def _send_error(send, status: int, message: str) -> None:
    response = error(status, message)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class ExplorerProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 connection, bounded in time and in number (see the module docstring).

    A connection is waiting from the moment it opens, or answers, until a whole request (headers and
    body) has arrived; it may wait `REQUEST_SECONDS`. The waiting connections are kept oldest first,
    so that past the bound the one that has waited longest is closed to make room for a new one.
    """

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        waiting = _waiting(self.server_state)
        while len(self.connections) > _connection_bound() and waiting:
            _, oldest = waiting.popitem(last=False)
            oldest.close()
        self.deadline = None
        self.wait_for_request()

    def wait_for_request(self) -> None:
        self.stop_waiting()
        self.deadline = self.loop.call_later(schemas.REQUEST_SECONDS, self.close)
        _waiting(self.server_state)[id(self)] = self

    def stop_waiting(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        _waiting(self.server_state).pop(id(self), None)

    def close(self) -> None:
        """Close the connection (a request cut off mid-body sees the client leave)."""
        self.stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        cycle = self.cycle
        # A whole request has arrived: the time it takes to answer is not bounded here.
        if cycle is not None and not cycle.more_body and not cycle.response_complete:
            self.stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.wait_for_request()

    def connection_lost(self, exc) -> None:
        self.stop_waiting()
        super().connection_lost(exc)


def _waiting(state) -> OrderedDict:
    """The server's waiting connections, oldest first (kept on uvicorn's shared server state)."""
    if not hasattr(state, "waiting_connections"):
        state.waiting_connections = OrderedDict()
    return state.waiting_connections


def _connection_bound() -> int:
    """`MAX_CONNECTIONS`, or half the files this process may open if that is fewer."""
    files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(schemas.MAX_CONNECTIONS, files // 2) if files > 0 else schemas.MAX_CONNECTIONS


class ExplorerServer(uvicorn.Server):
    """uvicorn's server that, as it stops, first answers the requests still running (503)."""

    async def shutdown(self, sockets=None) -> None:
        guard = getattr(self.config.app.state, "guard", None)  # none before the first request
        if guard is not None:
            guard.stop()
        await super().shutdown(sockets)


def explorer_server(app: FastAPI, *, log_level: int | str = "warning", access_log=False):
    """The server for `app`: bounded connections and timeouts (`bpdemo.explore.schemas`)."""
    config = uvicorn.Config(
        app,
        http=ExplorerProtocol,
        log_level=log_level,
        access_log=access_log,
        timeout_keep_alive=schemas.REQUEST_SECONDS,
        timeout_graceful_shutdown=2,
        h11_max_incomplete_event_size=schemas.MAX_HEADER_BYTES,
    )
    return ExplorerServer(config)


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
    server = explorer_server(app)
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
