"""Images: a hand-written and an autograd classifier trained side by side, against scikit-learn.

    python -m demos.images                                 # scikit-learn's 8x8 digits, offline
    python -m demos.images --dataset cifar10 --download    # dog, cat, automobile photos (once, 170 MB)
    python -m demos.images --root photos/                  # your own: photos/dog/, photos/cat/, ...
    torchrun --standalone --nproc_per_node=2 -m demos.images --distributed

Seed 003's classifier: an image goes in, softmax turns the network's scores (logits) into class
probabilities, cross-entropy measures the error, backpropagation sends it back and the weights move.
Both models start from the same weights, see the same mini-batches and are compared at every step;
scikit-learn's MLPClassifier (same hidden sizes) is fitted on the same split. Then one real test image
the network gets wrong is followed through seed 003's four steps: its probabilities, the loss, the
gradient at the logits, and what one step of gradient descent does to the probability of its class.
Prints progress, a results table and the agreement of the two models; writes config.toml,
metrics.json, history.csv, steps.csv and six figures. Data: `bpdemo.datasets.images`; figures:
`bpdemo.plots.images` and `bpdemo.plots.training`.
"""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from bpdemo import OptimizerSpec, SideBySide, fit
from bpdemo.cli import comma_list, common_parser, load_demo_config, printer, run_main, set_override
from bpdemo.compare import Evaluation
from bpdemo.config import (
    ModelSection,
    OptimizerSection,
    PositiveFloat,
    PositiveInt,
    Section,
    TrainSection,
    dump_config,
)
from bpdemo.datasets.images import DATASETS, ImageSplit, load_images, split_images
from bpdemo.distributed import (
    DistributedSideBySide,
    from_main_process,
    init_from_torchrun,
    is_main_process,
    leave_process_group,
    main_process_first,
    rank_device,
)
from bpdemo.errors import ConfigError, UsageError
from bpdemo.outputs import RunDir
from bpdemo.plots.images import confusion, image_grid, loss_and_accuracy, one_image_step
from bpdemo.plots.training import gradient_difference, layer_gradient_norms
from bpdemo.report import (
    agreement,
    agreement_line,
    run_status,
    stop_if_unfinished,
    table,
    write_history,
)
from bpdemo.spec import MLPSpec, resolve_device
from bpdemo.train import History

DEMO = "images"
# MLPClassifier's activations; ours without a counterpart there leave it at its default, relu.
SKLEARN_ACTIVATIONS = {
    "identity": "identity",
    "sigmoid": "logistic",
    "tanh": "tanh",
    "relu": "relu",
}
SKLEARN_MAX_ITER = 1000  # its default 200 can stop before its own convergence test is met
MODELS = {"manual": "hand-written", "autograd": "autograd", "sklearn_mlp": "scikit-learn MLP"}
GRID_IMAGES, GRID_MISTAKES = 24, 12  # test images in the grid, and at most this many mistakes first
FIGURES = (
    "loss_accuracy.png",
    "gradient_difference.png",
    "confusion_matrix.png",
    "test_images.png",
    "gradient_norms.png",
    "walkthrough.png",
)


class ImageDataSection(Section):
    """[data]: where the images come from, which of them, and how they are split."""

    dataset: Literal["digits", "cifar10", "folder"] = "digits"
    classes: list[str] = Field(default_factory=list)
    download: bool = False
    root: str | None = None
    image_size: PositiveInt = 32
    grayscale: bool = False
    per_class: PositiveInt | None = None
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.25


class WalkthroughSection(Section):
    """[walkthrough]: the one test image followed through seed 003's four steps."""

    probability: Annotated[float, Field(gt=0, lt=1)] = 0.7
    lr: PositiveFloat = 0.002
    test_image: Annotated[int, Field(ge=0)] | None = None


class ImagesConfig(Section):
    seed: int = 0
    data: ImageDataSection = ImageDataSection()
    model: ModelSection = ModelSection(
        hidden=[128, 64], activation="relu", loss="cross_entropy", init="he", dtype="float64"
    )
    optimizer: OptimizerSection = OptimizerSection(name="adam", lr=0.002)
    train: TrainSection = TrainSection(epochs=15, batch_size=32, threads=1)
    walkthrough: WalkthroughSection = WalkthroughSection()


