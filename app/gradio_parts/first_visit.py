"""What a first-time visitor sees: a computed example on arrival and a gallery of samples.

The page opens on the first sample (the first one with a ground-truth mask, so scores show)
run with the page's default settings; clicking a sample in the examples runs it with the
settings on the page. Both go through :class:`ExampleResults`, a lazy cache of whole page
outputs: the first request for a (sample, settings, model weights) computes it, every later
request (any visitor) is served from memory, so the landing page costs one run per process,
not one per visit. Start-up computes nothing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence

import gradio as gr

from app import common

#: How many example results are kept: a 512-px sample's outputs take about 10 MB, a 2048-px
#: one about 100 MB.
EXAMPLE_RESULTS_KEPT = 8
#: Seconds an example result is served before it is computed again: well under the hour after
#: which the app's ``delete_cache`` policy removes the download files a result points to.
EXAMPLE_RESULTS_TTL_S = 1200.0


def sample_label(sample: common.Sample) -> str:
    """Returns the readable name of a sample, e.g. ``"Street scene (SynthScapes val 3)"``
    (:attr:`app.common.Sample.label`; the file stem where a sample has none)."""
    return str(getattr(sample, "label", "") or sample.name)


def first_sample(samples: Sequence[common.Sample]) -> common.Sample | None:
    """Returns the sample the page opens on: the first with a ground-truth mask (so per-class
    scores show), else the first; ``None`` without samples."""
    with_mask = [s for s in samples if s.mask_path is not None]
    return (with_mask or list(samples) or [None])[0]


def example_rows(samples: Sequence[common.Sample]) -> list[list[str | None]]:
    """Returns one ``[thumbnail path, readable name, image path, mask path or None]`` row per
    sample: the values of the examples' ``(thumbnail, name, image, mask)`` components."""
    return [
        [
            str(s.image_path),
            sample_label(s),
            str(s.image_path),
            str(s.mask_path) if s.mask_path else None,
        ]
        for s in samples
    ]


def file_digest(path: str | None) -> str:
    """Returns the SHA-256 of a file's bytes (``""`` for ``None``): a cache key that does not
    depend on where Gradio copied the file."""
    if not path:
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ExampleResults:
    """A bounded, expiring, thread-safe cache of page outputs, filled at first use.

    Args:
        compute: returns the outputs for ``(image path, mask path, *settings)``; exceptions
            pass through and nothing is stored.
        model_key: returns, for the settings, a string that changes when the weights of the
            chosen model change.
        kept: most entries kept (least recently used dropped first).
        ttl_s: seconds an entry is served.
    """

    def __init__(
        self,
        compute: Callable[..., tuple],
        model_key: Callable[[Sequence[object]], str],
        *,
        kept: int = EXAMPLE_RESULTS_KEPT,
        ttl_s: float = EXAMPLE_RESULTS_TTL_S,
    ) -> None:
        if kept < 1 or ttl_s <= 0:
            raise ValueError("an example cache needs kept >= 1 and ttl_s > 0")
        self._compute = compute
        self._model_key = model_key
        self._kept = kept
        self._ttl_s = ttl_s
        self._entries: OrderedDict[Hashable, tuple[float, tuple]] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.computed = 0  #: how many times ``compute`` ran (for tests and logs)

    def key(self, image: str | None, mask: str | None, settings: Sequence[object]) -> Hashable:
        """Returns the cache key of a request: the files' contents, the settings and the
        weights of the chosen model."""
        frozen = tuple(tuple(v) if isinstance(v, list) else v for v in settings)
        return file_digest(image), file_digest(mask), frozen, self._model_key(settings)

    def outputs(self, image: str | None, mask: str | None, *settings: object) -> tuple:
        """Returns the outputs for an image, its mask and the page settings: from memory when
        the same request was computed less than ``ttl_s`` ago, else computed now (concurrent
        requests for one key compute once)."""
        key = self.key(image, mask, settings)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            cached = self._fresh(key)
            if cached is not None:
                return cached
            try:
                result = tuple(self._compute(image, mask, *settings))
            except BaseException:
                with self._lock:
                    if key not in self._entries:
                        self._key_locks.pop(key, None)
                raise
            self.computed += 1
            with self._lock:
                self._entries[key] = (time.monotonic(), result)
                self._entries.move_to_end(key)
                while len(self._entries) > self._kept:
                    old, _ = self._entries.popitem(last=False)
                    self._key_locks.pop(old, None)
            return result

    def _fresh(self, key: Hashable) -> tuple | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stamp, result = entry
            if time.monotonic() - stamp > self._ttl_s:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return result


def sample_examples(
    samples: Sequence[common.Sample], image: gr.File, mask: gr.File, *, per_page: int = 12
) -> gr.Examples:
    """Returns the samples as ``gr.Examples``: a table of image thumbnails with readable names
    (element ``#examples``) that fills the ``image`` and ``mask`` uploads when clicked.

    Two hidden components carry the thumbnail and the name, so the table shows a picture and
    a label for every sample while only the uploads change. The caller runs the page on click
    (``examples.load_input_event.then(...)``).
    """
    thumbnail = gr.Image(label="Sample", type="filepath", visible=False, interactive=False)
    name = gr.Textbox(label="Description", visible=False, interactive=False)
    return gr.Examples(
        example_rows(samples),
        inputs=[thumbnail, name, image, mask],
        visible_columns=[0, 1],
        label="Samples: click one to segment it",
        examples_per_page=per_page,
        cache_examples=False,
        elem_id="examples",
    )


def open_on_first_sample(
    demo: gr.Blocks,
    sample: common.Sample,
    results: ExampleResults,
    settings: Sequence[gr.components.Component],
    image: gr.File,
    mask: gr.File,
    outputs: Sequence[gr.components.Component],
    concurrency_id: str | None = None,
) -> None:
    """Wires the page load to show ``sample`` computed with the initial values of the page's
    ``settings`` (what a new visitor sees in them): the uploads get the sample's files and
    ``outputs`` its results, from ``results``, so only the first visit after start-up (or
    after the entry expired) computes. The event is the undocumented endpoint
    ``/first_visit``: no arguments, returns ``(image, mask, *outputs)``; it runs in the
    concurrency group ``concurrency_id`` (``None``: its own)."""
    image_path = str(sample.image_path)
    mask_path = str(sample.mask_path) if sample.mask_path else None
    defaults = [component.value for component in settings]

    def first_visit() -> tuple:
        return (image_path, mask_path, *results.outputs(image_path, mask_path, *defaults))

    demo.load(
        first_visit,
        outputs=[image, mask, *outputs],
        api_name="first_visit",
        api_visibility="undocumented",
        show_progress="minimal",
        concurrency_id=concurrency_id,
    )
