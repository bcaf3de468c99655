"""Registry of segmenter architectures: ``build(name, num_classes=..., **hparams)``."""

from __future__ import annotations

from collections.abc import Callable

from hmsa_core.labels import LabelSet, label_set_for
from hmsa_core.models.base import MultiScaleSegmenter

ModelFactory = Callable[..., MultiScaleSegmenter]
_FACTORIES: dict[str, ModelFactory] = {}


def register(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Returns a decorator that registers a factory ``f(labels: LabelSet, **hparams)`` under ``name``."""

    def decorator(factory: ModelFactory) -> ModelFactory:
        if name in _FACTORIES:
            raise ValueError(f"architecture {name!r} is registered twice")
        _FACTORIES[name] = factory
        return factory

    return decorator


def available() -> list[str]:
    """Returns the sorted names of every registered architecture."""
    return sorted(_FACTORIES)


def build(
    name: str,
    num_classes: int | None = None,
    *,
    labels: LabelSet | None = None,
    **hparams: object,
) -> MultiScaleSegmenter:
    """Returns a freshly initialised model of architecture ``name``.

    Args:
        name: a registered architecture (see :func:`available`).
        num_classes: number of classes; the label set follows from it (19 -> Cityscapes)
            unless ``labels`` is given.
        labels: an explicit label set (its size wins over ``num_classes`` if both agree).
        **hparams: architecture hyper-parameters (see each model's config dataclass).
    """
    if name not in _FACTORIES:
        raise ValueError(f"unknown architecture {name!r}; available: {', '.join(available())}")
    if labels is None:
        labels = label_set_for(num_classes if num_classes is not None else 19)
    elif num_classes is not None and num_classes != labels.num_classes:
        raise ValueError(
            f"num_classes={num_classes} disagrees with label set {labels.name!r} "
            f"of {labels.num_classes} classes"
        )
    return _FACTORIES[name](labels, **hparams)
