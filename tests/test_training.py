"""The comparison engine and the training loop."""

import math

import torch

from bpdemo import TOLERANCES, MLPSpec, OptimizerSpec, SideBySide, fit
from bpdemo.train import OneModel, Step, run_epochs
from tests.conftest import make_data

SPEC = MLPSpec([4, 8, 3], ["tanh", "identity"], loss="cross_entropy", seed=2, dtype="float64")


def data(n: int = 40, seed: int = 0):
    return make_data(SPEC, batch=n, seed=seed)


def accuracy(output, labels):
    return {"accuracy": float((output.argmax(1) == labels).float().mean())}


def test_every_step_is_recorded_with_differences_for_every_parameter():
    history = fit(
        SideBySide(SPEC, OptimizerSpec("adam", lr=0.01)),
        data(),
        data(20, 1),
        epochs=3,
        batch_size=16,
        quiet=True,
    )
    assert len(history.steps) == 3 * 3  # 40 rows in batches of 16 -> 16, 16, 8
    names = [n for n, _ in SPEC.initial_parameters().items()]
    for record in history.steps:
        assert list(record.grad_rel_diff) == names
        assert record.max_rel_grad_diff <= TOLERANCES[torch.float64]
        assert (
            record.loss_manual == record.loss_autograd
            or abs(record.loss_manual - record.loss_autograd) < 1e-12
        )
    assert [row["epoch"] for row in history.epochs] == [0, 1, 2, 3]
    assert history.epochs[-1]["train_loss_manual"] < history.epochs[0]["train_loss_manual"]


def test_the_summary_is_the_maximum_over_steps():
    pair = SideBySide(SPEC, OptimizerSpec("sgd", lr=0.5, momentum=0.9))
    history = fit(pair, data(), epochs=2, batch_size=8, quiet=True)
    assert pair.agreement.steps_compared == len(history.steps) == 10
    assert pair.agreement.max_rel_grad_diff == max(r.max_rel_grad_diff for r in history.steps)
    assert pair.agreement.max_abs_param_diff == max(r.max_abs_param_diff for r in history.steps)
    assert pair.agreement.within_tolerance


def test_metrics_are_recorded_for_both_models_and_both_splits():
    history = fit(
        SideBySide(SPEC, OptimizerSpec("adam", lr=0.05)),
        data(),
        data(20, 1),
        epochs=2,
        batch_size=10,
        metrics=accuracy,
        quiet=True,
    )
    row = history.epochs[-1]
    for key in (
        "train_accuracy_manual",
        "train_accuracy_autograd",
        "test_accuracy_manual",
        "test_accuracy_autograd",
    ):
        assert 0 <= row[key] <= 1
    assert row["test_accuracy_manual"] == row["test_accuracy_autograd"]


def rows_seen(generator, rows: int = 10, batch_size: int = 4, epochs: int = 1):
    """The row numbers of each mini-batch `run_epochs` hands to its step."""
    seen = []

    def step(x, target):
        seen.append(x[:, 0].long().tolist())
        return Step(len(seen), 0.0)

    x = torch.arange(rows, dtype=torch.float64).reshape(-1, 1)
    run_epochs(step, x, x.clone(), epochs=epochs, batch_size=batch_size, generator=generator)
    return seen


def test_shuffling_follows_the_seed():
    first = rows_seen(torch.Generator().manual_seed(5))
    again = rows_seen(torch.Generator().manual_seed(5))
    other = rows_seen(torch.Generator().manual_seed(6))
    assert first == again
    assert first != other
    assert sorted(row for batch in first for row in batch) == list(range(10))
    assert [len(b) for b in first] == [4, 4, 2]


def test_without_a_generator_the_rows_stay_in_order_every_epoch():
    assert rows_seen(None, rows=5, batch_size=2, epochs=2) == [[0, 1], [2, 3], [4]] * 2


def test_each_epoch_is_a_new_shuffle_of_the_same_rows():
    first, second = rows_seen(torch.Generator().manual_seed(1), batch_size=10, epochs=2)
    assert first != second and sorted(first) == sorted(second) == list(range(10))


def test_the_end_of_epoch_callback_can_stop_the_loop():
    model = OneModel(*one_model())
    x, y = data()
    loop = run_epochs(
        model.step, x, y, epochs=10, batch_size=8, end_of_epoch=lambda epoch: epoch == 3
    )
    assert loop.stopped and loop.epochs == 3 and len(loop.records) == 3 * 5
    assert [record.step for record in loop.records] == list(range(1, 16))


