"""A bounded, thread-safe LRU cache of per-scale forward passes, sized in bytes."""

from __future__ import annotations

import hashlib
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

V = TypeVar("V")


@dataclass(frozen=True)
class CacheStats:
    """Counters of a :class:`ByteLRUCache`.

    Attributes:
        hits, misses: lookups that found / did not find an entry.
        entries: entries held now.
        bytes: bytes held now.
        max_bytes: the capacity.
        evictions: entries dropped to stay under ``max_bytes``.
    """

    hits: int
    misses: int
    entries: int
    bytes: int
    max_bytes: int
    evictions: int


class ByteLRUCache(Generic[V]):
    """Least-recently-used cache whose capacity is a byte budget.

    Each ``put`` names the entry's size; the oldest entries are evicted until the total fits.
    An entry larger than the whole budget is not stored.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        """Returns the value stored under ``key`` (marking it recently used), or ``None``."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return item[0]

    def put(self, key: Hashable, value: V, nbytes: int) -> None:
        """Stores ``value`` of ``nbytes`` under ``key``, evicting old entries to fit the budget."""
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            if nbytes > self.max_bytes:
                return
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
                self._evictions += 1

    def clear(self) -> None:
        """Removes every entry (counters are kept)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def stats(self) -> CacheStats:
        """Returns the current :class:`CacheStats`."""
        with self._lock:
            return CacheStats(
                self._hits,
                self._misses,
                len(self._items),
                self._bytes,
                self.max_bytes,
                self._evictions,
            )


def tensor_digest(x: torch.Tensor) -> str:
    """Returns a hex digest of a tensor's shape, dtype and contents (the cache's image key)."""
    data = x.detach().to("cpu").contiguous()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{tuple(data.shape)}|{data.dtype}".encode())
    h.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return h.hexdigest()


_MODEL_TOKENS: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
_TOKEN_LOCK = threading.Lock()


def model_token(model: torch.nn.Module) -> str:
    """Returns a token unique to this model object for its lifetime (never reused after it dies)."""
    with _TOKEN_LOCK:
        token = _MODEL_TOKENS.get(model)
        if token is None:
            token = uuid.uuid4().hex
            _MODEL_TOKENS[model] = token
        return token


def weights_version(model: torch.nn.Module) -> int:
    """Returns a counter that grows whenever any parameter or buffer of ``model`` is changed in
    place (``load_state_dict``, an optimiser step, ``.copy_``): the sum of the tensors' version
    counters. Part of the per-scale cache key, so edited weights never get stale passes."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(int(t._version) for t in tensors)
