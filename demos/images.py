"""Images: a hand-written and an autograd classifier trained side by side, against scikit-learn.

    python -m demos.images                                 # scikit-learn's 8x8 digits, offline
    python -m demos.images --dataset cifar10 --download    # dog, cat, automobile photos (once, 170 MB)
    python -m demos.images --root photos/                  # your own: photos/dog/, photos/cat/, ...
    torchrun --standalone --nproc_per_node=2 -m demos.images --distributed

The dog image example's classifier: softmax turns the network's scores (logits) into class
probabilities, cross-entropy measures the error, backpropagation sends it back. Both models start
from the same weights, see the same mini-batches and are compared at every step; scikit-learn's
MLPClassifier (same hidden sizes) is fitted on the same split. Then one test image the network gets
wrong goes through the example's four steps (`bpdemo.image_step`). Prints progress, a results table
and the agreement of the two models; writes config.toml, metrics.json, history.csv, steps.csv and
six figures (`bpdemo.plots.images`).
"""

from __future__ import annotations

import sys
from typing import Annotated

from pydantic import Field

from bpdemo.baselines import fit_classifier
from bpdemo.datasets.images import DATASETS, load_images, split_images
from bpdemo.experiment import Experiment, check_model
from bpdemo.image_cnn import convolves, mlp_block, train_mlp
from bpdemo.image_step import check_test_image, pixel_gradients, snapshot, walk_through
from bpdemo.infra import cli
from bpdemo.infra import config as schema
from bpdemo.infra.command import run_command
from bpdemo.infra.limits import MAX_IMAGE_SIZE, MAX_PROCESSES
from bpdemo.infra.processes import launch_local, process_group, rank_zero_first
from bpdemo.infra.ranks import is_rank_zero
from bpdemo.optim import OptimizerSpec
from bpdemo.plots import cnn as cnn_plots
from bpdemo.plots import images as plots
from bpdemo.report import agreement_line
from bpdemo.report import images as report
from bpdemo.scores import accuracy, class_scores, prediction_agreement, probabilities_of
from bpdemo.spec import ModelSection
from bpdemo.train import torch_threads

DEMO = "images"
CLASS_LOSS_ADVICE = "classes need one of {losses}, the losses made for class labels"


class ImageDataSection(schema.Section):
    """[data]: where the images come from, which of them, and how they are split (a key one source
    alone uses is None unless given: `bpdemo.datasets.images.SOURCE_SETTINGS` has its default)."""

    dataset: Annotated[str, schema.one_of(DATASETS)] = "digits"
    classes: list[schema.Name] = Field(default_factory=list)
    download: bool | None = None  # cifar10 only
    root: str | None = None  # folder only, as the two below
    image_size: schema.at_most(MAX_IMAGE_SIZE) | None = None
    grayscale: bool | None = None
    per_class: schema.PositiveInt | None = None
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.25


class WalkthroughSection(schema.Section):
    """[walkthrough]: the one test image followed through the dog image example's four steps."""

    probability: Annotated[float, Field(gt=0, lt=1)] = 0.7
    lr: schema.PositiveFloat = 0.002
    test_image: Annotated[int, Field(ge=0)] | None = None


# The multilayer perceptron of configs/images.toml; a convolutional network is compared with it.
MLP_MODEL = ModelSection(
    hidden=[128, 64], activation="relu", loss="cross_entropy", init="he", dtype="float64"
)
MLP_OPTIMIZER = OptimizerSpec("adam", lr=0.002)


class ImagesConfig(schema.Section):
    seed: schema.Seed = 0
    data: ImageDataSection = ImageDataSection()
    model: ModelSection = MLP_MODEL
    optimizer: OptimizerSpec = MLP_OPTIMIZER
    train: schema.TrainSection = schema.TrainSection(epochs=15, batch_size=32, threads=1)
    walkthrough: WalkthroughSection = WalkthroughSection()


# -- command line ------------------------------------------------------------------------------------------
EPILOG = """\
examples:
  python -m demos.images                                   scikit-learn's digits (offline, 15-40 s)
  python -m demos.images --dataset cifar10 --download      dog, cat and automobile photos of CIFAR-10
  python -m demos.images --dataset cifar10 --classes "ship,truck,horse" --set data.per_class=1000
  python -m demos.images --root photos/ --image-size 24    photos/dog/*.jpg, photos/cat/*.jpg, ...
  python -m demos.images --set model.hidden=[256,128,64] --set optimizer.lr=0.0005
  python -m demos.images --processes 2                      data-parallel on 2 processes
  GLOO_SOCKET_IFNAME=lo torchrun --standalone --nproc_per_node=2 -m demos.images --distributed

--root PATH alone implies --dataset folder. --classes picks and orders classes by name for any data
set ("car" means CIFAR-10's "automobile"). With --distributed, every process takes an equal share of
each mini-batch and rank 0 prints and writes; the numbers equal a single-process run's.
"""


