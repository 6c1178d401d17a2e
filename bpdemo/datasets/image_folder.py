"""A folder of one's own images, one subfolder per class, read as torchvision's `ImageFolder` reads it.

The class of an image is the name of the subfolder it is in (`photos/dog/1.jpg` is a dog); images in
deeper folders count for their class folder. Two rules keep the classes and the split honest:

- Links are not followed, neither to folders nor to files: a link can point back into the folder (one
  to `..` would read every image again under every class, and put test images into training) or out
  of it. The links skipped are counted in a note. Copy the images in instead.
- Every image file is read once, and an image larger than `MAX_SOURCE_PIXELS` (Pillow's own safety
  limit against decompression bombs, about 89 megapixels) is refused before it is decoded.

The size the images are resized to is from 1 to `MAX_IMAGE_SIZE` pixels. Every problem is one
`DataError` line: what is wrong, where, and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bpdemo.datasets.image_data import ImageData, pick_per_class, select_classes
from bpdemo.infra.errors import DataError
from bpdemo.infra.limits import MAX_IMAGE_SIZE, MAX_SOURCE_PIXELS

IMAGE_SIZE = 32  # the default size a folder's images are resized to: CIFAR-10's, N x N pixels


def image_extensions() -> tuple[str, ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return IMG_EXTENSIONS


def load_folder(
    root: str | Path,
    classes: Sequence[str] = (),
    image_size: int = IMAGE_SIZE,
    grayscale: bool = False,
    per_class: int | None = None,
    seed: int = 0,
) -> ImageData:
    """A folder with one subfolder of images per class, each image resized to image_size squared.

    Refused with a `DataError`: a missing or empty folder, images directly in the folder (no class
    subfolders), a class subfolder without images, fewer than two classes, an image size outside 1 to
    `MAX_IMAGE_SIZE`, an image over `MAX_SOURCE_PIXELS`, and a file that has an image's extension but
    cannot be read as one (the message names it).
    """
    from torchvision import transforms

    if not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise DataError(
            f"image size {image_size} is outside the range 1 to {MAX_IMAGE_SIZE}: every image "
            f"becomes image size x image size pixels, one input each; choose --image-size 1 to "
            f"{MAX_IMAGE_SIZE}"
        )
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder {root} not found; check the path given to --root")
    if not root.is_dir():
        raise DataError(
            f"{root} is a file; --root needs a folder with one subfolder of images per class"
        )
    extensions = image_extensions()
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    links = sum(p.is_symlink() for p in entries)
    subfolders = sorted(p.name for p in entries if p.is_dir() and not p.is_symlink())
    if not subfolders:
        loose = [p for p in entries if p.suffix.lower() in extensions]
        if loose:
            raise DataError(
                f"{root} holds {len(loose)} images directly, but the label of an image is the name "
                f"of its subfolder: move them into one subfolder per class, e.g. {root / 'dog'}/, "
                f"{root / 'cat'}/, {root / 'car'}/"
            )
        raise DataError(
            f"{root} has no class subfolders; put each class's images in a subfolder named after "
            f"the class, e.g. {root / 'dog' / '1.jpg'} and {root / 'cat' / '2.jpg'}"
        )
    where = f"image folder {root}"
    chosen = [subfolders[i] for i in select_classes(subfolders, classes, where)]
    samples, labels, ignored = [], [], 0
    for name in sorted(chosen):  # ImageFolder's order: classes by name, whatever their labels
        label = chosen.index(name)
        found, skipped, other = class_files(root / name, extensions)
        samples += found
        labels += [label] * len(found)
        links, ignored = links + skipped, ignored + other
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=len(chosen))
    empty = [name for name, count in zip(chosen, counts, strict=True) if count == 0]
    if empty:
        raise DataError(
            f"class folder {root / empty[0]} holds no images (files ending in "
            f"{', '.join(extensions)}); add images to it, or remove it"
        )
    if len(chosen) < 2:
        raise DataError(
            f"{where} has one class only ({chosen[0]}); a classifier needs at least two: add a "
            f"subfolder per class, e.g. {root / 'cat'}/ beside {root / chosen[0]}/"
        )
    notes = []
    if ignored:
        notes.append(f"ignored {ignored} files that are not images (by their extension)")
    if links:
        notes.append(f"skipped {links} links: links are not followed (copy the images in instead)")

    steps = [transforms.Resize((image_size, image_size))]
    if grayscale:
        steps.append(transforms.Grayscale(num_output_channels=1))
    steps.append(transforms.ToTensor())
    transform = transforms.Compose(steps)
    kept = pick_per_class(labels, per_class, seed)
    rows = [read_image(samples[i], transform).flatten().double().numpy() for i in kept]
    channels = 1 if grayscale else 3
    return ImageData(
        name="folder",
        description=(
            f"image folder {root.name or root} ({image_size}x{image_size} "
            f"{'grayscale' if grayscale else 'colour'})"
        ),
        x=np.stack(rows),
        y=labels[kept],
        classes=chosen,
        image_shape=(channels, image_size, image_size),
        notes=notes,
    )


def class_files(folder: Path, extensions: Sequence[str]) -> tuple[list[str], int, int]:
    """(the image files under `folder`, in `ImageFolder`'s order; links skipped; other files).

    Links are neither read nor descended into; hidden files other than images are not counted.
    """
    images, links, others = [], 0, 0
    for directory, folders, names in sorted(os.walk(folder, followlinks=False)):
        links += sum(os.path.islink(os.path.join(directory, name)) for name in folders)
        for name in sorted(names):
            path = os.path.join(directory, name)
            if os.path.islink(path):
                links += 1
            elif name.lower().endswith(tuple(extensions)):
                images.append(path)
            elif not name.startswith("."):
                others += 1
    return images, links, others


def read_image(path: str, transform):
    """One image file as `transform` makes it (a tensor), read as torchvision's loader reads it."""
    from PIL import Image

    try:
        with open(path, "rb") as file, Image.open(file) as image:
            width, height = image.size
            if width * height > MAX_SOURCE_PIXELS:
                raise DataError(too_large(path, f"{width}x{height} pixels"))
            return transform(image.convert("RGB"))
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(too_large(path, "larger than Pillow opens")) from None
    except (OSError, ValueError, SyntaxError) as error:  # what PIL raises on a bad file
        raise DataError(
            f"{path} cannot be read as an image ({unreadable_reason(error, path)}); replace it "
            "or remove it"
        ) from None


def too_large(path: str, size: str) -> str:
    return (
        f"{path} is {size}; images over {MAX_SOURCE_PIXELS:,} pixels are refused (Pillow's "
        "safety limit against decompression bombs): shrink it or remove it"
    )


def unreadable_reason(error: Exception, path: str) -> str:
    """Why PIL could not read `path`, in words, without repeating the path."""
    from PIL import UnidentifiedImageError

    if isinstance(error, UnidentifiedImageError):
        return "not in an image format Pillow knows, or cut short"
    return str(error).replace(str(path), "").strip(" :'\"") or type(error).__name__