def one_model():
    from bpdemo import ManualMLP

    model = ManualMLP(SPEC)
    return model, OptimizerSpec("sgd", lr=0.1).manual(model)


def test_one_model_trains_as_the_hand_written_half_of_a_pair():
    """The loop gives a lone model exactly the steps `fit` gives a pair with the same seed."""
    x, y = data()
    pair = SideBySide(SPEC, OptimizerSpec("sgd", lr=0.1))
    history = fit(pair, (x, y), epochs=2, batch_size=8, seed=4, quiet=True)
    model = OneModel(*one_model())
    loop = run_epochs(
        model.step, x, y, epochs=2, batch_size=8, generator=torch.Generator().manual_seed(4)
    )
    assert [r.loss for r in loop.records] == [r.loss_manual for r in history.steps]
    assert torch.equal(model.model.flat_parameters, pair.manual.flat_parameters)


def test_same_seed_same_numbers():
    def run():
        history = fit(
            SideBySide(SPEC, OptimizerSpec("adam", lr=0.01)),
            data(),
            epochs=2,
            batch_size=8,
            seed=3,
            quiet=True,
        )
        return [r.loss_manual for r in history.steps], history.epochs

    assert run() == run()


def test_divergence_stops_training_at_once_and_keeps_the_history():
    spec = MLPSpec(
        [4, 8, 1],
        ["relu", "identity"],
        loss="mse",
        seed=0,
        dtype="float64",
        init="normal",
        init_scale=3.0,
    )
    x, y = make_data(spec, batch=32)
    history = fit(
        SideBySide(spec, OptimizerSpec("sgd", lr=50.0)),
        (x, y * 100),
        epochs=50,
        batch_size=8,
        quiet=True,
    )
    assert history.diverged_at_step is not None
    assert len(history.steps) == history.diverged_at_step < 50 * 4
    assert not math.isfinite(history.steps[-1].loss_manual)
    assert (
        "at step" in history.divergence_message(lr=50.0)
        and "smaller learning rate" in history.divergence_message()
    )


def test_ctrl_c_keeps_the_history_so_far(monkeypatch):
    pair = SideBySide(SPEC, OptimizerSpec("sgd", lr=0.1))
    original, calls = pair.step, []

    def step_then_interrupt(x, y):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(x, y)

    monkeypatch.setattr(pair, "step", step_then_interrupt)
    history = fit(pair, data(), epochs=5, batch_size=8, quiet=True)
    assert history.interrupted and not history.completed
    assert len(history.steps) == 3


def test_progress_lines_when_output_is_not_a_terminal(capsys):
    fit(
        SideBySide(SPEC, OptimizerSpec("sgd", lr=0.1)),
        data(),
        epochs=20,
        batch_size=40,
        description="demo",
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("demo epoch 1/20: train loss")
    assert lines[-1].startswith("demo epoch 20/20")
    assert 3 <= len(lines) <= 12
    fit(
        SideBySide(SPEC, OptimizerSpec("sgd", lr=0.1)), data(), epochs=20, batch_size=40, quiet=True
    )
    assert capsys.readouterr().out == ""


def test_progress_lines_give_the_check_and_once_the_two_runs_part_their_drift(capsys):
    same = MLPSpec([4, 8, 1], ["relu", "identity"], loss="mse", seed=2, dtype="float64")
    pair = SideBySide(same, OptimizerSpec("sgd", lr=0.1))
    fit(pair, make_data(same, batch=40), epochs=2, batch_size=40, description="same")
    assert pair.agreement.drift.parted_at_step is None  # relu and mse: the same bits in both
    assert "drift" not in capsys.readouterr().out
    pair = SideBySide(SPEC, OptimizerSpec("sgd", lr=0.1))
    with torch.no_grad():
        next(pair.autograd.parameters()).add_(1e-9)  # the autograd run starts a hair away
    fit(pair, data(), epochs=2, batch_size=40, description="apart")
    lines = capsys.readouterr().out.splitlines()
    check, drift = pair.agreement.max_rel_grad_diff, pair.agreement.drift.max_rel_grad_diff
    # a line gives the largest difference so far: the last line's is the whole run's
    assert f"max grad diff {check:.1e}, runs' drift {drift:.1e}" in lines[-1]
    assert all("runs' drift" in line for line in lines) and check <= 1e-10 < drift
