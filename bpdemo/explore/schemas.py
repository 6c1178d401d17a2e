"""The explorer's limits and request bodies, validated like the configs (strict, unknown keys refused).

Every request body is a `Section`, so a wrong key, a string where a number goes, an inf or a NaN, or
a size past a limit is refused before any work starts, with one line naming the field. The limits
keep every answer small and quick: within them every answer comes in under a second on two cores
(`python -m bpdemo.bench.explore` measures the largest case), and no tensor is larger than a few
megabytes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from bpdemo.infra.config import Section, same_as
from bpdemo.infra.errors import UsageError
from bpdemo.optim import OptimizerSpec
from bpdemo.spec import ActivationName, DtypeName

# -- limits (docs/explore.md lists them) -----------------------------------------------------------
# Each answer must come in under a second on two cores, so these are below a worked example's own
# limits: a worked-example answer may run the example three times to MAX_STEP (the claims' audit,
# the hand-written run, autograd's run), and its chain-rule panels grow with layers x neurons².
MAX_LAYERS, MAX_UNITS = 3, 8  # layers with weights, neurons in one layer of a worked example
MAX_SAMPLES = 16  # rows of a worked example's data
MAX_STEP = 100  # the last step a worked example can be stepped to
MAX_MAGNITUDE = 1e6  # largest |value| of an edited input, target or weight
MAX_LR = 100.0  # largest learning rate, in both parts
MAX_HIDDEN_LAYERS, MAX_HIDDEN_UNITS = 4, 16  # hidden layers of a playground network, and widths
MIN_POINTS, MAX_POINTS = 10, 1000  # points of a playground data set
MAX_EPOCHS_PER_REQUEST = 50  # epochs one training request may ask for
MAX_STEPS_PER_REQUEST = 100  # mini-batch steps one training request may run (epochs × batches)
MIN_GRID, MAX_GRID = 10, 150  # the decision boundary's grid: GRID × GRID points
MIN_NEURON_GRID, MAX_NEURON_GRID = 8, 48  # a neuron's picture: NEURON_GRID × NEURON_GRID points
MIN_CLASSES, MAX_CLASSES = 3, 6  # classes of the blobs problem (a colour each)
MAX_CSV_CHARS = 60_000  # characters of pasted points (about 1,000 lines x1,x2,label)
MAX_TEST_SHARE = 0.5  # the largest share of the points held out as the test set
MAX_DROPOUT = 0.9  # the largest dropout probability of a hidden layer
MAX_PIXEL = 16.0  # a digit image's pixel, 0 (blank) to 16 (ink), as scikit-learn's digits
MAX_SESSIONS = 32  # open pages at once; the least recently used one is closed beyond that
SESSION_IDLE_SECONDS = 3600  # a page silent this long is closed
# the largest request body: room for MAX_CSV_CHARS of pasted points, each newline \n in JSON
MAX_BODY_BYTES = 128 * 1024
MAX_HEADER_BYTES = 16 * 1024  # largest request line and headers
REQUEST_SECONDS = 10  # a connection must deliver a whole request within this, or is closed
MAX_CONNECTIONS = 1000  # open connections; past that the longest-waiting idle one is closed

Finite = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
Index = Annotated[int, Field(ge=0, lt=max(MAX_UNITS, MAX_SAMPLES))]  # a neuron, or a sample
# OptimizerSpec's checks of a learning rate, and the explorer's limit
LearningRate = Annotated[same_as(OptimizerSpec, "lr"), Field(le=MAX_LR)]


# -- the worked example ----------------------------------------------------------------------------
class StepRequest(Section):
    """POST /api/worked/step: show step `step` (1 = before the first update) for sample `sample`."""

    step: Annotated[int, Field(ge=1, le=MAX_STEP)] = 1
    sample: Annotated[int, Field(ge=0, lt=MAX_SAMPLES)] = 0


class EditRequest(Section):
    """POST /api/worked/edit: change one starting value of the example; every step is recomputed.

    what = input: inputs[row][column]; target: targets[row][column] (a class: targets[row]);
    weight: layers.{layer}.weight[row, column]; bias: layers.{layer}.bias[row]; lr: the learning rate.
    """

    what: Literal["input", "target", "weight", "bias", "lr"]
    layer: Annotated[int, Field(ge=0, lt=MAX_LAYERS)] = 0
    row: Index = 0
    column: Index = 0
    value: Finite
    sample: Annotated[int, Field(ge=0, lt=MAX_SAMPLES)] = 0  # the sample shown afterwards


# -- the playground --------------------------------------------------------------------------------
Dataset = Literal["xor", "moons", "circles", "spiral", "gauss", "blobs", "plane", "bumps", "csv"]
Feature = Literal["x1", "x2", "x1^2", "x2^2", "x1x2", "sin_x1", "sin_x2"]  # problems.FEATURES


class PlaygroundSettings(Section):
    """POST /api/playground/setup: a 2-D data set, its split, the network's inputs and layers, and
    its training. The output and loss follow the problem's kind (`bpdemo.explore.problems`)."""

    dataset: Dataset = "xor"
    csv: Annotated[str, Field(max_length=MAX_CSV_CHARS)] = ""  # the points of dataset "csv"
    classes: Annotated[int, Field(ge=MIN_CLASSES, le=MAX_CLASSES)] = 3  # of dataset "blobs"
    points: Annotated[int, Field(ge=MIN_POINTS, le=MAX_POINTS)] = 200
    test_share: Annotated[float, Field(ge=0, le=MAX_TEST_SHARE, allow_inf_nan=False)] = 0.3
    features: Annotated[list[Feature], Field(min_length=1, max_length=7)] = Field(
        default_factory=lambda: ["x1", "x2"]
    )
    noise: Annotated[
        float,
        Field(ge=0, le=1, allow_inf_nan=False),
        AfterValidator(lambda noise: noise + 0.0),  # -0.0 is 0 (numpy refuses a scale of -0.0)
    ] = 0.1
    seed: Annotated[int, Field(ge=0, lt=2**31)] = 0
    hidden: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_HIDDEN_UNITS)]], Field(max_length=MAX_HIDDEN_LAYERS)
    ] = Field(default_factory=lambda: [8, 8])
    activation: ActivationName = "tanh"
    optimizer: same_as(OptimizerSpec, "name") = "adam"
    lr: LearningRate = 0.03
    weight_decay: same_as(OptimizerSpec, "weight_decay") = 0.0  # L2, added to the gradient
    dropout: Annotated[float, Field(ge=0, le=MAX_DROPOUT, allow_inf_nan=False)] = 0.0
    batch_size: Annotated[int, Field(ge=1, le=MAX_POINTS)] = 10
    grid: Annotated[int, Field(ge=MIN_GRID, le=MAX_GRID)] = 100
    neuron_grid: Annotated[int, Field(ge=MIN_NEURON_GRID, le=MAX_NEURON_GRID)] = 24
    dtype: DtypeName = "float64"

    def train_points(self) -> int:
        """The points trained on, of a made-up problem's `points` (a pasted CSV has its own rows)."""
        return training_points(self.points, self.test_share)

    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.train_points(), self.batch_size)

    @model_validator(mode="after")
    def one_epoch_per_request(self) -> PlaygroundSettings:
        """An epoch must fit in one training request, as the page trains an epoch a frame. Pasted
        points are counted once parsed (`Playground`): `points` says nothing of their rows."""
        refusal = self.dataset != "csv" and epoch_too_long(self.train_points(), self.batch_size)
        if refusal:
            raise PydanticCustomError("batch_size", "{refusal}", {"refusal": refusal})
        return self


