"""The image tab: a small network trained on the offline 8x8 digits, both models, and one image's
gradient with respect to its pixels.

The network (64-32-10, tanh, softmax and cross-entropy) is trained once per server, the first time a
page opens the tab, on the training part of scikit-learn's bundled digits (`split_digits`: the split
of `digits_split`, no download), both models on the same mini-batches. An image (drawn, or a test
image) is classified by both models, and ∂L/∂pixel for a chosen label is computed twice
(`bpdemo.image_step.pixel_gradients`): by the hand-written backward pass, each layer's BP2 carried on
down to the input (dL/dx = δ W), and by autograd; the pixels are standardised before the network sees
them, so both are multiplied by 1/std (the chain rule through x = (pixel - mean) / std).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch

from bpdemo.compare import SideBySide
from bpdemo.datasets.digits import DIGITS_ROWS, split_digits
from bpdemo.explore.playground import to_255
from bpdemo.image_step import pixel_difference, pixel_gradients
from bpdemo.optim import OptimizerSpec
from bpdemo.scores import accuracy, probabilities_of
from bpdemo.spec import MLPSpec
from bpdemo.train import run_epochs
from bpdemo.worked import fmt

SIZES = [64, 32, 10]
EPOCHS, BATCH, LR, SEED = 8, 64, 0.02, 0
TEST_SHARE = 0.25
SHOWN_TEST_IMAGES = 20  # test images the page offers to pick
SALIENCY_QUANTILE = 0.95  # the saliency pictures' colour scale: this quantile of |∂L/∂pixel|


class DigitsNetwork:
    """The trained pair, the standardisation, and the test images (raw pixels 0-16)."""

    def __init__(self) -> None:
        self.split = split_digits(TEST_SHARE, SEED)
        self.mean, self.std = self.split.mean, self.split.deviation  # the standardisation
        self.test_pixels, self.test_labels = self.split.test_pixels, self.split.test_labels
        spec = MLPSpec(
            sizes=SIZES,
            activations=["tanh", "identity"],
            loss="cross_entropy",
            seed=SEED,
            dtype=torch.float64,
        )
        self.pair = SideBySide(spec, OptimizerSpec(name="adam", lr=LR))
        x = self.inputs(self.split.train_pixels)
        y = torch.tensor(self.split.train_labels, dtype=torch.long)
        loop = run_epochs(
            self.pair.step,
            x,
            y,
            epochs=EPOCHS,
            batch_size=BATCH,
            generator=torch.Generator().manual_seed(SEED),
        )
        self.steps = len(loop.records)
        labels = torch.tensor(self.test_labels)
        evaluation = self.pair.evaluate(self.inputs(self.test_pixels), labels)
        self.accuracy = {
            model: accuracy(output, labels)["accuracy"]
            for model, output in (
                ("manual", evaluation.output_manual),
                ("autograd", evaluation.output_autograd),
            )
        }
        self.lock = threading.Lock()  # classify runs the hand-written passes on the shared model
        self.train_rows = len(y)

    def inputs(self, pixels: np.ndarray) -> torch.Tensor:
        """(rows, 64) pixels 0-16 -> standardised inputs, float64."""
        return torch.tensor(self.split.standardised(np.asarray(pixels)), dtype=torch.float64)

    def setup_answer(self) -> dict[str, Any]:
        """The answer of /api/images/setup: how it was trained, test images, first-layer weights."""
        agreement = self.pair.agreement
        first = self.pair.manual.layers[0].weight  # (32, 64): one picture per hidden neuron
        largest = first.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)  # each on its own scale
        return {
            "sizes": SIZES,
            "text": (
                f"a {'-'.join(map(str, SIZES))} tanh network, softmax and cross-entropy, trained "
                f"{EPOCHS} epochs ({self.steps} steps of adam, lr {LR:g}, batches of {BATCH}) on "
                f"{self.train_rows} of the {DIGITS_ROWS} digits by both models; test accuracy "
                f"{self.accuracy['manual']:.1%} (hand-written), {self.accuracy['autograd']:.1%} "
                f"(autograd); largest gradient difference over training "
                f"{agreement.max_rel_grad_diff:.1e} relative "
                f"({'within' if agreement.within_tolerance else 'OUTSIDE'} the tolerance "
                f"{agreement.tolerance:g})"
            ),
            "accuracy": self.accuracy,
            "within_tolerance": agreement.within_tolerance,
            "test_images": [
                {"pixels": self.test_pixels[k].tolist(), "label": int(self.test_labels[k])}
                for k in range(SHOWN_TEST_IMAGES)
            ],
            "first_layer": to_255(first, -largest, largest),
        }

    def classify(self, pixels: list[float], label: int) -> dict[str, Any]:
        """Both models' probabilities for one image, and ∂L/∂pixel (L: cross-entropy of `label`)
        by the hand-written backward and by autograd, with their largest difference."""
        x = self.inputs(np.asarray(pixels)[None, :])
        scale = 1 / self.std
        with self.lock:  # the hand-written passes run on the shared model and its work buffers
            p_manual, p_autograd = (probabilities_of(output)[0] for output in self.pair.predict(x))
            grads = pixel_gradients(self.pair, x[0], label)  # BP2 carried down to the input
        grad_manual, grad_autograd = (g * scale for g in grads)
        # one scale for both pictures: a pixel almost never inked in training has a tiny std, and
        # its gradient (× 1/std) would leave every other pixel white; past the scale: full colour
        largest = float(torch.quantile(torch.from_numpy(np.abs(grad_manual)), SALIENCY_QUANTILE))
        largest = largest or 1.0
        difference = pixel_difference(grad_manual, grad_autograd)
        p_difference = float(np.abs(p_manual - p_autograd).max())
        return {
            "label": label,
            "probabilities": {"manual": p_manual.tolist(), "autograd": p_autograd.tolist()},
            "predicted": {
                "manual": int(p_manual.argmax()),
                "autograd": int(p_autograd.argmax()),
            },
            "saliency": {
                "manual": grad_manual.tolist(),
                "autograd": grad_autograd.tolist(),
                "manual_255": to_255(grad_manual, -largest, largest),
                "autograd_255": to_255(grad_autograd, -largest, largest),
                "max_abs_diff": difference,
            },
            "text": {
                "probability_diff": f"{p_difference:.1e}",
                "saliency_diff": f"{difference:.1e}",
                "scale": fmt(largest),
                "quantile": f"{SALIENCY_QUANTILE:.0%}",
            },
        }


_network: DigitsNetwork | None = None
_building = threading.Lock()


def digits_network() -> DigitsNetwork:
    """The trained network, trained on first use and then shared by every page."""
    global _network
    with _building:
        if _network is None:
            _network = DigitsNetwork()
        return _network
