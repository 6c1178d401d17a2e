"""The dog image example on a real image: one test image followed through one step of learning.

The example's network sees a dog and calls it "cat" with probability 0.7. Here a real test image
the network gets wrong (the one most like that) goes through the four steps, by both models:

    1 forward:  the logits z, and p = softmax(z), the class probabilities
    2 error:    L, the loss of this one image (with cross_entropy, −ln p[true class])
    3 backward: dL/dz, what backpropagation starts from (BP1; with cross_entropy, p − onehot)
    4 update:   one step of plain gradient descent, w ← w − lr · dL/dw, and p again

The loss is the network's own (`MLPSpec.loss`, any loss for classes); its formulas are its registry
entry's. The step is taken on copies of the weights: the trained models are left as they are.
Beside the steps, ∂L/∂pixel (`pixel_gradients`): which pixels pushed the loss up, by the hand-written
backward carried down to the image and by autograd.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from bpdemo.compare import SideBySide
from bpdemo.infra.errors import ConfigError
from bpdemo.optim import OptimizerSpec
from bpdemo.scores import probabilities_of
from bpdemo.spec import MLPSpec


@dataclass
class OneImageStep:
    """One test image through the four steps: forward, error, backward, update.

    Arrays are (K,) float64; `*_autograd` are the autograd twin's, computed separately.

    Attributes:
        test_image: the image's position in the test split.
        when: "after training" or "at the start of training": whose weights were used.
        loss_name: the network's loss, a key of `bpdemo.functional.LOSSES`.
        logits: z, the network's outputs; probabilities: p = softmax(z).
        loss: L of this one image.
        grad_logits: dL/dz, as the hand-written backward pass computed it.
        probabilities_after, loss_after: after one step of plain gradient descent (lr) on this image.
        grad_pixels, grad_pixels_autograd: ∂L/∂x (F,) of this image before the step, each model's.
    """

    test_image: int
    true_class: int
    when: str
    lr: float
    loss_name: str
    logits: np.ndarray
    probabilities: np.ndarray
    loss: float
    grad_logits: np.ndarray
    grad_logits_autograd: np.ndarray
    probabilities_after: np.ndarray
    probabilities_after_autograd: np.ndarray
    loss_after: float
    grad_pixels: np.ndarray
    grad_pixels_autograd: np.ndarray

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
        """The `walkthrough` block of metrics.json, classes by name."""
        return {
            "test_image": self.test_image,
            "true_class": classes[self.true_class],
            "predicted_class": classes[self.predicted],
            "when": self.when,
            "lr": self.lr,
            "loss_name": self.loss_name,
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
            "max_pixel_gradient": float(np.abs(self.grad_pixels).max()),
            "max_pixel_gradient_difference": pixel_difference(
                self.grad_pixels, self.grad_pixels_autograd
            ),
        }


@dataclass
class Snapshot:
    """The hand-written model at one moment: its weights, and its test probabilities (N_test, K)."""

    state: dict[str, Tensor]
    probabilities: np.ndarray


def snapshot(pair: SideBySide, test_inputs: Tensor) -> Snapshot:
    """The hand-written model of `pair` as it is now, on the test images (N_test, F)."""
    logits, _ = pair.predict(test_inputs)
    return Snapshot(pair.manual.state_dict(), probabilities_of(logits))


def pixel_gradients(pair: SideBySide, x: Tensor, label: int) -> tuple[np.ndarray, np.ndarray]:
    """∂L/∂x of one image (F,) in evaluation mode: the hand-written model's backward pass carried
    through the first layer too (`input_gradient`), and autograd's. Both models' weights must be the
    same; the models are left in training mode."""
    x, target = x.reshape(1, -1), torch.tensor([label], device=x.device)
    pair.manual.eval()
    pair.autograd.eval()
    try:
        manual = pair.manual.input_gradient(x, target)
        leaf = x.clone().requires_grad_(True)
        pair.autograd.loss(pair.autograd(leaf), target).backward()
        pair.autograd.zero_grad(set_to_none=True)  # the parameters' gradients are not wanted here
    finally:
        pair.manual.train()
        pair.autograd.train()
    return manual[0].double().cpu().numpy(), leaf.grad[0].double().cpu().numpy()


def pixel_difference(given: np.ndarray, reference: np.ndarray) -> float:
    """The largest |difference| between two ∂L/∂pixel maps."""
    return float(np.abs(given - reference).max())


def check_test_image(test_image: int | None, test_images: int) -> None:
    """A chosen `walkthrough.test_image` must be a position in the test split."""
    if test_image is not None and test_image >= test_images:
        raise ConfigError(
            f"walkthrough.test_image = {test_image}, but the test split has "
            f"{test_images} images (0 to {test_images - 1})"
        )


def choose_image(probabilities: np.ndarray, labels: np.ndarray, probability: float) -> int | None:
    """The misclassified row whose (wrong) top probability is closest to `probability`, or None.

    The example's dog is called "cat" with probability 0.7; this finds the real image most like it.
    probabilities: (N, K); labels: (N,).
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
    # the network as it predicts: a batch of one has no batch statistics, and nothing is dropped
    pair.manual.eval()
    pair.autograd.eval()
    grad_pixels, grad_pixels_autograd = pixel_gradients(pair, x, label)
    pair.manual.eval()
    pair.autograd.eval()
    x, target = x.reshape(1, -1), torch.tensor([label], device=x.device)

    loss, _ = pair.manual.loss_and_grads(x, target)
    output_layer = pair.manual.layers[-1]
    logits = output_layer.output.clone()
    grad_logits = output_layer.delta.clone()  # BP1 at the output: dL/dz, a batch of one

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
        "grad_pixels": grad_pixels,
        "grad_pixels_autograd": grad_pixels_autograd,
    }


