"""``hrnet48_ocr_mscale``: the official HMSA model (HRNetV2-W48 + OCR + scale attention).

Parameter and buffer names equal those of NVIDIA's released ``HRNet_Mscale`` checkpoints
(without their ``module.`` prefix), so those files load with ``strict=True``. One forward pass
handles one scale; the hierarchical merge of scales lives in :mod:`hmsa_core.merge`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from hmsa_core.labels import LabelSet
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput
from hmsa_core.models.hrnet import BN_EPS, HRNetConfig, HRNetV2, upsample_to
from hmsa_core.models.ocr import OCRConfig, OCRHead
from hmsa_core.models.registry import register

ARCH = "hrnet48_ocr_mscale"


@dataclass(frozen=True)
class MscaleOCRConfig:
    """Hyper-parameters of :class:`MscaleOCR` (defaults: the released models).

    Attributes:
        trunk: the HRNetV2 trunk's configuration (W48).
        mid_channels: OCR mid-feature width (the attention head's input).
        key_channels: OCR attention key width.
        ocr_dropout: Dropout2d probability in the OCR fusion (inactive in eval mode).
        attn_bottleneck: hidden width of the scale-attention head.
    """

    trunk: HRNetConfig = field(default_factory=HRNetConfig)
    mid_channels: int = 512
    key_channels: int = 256
    ocr_dropout: float = 0.05
    attn_bottleneck: int = 256


class ScaleAttention3x3(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN-ReLU, conv1x1 -> 1, sigmoid (no conv biases).

    ``(B, F, h, w)`` -> ``(B, 1, h, w)`` attention in (0, 1).
    """

    def __init__(self, in_channels: int, bottleneck: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(in_channels, bottleneck, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(bottleneck, eps=BN_EPS)
        self.conv1 = nn.Conv2d(bottleneck, bottleneck, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(bottleneck, eps=BN_EPS)
        self.conv2 = nn.Conv2d(bottleneck, 1, 1, bias=False)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Returns the ``(B, 1, h, w)`` sigmoid attention."""
        x = torch.relu(self.bn0(self.conv0(feats)))
        x = torch.relu(self.bn1(self.conv1(x)))
        return torch.sigmoid(self.conv2(x))


class MscaleOCR(MultiScaleSegmenter):
    """HRNetV2-W48 trunk + OCR head + scale-attention head on the OCR mid features."""

    arch = ARCH
    # The trunk's deepest branch is at stride 32; a side of 16 gives it one pixel (the
    # 0.25x pass of a 64x128 image, which the official code also runs).
    min_input_side = 16
    has_attention = True
    has_aux = True

    def __init__(self, labels: LabelSet, cfg: MscaleOCRConfig | None = None) -> None:
        super().__init__(labels)
        self.cfg = cfg or MscaleOCRConfig()
        c = self.cfg
        self.backbone = HRNetV2(c.trunk)
        ocr_cfg = OCRConfig(
            in_channels=c.trunk.out_channels,
            mid_channels=c.mid_channels,
            key_channels=c.key_channels,
            dropout=c.ocr_dropout,
        )
        self.ocr = OCRHead(labels.num_classes, ocr_cfg)
        self.scale_attn = ScaleAttention3x3(c.mid_channels, c.attn_bottleneck)

    def hparams(self) -> dict:
        """Returns the :class:`MscaleOCRConfig` fields as a JSON-serialisable dict."""
        data = asdict(self.cfg)
        data["trunk"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in data["trunk"].items()
        }
        return data

    def forward(self, x: torch.Tensor) -> ScaleOutput:
        """Returns logits ``(B, C, h, w)``, attention ``(B, 1, h, w)`` and aux logits
        ``(B, C, h, w)`` for a normalised ``(B, 3, h, w)`` input, each computed at stride 4 and
        bilinearly upsampled (``align_corners=False``) to ``(h, w)``."""
        size = (int(x.shape[-2]), int(x.shape[-1]))
        out = self.ocr(self.backbone(x))
        attention = self.scale_attn(out.mid)
        return ScaleOutput(
            logits=upsample_to(out.logits, size),
            attention=upsample_to(attention, size),
            aux_logits=upsample_to(out.aux_logits, size),
        )


def config_from_hparams(hparams: dict) -> MscaleOCRConfig:
    """Returns the :class:`MscaleOCRConfig` of :meth:`MscaleOCR.hparams`-style ``hparams``.

    Raises ``ValueError`` for unknown or malformed fields.
    """
    values = dict(hparams)
    try:
        trunk = values.pop("trunk", None)
        if isinstance(trunk, dict):
            trunk = HRNetConfig(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in trunk.items()}
            )
        elif trunk is not None and not isinstance(trunk, HRNetConfig):
            raise TypeError(f"trunk must be a dict, got {type(trunk).__name__}")
        return MscaleOCRConfig(trunk=trunk or HRNetConfig(), **values)
    except TypeError as exc:
        raise ValueError(f"bad hyper-parameters for {ARCH!r}: {exc}") from exc


@register(ARCH)
def build_mscale_ocr(labels: LabelSet, **hparams: object) -> MscaleOCR:
    """Returns a randomly initialised :class:`MscaleOCR` (hparams: :class:`MscaleOCRConfig` fields)."""
    return MscaleOCR(labels, config_from_hparams(hparams))
