"""Eval mode for a block of work, with every module's own mode given back afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Yields ``model`` with every module in eval mode, and afterwards sets training mode
    again on exactly the modules that had it.

    ``model.eval()`` followed by ``model.train(was_training)`` would instead give every module
    the root's mode, which breaks a model that keeps a part frozen (say its classifier in eval
    mode while the rest trains). Flags are set directly, one per module. ``Module.eval()``
    would walk the whole tree again for every module it is called on.
    """
    training = [m for m in model.modules() if m.training]
    for m in training:
        m.training = False
    try:
        yield model
    finally:
        for m in training:
            m.training = True
