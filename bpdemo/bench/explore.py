"""`python -m bpdemo.bench.explore [--quick] [--threads N]`: how quickly the explorer answers its page.

Measured as the page uses it: a server on a free local port, requests over HTTP one after the other,
each sent when the last was answered, the time from sending to having the decoded JSON.

- a worked-example step: the 3-2-1 example stepped forward one step at a time, every number of each
  step by both models, with chain-rule factors and claims (goal: under 50 ms);
- a playground frame: a 2-8-8-1 network on 200 points, one epoch of batches of 10 (20 steps of
  both models side by side), the loss of both on every point, and the decision boundary on a
  100 x 100 grid (goal: at least 20 frames per second).
"""

from __future__ import annotations

import statistics
import sys
import time

import httpx

from bpdemo.explore import SESSION_HEADER, create_app, serving
from bpdemo.infra.cli import CONFIG_DIR, ArgumentParser, run_main
from bpdemo.infra.errors import UsageError
from bpdemo.train import torch_threads
from bpdemo.worked import load_worked_config

STEP_GOAL_MS = 50.0
FRAMES_GOAL = 20.0
PLAYGROUND = {"dataset": "xor", "points": 200, "hidden": [8, 8], "batch_size": 10, "grid": 100}


def timed(http: httpx.Client, path: str, body: dict, session: dict[str, str]) -> float:
    """Seconds from sending one request to its decoded answer (which must be a success)."""
    start = time.perf_counter()
    answer = http.post(path, json=body, headers=session)
    answer.json()
    seconds = time.perf_counter() - start
    if answer.status_code != 200:
        raise RuntimeError(f"{path} answered {answer.status_code}: {answer.text}")
    return seconds


def measure(steps: int, frames: int) -> dict[str, float]:
    config_path = CONFIG_DIR / "worked_321.toml"
    app = create_app(load_worked_config(config_path), str(config_path))
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        session = {SESSION_HEADER: http.post("/api/sessions").json()["session"]}
        timed(http, "/api/worked/step", {"step": 1}, session)  # the page's first request
        forward = [
            timed(http, "/api/worked/step", {"step": step}, session) for step in range(2, steps + 2)
        ]
        again = [timed(http, "/api/worked/step", {"step": 2}, session) for _ in range(steps)]

        timed(http, "/api/playground/setup", PLAYGROUND, session)
        for _ in range(3):  # warm-up
            timed(http, "/api/playground/train", {"epochs": 1}, session)
        frame_times = [
            timed(http, "/api/playground/train", {"epochs": 1}, session) for _ in range(frames)
        ]
    forward.sort()
    return {
        "step_median_ms": 1000 * statistics.median(forward),
        "step_p95_ms": 1000 * forward[int(0.95 * (len(forward) - 1))],
        "step_max_ms": 1000 * forward[-1],  # a step past the runs' end: they are run again, longer
        "step_again_median_ms": 1000 * statistics.median(again),
        "frame_median_ms": 1000 * statistics.median(frame_times),
        "frames_per_second": len(frame_times) / sum(frame_times),
        "steps_per_second": 20 * len(frame_times) / sum(frame_times),
    }


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="bpdemo.bench.explore",
        description="Time the explorer's answers: a worked-example step, a playground frame.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument(
        "--threads", type=int, default=1, metavar="N", help="torch threads (default 1)"
    )
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    args = parser.parse_args(argv)
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    steps, frames = (20, 10) if args.quick else (100, 60)
    with torch_threads(args.threads):
        results = measure(steps, frames)
    step_ok = "meets" if results["step_median_ms"] < STEP_GOAL_MS else "MISSES"
    frame_ok = "meets" if results["frames_per_second"] >= FRAMES_GOAL else "MISSES"
    print(
        f"explorer over HTTP on this computer, torch threads {args.threads}\n"
        f"  worked-example step (3-2-1, steps 2 to {steps + 1}, one at a time): median "
        f"{results['step_median_ms']:.1f} ms, 95th percentile {results['step_p95_ms']:.1f} ms, "
        f"slowest {results['step_max_ms']:.1f} ms ({step_ok} the goal of {STEP_GOAL_MS:.0f} ms)\n"
        f"  the same step asked again: median {results['step_again_median_ms']:.1f} ms\n"
        f"  playground frame (2-8-8-1, 200 points, 20 steps of both models, 100 x 100 grid): "
        f"median {results['frame_median_ms']:.1f} ms, {results['frames_per_second']:.1f} frames/s, "
        f"{results['steps_per_second']:.0f} steps/s ({frame_ok} the goal of {FRAMES_GOAL:.0f} "
        "frames/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
