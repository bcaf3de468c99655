"""The opt-in GPU fast path: CUDA graphs (or ``torch.compile``) for small, launch-bound scales,
and independent scales on separate CUDA streams.

On a GPU the small scales of a cascade are bound by kernel launches, not arithmetic (an H200
runs the 0.25 pass of the official model in 0.038 s for 16x fewer FLOPs than the 1.0 pass).
Replaying a captured CUDA graph removes the launch cost. Everything here is behind
:class:`FastPathOptions`, passed explicitly to :func:`hmsa_core.infer` (``fast_path=``); without
it nothing changes.

:class:`GraphedForward`, the ``"compile"`` mode and :func:`run_on_streams` run only on CUDA;
``scripts/gpu_check.sh`` measures them against eager on a GPU (an H200 run is in
``results/gpu/bench_gpu.txt``: same argmax as eager for graphs and streams, 99.5% for
``torch.compile``). What needs no GPU (option checks, which scales count as small, the
refusal on CPU) is tested in ``tests/test_gpu_fast_path_options.py``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from hmsa_core.folding import pass_module
from hmsa_core.models.base import MultiScaleSegmenter, ScaleOutput, rescale_input
from hmsa_core.precision import RUN_DTYPES, autocast_for, to_layout

FAST_MODES = ("graphs", "compile", "eager")


@dataclass(frozen=True)
class FastPathOptions:
    """How the GPU fast path runs (CUDA only).

    Attributes:
        mode: ``"graphs"`` (capture each small pass as a CUDA graph, replay it),
            ``"compile"`` (``torch.compile(mode="reduce-overhead")``, which also uses CUDA
            graphs; the first call per size compiles for minutes) or ``"eager"``.
        small_pixels: a pass whose input area is at most this is launch-bound and takes the
            fast mode; larger passes run eager (they are bound by arithmetic).
        streams: run the ungated passes of a cascade on separate CUDA streams.
    """

    mode: str = "graphs"
    small_pixels: int = 512 * 1024
    streams: bool = False

    def __post_init__(self) -> None:
        if self.mode not in FAST_MODES:
            raise ValueError(
                f"fast-path mode must be one of {', '.join(FAST_MODES)}, got {self.mode!r}"
            )
        if self.small_pixels < 0:
            raise ValueError(f"small_pixels must be >= 0, got {self.small_pixels}")


def check_device(device: torch.device) -> None:
    """Raises ``ValueError`` unless ``device`` is a CUDA GPU (the fast path is GPU-only)."""
    if device.type != "cuda":
        raise ValueError(
            f"the GPU fast path needs a CUDA device; the model is on {device.type}: "
            "drop fast_path (CPU passes already use bf16 + channels-last with precision='auto')"
        )


def small_scales(
    sizes: Mapping[float, tuple[int, int]], options: FastPathOptions
) -> tuple[float, ...]:
    """Returns the scales (ascending) whose input ``(h, w)`` in ``sizes`` is at most
    ``options.small_pixels``: the launch-bound passes the fast mode takes."""
    return tuple(s for s in sorted(sizes) if sizes[s][0] * sizes[s][1] <= options.small_pixels)


class GraphedForward:
    """A model's forward pass replayed from CUDA graphs, one per input shape and precision.

    CUDA only. The first call per shape warms up on a side stream, then captures
    the pass into a graph with static input and output buffers; later calls copy the input in,
    replay, and return clones of the outputs.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, ScaleOutput]] = {}
        self._lock = threading.Lock()

    def __call__(self, x: torch.Tensor, precision: str) -> ScaleOutput:
        """Returns the :class:`ScaleOutput` of ``x`` ``(B, 3, h, w)`` (clones, safe to keep)."""
        key = (tuple(x.shape), x.dtype, precision)
        with self._lock:
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._capture(x, precision)
                self._graphs[key] = entry
            graph, static_in, static_out = entry
            static_in.copy_(x)
            graph.replay()
            return ScaleOutput(
                logits=static_out.logits.clone(),
                attention=None if static_out.attention is None else static_out.attention.clone(),
                aux_logits=None if static_out.aux_logits is None else static_out.aux_logits.clone(),
                features=None if static_out.features is None else static_out.features.clone(),
            )

    def _capture(
        self, x: torch.Tensor, precision: str
    ) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, ScaleOutput]:
        static_in = to_layout(x.clone(), precision)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad(), _autocast_uncached(x.device, precision):
            for _ in range(3):  # warm-up: kernel selection and allocator pools
                self.model(static_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad(), _autocast_uncached(x.device, precision):
            static_out = self.model(static_in)
        return graph, static_in, static_out


def _autocast_uncached(device: torch.device, precision: str):  # type: ignore[no-untyped-def]
    """Returns autocast without its weight-cast cache (casts must be inside a captured graph)."""
    ctx = autocast_for(device, precision)
    if isinstance(ctx, torch.autocast):
        return torch.autocast(device.type, dtype=ctx.fast_dtype, cache_enabled=False)
    return ctx


#: Graphs and compiled forwards per module (weak keys: they go with the module they run).
_GRAPHED: weakref.WeakKeyDictionary[nn.Module, GraphedForward] = weakref.WeakKeyDictionary()
_COMPILED: weakref.WeakKeyDictionary[nn.Module, Callable[[torch.Tensor], ScaleOutput]]
_COMPILED = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def fast_forward(
    model: nn.Module, options: FastPathOptions, precision: str
) -> Callable[[torch.Tensor], ScaleOutput]:
    """Returns the forward function of a small pass in ``options.mode`` (CUDA only): graph
    replay, the compiled module, or the eager module (layout and autocast applied).

    ``model`` is the module the pass runs: for reduced precision, the BatchNorm-folded copy
    (:func:`hmsa_core.folding.pass_module`)."""
    check_device(next(model.parameters()).device)
    if options.mode == "graphs":
        with _CACHE_LOCK:
            graphed = _GRAPHED.get(model)
            if graphed is None:
                graphed = _GRAPHED[model] = GraphedForward(model)
        return lambda x: graphed(x, precision)
    if options.mode == "compile":
        with _CACHE_LOCK:
            compiled = _COMPILED.get(model)
            if compiled is None:
                compiled = torch.compile(model, mode="reduce-overhead", dynamic=False)
                _COMPILED[model] = compiled

        def run_compiled(x: torch.Tensor) -> ScaleOutput:
            with torch.no_grad(), autocast_for(x.device, precision):
                return compiled(to_layout(x, precision))

        return run_compiled

    def run_eager(x: torch.Tensor) -> ScaleOutput:
        with torch.no_grad(), autocast_for(x.device, precision):
            return model(to_layout(x, precision))

    return run_eager


def run_on_streams(
    model: MultiScaleSegmenter,
    image: torch.Tensor,
    scales: Iterable[float],
    precision: str,
    options: FastPathOptions,
) -> dict[float, ScaleOutput]:
    """Returns scale -> :class:`ScaleOutput` of every (ungated) pass, each launched on its own
    CUDA stream so small passes overlap the large one (CUDA only). Small passes
    use the fast mode; outputs are float32."""
    device = image.device
    check_device(device)
    cascade = sorted(float(s) for s in scales)
    inputs = {s: rescale_input(image, s) for s in cascade}
    small = set(small_scales({s: tuple(x.shape[-2:]) for s, x in inputs.items()}, options))
    runner = pass_module(model, RUN_DTYPES[precision])
    eager = fast_forward(runner, FastPathOptions(mode="eager"), precision)
    fast = fast_forward(runner, options, precision)
    streams = {s: torch.cuda.Stream(device) for s in cascade}
    main = torch.cuda.current_stream(device)
    outputs: dict[float, ScaleOutput] = {}
    for s in cascade:
        streams[s].wait_stream(main)
        with torch.cuda.stream(streams[s]):
            outputs[s] = (fast if s in small else eager)(inputs[s])
    for s in cascade:
        main.wait_stream(streams[s])
    return {
        s: ScaleOutput(
            logits=o.logits.float(),
            attention=None if o.attention is None else o.attention.float(),
            aux_logits=None if o.aux_logits is None else o.aux_logits.float(),
            features=None if o.features is None else o.features.float(),
        )
        for s, o in outputs.items()
    }
