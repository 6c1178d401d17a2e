"""The benchmark's goals, and the table it prints."""

from __future__ import annotations

from collections.abc import Iterator


def goals(results: dict) -> list[dict]:
    """The issue's four targets, each with the measured value and whether it is met.

    They are targets for the benchmark, not assertions: a shared, noisy machine moves them.
    """
    steps = {row["name"]: row for row in results["step_time"]}
    listed = []

    def add(goal: str, value: float | None, target: float, shown: str) -> None:
        met = value is not None and value <= target
        listed.append({"goal": goal, "value": value, "target": target, "met": met, "shown": shown})

    fast_small = max(steps["tiny"]["ratio"], steps["small"]["ratio"])
    add(
        "hand-written / autograd step time <= 0.6 on tiny and small",
        fast_small,
        0.6,
        f"tiny {steps['tiny']['ratio']:.2f}, small {steps['small']['ratio']:.2f}",
    )
    add(
        "hand-written / autograd step time <= 1.0 on large",
        steps["large"]["ratio"],
        1.0,
        f"large {steps['large']['ratio']:.2f}",
    )
    fraction = results["matmul_fraction"]
    listed.append(
        {
            "goal": "large step at >= 70 % of the matrix-product rate measured in the same run",
            "value": fraction,
            "target": 0.7,
            "met": fraction >= 0.7,
            "shown": f"{100 * fraction:.0f} %",
        }
    )
    digits = results["end_to_end"]["digits"]
    share = digits["manual_s"] / digits["sklearn_s"] if digits["manual_reached"] else None
    add(
        "digits: hand-written reaches scikit-learn's accuracy in <= half its time",
        share,
        0.5,
        f"{digits['manual_s']:.2f} s against {digits['sklearn_s']:.2f} s"
        + (f" ({share:.2f})" if share is not None else " (accuracy not reached)"),
    )
    memory = results["memory"]
    add(
        "peak memory of the hand-written step <= autograd's",
        memory["manual_mb"] / memory["autograd_mb"],
        1.0,
        f"{memory['manual_mb']:.1f} MiB against {memory['autograd_mb']:.1f} MiB",
    )
    return listed


def table(results: dict) -> str:
    return "\n".join(_lines(results))


def _lines(results: dict) -> Iterator[str]:
    machine = results["machine"]
    load = results["load_average"]
    yield (
        f"bpdemo benchmark{' (--quick)' if results['quick'] else ''}: float32 on the CPU, "
        f"{results['threads']} torch thread{'s' if results['threads'] != 1 else ''}, "
        f"torch {results['torch_version']} ({machine['blas']}), {machine['cpu']}, "
        f"{machine['cores']} cores; load average {_load(load['before'])} before, "
        f"{_load(load['after'])} after"
    )
    yield ""
    repeats = results["step_time"][0]["repeats"]
    yield f"Step time (forward, backward, update), median of {repeats} interleaved repeats"
    yield f"{'case':8} {'network':18} {'batch':>6} {'optimizer':>9} {'hand-written':>14} {'autograd':>12} {'ratio':>6}"
    for row in results["step_time"]:
        yield (
            f"{row['name']:8} {'-'.join(map(str, row['sizes'])):18} {row['batch']:>6} "
            f"{row['optimizer']:>9} {_us(row['manual_us']):>14} {_us(row['autograd_us']):>12} "
            f"{row['ratio']:>6.2f}"
        )
    yield ""
    rate = results["matmul"]
    yield (
        f"Large step, {rate['gflop_per_step']:.2f} GFLOP in its matrix products: hand-written "
        f"{rate['manual_gflops']:.1f} GFLOP/s, autograd {rate['autograd_gflops']:.1f} GFLOP/s, "
        f"the same products alone {rate['matmul_gflops']:.1f} GFLOP/s"
    )
    yield (
        f"  fraction of the matrix-product rate: hand-written {100 * rate['manual_fraction']:.0f} %, "
        f"autograd {100 * rate['autograd_fraction']:.0f} %"
    )
    yield ""
    yield "Scaling (step time, hand-written / autograd):"
    batch = results["scaling"]["batch"]
    yield f"  network {'-'.join(map(str, batch['sizes']))}, by batch size: " + ", ".join(
        f"{n}: {_us(m)} / {_us(a)}"
        for n, m, a in zip(
            batch["batch_sizes"], batch["manual_us"], batch["autograd_us"], strict=True
        )
    )
    width = results["scaling"]["width"]
    yield f"  network 784-w-w-10, batch {width['batch']}, by width w: " + ", ".join(
        f"{w}: {_us(m)} / {_us(a)}"
        for w, m, a in zip(width["widths"], width["manual_us"], width["autograd_us"], strict=True)
    )
    yield ""
    yield "End to end: training time until the test score first reaches scikit-learn's"
    for name, race in results["end_to_end"].items():
        if "skipped" in race:
            yield f"  {name}: skipped ({race['skipped']})"
            continue
        metric = "acc" if "target_acc" in race else "r2"
        label = "accuracy" if metric == "acc" else "R²"
        yield (
            f"  {name}: hidden {race['hidden']} {race['activation']} ({race['model_from']}), "
            f"{race['train_rows']} train / {race['test_rows']} test rows; target {label} "
            f"{race[f'target_{metric}']:.4f}, median of {race['repeats']}"
        )
        for model, title in (
            ("manual", "hand-written"),
            ("autograd", "autograd"),
            ("sklearn", "scikit-learn"),
        ):
            reached = race.get(f"{model}_reached", True)
            yield (
                f"    {title:13} {race[f'{model}_s']:8.3f} s  {label} {race[f'{model}_{metric}']:.4f} "
                f"after {race[f'{model}_epochs']} epochs{'' if reached else ' (target not reached)'}"
            )
    yield ""
    memory = results["memory"]
    yield (
        f"Peak memory, building the large network and {memory['steps']} training steps (torch's "
        f"allocator): hand-written {memory['manual_mb']:.1f} MiB, autograd {memory['autograd_mb']:.1f} MiB"
    )
    yield (
        f"  still held after the last step: hand-written {memory['manual_held_mb']:.1f} MiB "
        f"(the layers' cache z, a, delta {memory['manual_cache_mb']:.1f} MiB, f'(z) scratch "
        f"{memory['manual_scratch_mb']:.1f} MiB), "
        f"autograd {memory['autograd_held_mb']:.1f} MiB"
    )
    yield ""
    yield "Goals"
    for goal in results["goals"]:
        yield f"  [{'met' if goal['met'] else 'MISSED':^6}] {goal['goal']}: {goal['shown']}"


def _us(microseconds: float) -> str:
    if microseconds >= 1e6:
        return f"{microseconds / 1e6:.2f} s"
    if microseconds >= 1e4:
        return f"{microseconds / 1e3:.1f} ms"
    if microseconds >= 1e3:
        return f"{microseconds / 1e3:.2f} ms"
    return f"{microseconds:.1f} us"


def _load(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f}"
