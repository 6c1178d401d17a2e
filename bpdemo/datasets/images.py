"""Image data: scikit-learn's digits, CIFAR-10 (downloaded once), and a folder of one's own photos.

Every source ends as an `ImageData`: the pixels of each image flattened into one row, float64 in
[0, 1] (N, C·H·W), integer labels (N,), the class names, and the image shape (C, H, W), so that the
figures can draw the images back. `split_images` then draws a stratified train/test split from the
seed (scikit-learn's `train_test_split`) and fits a `StandardScaler` on the training images only, so
nothing about the test images leaks into training.

Sources (`load_images(dataset=...)`):

- `digits` (offline, the default): scikit-learn's bundled `load_digits`, 1,797 real 8x8 grayscale
  scans of handwritten digits 0-9 (UCI), pixel values 0-16 scaled to [0, 1].
- `cifar10`: torchvision's CIFAR-10 (60,000 colour photos of 32x32 pixels, 10 classes; its own
  train and test parts are pooled, then split like every other source), cached under `data/cifar10/`.
  By default only the classes of the dog image example: dog, cat and automobile (its "car").
- `folder`: a folder with one subfolder per class (the folder's name is the label), e.g.
  `photos/dog/1.jpg`, `photos/cat/2.png`, `photos/car/3.jpg`, read as torchvision's `ImageFolder`
  reads it, but without following links (`image_folder.py`). Each image is resized to size x size
  pixels (squeezed if not square), optionally made grayscale, turned into a tensor by
  `transforms.ToTensor` and flattened.

`classes` picks and orders classes by name for any source ("car" is read as CIFAR-10's "automobile");
`per_class` keeps at most that many images of each class, drawn from the seed. A setting that the
chosen source does not use (`root`, `image_size`, `grayscale` for a folder; `download` for CIFAR-10)
is refused. Every problem with the data is one `DataError` line: what is wrong, where, and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpdemo import datasets
from bpdemo.datasets.image_data import ImageData, keep_classes, pick_per_class, select_classes
from bpdemo.datasets.image_folder import IMAGE_SIZE, load_folder
from bpdemo.infra import interruption
from bpdemo.infra.errors import DataError

DATASETS = ("digits", "cifar10", "folder")

# torchvision's CIFAR-10 label order (its `batches.meta`), so names are checked before any download.
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
EXAMPLE_CLASSES = ("dog", "cat", "automobile")  # the dog image example's "dogs, cats, cars"
CIFAR10_FOLDER = "cifar-10-batches-py"  # what torchvision's CIFAR10 unpacks under its root
CIFAR10_MEGABYTES = 170  # cifar-10-python.tar.gz: 170,498,071 bytes
DIGITS_LEVELS = 16.0  # load_digits pixels are counts 0..16 of a 4x4 block of a 32x32 bitmap
# The settings that one source alone uses: (the source, the flag that sets it, its default).
SOURCE_SETTINGS = {
    "root": ("folder", "--root", None),
    "image_size": ("folder", "--image-size", IMAGE_SIZE),
    "grayscale": ("folder", "data.grayscale", False),
    "download": ("cifar10", "--download", False),
}


def load_images(
    dataset: str = "digits",
    *,
    classes: Sequence[str] = (),
    root: str | Path | None = None,
    download: bool | None = None,
    image_size: int | None = None,
    grayscale: bool | None = None,
    per_class: int | None = None,
    seed: int = 0,
) -> ImageData:
    """Load images from one of `DATASETS`; a setting the source does not use is refused (None is a
    setting not given: `SOURCE_SETTINGS` has its default).

    Args:
        classes: class names to keep, in this order (empty: all, or for cifar10 dog, cat, automobile).
        root: the folder, for `dataset="folder"`.
        download: fetch CIFAR-10 into `data/cifar10/` if it is not there yet.
        image_size, grayscale: how a folder's images are resized (size x size) and coloured.
        per_class: keep at most this many images of each class, drawn at random from `seed`.
    """
    interruption.set_phase("data")
    given = {"root": root, "image_size": image_size, "grayscale": grayscale, "download": download}
    given = datasets.source_settings(dataset, given, SOURCE_SETTINGS)
    classes = [name.strip() for name in classes if name.strip()]
    if dataset == "digits":
        return load_digits(classes, per_class, seed)
    if dataset == "cifar10":
        return load_cifar10(classes, download=given["download"], per_class=per_class, seed=seed)
    if dataset == "folder":
        if root is None or not str(root).strip():
            raise DataError(
                "--dataset folder needs the folder: --root PATH, with one subfolder of images per "
                "class (e.g. PATH/dog/, PATH/cat/, PATH/car/)"
            )
        return load_folder(root, classes, given["image_size"], given["grayscale"], per_class, seed)
    raise DataError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


# -- the sources -------------------------------------------------------------------------------------------
def load_digits(classes: Sequence[str] = (), per_class: int | None = None, seed: int = 0):
    """scikit-learn's bundled digits: 1,797 8x8 grayscale images of the digits 0 to 9."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    names = [str(d) for d in bunch.target_names]
    where = "scikit-learn's digits"
    chosen = select_classes(names, classes, where)
    rows, labels = keep_classes(bunch.target, chosen)
    kept = pick_per_class(labels, per_class, seed)
    rows, labels = rows[kept], labels[kept]
    return ImageData(
        name="digits",
        description=f"{where} (8x8 grayscale scans of handwritten digits)",
        x=bunch.data[rows] / DIGITS_LEVELS,
        y=labels,
        classes=[names[i] for i in chosen],
        image_shape=(1, 8, 8),
    )