def held_out_points(points: int, test_share: float) -> int:
    """How many of `points` are held out as the test set: round(points × share), never all of them
    (the playground draws which, with its seed)."""
    return min(round(points * test_share), points - 1)


def training_points(points: int, test_share: float) -> int:
    """How many of `points` are trained on: all but the test points, at least one."""
    return points - held_out_points(points, test_share)


def steps_per_epoch(train_points: int, batch_size: int) -> int:
    return -(-train_points // batch_size)


def epoch_too_long(train_points: int, batch_size: int) -> str | None:
    """Why an epoch of `train_points` in batches of `batch_size` is more than one request runs, or
    None if it fits (the message names the smallest batch that would)."""
    steps = steps_per_epoch(train_points, batch_size)
    if steps <= MAX_STEPS_PER_REQUEST:
        return None
    smallest = -(-train_points // MAX_STEPS_PER_REQUEST)
    return (
        f"batch_size: with {train_points} training points, batches of {batch_size} make {steps} "
        f"steps an epoch, and one request runs at most {MAX_STEPS_PER_REQUEST}: use batches of at "
        f"least {smallest}"
    )


class TrainRequest(Section):
    """POST /api/playground/train: train both models for `epochs` epochs, then answer one frame."""

    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS_PER_REQUEST)] = 1


class NeuronRequest(Section):
    """POST /api/playground/neuron: one neuron's picture at full size (depth 0: an input feature)."""

    depth: Annotated[int, Field(ge=0, le=MAX_HIDDEN_LAYERS + 1)]
    unit: Annotated[int, Field(ge=0, lt=MAX_HIDDEN_UNITS)]


class PointRequest(Section):
    """POST /api/playground/point: one data point's step, as a worked example (index: all points)."""

    index: Annotated[int, Field(ge=0, lt=MAX_POINTS)]


class ClassifyRequest(Section):
    """POST /api/images/classify: an 8 x 8 image (64 pixels 0-16, row by row) and the label whose
    loss is differentiated with respect to each pixel."""

    pixels: Annotated[
        list[Annotated[float, Field(ge=0, le=MAX_PIXEL, allow_inf_nan=False)]],
        Field(min_length=64, max_length=64),
    ]
    label: Annotated[int, Field(ge=0, le=9)] = 0


def check_worked_size(sizes: list[int], samples: int, source: str) -> None:
    """Refuse a worked example larger than the explorer draws (UsageError, one line)."""
    layers = len(sizes) - 1
    if layers > MAX_LAYERS or max(sizes) > MAX_UNITS or samples > MAX_SAMPLES:
        raise UsageError(
            f"{source}: the explorer draws up to {MAX_LAYERS} layers of at most {MAX_UNITS} "
            f"neurons and {MAX_SAMPLES} samples; this example has sizes {sizes} and {samples} "
            "sample(s)"
        )


def one_line(error: ValidationError | list[dict], where: str = "") -> str:
    """The first problem of a validation error as one line: field, what is wrong, what was given."""
    errors = error.errors() if isinstance(error, ValidationError) else error
    first = errors[0]
    parts = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    field = parts[0] if parts else ""
    for part in parts[1:]:
        field += f"[{part}]" if part.isdigit() else f".{part}"
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    if first.get("type") == "missing" and parts[:1] == ["header"]:
        return f"{where}the request has no {parts[-1]} header: reload the page"
    message = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        message = "unknown field"
    given = first.get("input")
    shown = "" if isinstance(given, dict) or given is None else f" (got {given!r})"
    if len(shown) > 80:  # a pasted text past its limit: its start is enough to recognise it
        shown = f" (got {repr(given)[:40]}…, {len(str(given)):,} characters)"
    return f"{where}{field + ': ' if field else ''}{message}{shown}"
