"""The benchmark's goals, and the table it prints."""

from __future__ import annotations

import itertools
from collections.abc import Iterator


def goals(results: dict) -> list[dict]:
    """The goals, each with the measured value and whether it is met.

    They are goals for the benchmark, not assertions: a shared, noisy machine moves them.
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
    reached = digits["manual_reached"] == digits["repeats"]
    share = digits["manual_s"] / digits["sklearn_s"] if reached else None
    add(
        "digits: hand-written reaches scikit-learn's accuracy in <= half its time",
        share,
        0.5,
        f"{digits['manual_s']:.3f} s against {digits['sklearn_s']:.3f} s"
        + (f" ({share:.2f})" if share is not None else " (accuracy not reached every time)"),
    )
    memory = results["memory"]
    add(
        "peak memory of the hand-written step <= autograd's",
        memory["manual_mb"] / memory["autograd_mb"],
        1.0,
        f"{memory['manual_mb']:.1f} MiB against {memory['autograd_mb']:.1f} MiB",
    )
    cnn = results["cnn"]
    add(
        f"CNN step: hand-written / autograd time <= {cnn['goal']:g}",
        cnn["time_ratio"],
        cnn["goal"],
        f"{cnn['manual_ms']:.1f} ms against {cnn['autograd_ms']:.1f} ms ({cnn['time_ratio']:.2f})",
    )
    add(
        f"CNN step: hand-written / autograd peak memory <= {cnn['goal']:g}",
        cnn["memory_ratio"],
        cnn["goal"],
        f"{cnn['manual_mb']:.1f} MiB against {cnn['autograd_mb']:.1f} MiB "
        f"({cnn['memory_ratio']:.2f})",
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
        f"torch {results['torch_version']} ({machine['blas']})"
    )
    yield (
        f"machine: {machine['cpu']}, {machine['cores']} cores; load average "
        f"{_load(load['before'])} before, {_load(load['after'])} after"
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
        f"Large step: its matrix products are {rate['gflop_per_step']:.2f} GFLOP; the same products "
        f"alone run at {rate['matmul_gflops']:.1f} GFLOP/s"
    )
    yield (
        f"  hand-written {rate['manual_gflops']:.1f} GFLOP/s = {100 * rate['manual_fraction']:.0f} % "
        f"of that rate, autograd {rate['autograd_gflops']:.1f} GFLOP/s = "
        f"{100 * rate['autograd_fraction']:.0f} %"
    )
    yield ""
    batch, width = results["scaling"]["batch"], results["scaling"]["width"]
    yield (
        f"Scaling: {'-'.join(map(str, batch['sizes']))} by batch size, and 784-w-w-10 at batch "
        f"{width['batch']} by width w (scaling.png)"
    )
    yield f"{'batch':>7} {'hand-written':>13} {'autograd':>10} {'ratio':>6}    {'w':>7} {'hand-written':>13} {'autograd':>10} {'ratio':>6}"
    by_batch = zip(
        batch["batch_sizes"], batch["manual_us"], batch["autograd_us"], batch["ratio"], strict=True
    )
    by_width = zip(
        width["widths"], width["manual_us"], width["autograd_us"], width["ratio"], strict=True
    )
    for left, right in itertools.zip_longest(by_batch, by_width):
        line = _scaling_row(left) + "    " + _scaling_row(right)
        yield line.rstrip()
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
            f"{race['train_rows']} train / {race['test_rows']} test rows"
        )
        yield (
            f"    target: scikit-learn's test {label} after its default fit, "
            f"{race[f'target_{metric}']:.4f} ({race['sklearn_fit_epochs']} epochs, "
            f"{race['sklearn_fit_s']:.3f} s, {race['sklearn_fit_epoch_ms']:.1f} ms per epoch)"
        )
        yield (
            f"    {'':16} {'time to target':>14} {'epochs':>7} {'per epoch':>10} {'reached':>8}"
            f"   (median over {race['repeats']} seed{'s' if race['repeats'] != 1 else ''})"
        )
        for model, title in (
            ("manual", "hand-written"),
            ("autograd", "autograd"),
            ("sklearn", "scikit-learn"),
        ):
            note = "  its own fit, scored after each epoch" if model == "sklearn" else ""
            yield (
                f"    {title:16} {race[f'{model}_s']:>12.3f} s {race[f'{model}_epochs']:>7g} "
                f"{race[f'{model}_epoch_ms']:>7.1f} ms {race[f'{model}_reached']:>4}/"
                f"{race['repeats']:<3}{note}"
            ).rstrip()
    yield ""
    memory = results["memory"]
    yield (
        f"Peak memory: building the large network and {memory['steps']} training steps, "
        "torch's allocator"
    )
    yield f"  hand-written {memory['manual_mb']:.1f} MiB, autograd {memory['autograd_mb']:.1f} MiB"
    yield (
        f"  held after the last step: hand-written {memory['manual_held_mb']:.1f} MiB (its cache "
        f"z, a, dL/da, delta {memory['manual_cache_mb']:.1f} MiB,"
    )
    yield (
        f"  work tensors beyond the cache {memory['manual_scratch_mb']:.1f} MiB), autograd "
        f"{memory['autograd_held_mb']:.1f} MiB"
    )
    yield ""
    yield from _cnn_lines(results["cnn"])
    yield ""
    yield "Goals"
    for goal in results["goals"]:
        yield f"  [{'met' if goal['met'] else 'MISSED':^6}] {goal['goal']}: {goal['shown']}"


def _cnn_lines(cnn: dict) -> Iterator[str]:
    from bpdemo.bench.cnn import where_memory_goes, where_time_goes

    channels, height, width = cnn["image"]
    yield (
        f"CNN step (forward, backward, Adam): batch {cnn['batch']} of {channels}×{height}×{width}, "
        f"{cnn['network']}; median of {cnn['repeats']} interleaved repeats"
    )
    yield (
        f"  time: hand-written {cnn['manual_ms']:.1f} ms, autograd {cnn['autograd_ms']:.1f} ms "
        f"(ratio {cnn['time_ratio']:.2f})"
    )
    yield (
        f"  peak memory ({cnn['memory_steps']} steps): hand-written {cnn['manual_mb']:.1f} MiB, "
        f"autograd {cnn['autograd_mb']:.1f} MiB (ratio {cnn['memory_ratio']:.2f})"
    )
    yield f"  where the hand-written time goes: {where_time_goes(cnn)}"
    yield f"  where its extra memory goes: {where_memory_goes(cnn)}"


def _scaling_row(row: tuple | None) -> str:
    if row is None:
        return " " * 39
    size, manual, autograd, ratio = row
    return f"{size:>7} {_us(manual):>13} {_us(autograd):>10} {ratio:>6.2f}"


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