def parse_args(argv: list[str] | None):
    parser = cli.common_parser(
        DEMO, "Train a hand-written and an autograd image classifier side by side.", epilog=EPILOG
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
    parallel = parser.add_argument_group("data-parallel training")
    parallel.add_argument(
        "--processes",
        type=cli.whole_number(2, MAX_PROCESSES),
        metavar="N",
        help=f"train on N processes of this computer (2 to {MAX_PROCESSES}), started by bpdemo",
    )
    parallel.add_argument(
        "--distributed", action="store_true", help="one of the processes torchrun starts"
    )
    return parser.parse_args(argv)


def data_overrides(args):
    """The data flags, as overrides of the config's [data] section."""
    flags = {
        "dataset": ("--dataset", args.dataset or ("folder" if args.root else None)),
        "classes": ("--classes", None if args.classes is None else cli.comma_list(args.classes)),
        "download": ("--download", True if args.download else None),
        "root": ("--root", args.root),
        "image_size": ("--image-size", args.image_size),
    }
    return [cli.flag_override(f"data.{k}", v, f) for k, (f, v) in flags.items() if v is not None]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = cli.load_demo_config(ImagesConfig, args, data_overrides(args))
    check_model(config.model, "classes", CLASS_LOSS_ADVICE)
    if args.processes and not args.distributed:  # the config is right: start the processes
        return launch_local("demos.images", sys.argv[1:] if argv is None else argv, args.processes)
    with (
        torch_threads(config.train.threads),  # small matrices: more threads cost more
        process_group(args.distributed, config.model.device) as device,
        run_command(DEMO, args, config) as run,
    ):
        config.model.device = device  # with --distributed, each rank's own
        data = config.data
        with rank_zero_first():  # a download happens once, into the shared cache
            # every [data] key but test_fraction says which images to load
            images = load_images(**data.model_dump(exclude={"test_fraction"}), seed=config.seed)
        split = split_images(images, data.test_fraction, config.seed)
        check_test_image(config.walkthrough.test_image, len(split.test_index))
        experiment = Experiment.prepare(
            config,
            split,
            report.dataset_block(split),
            inputs=images.x.shape[1],
            outputs=len(images.classes),
            run=run.folder,
            distributed=args.distributed,
            input_shape=images.image_shape,
        )
        run.write_config()
        run.say(report.describe_run(config, split, experiment.world_size))

        initial = snapshot(experiment.pair, experiment.test[0])
        history = experiment.fit(quiet=args.quiet, description=images.name, metrics=accuracy)
        mlp = None
        if convolves(experiment.pair.spec):  # the default config's MLP, on the same split and seed
            size = {"inputs": images.x.shape[1], "outputs": len(images.classes)}
            mlp = train_mlp(
                config, MLP_MODEL, MLP_OPTIMIZER, split, **size, distributed=args.distributed
            )
        if not is_rank_zero():  # rank 0 evaluates, prints and writes
            return 0 if history.completed else 1
        evaluate_and_write(run, config, experiment, split, initial, mlp)
        run.finish()
        return 0


def evaluate_and_write(run, config, experiment, split, initial, mlp) -> None:
    """Rank 0's part after training: score both networks (and the comparison `mlp` of a
    convolutional network, or None) and the baseline, walk one image through, print and write."""
    images = split.data
    results = experiment.results(class_scores)
    # scikit-learn's MLP has the hidden layers of the MLP the network is compared with
    baseline = fit_classifier(
        split, config.model if mlp is None else MLP_MODEL, config.seed, config.train.threads
    )
    probabilities = {m: probabilities_of(o) for m, o in experiment.outputs("test").items()}
    walk = walk_through(experiment.pair, experiment.test, initial, config.walkthrough)
    predictions = prediction_agreement(probabilities["manual"], probabilities["autograd"])
    image = experiment.test[0][walk.test_image]
    others = {} if mlp is None else {"mlp": mlp_block(mlp)}

    run.say(f"\nresults on {len(split.test_index):,} held-out test images:")
    run.say(report.results_table(results, baseline, others))
    run.say("\n" + agreement_line(experiment.pair))
    run.say(report.describe_predictions(predictions, results))
    run.say("\n" + report.describe_step(walk, images.classes))

    metrics = experiment.metrics(
        results,
        {"sklearn_mlp": baseline},
        predictions=predictions,
        confusion_matrix=report.confusion_block(split, probabilities),
        walkthrough=walk.as_dict(images.classes),
        distributed={"world_size": experiment.world_size},
        **others,
    )
    figures = plots.figures(
        experiment,
        split,
        results,
        probabilities,
        walk,
        predictions,
        network_name="the network" if mlp is None else "convolutional network",
        mlp=None if mlp is None else pixel_gradients(mlp.pair, image, walk.true_class),
    )
    if mlp is not None:
        picture = images.pictures(images.x[split.test_index[[walk.test_image]]])[0]
        figures |= cnn_plots.figures(experiment.pair, picture, image, walk.test_image)
    experiment.write(metrics, figures)


if __name__ == "__main__":
    sys.exit(cli.run_main(main))
