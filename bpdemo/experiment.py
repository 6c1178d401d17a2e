"""A side-by-side experiment as the training demos run it: data -> pair -> fit -> evaluate -> results.

`Experiment.prepare` builds the hand-written network and its autograd twin from a config's [model]
and [optimizer] sections, with the data as tensors. `fit` trains both on the same mini-batches (a run
that diverged or was interrupted writes what it has and raises); `results` scores both models on the
training and the test split; `metrics` and `write` put what the demo adds beside them into the run
folder. What to score, print and draw is the demo's to say; the folder itself, claimed before the data
was read and let go of at the end, is the command's (`bpdemo.infra.command.run_command`).

Each part, once finished, is kept: the history is written as soon as training ends, and the run
folder's `progress` grows with every result, so an interruption later on keeps them (`bpdemo.infra.outputs`).

In a distributed run every rank prepares and fits; only rank 0 has a run folder, scores and writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor

from bpdemo.baselines import Baseline
from bpdemo.compare import Evaluation, SideBySide
from bpdemo.distributed import DistributedSideBySide
from bpdemo.functional import LOSSES
from bpdemo.infra import interruption
from bpdemo.infra.config import TrainSection
from bpdemo.infra.errors import ConfigError
from bpdemo.infra.outputs import RunDir
from bpdemo.infra.ranks import is_rank_zero
from bpdemo.optim import OptimizerSpec
from bpdemo.report import agreement, run_status, stop_if_unfinished, write_history
from bpdemo.spec import ModelSection
from bpdemo.train import History, Metrics, Split, fit

MODELS = ("manual", "autograd")
# score(which, output, target, loss): one model's numbers on one split ("train" or "test"), from
# its outputs (N, out), the split's targets and the model's own loss there.
Score = Callable[[str, Tensor, Tensor, float], dict[str, float]]


class TrainingConfig(Protocol):
    """What an experiment reads from a demo's config (its other sections are the demo's)."""

    seed: int
    model: ModelSection
    optimizer: OptimizerSpec
    train: TrainSection


class SplitData(Protocol):
    """A train/test split that gives the models' tensors (`HouseSplit`, `ImageSplit`)."""

    def tensors(self, split: str, dtype, device) -> Split: ...


def check_model(model: ModelSection, targets: str, advice: str) -> None:
    """Refuse a [model] whose loss is made for other targets than the data's ("numbers", "classes").

    advice: what to use instead, `{losses}` standing for the losses made for `targets`. A loss for
    classes takes the logits themselves, so the output activation must be the identity.
    """
    loss = LOSSES[model.loss]
    if loss.targets != targets:
        fitting = ", ".join(name for name, other in LOSSES.items() if other.targets == targets)
        raise ConfigError(
            f"model.loss {model.loss!r} is for {loss.targets}; {advice.format(losses=fitting)}"
        )
    if loss.classification and model.output_activation != "identity":
        raise ConfigError(
            f"model.output_activation {model.output_activation!r}: the outputs are the logits "
            f'that {model.loss} turns into probabilities, so they need "identity"'
        )