# -- command line ------------------------------------------------------------------------------------------
EPILOG = """\
examples:
  python -m demos.images                                   scikit-learn's digits (offline, 15-40 s)
  python -m demos.images --dataset cifar10 --download      dog, cat and automobile photos of CIFAR-10
  python -m demos.images --dataset cifar10 --classes "ship,truck,horse" --set data.per_class=1000
  python -m demos.images --root photos/ --image-size 24    photos/dog/*.jpg, photos/cat/*.jpg, ...
  python -m demos.images --set model.hidden=[256,128,64] --set optimizer.lr=0.0005
  GLOO_SOCKET_IFNAME=lo torchrun --standalone --nproc_per_node=2 -m demos.images --distributed

--root PATH alone implies --dataset folder. --classes picks and orders classes by name for any data
set ("car" means CIFAR-10's "automobile"). With --distributed, every process takes an equal share of
each mini-batch and rank 0 prints and writes; the numbers equal a single-process run's.
"""


def parse_args(argv: list[str] | None):
    parser = common_parser(
        DEMO,
        "Train a hand-written and an autograd image classifier side by side.",
        epilog=EPILOG,
    )
    data = parser.add_argument_group("data options")
    data.add_argument("--dataset", choices=DATASETS, help="data source (config: data.dataset)")
    data.add_argument(
        "--classes", metavar='"A,B,..."', help="classes to use, comma-separated (data.classes)"
    )
    data.add_argument(
        "--download", action="store_true", help="fetch CIFAR-10 into data/ once (data.download)"
    )
    data.add_argument("--root", metavar="PATH", help="folder for --dataset folder (data.root)")
    data.add_argument(
        "--image-size", type=int, metavar="N", help="folder images become NxN (data.image_size)"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training across the processes torchrun starts",
    )
    return parser.parse_args(argv)


def data_overrides(args) -> list[str]:
    """The data flags as `--set` overrides (values written as TOML)."""
    overrides = []
    dataset = args.dataset or ("folder" if args.root else None)
    if dataset is not None:
        overrides.append(set_override("data.dataset", dataset))
    if args.classes is not None:
        names = comma_list(args.classes)
        overrides.append(set_override("data.classes", names))
    if args.download:
        overrides.append("data.download=true")
    if args.root is not None:
        overrides.append(set_override("data.root", args.root))
    if args.image_size is not None:
        overrides.append(f"data.image_size={args.image_size}")
    return overrides


def check_model(config: ImagesConfig) -> None:
    model = config.model
    if model.loss != "cross_entropy":
        raise ConfigError(
            f"model.loss {model.loss!r} is for numbers; classes need cross_entropy (softmax over "
            "the outputs, then −ln of the true class's probability)"
        )
    if model.output_activation != "identity":
        raise ConfigError(
            f"model.output_activation {model.output_activation!r}: the outputs are the logits "
            'that cross_entropy turns into probabilities, so they need "identity"'
        )


