"""`python -m bpdemo.bench.explore [--quick] [--threads N]`: how quickly the explorer answers its page.

Measured as the page uses it: a server on a free local port, requests over HTTP one after the other,
each sent when the last was answered, the time from sending to having the decoded JSON.

- a worked-example step: the 3-2-1 example stepped forward one step at a time, every number of each
  step by both models, with chain-rule factors and claims (goal: under 50 ms);
- a playground frame: a 2-8-8-1 network on 200 points, one epoch of batches of 10 (20 steps of
  both models side by side), the loss of both on every point, the output on a 100 x 100 grid and
  every neuron's picture on a 24 x 24 grid (goal: at least 20 frames per second);
- a clicked point's step-through: the point as a worked example on the current weights, every
  number by both models (goal: under 50 ms, as a worked-example step);
- the image tab: its first opening, which trains the digits network (once per server), and an image
  classified with both saliency maps;
- the largest case: every kind of request at the explorer's limits (`bpdemo.explore.schemas`), the
  slowest of each (goal: every answer under 1 s). The worked example has MAX_LAYERS tanh layers of
  MAX_UNITS neurons, MAX_SAMPLES samples, MAX_STEP steps and the most claims a worked example may
  state; the playground MAX_POINTS points of MAX_CLASSES classes, every feature, MAX_HIDDEN_LAYERS
  layers of MAX_HIDDEN_UNITS with dropout, a MAX_GRID grid and MAX_NEURON_GRID neuron pictures,
  training requests of MAX_STEPS_PER_REQUEST steps, of small and of large batches, the export, a
  neuron at full size, and the step of a point of the largest network the worked tab draws.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any, get_args

import httpx
import torch

from bpdemo.explore import SESSION_HEADER, create_app, schemas, serving
from bpdemo.explore.schemas import Feature
from bpdemo.infra.cli import CONFIG_DIR, ArgumentParser, run_main
from bpdemo.infra.config import validate
from bpdemo.infra.errors import UsageError
from bpdemo.train import torch_threads
from bpdemo.worked import WorkedConfig, load_worked_config
from bpdemo.worked.schema import MAX_CLAIMS

STEP_GOAL_MS = 50.0
FRAMES_GOAL = 20.0
ANSWER_GOAL_S = 1.0  # every answer within the limits (docs/explore.md)
PLAYGROUND = {  # every point trained on (no test share): 20 steps an epoch
    "dataset": "xor",
    "points": 200,
    "test_share": 0,
    "hidden": [8, 8],
    "batch_size": 10,
    "grid": 100,
    "neuron_grid": 24,
}
POINTS_STEPPED = 20  # clicked points timed, each a new worked example


def timed(http: httpx.Client, path: str, body: dict, session: dict[str, str]) -> float:
    """Seconds from sending one request to its decoded answer (which must be a success)."""
    return timed_answer(http, path, body, session)[0]


def timed_answer(
    http: httpx.Client, path: str, body: dict, session: dict[str, str]
) -> tuple[float, Any]:
    """`timed`, and the decoded answer."""
    start = time.perf_counter()
    answer = http.post(path, json=body, headers=session)
    content = answer.json()
    seconds = time.perf_counter() - start
    if answer.status_code != 200:
        raise RuntimeError(f"{path} answered {answer.status_code}: {answer.text}")
    return seconds, content


def network_of(setup: dict) -> str:
    """The network a playground set-up answered with, as the page writes it (7-8-8-6)."""
    return "-".join(map(str, setup["network"]["sizes"]))


def open_session(http: httpx.Client) -> dict[str, str]:
    return {SESSION_HEADER: http.post("/api/sessions").json()["session"]}


def last_step(steps: int) -> int:
    """The last step of `steps` stepped one at a time from step 2, within the explorer's limit."""
    return min(steps + 1, schemas.MAX_STEP)