@dataclass
class Experiment:
    """A pair of models, the data they train on, and the folder the run writes to.

    Attributes:
        dataset: the `dataset` block of metrics.json, describing the data.
        train, test: (inputs (N, in), targets) in the models' dtype and device.
        run: the output folder; None on the ranks of a distributed run other than 0.
        history: set by `fit`; evaluations: {"train", "test"}: both models, set by `results`.
    """

    config: TrainingConfig
    dataset: dict[str, Any]
    pair: SideBySide
    train: Split
    test: Split
    run: RunDir | None
    history: History | None = None
    evaluations: dict[str, Evaluation] = field(default_factory=dict)

    @classmethod
    def prepare(
        cls,
        config: TrainingConfig,
        data: SplitData,
        dataset: dict[str, Any],
        *,
        inputs: int,
        outputs: int,
        run: RunDir | None,
        distributed: bool = False,
        input_shape: tuple[int, int, int] | None = None,
    ) -> Experiment:
        """The pair for `inputs` -> `outputs` and the data as its tensors; `run` is the run's output
        folder (None on the ranks of a distributed run other than 0); `input_shape`: (C, H, W) of
        images, for a network that convolves them."""
        spec = config.model.spec(inputs, outputs, config.seed, input_shape)
        pair_type = DistributedSideBySide if distributed else SideBySide
        pair = pair_type(spec, config.optimizer)
        train = data.tensors("train", spec.dtype, spec.device)
        test = data.tensors("test", spec.dtype, spec.device)
        return cls(config, dataset, pair, train, test, run)

    @property
    def world_size(self) -> int:
        return getattr(self.pair, "world_size", 1)

    def fit(self, *, quiet: bool, description: str, metrics: Metrics | None = None) -> History:
        """Train both models for the config's epochs, on the config's mini-batches and seed.

        On rank 0 a run that diverged or was interrupted writes history.csv, steps.csv and a
        metrics.json with what it has, then raises (`bpdemo.report.stop_if_unfinished`); a finished
        run writes history.csv and steps.csv at once.
        """
        interruption.set_phase("training")
        train, optimizer = self.config.train, self.config.optimizer
        self.history = fit(
            self.pair,
            self.train,
            self.test,
            epochs=train.epochs,
            batch_size=train.batch_size,
            seed=self.config.seed,
            metrics=metrics,
            quiet=quiet or not is_rank_zero(),
            description=description,
        )
        if self.run is not None:
            stop_if_unfinished(
                self.run, self.history, self.pair, self.dataset, optimizer.lr, train.epochs
            )
            write_history(self.run, self.history)
            self.run.progress = {
                "dataset": self.dataset,
                "seed": self.config.seed,
                "agreement": agreement(self.pair),
                **run_status(self.history),
                "history": self.history.epochs,
            }
        return self.history

    def results(self, score: Score) -> dict[str, dict[str, Any]]:
        """Per model (`manual`, `autograd`): its `score` on `train` and `test`, and `train_seconds`."""
        interruption.set_phase("evaluation")
        self.evaluations = {
            "train": self.pair.evaluate(*self.train),
            "test": self.pair.evaluate(*self.test),
        }
        seconds = {"manual": self.history.seconds_manual, "autograd": self.history.seconds_autograd}
        results: dict[str, dict[str, Any]] = {}
        targets = {"train": self.train[1], "test": self.test[1]}
        for model in MODELS:
            results[model] = {
                which: score(
                    which,
                    getattr(evaluation, f"output_{model}"),
                    targets[which],
                    getattr(evaluation, f"loss_{model}"),
                )
                for which, evaluation in self.evaluations.items()
            }
            results[model]["train_seconds"] = seconds[model]
        if self.run is not None:
            self.run.progress.update(results)
        return results

    def outputs(self, which: str) -> dict[str, Tensor]:
        """Both models' outputs (N, out) on `which` split, as `results` evaluated them."""
        evaluation = self.evaluations[which]
        return {"manual": evaluation.output_manual, "autograd": evaluation.output_autograd}

    def metrics(
        self,
        results: Mapping[str, dict[str, Any]],
        baselines: Mapping[str, Baseline],
        **blocks: Any,
    ) -> dict[str, Any]:
        """metrics.json: the data, the seed, both models' results, the baselines', the agreement,
        the demo's own `blocks` in their order, then how the run ended."""
        return {
            "dataset": self.dataset,
            "seed": self.config.seed,
            **{model: results[model] for model in MODELS},
            "baselines": {name: baseline.as_dict() for name, baseline in baselines.items()},
            "agreement": agreement(self.pair),
            **blocks,
            **run_status(self.history),
        }

    def write(self, metrics: dict[str, Any], figures: Mapping[str, Any]) -> None:
        """metrics.json, then the figures ({file name: a function that draws it}) one by one, so
        that an interruption keeps those finished."""
        interruption.set_phase("writing")
        self.run.write_json("metrics.json", metrics)
        self.run.save_figures(figures)
