"""Checkpoint formats: our own safetensors format and NVIDIA's official ``.pth`` layout."""

from hmsa_core.checkpoints.native import CheckpointInfo, load_native, read_native_info, save_native

__all__ = ["CheckpointInfo", "load_native", "read_native_info", "save_native"]
