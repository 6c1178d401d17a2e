"""What the house-price demo prints and writes about its run: the data and network, the results in
dollars, and the house example's house before and after training."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bpdemo.baselines import Baseline, activation_note
from bpdemo.report import MODEL_LABELS, data_and_split

if TYPE_CHECKING:
    from bpdemo.datasets.houses import ExampleHouse, HouseSplit
    from bpdemo.experiment import TrainingConfig


def dollars(value: float) -> str:
    """`$248,377`, `-$1,200`: whole dollars."""
    return f"-${-value:,.0f}" if value < 0 else f"${value:,.0f}"


def describe_run(config: TrainingConfig, split: HouseSplit) -> str:
    """The data, the split, the network and how it trains; then notes on how they were read."""
    data, model, opt, train = split.data, config.model, config.optimizer, config.train
    sizes = "-".join(str(s) for s in [len(data.features), *model.hidden_sizes, 1])
    network = (
        model.layer_text() or f"{sizes} ({model.activation}, output {model.output_activation})"
    )
    decay = f", weight decay {opt.weight_decay:g}" if opt.weight_decay else ""
    lines = [
        f"data: {data.description}: {data.rows:,} houses ({len(split.train_index):,} train, "
        f"{len(split.test_index):,} test, split with seed {config.seed}); "
        f"features {', '.join(data.features)}; target {data.target} (dollars)",
        f"network {network}, loss {model.loss} "
        f"on the standardised price; {opt.name} lr {opt.lr:g}{decay}; {train.epochs} epoch{'s' if train.epochs != 1 else ''} of batches of "
        f"{train.batch_size}; {model.dtype}",
    ]
    notes = [*data.notes, activation_note(model.hidden_activation)]
    lines += [f"note: {note}" for note in notes if note]
    return "\n".join(lines)


def results_table(
    results: Mapping[str, Mapping[str, Any]], baselines: Mapping[str, Baseline]
) -> str:
    """One row per model: loss, RMSE, MAE and R² on train and test, and the training time."""
    header = (
        f"{'':18} {'train':>9} {'test':>9} {'train':>10} {'test':>10} {'train':>10} "
        f"{'test':>10} {'train':>7} {'test':>7} {'train':>8}\n"
        f"{'model':18} {'loss':>9} {'loss':>9} {'RMSE':>10} {'RMSE':>10} {'MAE':>10} "
        f"{'MAE':>10} {'R²':>7} {'R²':>7} {'seconds':>8}"
    )
    rows = {**results, **{name: baseline.as_dict() for name, baseline in baselines.items()}}
    lines = [header]
    for key, row in rows.items():
        train, test = row["train"], row["test"]
        lines.append(
            f"{MODEL_LABELS[key]:18} {train['loss']:>9.4f} {test['loss']:>9.4f} "
            f"{dollars(train['rmse']):>10} {dollars(test['rmse']):>10} "
            f"{dollars(train['mae']):>10} {dollars(test['mae']):>10} "
            f"{train['r2']:>7.3f} {test['r2']:>7.3f} {row['train_seconds']:>8.2f}"
        )
    return "\n".join(lines)


def describe_house(
    house: ExampleHouse, before: Mapping[str, float], after: Mapping[str, float] | None = None
) -> str:
    """The example house, both models' price for it before (and after) training, its rule price."""
    lines = [
        f"one house: {house.description}",
        f"  before training: hand-written {dollars(before['manual'])}, "
        f"autograd {dollars(before['autograd'])}",
    ]
    if after is None:
        return "\n".join(lines)
    lines.append(
        f"  after training:  hand-written {dollars(after['manual'])}, "
        f"autograd {dollars(after['autograd'])}"
    )
    if house.rule_price is not None:
        lines.append(
            f"  the synthetic market's rule price (before noise): {dollars(house.rule_price)}"
        )
    return "\n".join(lines)


def dataset_block(split: HouseSplit) -> dict[str, Any]:
    """The `dataset` block of metrics.json."""
    data = split.data
    block = data_and_split(split, features=data.features, target=data.target)
    return {**block, "dropped_rows": data.dropped_rows}


def house_block(
    house: ExampleHouse, before: Mapping[str, float], after: Mapping[str, float]
) -> dict[str, Any]:
    """The `walkthrough` block of metrics.json: the house and both models' prices for it."""
    return {
        "house": house.values,
        "description": house.description,
        "before": before,
        "after": after,
    }
