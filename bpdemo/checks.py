"""What a model is given, checked where it enters: inputs and targets of the type, shape and device the
model takes, else a `ValueError` that says what it takes (rather than an error deep inside torch).

A model calls `check_input` on every forward pass and `check_target` on every loss, so the passing case
is a few comparisons; only a refusal builds a message.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bpdemo.functional import LOSSES


def on_device(x: Tensor, device: torch.device) -> bool:
    """Whether `x` is on `device` ("cuda" without an index takes any GPU)."""
    where = x.device
    return where.type == device.type and (device.index is None or where.index == device.index)


def check_input(spec, x: Tensor) -> None:
    """Refuse inputs that are not `spec.dtype` numbers of shape (N, inputs) on `spec.device`."""
    if (
        isinstance(x, Tensor)
        and x.dtype is spec.dtype
        and x.ndim == 2
        and x.shape[1] == spec.inputs
        and (x.device == spec.device or on_device(x, spec.device))
    ):
        return
    expected = f"{_name(spec.dtype)} inputs of shape (N, {spec.inputs}) on {spec.device}"
    raise ValueError(f"this model takes {expected}; {_given(x, spec.dtype)}")


def check_target(spec, output: Tensor, target: Tensor) -> None:
    """Refuse a target of the wrong type, or of a shape that would silently broadcast."""
    loss = LOSSES[spec.loss]
    if loss.classification:
        if (
            isinstance(target, Tensor)
            and target.dtype is torch.long
            and target.ndim == 1
            and target.shape[0] == output.shape[0]
        ):
            return
        raise ValueError(
            f"this model ({spec.loss}) takes one class label per row: torch.long of shape "
            f"({output.shape[0]},), values 0 to {output.shape[1] - 1}; "
            f"{_given(target, torch.long)}"
        )
    if isinstance(target, Tensor) and target.shape == output.shape and target.dtype is output.dtype:
        return
    shape = tuple(output.shape)
    if isinstance(target, Tensor) and target.shape != output.shape:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match output shape {shape}: this model "
            f"takes {_name(spec.dtype)} targets of shape {shape}"
        )
    raise ValueError(
        f"this model takes {_name(spec.dtype)} targets of shape {shape}; "
        f"{_given(target, spec.dtype)}"
    )


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _given(value, dtype: torch.dtype) -> str:
    """What was given instead, and how to convert it."""
    if not isinstance(value, Tensor):
        return (
            f"got a {type(value).__name__}: make it a tensor, e.g. "
            f"torch.as_tensor(values, dtype=torch.{_name(dtype)})"
        )
    given = f"got {_name(value.dtype)} of shape {tuple(value.shape)} on {value.device}"
    if value.dtype is not dtype:
        given += f": convert it with .to(torch.{_name(dtype)})"
    return given
