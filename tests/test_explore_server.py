"""The explorer's server against other sites, stalled connections, limits and being stopped.

Only its own page can drive it: a request naming another host (DNS rebinding) or sent by a page of
another site (its Origin) is refused with one line, and a page from another origin, in a real
browser, can neither open nor end a session. A connection that never delivers a whole request is
closed after `REQUEST_SECONDS`; twenty thousand of them leave it serving. Stopped while a request
runs, it answers that request with one line of JSON, prints no traceback, and exits 143 on SIGTERM.
"""

import http.server
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import httpx
import pytest

with warnings.catch_warnings():  # newer Starlette prefers the httpx2 package; httpx works the same
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

from test_explore_browser import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, WAIT_SECONDS

from bpdemo.bench.explore import largest_playgrounds, largest_worked_config
from bpdemo.explore import SESSION_HEADER, create_app, schemas, serving
from bpdemo.explore.app import Guard
from bpdemo.explore.playground import Playground
from bpdemo.explore.schemas import PlaygroundSettings, TrainRequest, check_worked_size
from bpdemo.worked import WorkedExample, load_worked_config

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "worked_321.toml"
SERVER_SECONDS = 120  # a guard against a server that never ends, never a timing


@pytest.fixture(scope="module")
def app():
    return create_app(load_worked_config(CONFIG), str(CONFIG))


@pytest.fixture(scope="module")
def url(app):
    with serving(app) as address:
        yield address


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium, as tests/test_explore_browser.py drives it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def open_session(http) -> dict[str, str]:
    answer = http.post("/api/sessions")
    assert answer.status_code == 200, answer.text
    return {SESSION_HEADER: answer.json()["session"]}


