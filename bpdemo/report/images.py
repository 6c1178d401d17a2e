"""What the image demo prints and writes about its run: the data and network, the results table, how
alike the two models' predictions are, and the dog image example's four steps on one real image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from bpdemo.baselines import Baseline, activation_note
from bpdemo.functional import LOSSES
from bpdemo.report import MODEL_LABELS, data_and_split, table

if TYPE_CHECKING:
    from bpdemo.datasets.images import ImageSplit
    from bpdemo.experiment import TrainingConfig
    from bpdemo.functional import Loss
    from bpdemo.image_step import OneImageStep

SKLEARN_LOSS = "cross_entropy"  # MLPClassifier's log loss, which `fit_classifier` scores it by


def describe_run(config: TrainingConfig, split: ImageSplit, world_size: int = 1) -> str:
    """The data, the split, the network and how it trains; then notes on how they were read."""
    data, model, opt, train = split.data, config.model, config.optimizer, config.train
    channels, height, width = data.image_shape
    sizes = "-".join(str(s) for s in [data.x.shape[1], *model.hidden_sizes, len(data.classes)])
    counts = ", ".join(f"{name} {count:,}" for name, count in data.counts().items())
    lines = [
        f"data: {data.description}: {data.rows:,} images ({counts}); {len(split.train_index):,} "
        f"train, {len(split.test_index):,} test (stratified, seed {config.seed}); "
        f"{channels}x{height}x{width} pixels flattened and standardised on the training images",
        f"network {model.layer_text() or f'{sizes} ({model.hidden_activation})'}; loss "
        f"{LOSSES[model.loss].label} on the {len(data.classes)} logits; {opt.name} lr "
        f"{opt.lr:g}; {train.epochs} epoch{'s' if train.epochs != 1 else ''} of batches of "
        f"{train.batch_size}; {model.dtype}",
    ]
    if world_size > 1:
        lines.append(
            f"distributed: {world_size} processes, each backpropagates its share of every batch"
        )
    notes = [*data.notes, activation_note(model.hidden_activation), baseline_loss_note(model.loss)]
    lines += [f"note: {note}" for note in notes if note]
    return "\n".join(lines)


def baseline_loss_note(loss: str) -> str | None:
    """A line for the user when scikit-learn's MLP minimises another loss than the networks."""
    if loss == SKLEARN_LOSS:
        return None
    return f"scikit-learn's MLP minimises its own log loss, not {loss}: its loss column is that one"


def results_table(
    results: Mapping[str, Mapping[str, Any]],
    baseline: Baseline,
    others: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """One row per model: accuracy and loss on train and test, and the training time; `others`
    (the comparison MLP of a convolutional network) after scikit-learn's."""
    rows = {**results, "sklearn_mlp": baseline.as_dict(), **(others or {})}
    return table(
        {
            MODEL_LABELS[key]: {
                "train accuracy": f"{row['train']['accuracy']:.4f}",
                "test accuracy": f"{row['test']['accuracy']:.4f}",
                "train loss": f"{row['train']['loss']:.4f}",
                "test loss": f"{row['test']['loss']:.4f}",
                "train seconds": f"{row['train_seconds']:.2f}",
            }
            for key, row in rows.items()
        }
    )


def describe_predictions(
    predictions: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]]
) -> str:
    """How often the two models predict the same class, and their test losses to the last digit."""
    return "\n".join(
        [
            f"the two models predict the same class for {predictions['same_test_predictions']:,} of "
            f"{predictions['test_images']:,} test images; their test probabilities differ by at most "
            f"{predictions['max_test_probability_difference']:.1e}",
            f"test loss at full precision: hand-written {results['manual']['test']['loss']!r}, "
            f"autograd {results['autograd']['test']['loss']!r}",
        ]
    )


