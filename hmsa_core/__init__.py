"""HMSA Explorer core: hierarchical multi-scale attention models and inference.

In a notebook::

    import hmsa_core
    result = hmsa_core.infer("street.png", (0.25, 0.5, 1.0, 2.0), return_attn=True)
    result.pred          # (H, W) class ids
    result.per_scale     # every scale's logits, attention and cost
    result.weights       # which scale decided each pixel
"""

from hmsa_core.api import (
    BUNDLED_MODELS,
    DEFAULT_SCALE_CACHE,
    default_model,
    default_model_name,
    extend,
    infer,
    load_model,
)
from hmsa_core.cascade import parse_scales, validate_scales
from hmsa_core.cost import CascadeCost, ScaleCost, estimate_cascade
from hmsa_core.fastpath import FastPathOptions
from hmsa_core.inference import InferenceResult, ScaleResult, prepare_input, run_scales
from hmsa_core.labels import CITYSCAPES, LabelSet
from hmsa_core.limits import InputLimits
from hmsa_core.merge import MergeResult, effective_weights, merge
from hmsa_core.models import MultiScaleSegmenter, ScaleOutput, build
from hmsa_core.options import InferOptions
from hmsa_core.plan import CascadePlan, PassPlan, plan_cascade
from hmsa_core.pretrained import PRETRAINED, PretrainedEntry
from hmsa_core.video import VideoFrameResult, VideoInference, infer_video

__all__ = [
    "BUNDLED_MODELS",
    "CITYSCAPES",
    "DEFAULT_SCALE_CACHE",
    "PRETRAINED",
    "CascadeCost",
    "CascadePlan",
    "FastPathOptions",
    "InferOptions",
    "InferenceResult",
    "InputLimits",
    "LabelSet",
    "MergeResult",
    "MultiScaleSegmenter",
    "PassPlan",
    "PretrainedEntry",
    "ScaleCost",
    "ScaleOutput",
    "ScaleResult",
    "VideoFrameResult",
    "VideoInference",
    "build",
    "default_model",
    "default_model_name",
    "effective_weights",
    "estimate_cascade",
    "extend",
    "infer",
    "infer_video",
    "load_model",
    "merge",
    "parse_scales",
    "plan_cascade",
    "prepare_input",
    "run_scales",
    "validate_scales",
]