def measure(steps: int, frames: int) -> dict[str, Any]:
    config_path = CONFIG_DIR / "worked_321.toml"
    app = create_app(load_worked_config(config_path), str(config_path))
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        session = open_session(http)
        timed(http, "/api/worked/step", {"step": 1}, session)  # the page's first request
        forward = [
            timed(http, "/api/worked/step", {"step": step}, session)
            for step in range(2, last_step(steps) + 1)
        ]
        again = [timed(http, "/api/worked/step", {"step": 2}, session) for _ in range(steps)]

        _, setup = timed_answer(http, "/api/playground/setup", PLAYGROUND, session)
        for _ in range(3):  # warm-up
            timed(http, "/api/playground/train", {"epochs": 1}, session)
        frame_times = [
            timed(http, "/api/playground/train", {"epochs": 1}, session) for _ in range(frames)
        ]
        point_times = sorted(
            timed(http, "/api/playground/point", {"index": index}, session)
            for index in range(POINTS_STEPPED)
        )
        start = time.perf_counter()
        timed(http, "/api/images/setup", {}, session)  # the image tab's first opening: it trains
        images_first = time.perf_counter() - start
        images_again = timed(http, "/api/images/setup", {}, session)
        pixels = http.post("/api/images/setup", headers=session).json()["test_images"][0]["pixels"]
        classify_times = sorted(
            timed(http, "/api/images/classify", {"pixels": pixels, "label": k}, session)
            for k in range(10)
        )
    forward.sort()
    return {
        "playground_network": network_of(setup),
        "step_median_ms": 1000 * statistics.median(forward),
        "step_p95_ms": 1000 * forward[int(0.95 * (len(forward) - 1))],
        "step_max_ms": 1000 * forward[-1],  # a step past the runs' end: they are run again, longer
        "step_again_median_ms": 1000 * statistics.median(again),
        "frame_median_ms": 1000 * statistics.median(frame_times),
        "frames_per_second": len(frame_times) / sum(frame_times),
        "steps_per_second": setup["steps_per_epoch"] * len(frame_times) / sum(frame_times),
        "steps_per_frame": setup["steps_per_epoch"],
        "point_median_ms": 1000 * statistics.median(point_times),
        "point_max_ms": 1000 * point_times[-1],
        "images_first_s": images_first,
        "images_again_ms": 1000 * images_again,
        "classify_median_ms": 1000 * statistics.median(classify_times),
    }


def largest_worked_config() -> WorkedConfig:
    """A worked example at the explorer's limits: MAX_LAYERS tanh layers of MAX_UNITS neurons,
    MAX_SAMPLES samples, MAX_STEP steps, and MAX_CLAIMS claims spread over the steps."""
    generator = torch.Generator().manual_seed(0)
    width, layers, samples = schemas.MAX_UNITS, schemas.MAX_LAYERS, schemas.MAX_SAMPLES

    def uniform(*shape: int) -> list:
        return (torch.rand(*shape, generator=generator, dtype=torch.float64) - 0.5).tolist()

    data = {
        "title": "the largest example the explorer takes",
        "network": {
            "sizes": [width] * (layers + 1),
            "activations": ["tanh"] * layers,
            "loss": "half_sse",
        },
        "init": {"weights": [uniform(width, width) for _ in range(layers)]},
        "train": {"lr": 0.01, "steps": schemas.MAX_STEP},
        "data": {"inputs": uniform(samples, width), "targets": uniform(samples, width)},
        "claims": [
            {
                "name": "loss" if k % 2 else "output.0",
                "step": 1 + k % schemas.MAX_STEP,
                "sample": k % samples,
                "value": 0.25,
            }
            for k in range(MAX_CLAIMS)
        ],
    }
    return validate(WorkedConfig, data, source="the largest example")