def cifar10_cached(cache: Path) -> bool:
    return (cache / CIFAR10_FOLDER).is_dir()


def load_cifar10(
    classes: Sequence[str] = (),
    *,
    download: bool = False,
    per_class: int | None = None,
    seed: int = 0,
    cache: str | Path | None = None,
) -> ImageData:
    """CIFAR-10's train and test parts pooled, only the chosen classes (default dog, cat, automobile).

    `cache` defaults to `data/cifar10/`. Without `download` the files must be there already.
    """
    from torchvision.datasets import CIFAR10  # imported here: the other sources do not need it

    where = "CIFAR-10"
    chosen = select_classes(CIFAR10_CLASSES, classes or EXAMPLE_CLASSES, where)
    cache = Path(cache) if cache is not None else datasets.CIFAR10_CACHE
    if not download and not cifar10_cached(cache):
        raise DataError(
            f"CIFAR-10 is not in {cache} yet; add --download to fetch it once "
            f"(about {CIFAR10_MEGABYTES} MB), or use the offline default --dataset digits"
        )
    try:
        parts = [CIFAR10(str(cache), train=train, download=download) for train in (True, False)]
    except OSError as error:  # urllib's URLError and HTTPError, timeouts, a cache it cannot write
        reason = getattr(error, "reason", None) or error.strerror or error
        raise DataError(
            f"downloading CIFAR-10 into {cache} failed (no network? {reason}); use the offline "
            "default --dataset digits, or your own images with --dataset folder --root PATH"
        ) from None
    except RuntimeError:  # torchvision's integrity check: a partial or damaged download
        raise DataError(
            f"the CIFAR-10 files in {cache} are incomplete or damaged; delete {cache} and run "
            "again with --download, or use --dataset digits"
        ) from None
    pixels = np.concatenate([part.data for part in parts])  # (60000, 32, 32, 3) uint8
    rows, labels = keep_classes(np.concatenate([part.targets for part in parts]), chosen)
    kept = pick_per_class(labels, per_class, seed)
    rows, labels = rows[kept], labels[kept]
    # (N, H, W, C) -> (N, C, H, W) -> flattened, as ToTensor() and flatten() would give
    x = pixels[rows].transpose(0, 3, 1, 2).reshape(len(rows), -1) / 255.0
    return ImageData(
        name="cifar10",
        description=f"CIFAR-10 ({', '.join(CIFAR10_CLASSES[i] for i in chosen)}; 32x32 colour)",
        x=x,
        y=labels,
        classes=[CIFAR10_CLASSES[i] for i in chosen],
        image_shape=(3, 32, 32),
    )


# -- split and scaling -------------------------------------------------------------------------------------
@dataclass
class ImageSplit:
    """A stratified train/test split of `data`, scaled with a `StandardScaler` fitted on train only.

    Attributes:
        train_index, test_index: sorted row positions in `data` (N_train,), (N_test,).
        scaler: per-pixel mean and standard deviation of the training images (a pixel that is
            constant there, such as the digits' blank border, is left at scale 1).
    """

    data: ImageData
    train_index: np.ndarray
    test_index: np.ndarray
    scaler: object = field(init=False)

    def __post_init__(self) -> None:
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(self.data.x[self.train_index])

    def labels(self, split: str) -> np.ndarray:
        return self.data.y[self.train_index if split == "train" else self.test_index]

    def scaled(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(x (N, C·H·W) scaled, labels (N,)) of `split` ("train" or "test")."""
        index = self.train_index if split == "train" else self.test_index
        return self.scaler.transform(self.data.x[index]), self.data.y[index]

    def tensors(self, split: str, dtype, device="cpu"):
        """`scaled(split)` as torch tensors: inputs of `dtype`, labels as torch.long."""
        import torch

        x, y = self.scaled(split)
        return (
            torch.as_tensor(x, dtype=dtype, device=device),
            torch.as_tensor(y, dtype=torch.long, device=device),
        )


def split_images(data: ImageData, test_fraction: float = 0.25, seed: int = 0) -> ImageSplit:
    """Hold out `test_fraction` of the images, the same share of every class, drawn from `seed`."""
    from sklearn.model_selection import train_test_split

    counts = data.counts()
    scarce = [(name, count) for name, count in counts.items() if count < 2]
    if scarce:
        name, count = scarce[0]
        raise DataError(
            f"{data.description}: class {name!r} has {count} image; every class needs at least 2 "
            "(one to train on, one to test on), so add images of it"
        )
    n_test = int(np.ceil(test_fraction * data.rows))  # as train_test_split rounds
    classes = len(data.classes)
    if n_test < classes or data.rows - n_test < classes:
        raise DataError(
            f"{data.description}: {data.rows} images give {n_test} test and {data.rows - n_test} "
            f"training images (data.test_fraction = {test_fraction:g}), but a stratified split "
            f"needs at least one of each of the {classes} classes on both sides; add images or "
            "change data.test_fraction"
        )
    train_index, test_index = train_test_split(
        np.arange(data.rows), test_size=test_fraction, stratify=data.y, random_state=seed
    )
    return ImageSplit(data, np.sort(train_index), np.sort(test_index))