def refused(answer, status: int) -> str:
    """The one-line message of a refusal with `status`."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return body["error"]


def port_of(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


# -- only its own page --------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1"])
def test_a_request_naming_another_host_is_refused_and_opens_no_session(app, url, host):
    before = set(app.state.store.sessions)
    with httpx.Client(base_url=url, timeout=30) as http:
        answer = http.post("/api/sessions", headers={"Host": host.format(port=port_of(url))})
    assert "this server answers only at" in refused(answer, 421)
    assert set(app.state.store.sessions) == before


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}"])
def test_a_request_naming_its_own_address_is_served(url, host):
    with httpx.Client(base_url=url, timeout=30) as http:
        answer = http.post("/api/sessions", headers={"Host": host.format(port=port_of(url))})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:1", "null", "https://127.0.0.1:{port}"]
)
def test_a_request_from_another_sites_page_is_refused_and_changes_no_session(app, url, origin):
    with httpx.Client(base_url=url, timeout=30) as http:
        session = open_session(http)
        before = set(app.state.store.sessions)
        headers = {"Origin": origin.format(port=port_of(url))}
        assert "cannot use the explorer" in refused(
            http.post("/api/sessions", headers=headers), 403
        )
        answer = http.post("/api/worked/edit", json={"what": "lr", "value": 1}, headers=headers)
        assert "cannot use the explorer" in refused(answer, 403)
        assert set(app.state.store.sessions) == before
        assert http.post("/api/worked/step", json={}, headers=session).json()["lr"] == 0.1


def test_a_request_from_its_own_page_is_served(url):
    with httpx.Client(base_url=url, timeout=30) as http:
        answer = http.post("/api/sessions", headers={"Origin": url.rstrip("/")})
    assert answer.status_code == 200


ATTACKER_PAGE = """<!doctype html><title>elsewhere</title><script>
(async () => {{
  let sent = 0;
  for (let i = 0; i < {count}; i++) {{
    try {{
      await fetch("{target}api/sessions",
                  {{mode: "no-cors", method: "POST", headers: {{"Content-Type": "text/plain"}},
                    body: "{{}}"}});
    }} catch (error) {{}}
    sent += 1;
  }}
  document.title = "sent " + sent;
}})();
</script>"""


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="needs Chromium and its driver"
)
def test_a_page_from_another_origin_can_neither_open_nor_end_a_session(
    app, url, browser, monkeypatch
):
    from selenium.webdriver.support.ui import WebDriverWait

    refusals = []
    refusal = Guard.refusal

    def counted(scope):
        answer = refusal(scope)
        refusals.append(answer)
        return answer

    monkeypatch.setattr(Guard, "refusal", staticmethod(counted))
    count = schemas.MAX_SESSIONS + 8  # enough to push every other page's session out, if opened
    page = ATTACKER_PAGE.format(count=count, target=url).encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    with httpx.Client(base_url=url, timeout=30) as http_client:
        users = open_session(http_client)
        before = set(app.state.store.sessions)
        elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
        threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
        try:
            browser.get(f"http://127.0.0.1:{elsewhere.server_address[1]}/")
            WebDriverWait(browser, WAIT_SECONDS).until(
                lambda _: browser.title == f"sent {count}", "the page did not send its requests"
            )
        finally:
            elsewhere.shutdown()
            elsewhere.server_close()
        assert set(app.state.store.sessions) == before
        assert len([r for r in refusals if r is not None and r[0] == 403]) >= count
        assert http_client.post("/api/worked/step", json={}, headers=users).status_code == 200


# -- bad values at the limits -------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["xor", "moons", "circles", "spiral"])
def test_a_noise_of_minus_zero_is_a_noise_of_zero_for_every_data_set(app, dataset):
    client = TestClient(app)
    session = open_session(client)
    body = {"dataset": dataset, "noise": -0.0, "points": 20}
    answer = client.post("/api/playground/setup", json=body, headers=session)
    assert answer.status_code == 200, answer.text
    assert answer.json()["settings"]["noise"] == 0.0


def test_a_playground_whose_epoch_is_more_than_one_request_runs_is_refused_at_set_up(app):
    client = TestClient(app)
    session = open_session(client)
    body = {"points": schemas.MAX_POINTS, "test_share": 0, "batch_size": 1}  # all trained on
    answer = client.post("/api/playground/setup", json=body, headers=session)
    message = refused(answer, 422)
    smallest = -(-schemas.MAX_POINTS // schemas.MAX_STEPS_PER_REQUEST)
    assert f"use batches of at least {smallest}" in message
    body["batch_size"] = smallest
    assert client.post("/api/playground/setup", json=body, headers=session).status_code == 200


def test_the_benchmarks_largest_cases_are_within_the_limits_and_at_them():
    """The cases `python -m bpdemo.bench.explore` times are the largest the explorer takes."""
    config = largest_worked_config()
    example = WorkedExample.from_config(config, source="largest")
    check_worked_size(example.spec.sizes, len(example.inputs), "largest")
    assert len(example.spec.sizes) - 1 == schemas.MAX_LAYERS
    assert max(example.spec.sizes) == schemas.MAX_UNITS
    assert len(example.inputs) == schemas.MAX_SAMPLES and config.train.steps == schemas.MAX_STEP
    for settings, request in largest_playgrounds().values():
        settings, request = PlaygroundSettings(**settings), TrainRequest(**request)
        assert request.epochs * settings.steps_per_epoch() == schemas.MAX_STEPS_PER_REQUEST
        assert settings.points == schemas.MAX_POINTS and settings.grid == schemas.MAX_GRID
        assert settings.neuron_grid == schemas.MAX_NEURON_GRID
        assert settings.classes == schemas.MAX_CLASSES and len(settings.features) == 7


# -- stalled connections ------------------------------------------------------------------------
@pytest.fixture
def quick_timeout(monkeypatch):
    """A connection may wait half a second for its request (REQUEST_SECONDS), for these tests."""
    monkeypatch.setattr(schemas, "REQUEST_SECONDS", 0.5)


def test_a_connection_that_sends_nothing_is_closed(app, quick_timeout):
    with serving(app) as address, socket.create_connection(("127.0.0.1", port_of(address))) as s:
        s.settimeout(SERVER_SECONDS)
        assert s.recv(100) == b""  # closed by the server, not by the guard's timeout


def test_a_request_whose_body_never_finishes_is_cut_off_and_the_server_goes_on(app, quick_timeout):
    with serving(app) as address, httpx.Client(base_url=address, timeout=30) as http:
        session = open_session(http)
        port = port_of(address)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.settimeout(SERVER_SECONDS)
            s.sendall(
                f"POST /api/worked/step HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"{SESSION_HEADER}: {session[SESSION_HEADER]}\r\nContent-Type: application/json\r\n"
                'Content-Length: 100\r\n\r\n{"step": '.encode()
            )
            received = b""
            while chunk := s.recv(4096):
                received += chunk
        assert received == b"" or received.startswith(b"HTTP/1.1 408"), received
        assert http.post("/api/worked/step", json={}, headers=session).status_code == 200


FLOOD = """\
import asyncio, sys