def vector(values: np.ndarray, classes: list[str], signed: bool = False) -> str:
    """`cat 0.700  dog 0.200 ...`; with many classes the five largest in size only."""
    order = range(len(classes))
    if len(classes) > 12:
        order = sorted(np.argsort(-np.abs(values))[:5])
    number = "{:+.3f}" if signed else "{:.3f}"
    return "  ".join(f"{classes[k]} {number.format(values[k]).replace('-', '−')}" for k in order)


def describe_step(walk: OneImageStep, classes: list[str]) -> str:
    """The four steps on one image: logits and probabilities, loss, gradient at the logits, one
    update. The loss and its gradient are written out with the loss's own texts from the registry
    (`bpdemo.functional.Loss`), symbols first and then numbers, or named where it has none."""
    loss = LOSSES[walk.loss_name]
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

    return "\n".join(
        [
            "one image through the dog image example's steps (a dog the network calls "
            '"cat" with 0.7):',
            f'  test image #{walk.test_image}, true class "{true}": {verdict}',
            f"  1 forward:  z, the logits:  {vector(walk.logits, classes, True)}",
            f"              p = softmax(z):  {vector(walk.probabilities, classes)}",
            f"  2 error:    {loss_line(loss, walk, classes)}",
            f"  3 backward: {gradient_line(loss, walk, classes)}",
            f'  4 update:   one gradient-descent step on this image (lr {walk.lr:g}): p("{true}") '
            f"{p_true:.3f} → {after:.3f}, {now}; loss {walk.loss:.4f} → {walk.loss_after:.4f}",
            f"  hand-written and autograd differ by at most {walk.max_model_difference:.1e} in dL/dz "
            "and in the new probabilities",
        ]
    )


def loss_line(loss: Loss, walk: OneImageStep, classes: list[str]) -> str:
    """`loss = −ln(p("1")) = −ln(0.000819321) = 7.10741`: the loss of this one image."""
    true, k = classes[walk.true_class], walk.true_class
    # the fields of a loss for classes at the true class (see `bpdemo.functional.Loss`)
    symbols = {"a": f'z("{true}")', "p": f'p("{true}")', "y": f'"{true}"', "k": f'"{true}"'}
    numbers = {"a": f"{walk.logits[k]:.6g}", "p": f"{walk.probabilities[k]:.6g}", "y": k, "k": k}
    written = [
        loss.one_sample_text(**fields, hit=1, one_minus_y=f"(1 − {fields['y']})")
        for fields in (symbols, numbers)
    ]
    if written[0] is None:
        return f"loss {loss.label} of this image = {walk.loss:.6g}"
    return f"loss = {written[0]} = {written[1]} = {walk.loss:.6g}"


def gradient_line(loss: Loss, walk: OneImageStep, classes: list[str]) -> str:
    """`dL/dz = p − onehot("1"):  0 +0.001 ...`, where backpropagation starts (BP1)."""
    values = vector(walk.grad_logits, classes, True)
    if loss.sample_gradient_text is None:
        return f"dL/dz, by the gradient rule of {loss.name}:  {values}"
    formula = loss.sample_gradient_text.format(y=f'"{classes[walk.true_class]}"')
    return f"dL/dz = {formula}:  {values}"


def dataset_block(split: ImageSplit) -> dict[str, Any]:
    """The `dataset` block of metrics.json."""
    data = split.data
    block = data_and_split(
        split,
        classes=data.classes,
        images_per_class=data.counts(),
        image_shape=list(data.image_shape),
        inputs=int(data.x.shape[1]),
    )
    return {**block, "notes": data.notes}


def confusion_block(split: ImageSplit, probabilities: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The `confusion_matrix` block of metrics.json: the hand-written model's, from its test
    probabilities (`probabilities["manual"]`, (N_test, K))."""
    from sklearn.metrics import confusion_matrix

    classes = split.data.classes
    matrix = confusion_matrix(
        split.labels("test"), probabilities["manual"].argmax(1), labels=list(range(len(classes)))
    )
    return {"classes": classes, "rows_true_columns_predicted": matrix.tolist()}