class WalkthroughSettings(Protocol):
    """Which image, and the step (the image demo's [walkthrough] section)."""

    probability: float  # take the mistake whose top probability is nearest this
    lr: float
    test_image: int | None  # or this test image


def walk_through(
    pair: SideBySide, test: tuple[Tensor, Tensor], initial: Snapshot, settings: WalkthroughSettings
) -> OneImageStep:
    """The four steps on one test image, with `pair` as it is now (trained) or as it was at
    `initial`; see `choose_and_step`. test: (inputs (N_test, F), labels (N_test,))."""
    x_test, labels = test
    return choose_and_step(
        pair.spec,
        x_test,
        labels.cpu().numpy(),
        snapshot(pair, x_test),
        initial,
        probability=settings.probability,
        lr=settings.lr,
        test_image=settings.test_image,
    )


def choose_and_step(
    spec: MLPSpec,
    test_inputs: Tensor,
    labels: np.ndarray,
    trained: Snapshot,
    initial: Snapshot,
    *,
    probability: float,
    lr: float,
    test_image: int | None = None,
) -> OneImageStep:
    """Pick the image and take the step.

    The image is `test_image` if given, else the trained model's mistake whose top probability is
    nearest `probability`, else (no mistake left) such a mistake of the initial model, with the
    initial weights. test_inputs: (N_test, F); labels: (N_test,).
    """

    def one_step(index: int, weights: Snapshot, when: str) -> OneImageStep:
        label = int(labels[index])
        values = step_on_one_image(spec, weights.state, test_inputs[index], label, lr)
        return OneImageStep(
            test_image=index, true_class=label, when=when, lr=lr, loss_name=spec.loss, **values
        )

    if test_image is not None:
        return one_step(test_image, trained, "after training")
    index = choose_image(trained.probabilities, labels, probability)
    if index is not None:
        return one_step(index, trained, "after training")
    index = choose_image(initial.probabilities, labels, probability)
    return one_step(0 if index is None else index, initial, "at the start of training")