def largest_playgrounds() -> dict[str, tuple[dict, dict]]:
    """{what: (set-up settings, training request)} at the playground's limits."""
    network = {
        "dataset": "blobs",
        "classes": schemas.MAX_CLASSES,
        "points": schemas.MAX_POINTS,
        "test_share": 0,
        "features": list(get_args(Feature)),
        "hidden": [schemas.MAX_HIDDEN_UNITS] * schemas.MAX_HIDDEN_LAYERS,
        "dropout": 0.1,
        "grid": schemas.MAX_GRID,
        "neuron_grid": schemas.MAX_NEURON_GRID,
    }
    smallest = -(-schemas.MAX_POINTS // schemas.MAX_STEPS_PER_REQUEST)
    epochs = min(schemas.MAX_EPOCHS_PER_REQUEST, schemas.MAX_STEPS_PER_REQUEST)
    largest = -(-schemas.MAX_POINTS // (schemas.MAX_STEPS_PER_REQUEST // epochs))
    return {
        f"smallest batches ({smallest})": ({**network, "batch_size": smallest}, {"epochs": 1}),
        f"{epochs} epochs of batches of {largest}": (
            {**network, "batch_size": largest},
            {"epochs": epochs},
        ),
    }


def measure_largest(repeats: int) -> dict[str, float]:
    """Seconds of the slowest of `repeats` answers to each kind of request at the limits."""
    app = create_app(largest_worked_config(), "the largest example")
    slowest: dict[str, float] = {}

    def keep(what: str, seconds: float) -> None:
        slowest[what] = max(slowest.get(what, 0.0), seconds)

    last = schemas.MAX_STEP
    with serving(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        for _ in range(repeats):
            session = open_session(http)  # a new page: nothing run yet
            keep("worked: a new page's first step", timed(http, "/api/worked/step", {}, session))
            keep(
                f"worked: a jump to step {last}",
                timed(http, "/api/worked/step", {"step": last}, session),
            )
            keep(
                f"worked: step {last // 2}, already run",
                timed(http, "/api/worked/step", {"step": last // 2}, session),
            )
            edit = {"what": "weight", "layer": 0, "row": 0, "column": 0, "value": 0.5}
            keep("worked: an edit", timed(http, "/api/worked/edit", edit, session))
            keep("worked: a reset", timed(http, "/api/worked/reset", {}, session))
            for what, (settings, request) in largest_playgrounds().items():
                keep("playground: set-up", timed(http, "/api/playground/setup", settings, session))
                keep(
                    f"playground: {what}",
                    timed(http, "/api/playground/train", request, session),
                )
                keep("playground: export", timed(http, "/api/playground/export", {}, session))
                neuron = {"depth": 1, "unit": 0}
                keep("playground: a neuron", timed(http, "/api/playground/neuron", neuron, session))
            # the largest network whose points the worked tab draws: 3 layers of 8
            largest_point = {**network_for_points(), "points": schemas.MAX_POINTS}
            _, setup = timed_answer(http, "/api/playground/setup", largest_point, session)
            keep(
                f"playground: a point's step ({network_of(setup)})",
                timed(http, "/api/playground/point", {"index": 0}, session),
            )
    return slowest


def network_for_points() -> dict:
    """The largest playground whose clicked point the worked tab draws (MAX_LAYERS of MAX_UNITS)."""
    return {
        "dataset": "blobs",
        "classes": schemas.MAX_CLASSES,
        "features": list(get_args(Feature)),
        "hidden": [schemas.MAX_UNITS] * (schemas.MAX_LAYERS - 1),
        "test_share": 0,
        "batch_size": 10,
    }


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        "bpdemo.bench.explore",
        description="Time the explorer's answers: a worked-example step, a playground frame, and "
        "every kind of request at the explorer's limits.",
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument(
        "--threads", type=int, default=1, metavar="N", help="torch threads (default 1)"
    )
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    args = parser.parse_args(argv)
    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    steps, frames, repeats = (20, 10, 1) if args.quick else (100, 60, 3)
    with torch_threads(args.threads):
        results = measure(steps, frames)
        slowest = measure_largest(repeats)
    step_ok = "meets" if results["step_median_ms"] < STEP_GOAL_MS else "MISSES"
    point_ok = "meets" if results["point_median_ms"] < STEP_GOAL_MS else "MISSES"
    frame_ok = "meets" if results["frames_per_second"] >= FRAMES_GOAL else "MISSES"
    limits_ok = "meets" if max(slowest.values()) < ANSWER_GOAL_S else "MISSES"
    network, grid, neuron_grid = (
        results["playground_network"],
        PLAYGROUND["grid"],
        PLAYGROUND["neuron_grid"],
    )
    print(
        f"explorer over HTTP on this computer, torch threads {args.threads}\n"
        f"  worked-example step (3-2-1, steps 2 to {last_step(steps)}, one at a time): median "
        f"{results['step_median_ms']:.1f} ms, 95th percentile {results['step_p95_ms']:.1f} ms, "
        f"slowest {results['step_max_ms']:.1f} ms ({step_ok} the goal of {STEP_GOAL_MS:.0f} ms)\n"
        f"  the same step asked again: median {results['step_again_median_ms']:.1f} ms\n"
        f"  playground frame ({network}, {PLAYGROUND['points']} points, "
        f"{results['steps_per_frame']} steps of both models, {grid} x {grid} output grid, every "
        f"neuron's picture on a {neuron_grid} x {neuron_grid} grid): median "
        f"{results['frame_median_ms']:.1f} ms, "
        f"{results['frames_per_second']:.1f} frames/s, {results['steps_per_second']:.0f} steps/s "
        f"({frame_ok} the goal of {FRAMES_GOAL:.0f} frames/s)\n"
        f"  a clicked point's step-through ({network}, {POINTS_STEPPED} points): median "
        f"{results['point_median_ms']:.1f} ms, slowest {results['point_max_ms']:.1f} ms "
        f"({point_ok} the goal of {STEP_GOAL_MS:.0f} ms)\n"
        f"  image tab: its first opening, which trains the digits network once per server, "
        f"{results['images_first_s']:.2f} s; opened again {results['images_again_ms']:.1f} ms; "
        f"an image classified with both saliency maps, median "
        f"{results['classify_median_ms']:.1f} ms\n"
        f"  at the limits, the slowest of {repeats} answers of each kind ({limits_ok} the goal of "
        f"every answer under {ANSWER_GOAL_S:.0f} s):"
    )
    for what, seconds in slowest.items():
        print(f"    {what}: {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