# -- accuracy, loss and the baseline ------------------------------------------------------------------------
def accuracy(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """For `fit(..., metrics=accuracy)`: the share of rows whose largest logit is the true class."""
    return {"accuracy": float((logits.argmax(dim=1) == labels).double().mean())}


def fit_baseline(split: ImageSplit, config: ImagesConfig) -> dict[str, Any]:
    """scikit-learn's MLPClassifier with the same hidden sizes and seed, on the same scaled split.

    Returns `train` and `test` {accuracy, loss}, `train_seconds`, `iterations`, `activation`, and
    the test `probabilities` (N_test, K).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    x_train, y_train = split.scaled("train")
    model = MLPClassifier(
        hidden_layer_sizes=tuple(config.model.hidden),
        activation=SKLEARN_ACTIVATIONS.get(config.model.activation, "relu"),
        max_iter=SKLEARN_MAX_ITER,
        random_state=config.seed,
    )
    labels = list(range(len(split.data.classes)))
    with threadpool_limits(limits=config.train.threads):  # None: the library's default
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        result: dict[str, Any] = {}
        for which in ("train", "test"):
            x, y = split.scaled(which)
            probabilities = model.predict_proba(x)
            result[which] = {
                "accuracy": float(np.mean(model.classes_[probabilities.argmax(1)] == y)),
                "loss": float(log_loss(y, probabilities, labels=labels)),
            }
    result.update(
        train_seconds=seconds,
        iterations=int(model.n_iter_),
        activation=model.activation,
        probabilities=probabilities,
    )
    return result


def model_results(
    evaluations: dict[str, Evaluation], labels: dict[str, Tensor], history: History
) -> dict[str, dict[str, Any]]:
    """Accuracy and loss of both models on each split, and each model's training time."""
    seconds = {"manual": history.seconds_manual, "autograd": history.seconds_autograd}
    results: dict[str, dict[str, Any]] = {}
    for model in ("manual", "autograd"):
        results[model] = {}
        for which, evaluation in evaluations.items():
            output = getattr(evaluation, f"output_{model}")
            results[model][which] = {
                **accuracy(output, labels[which]),
                "loss": getattr(evaluation, f"loss_{model}"),
            }
        results[model]["train_seconds"] = seconds[model]
    return results


def probabilities_of(logits: Tensor) -> np.ndarray:
    """softmax(z) per row, (N, K) float64."""
    return torch.softmax(logits.detach().double(), dim=1).cpu().numpy()


# -- seed 003's four steps on one real image ------------------------------------------------------------------
@dataclass
class OneImageStep:
    """One test image through seed 003's steps: forward, error, backward, update.

    Arrays are (K,) float64; `*_autograd` are the autograd twin's, computed separately.

    Attributes:
        test_image: the image's position in the test split.
        when: "after training" or "at the start of training": whose weights were used.
        logits: z, the network's outputs; probabilities: p = softmax(z).
        loss: −ln p[true_class], the cross-entropy of this one image.
        grad_logits: dL/dz = p − onehot(true_class), as the hand-written backward pass computed it.
        probabilities_after, loss_after: after one step of plain gradient descent (lr) on this image.
    """

    test_image: int
    true_class: int
    when: str
    lr: float
    logits: np.ndarray
    probabilities: np.ndarray
    loss: float
    grad_logits: np.ndarray
    grad_logits_autograd: np.ndarray
    probabilities_after: np.ndarray
    probabilities_after_autograd: np.ndarray
    loss_after: float

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def predicted_after(self) -> int:
        return int(np.argmax(self.probabilities_after))

    @property
    def max_model_difference(self) -> float:
        """Largest difference between the two models in dL/dz and in p after the step."""
        return float(
            max(
                np.abs(self.grad_logits - self.grad_logits_autograd).max(),
                np.abs(self.probabilities_after - self.probabilities_after_autograd).max(),
            )
        )

    def as_dict(self, classes: list[str]) -> dict[str, Any]:
        return {
            "test_image": self.test_image,
            "true_class": classes[self.true_class],
            "predicted_class": classes[self.predicted],
            "when": self.when,
            "lr": self.lr,
            "logits": self.logits.tolist(),
            "probabilities": self.probabilities.tolist(),
            "loss": self.loss,
            "grad_logits": self.grad_logits.tolist(),
            "probability_true_class": float(self.probabilities[self.true_class]),
            "probability_true_class_after": float(self.probabilities_after[self.true_class]),
            "probabilities_after": self.probabilities_after.tolist(),
            "loss_after": self.loss_after,
            "predicted_class_after": classes[self.predicted_after],
            "max_model_difference": self.max_model_difference,
        }


def choose_image(probabilities: np.ndarray, labels: np.ndarray, probability: float) -> int | None:
    """The misclassified row whose (wrong) top probability is closest to `probability`, or None.

    Seed 003's dog is called "cat" with probability 0.7; this finds the real image most like it.
    """
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    if len(wrong) == 0:
        return None
    top = probabilities[wrong, predicted[wrong]]
    return int(wrong[np.argmin(np.abs(top - probability))])


def step_on_one_image(
    spec: MLPSpec, state: dict[str, Tensor], x: Tensor, label: int, lr: float
) -> dict[str, Any]:
    """Forward, loss, gradient at the logits and one gradient-descent step, on copies of `state`.

    x: (F,) one scaled image. Returns the fields of `OneImageStep` that depend on the weights.
    """
    pair = SideBySide(spec, OptimizerSpec(name="sgd", lr=lr))
    pair.manual.load_state_dict(state)
    pair.autograd.load_state_dict(state)
    x, target = x.reshape(1, -1), torch.tensor([label], device=x.device)

    loss, _ = pair.manual.loss_and_grads(x, target)
    output_layer = pair.manual.layers[-1]
    logits = output_layer.output.clone()
    grad_logits = output_layer.delta.clone()  # BP1 at the output: dL/dz = (p − onehot) / 1

    logits_autograd = pair.autograd(x)
    logits_autograd.retain_grad()
    pair.autograd.loss(logits_autograd, target).backward()

    pair.step(x, target)  # both models: the same backward again, then w ← w − lr · dL/dw
    after = pair.evaluate(x, target)
    return {
        "logits": logits[0].double().cpu().numpy(),
        "probabilities": probabilities_of(logits)[0],
        "loss": float(loss),
        "grad_logits": grad_logits[0].double().cpu().numpy(),
        "grad_logits_autograd": logits_autograd.grad[0].double().cpu().numpy(),
        "probabilities_after": probabilities_of(after.output_manual)[0],
        "probabilities_after_autograd": probabilities_of(after.output_autograd)[0],
        "loss_after": after.loss_manual,
    }


def walk_through(
    config: ImagesConfig,
    spec: MLPSpec,
    split: ImageSplit,
    test: tuple[Tensor, Tensor],
    trained: tuple[dict[str, Tensor], np.ndarray],
    initial: tuple[dict[str, Tensor], np.ndarray],
) -> OneImageStep:
    """Pick the image (config, else a mistake of the trained model, else of the initial one) and step.

    trained, initial: (weights, test probabilities (N_test, K)) after and before training.
    """
    labels = split.labels("test")
    settings = config.walkthrough

    def one_step(index: int, state: dict[str, Tensor], when: str) -> OneImageStep:
        values = step_on_one_image(spec, state, test[0][index], int(labels[index]), settings.lr)
        return OneImageStep(
            test_image=index, true_class=int(labels[index]), when=when, lr=settings.lr, **values
        )

    if settings.test_image is not None:
        return one_step(settings.test_image, trained[0], "after training")
    index = choose_image(trained[1], labels, settings.probability)
    if index is not None:
        return one_step(index, trained[0], "after training")
    # the trained model gets every test image right: take one it got wrong at the start
    index = choose_image(initial[1], labels, settings.probability)
    return one_step(0 if index is None else index, initial[0], "at the start of training")


# -- printing ----------------------------------------------------------------------------------------------
def results_table(results: dict[str, dict[str, Any]]) -> str:
    """One row per model: accuracy and loss on train and test, and the training time."""
    rows = {
        label: {
            "train accuracy": f"{results[key]['train']['accuracy']:.4f}",
            "test accuracy": f"{results[key]['test']['accuracy']:.4f}",
            "train loss": f"{results[key]['train']['loss']:.4f}",
            "test loss": f"{results[key]['test']['loss']:.4f}",
            "train seconds": f"{results[key]['train_seconds']:.2f}",
        }
        for key, label in MODELS.items()
    }
    return table(rows)


def describe_run(config: ImagesConfig, split: ImageSplit, world_size: int) -> str:
    data, model, opt, train = split.data, config.model, config.optimizer, config.train
    channels, height, width = data.image_shape
    sizes = "-".join(str(s) for s in [data.x.shape[1], *model.hidden, len(data.classes)])
    counts = ", ".join(f"{name} {count:,}" for name, count in data.counts().items())
    lines = [
        f"data: {data.description}: {data.rows:,} images ({counts}); {len(split.train_index):,} "
        f"train, {len(split.test_index):,} test (stratified, seed {config.seed}); "
        f"{channels}x{height}x{width} pixels flattened and standardised on the training images",
        f"network {sizes} ({model.activation}; softmax and cross-entropy on the {len(data.classes)} "
        f"logits); {opt.name} lr {opt.lr:g}; {train.epochs} epochs of batches of "
        f"{train.batch_size}; {model.dtype}",
    ]
    if world_size > 1:
        lines.append(
            f"distributed: {world_size} processes, each backpropagates its share of every batch"
        )
    lines += [f"note: {note}" for note in data.notes]
    return "\n".join(lines)


def vector(values: np.ndarray, classes: list[str], signed: bool = False) -> str:
    """`cat 0.700  dog 0.200 ...`; with many classes the five largest in size only."""
    order = range(len(classes))
    if len(classes) > 12:
        order = sorted(np.argsort(-np.abs(values))[:5])
    number = "{:+.3f}" if signed else "{:.3f}"
    return "  ".join(f"{classes[k]} {number.format(values[k]).replace('-', '−')}" for k in order)


def walkthrough_lines(walk: OneImageStep, classes: list[str]) -> list[str]:
    true, wrong = classes[walk.true_class], classes[walk.predicted]
    p_true, p_wrong = walk.probabilities[walk.true_class], walk.probabilities[walk.predicted]
    model = "the trained model" if walk.when == "after training" else "the untrained model"
    verdict = (
        f'{model} calls it "{wrong}" with probability {p_wrong:.2f}'
        if walk.predicted != walk.true_class
        else f'{model} calls it "{true}" already ({p_true:.2f})'
    )
    after = walk.probabilities_after[walk.true_class]
    top_after = classes[walk.predicted_after]
    if walk.predicted == walk.true_class:
        now = "still the top class"
    elif walk.predicted_after == walk.true_class:
        now = f'now the top class ("{wrong}" {walk.probabilities_after[walk.predicted]:.3f})'
    else:
        now = f'still below "{top_after}" ({walk.probabilities_after[walk.predicted_after]:.3f})'

    return [
        'one image through seed 003\'s steps (its dog that the network calls "cat" with 0.7):',
        f'  test image #{walk.test_image}, true class "{true}": {verdict}',
        f"  1 forward:  p = softmax(z):  {vector(walk.probabilities, classes)}",
        f'  2 error:    loss = −ln p("{true}") = −ln {p_true:.4f} = {walk.loss:.4f}',
        f"  3 backward: dL/dz = p − onehot({true}):  {vector(walk.grad_logits, classes, True)}",
        f'  4 update:   one gradient-descent step on this image (lr {walk.lr:g}): p("{true}") '
        f"{p_true:.3f} → {after:.3f}, {now}; loss {walk.loss:.4f} → {walk.loss_after:.4f}",
        f"  hand-written and autograd differ by at most {walk.max_model_difference:.1e} in dL/dz "
        "and in the new probabilities",
    ]


# -- the run -------------------------------------------------------------------------------------------------
def dataset_block(split: ImageSplit) -> dict[str, Any]:
    data = split.data
    return {
        "name": data.name,
        "description": data.description,
        "rows": data.rows,
        "classes": data.classes,
        "images_per_class": data.counts(),
        "image_shape": list(data.image_shape),
        "inputs": int(data.x.shape[1]),
        "train_rows": len(split.train_index),
        "test_rows": len(split.test_index),
        "notes": data.notes,
    }


def prepare_run_dir(args) -> tuple[RunDir | None, bool]:
    """(the output folder, made by rank 0 only; whether rank 0 could make it), on every rank.

    Rank 0 raises the `UsageError` if not; the other ranks learn of it and stop quietly.
    """
    run, failure = None, None
    if is_main_process():
        try:
            run = RunDir.prepare(args.out, DEMO, args.force)
        except UsageError as error:
            failure = error
    failed = from_main_process(failure is not None)
    if failure is not None:
        raise failure
    return run, not failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Everything a user can get wrong (config, data, classes) is checked before the folder is made.
    config = load_demo_config(ImagesConfig, args, data_overrides(args))
    check_model(config)
    config.train.apply_threads()  # small matrices: more threads cost more than they give
    if args.distributed:
        device = rank_device(resolve_device(config.model.device))
        config.model.device = str(device)
        init_from_torchrun(device)
    try:
        return train_and_report(args, config)
    finally:
        if args.distributed:
            leave_process_group()


def train_and_report(args, config: ImagesConfig) -> int:
    data_config = config.data
    with main_process_first():  # a download happens once, into the shared cache
        images = load_images(
            data_config.dataset,
            classes=data_config.classes,
            root=data_config.root,
            download=data_config.download,
            image_size=data_config.image_size,
            grayscale=data_config.grayscale,
            per_class=data_config.per_class,
            seed=config.seed,
        )
    split = split_images(images, data_config.test_fraction, config.seed)
    if config.walkthrough.test_image is not None and config.walkthrough.test_image >= len(
        split.test_index
    ):
        raise ConfigError(
            f"walkthrough.test_image = {config.walkthrough.test_image}, but the test split has "
            f"{len(split.test_index)} images (0 to {len(split.test_index) - 1})"
        )
    spec = config.model.spec(images.x.shape[1], len(images.classes), config.seed)
    pair_type = DistributedSideBySide if args.distributed else SideBySide
    pair = pair_type(spec, config.optimizer.spec())
    run, ready = prepare_run_dir(args)
    if not ready:  # rank 0 could not make the output folder, and says why
        return 2
    main_process = is_main_process()
    quiet = args.quiet or not main_process

    say = printer(quiet)

    if main_process:
        run.write_text("config.toml", dump_config(config))
    say(describe_run(config, split, getattr(pair, "world_size", 1)))

    dtype, device = pair.spec.dtype, pair.spec.device
    train, test = split.tensors("train", dtype, device), split.tensors("test", dtype, device)
    initial = (pair.manual.state_dict(), probabilities_of(pair.evaluate(*test).output_manual))
    history = fit(
        pair,
        train,
        test,
        epochs=config.train.epochs,
        batch_size=config.train.batch_size,
        seed=config.seed,
        metrics=accuracy,
        quiet=quiet,
        description=images.name,
    )
    if not main_process:  # rank 0 evaluates, prints and writes
        return 0 if history.completed else 1
    stop_if_unfinished(
        run, history, pair, dataset_block(split), config.optimizer.lr, config.train.epochs
    )

    evaluations = {"train": pair.evaluate(*train), "test": pair.evaluate(*test)}
    results = model_results(evaluations, {"train": train[1], "test": test[1]}, history)
    results["sklearn_mlp"] = fit_baseline(split, config)
    probabilities = {
        model: probabilities_of(getattr(evaluations["test"], f"output_{model}"))
        for model in ("manual", "autograd")
    }
    walk = walk_through(
        config, spec, split, test, (pair.manual.state_dict(), probabilities["manual"]), initial
    )

    same = int((probabilities["manual"].argmax(1) == probabilities["autograd"].argmax(1)).sum())
    predictions = {
        "same_test_predictions": same,
        "test_images": len(split.test_index),
        "max_test_probability_difference": float(
            np.abs(probabilities["manual"] - probabilities["autograd"]).max()
        ),
    }
    say()
    say(f"results on {len(split.test_index):,} held-out test images:")
    say(results_table(results))
    say()
    say(agreement_line(pair))
    say(
        f"the two models predict the same class for {same:,} of {len(split.test_index):,} test "
        f"images; their test probabilities differ by at most "
        f"{predictions['max_test_probability_difference']:.1e}"
    )
    say(
        f"test loss at full precision: hand-written {results['manual']['test']['loss']!r}, "
        f"autograd {results['autograd']['test']['loss']!r}"
    )
    say()
    for line in walkthrough_lines(walk, images.classes):
        say(line)

    write_results(run, config, split, pair, history, results, probabilities, walk, predictions)
    write_figures(run, split, pair, history, results, probabilities, walk, predictions)
    say(
        f"\nwrote config.toml, metrics.json, history.csv, steps.csv, {', '.join(FIGURES[:-1])} "
        f"and {FIGURES[-1]} to {run.path}"
    )
    return 0


def write_results(
    run, config, split, pair, history, results, probabilities, walk, predictions
) -> None:
    """metrics.json, history.csv and steps.csv."""
    from sklearn.metrics import confusion_matrix

    data = split.data
    labels = split.labels("test")
    predicted = probabilities["manual"].argmax(1)
    matrix = confusion_matrix(labels, predicted, labels=list(range(len(data.classes))))
    metrics = {
        "dataset": dataset_block(split),
        "seed": config.seed,
        **{model: results[model] for model in ("manual", "autograd")},
        "baselines": {"sklearn_mlp": _public(results["sklearn_mlp"])},
        "agreement": agreement(pair),
        "predictions": predictions,
        "confusion_matrix": {
            "classes": data.classes,
            "rows_true_columns_predicted": matrix.tolist(),
        },
        "walkthrough": walk.as_dict(data.classes),
        "distributed": {"world_size": getattr(pair, "world_size", 1)},
        **run_status(history),
    }
    run.write_json("metrics.json", metrics)
    write_history(run, history)


def write_figures(run, split, pair, history, results, probabilities, walk, predictions) -> None:
    """The six figures (`FIGURES`)."""
    data = split.data
    labels = split.labels("test")
    predicted = probabilities["manual"].argmax(1)
    name = data.description
    test_accuracy = results["manual"]["test"]["accuracy"]
    run.save_figure(
        loss_and_accuracy(history, title=f"Hand-written and autograd, per epoch: {name}"),
        FIGURES[0],
    )
    run.save_figure(
        gradient_difference(history, pair.agreement.tolerance, pair.agreement.dtype), FIGURES[1]
    )
    run.save_figure(
        confusion(
            labels,
            predicted,
            data.classes,
            title=f"Hand-written model on {len(labels):,} test images\n"
            f"accuracy {test_accuracy:.4f}; autograd predicts the same for "
            f"{predictions['same_test_predictions']:,}",
        ),
        FIGURES[2],
    )
    mistakes = np.flatnonzero(predicted != labels)[:GRID_MISTAKES]
    rest = [i for i in range(len(labels)) if i not in set(mistakes)]
    shown = np.concatenate([mistakes, rest[: GRID_IMAGES - len(mistakes)]]).astype(int)
    total_mistakes = int((predicted != labels).sum())
    which = (
        f"its {total_mistakes} mistake{'s' if total_mistakes != 1 else ''} first"
        if total_mistakes <= GRID_MISTAKES
        else f"{GRID_MISTAKES} of its {total_mistakes} mistakes first"
    )
    run.save_figure(
        image_grid(
            data.pictures(data.x[split.test_index[shown]]),
            labels[shown],
            predicted[shown],
            probabilities["manual"][shown, predicted[shown]],
            data.classes,
            title=f"{len(shown)} of the {len(labels):,} test images, hand-written model ({which}); "
            "pred = predicted class and its probability",
            numbers=shown.tolist(),
        ),
        FIGURES[3],
    )
    run.save_figure(
        layer_gradient_norms(history, title=f"Gradient norm of each layer: {name}"), FIGURES[4]
    )
    run.save_figure(
        one_image_step(
            data.pictures(data.x[split.test_index[[walk.test_image]]])[0],
            data.classes,
            walk.true_class,
            walk.probabilities,
            walk.probabilities_after,
            walk.lr,
            title=f"Test image #{walk.test_image} ({walk.when}): class probabilities before and "
            f"after one gradient-descent step on it\nloss −ln p(true) {walk.loss:.3f} → "
            f"{walk.loss_after:.3f}",
        ),
        FIGURES[5],
    )


def _public(result: dict[str, Any]) -> dict[str, Any]:
    """A model's results without its raw probabilities (those are in the figures, not the json)."""
    return {k: v for k, v in result.items() if k != "probabilities"}


if __name__ == "__main__":
    sys.exit(run_main(main))
