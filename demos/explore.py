"""The explorer: step through a worked example and train small networks live, in the browser.

    python -m demos.explore [--config worked_321] [--port N] [--no-browser]

Starts a web server on 127.0.0.1 (this computer only), prints its address and opens the page. Every
number on the page is computed here, by the hand-written model and by autograd, and sent as JSON;
the library side is `bpdemo.explore`. Ctrl-C (SIGINT) or SIGTERM stops the server: a request still
running is answered with one line, the command prints `explorer stopped` (nothing with --quiet) and
exits with status 130 or 143, as a program stopped by that signal does.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
import webbrowser

from bpdemo.explore import create_app, tcp_socket
from bpdemo.explore.app import explorer_server
from bpdemo.infra import interruption
from bpdemo.infra.cli import ArgumentParser, config_arguments, run_main
from bpdemo.infra.errors import RunError, UsageError
from bpdemo.train import torch_threads
from bpdemo.worked import load_worked_config

DEFAULT_CONFIG = "worked_321"  # a shipped config
HOST = "127.0.0.1"  # never another address: the page is for the person at this computer
THREADS = 1  # small networks run fastest on one torch thread; requests run side by side anyway
EPILOG = """\
examples:
  python -m demos.explore                                        the 3-2-1 example, and the playground
  python -m demos.explore --config worked_image                  start from the dog image example
  python -m demos.explore --no-browser --port 8765               serve on a fixed port, open nothing
"""


def parser() -> ArgumentParser:
    parser = ArgumentParser(
        "demos.explore",
        description="Backpropagation in the browser: a worked example step by step, and a "
        "playground, every number computed by both models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    config_arguments(parser, DEFAULT_CONFIG, "the worked example to start from: a TOML")
    parser.add_argument(
        "--port", type=int, metavar="N", help="port to serve on (default: a free one)"
    )
    parser.add_argument("--no-browser", action="store_true", help="do not open the browser")
    parser.add_argument("--quiet", action="store_true", help="print only the address")
    parser.add_argument(
        "--debug", action="store_true", help="log every request, and show tracebacks"
    )
    return parser


def listening_socket(port: int | None) -> socket.socket:
    """A socket listening on HOST:port (a free port if None): the address is known, and can be
    connected to, before the server starts."""
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: a port is a number from 1 to 65535")
    sock = tcp_socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port or 0))
        sock.listen()  # from now on a browser can connect: it waits until the server answers
    except OSError as error:
        sock.close()
        raise UsageError(
            f"--port {port}: cannot serve there ({error.strerror}); choose another port, or leave "
            "--port out to take a free one"
        ) from None
    return sock


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)

    # Everything the user could get wrong is checked before the server starts.
    config = load_worked_config(args.config)
    sock = listening_socket(args.port)
    level = logging.DEBUG if args.debug else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    server = None
    try:
        with torch_threads(THREADS):
            app = create_app(config, str(args.config))  # refuses an example it cannot draw
            server = explorer_server(app, log_level=level, access_log=args.debug)
            url = f"http://{HOST}:{sock.getsockname()[1]}/"
            print(f"bpdemo explorer: {url}  (Ctrl-C stops it)", flush=True)
            if not args.no_browser:
                threading.Timer(0.5, webbrowser.open, [url]).start()
            server.run(sockets=[sock])
        stop = None
    except KeyboardInterrupt as signalled:  # the server raises the signal again once it has stopped
        stop = interruption.as_interrupted(signalled)
    finally:
        sock.close()
    if server is not None and not server.started and stop is None:  # not stopped while starting
        raise RunError(f"the server could not start on {url}")
    if not args.quiet:
        print("explorer stopped", flush=True)
    # The server returns only when a signal has stopped it: Ctrl-C (SIGINT) or SIGTERM.
    return stop.exit_status if stop is not None else 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(run_main(main))