async def main(port, count):
    held, gate = [], asyncio.Semaphore(200)

    async def one(i):
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if i % 2:  # half of them start a request and never finish it
                writer.write(b"POST /api/sessions HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n")
            held.append(writer)

    await asyncio.gather(*(one(i) for i in range(count)))
    print("ready", len(held), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def explorer_process(*flags: str) -> tuple[subprocess.Popen, str]:
    """`python -m demos.explore --no-browser *flags`, started: (the process, its first line)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "demos.explore", "--no-browser", *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, process.stdout.readline()


def test_twenty_thousand_stalled_connections_leave_it_serving():
    server, first = explorer_process("--quiet")
    floods: list[subprocess.Popen] = []
    timer = threading.Timer(SERVER_SECONDS, server.kill)  # never hang the test run
    timer.start()
    try:
        address = first.split()[2]
        port = str(port_of(address))
        for _ in range(4):  # four clients of 5,000 connections: more than one process may open
            floods.append(
                subprocess.Popen(
                    [sys.executable, "-c", textwrap.dedent(FLOOD), port, "5000"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        assert [flood.stdout.readline().split() for flood in floods] == [["ready", "5000"]] * 4
        with httpx.Client(base_url=address, timeout=30) as http:
            assert http.post("/api/sessions").status_code == 200
    finally:
        for flood in floods:
            flood.kill()
            flood.wait()
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=SERVER_SECONDS)
        timer.cancel()
    assert server.returncode == 130
    assert "Too many open files" not in err and err == "", err[-2000:]


# -- stopping it --------------------------------------------------------------------------------
def test_a_request_running_when_the_server_stops_is_answered_with_one_line_of_json(
    monkeypatch, caplog
):
    entered, answered = threading.Event(), threading.Event()

    def long_training(self, request):
        entered.set()
        answered.wait(SERVER_SECONDS)  # as long as the server lets it run
        return {}

    app = create_app(load_worked_config(CONFIG), str(CONFIG))
    monkeypatch.setattr(Playground, "train", long_training)
    result = {}
    with serving(app) as address:
        http = httpx.Client(base_url=address, timeout=SERVER_SECONDS)
        session = open_session(http)
        http.post("/api/playground/setup", json={}, headers=session)

        def train():
            result["answer"] = http.post("/api/playground/train", json={}, headers=session)
            answered.set()

        waiting = threading.Thread(target=train)
        waiting.start()
        assert entered.wait(SERVER_SECONDS)
    waiting.join(SERVER_SECONDS)
    answer = result["answer"]
    assert answer.headers["content-type"] == "application/json"
    assert "stopped before it could answer" in refused(answer, 503)
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"]


def test_ctrl_c_as_soon_as_the_address_is_printed_stops_it_and_says_so():
    """Its address is printed just before the server starts answering: a Ctrl-C then is a stop,
    not a server that "could not start"."""
    server, first = explorer_process()
    try:
        assert first.startswith("bpdemo explorer: http://127.0.0.1:")
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=SERVER_SECONDS)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert (server.returncode, out, err) == (130, "explorer stopped\n", "")


def test_sigterm_stops_it_with_status_143_and_quiet_prints_only_the_address():
    server, first = explorer_process("--quiet")
    timer = threading.Timer(SERVER_SECONDS, server.kill)
    timer.start()
    try:
        address = first.split()[2]
        assert httpx.get(address, timeout=30).status_code == 200
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=SERVER_SECONDS)
    finally:
        timer.cancel()
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 143
    assert first.startswith("bpdemo explorer: http://127.0.0.1:") and out == ""
    assert err == ""
