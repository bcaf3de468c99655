"""Training: the two-scale HMSA recipe (DESIGN 1.4), the explicit-attention baseline, DDP.

``python -m hmsa_core.train --arch lite --steps 2000 --out runs/hmsa`` trains HMSA on SynthScapes;
``--arch explicit_lite`` trains the explicit-attention baseline on (0.5, 1, 2) the same way.
"""

from hmsa_core.train.config import TrainConfig
from hmsa_core.train.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
