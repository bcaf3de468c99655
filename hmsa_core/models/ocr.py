"""Object-contextual representations (OCR) head, with the official checkpoints' module names.

From trunk features ``(B, 720, h, w)``: soft object regions (the aux head) give each class a
centre (the softmax-weighted mean of the pixel features); every pixel then attends to those
centres, and the attended context is fused with the pixel features into the 512-channel
"mid" features that both the classifier and the scale-attention head read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

BN_EPS = 1e-5


@dataclass(frozen=True)
class OCRConfig:
    """Hyper-parameters of the OCR head.

    Attributes:
        in_channels: width of the trunk features (720 for HRNetV2-W48).
        mid_channels: width of the pixel and mid features.
        key_channels: width of the attention queries, keys and values.
        dropout: Dropout2d probability after the fusion conv (inactive in eval mode).
    """

    in_channels: int = 720
    mid_channels: int = 512
    key_channels: int = 256
    dropout: float = 0.05


def bn_relu(channels: int) -> nn.Sequential:
    """Returns ``Sequential(BatchNorm2d, ReLU)`` (one named unit in the official layout)."""
    return nn.Sequential(nn.BatchNorm2d(channels, eps=BN_EPS), nn.ReLU(inplace=True))


def _proj(in_ch: int, out_ch: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 1, bias=False), bn_relu(out_ch)]


def class_centres(feats: torch.Tensor, region_logits: torch.Tensor) -> torch.Tensor:
    """Returns the ``(B, F, K, 1)`` class centres.

    Args:
        feats: ``(B, F, h, w)`` pixel features.
        region_logits: ``(B, K, h, w)`` soft object region logits; a softmax over the ``h*w``
            pixels turns each class's map into weights for a weighted mean of the features.
    """
    b, k = region_logits.shape[:2]
    weights = torch.softmax(region_logits.reshape(b, k, -1), dim=2)  # (B, K, HW)
    pixels = feats.reshape(b, feats.shape[1], -1).permute(0, 2, 1)  # (B, HW, F)
    return torch.matmul(weights, pixels).permute(0, 2, 1).unsqueeze(3)


class ObjectAttention(nn.Module):
    """Pixel-to-object scaled dot-product attention.

    ``forward(feats (B, F, h, w), centres (B, F, K, 1))`` returns the ``(B, F, h, w)`` context.
    """

    def __init__(self, channels: int, key_channels: int) -> None:
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(
            *_proj(channels, key_channels), *_proj(key_channels, key_channels)
        )
        self.f_object = nn.Sequential(
            *_proj(channels, key_channels), *_proj(key_channels, key_channels)
        )
        self.f_down = nn.Sequential(*_proj(channels, key_channels))
        self.f_up = nn.Sequential(*_proj(key_channels, channels))

    def forward(self, feats: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Returns ``f_up(softmax(q k^T / sqrt(d)) v)`` reshaped to ``(B, F, h, w)``."""
        b, _, h, w = feats.shape
        d = self.key_channels
        query = self.f_pixel(feats).reshape(b, d, -1).permute(0, 2, 1)  # (B, HW, d)
        key = self.f_object(centres).reshape(b, d, -1)  # (B, d, K)
        value = self.f_down(centres).reshape(b, d, -1).permute(0, 2, 1)  # (B, K, d)
        sim = torch.softmax((d**-0.5) * torch.matmul(query, key), dim=-1)  # (B, HW, K)
        context = torch.matmul(sim, value).permute(0, 2, 1).reshape(b, d, h, w)
        return self.f_up(context)


class ObjectContextFusion(nn.Module):
    """Object attention, then 1x1 conv+BN+ReLU (+Dropout2d) on ``concat(context, feats)``.

    ``forward(feats (B, F, h, w), centres (B, F, K, 1))`` returns ``(B, F, h, w)``.
    """

    def __init__(self, channels: int, key_channels: int, dropout: float) -> None:
        super().__init__()
        self.object_context_block = ObjectAttention(channels, key_channels)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1, bias=False),
            bn_relu(channels),
            nn.Dropout2d(dropout),
        )

    def forward(self, feats: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """Returns the ``(B, F, h, w)`` object-contextual features."""
        context = self.object_context_block(feats, centres)
        return self.conv_bn_dropout(torch.cat([context, feats], dim=1))


@dataclass
class OCROutput:
    """What the OCR head computes at the trunk's stride.

    Attributes:
        logits: ``(B, K, h, w)`` class logits.
        aux_logits: ``(B, K, h, w)`` soft object region logits.
        mid: ``(B, mid_channels, h, w)`` object-contextual features.
    """

    logits: torch.Tensor
    aux_logits: torch.Tensor
    mid: torch.Tensor


class OCRHead(nn.Module):
    """OCR head: ``(B, in_channels, h, w)`` -> :class:`OCROutput` at the same ``(h, w)``."""

    def __init__(self, num_classes: int, cfg: OCRConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or OCRConfig()
        c = self.cfg
        self.conv3x3_ocr = nn.Sequential(
            nn.Conv2d(c.in_channels, c.mid_channels, 3, padding=1, bias=True),
            bn_relu(c.mid_channels),
        )
        self.ocr_distri_head = ObjectContextFusion(c.mid_channels, c.key_channels, c.dropout)
        self.cls_head = nn.Conv2d(c.mid_channels, num_classes, 1, bias=True)
        self.aux_head = nn.Sequential(
            nn.Conv2d(c.in_channels, c.in_channels, 1, bias=True),
            bn_relu(c.in_channels),
            nn.Conv2d(c.in_channels, num_classes, 1, bias=True),
        )

    def forward(self, trunk_feats: torch.Tensor) -> OCROutput:
        """Returns logits, aux logits and mid features for ``(B, in_channels, h, w)`` features."""
        feats = self.conv3x3_ocr(trunk_feats)
        aux = self.aux_head(trunk_feats)
        mid = self.ocr_distri_head(feats, class_centres(feats, aux))
        return OCROutput(logits=self.cls_head(mid), aux_logits=aux, mid=mid)
