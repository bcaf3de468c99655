"""Downloading pretrained weights into the cache: ``python -m hmsa_core.download cityscapes``.

:func:`fetch` streams the file with httpx (connect and read timeouts, a size cap) into
``<cache>/<name>.pdparams.part``, resumes an interrupted transfer with an HTTP ``Range``
request, then parses it with the restricted unpickler and converts it to our safetensors
format. Only a file that parsed and converted is renamed into place
(``<cache>/<name>.safetensors``), with the SHA-256 of that file stored beside it
(``.sha256``); a later mismatch means the cache was corrupted, and the file is downloaded
once more. Every failure is a :class:`DownloadError` whose message is one sentence saying
what happened and what to do.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from hmsa_core.pretrained import (
    CACHE_DIR_ENV,
    PRETRAINED,
    PretrainedEntry,
    cache_dir,
    cached_file,
    hand_placed_path,
    local_file,
    offline,
    pretrained_entry,
    source_url,
    url_env_var,
)

#: ``(done_bytes, total_bytes or None)``; may raise :class:`DownloadCancelled` to stop.
ProgressCallback = Callable[[int, "int | None"], None]

MAX_BYTES_ENV = "HMSA_MAX_DOWNLOAD_BYTES"
#: Largest download accepted unless ``max_bytes`` or ``HMSA_MAX_DOWNLOAD_BYTES`` says otherwise.
DEFAULT_MAX_BYTES = 1 << 30
#: Seconds to wait for a connection, and for the next bytes of a transfer.
DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_READ_TIMEOUT = 60.0
#: Automatic resumes of a transfer that broke off, within one :func:`fetch` call.
MAX_RESUMES = 3
CHUNK_BYTES = 1 << 20
SHA_SUFFIX = ".sha256"

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


class DownloadError(ValueError):
    """A download or its conversion failed; the message says what happened and what to do."""


class DownloadCancelled(Exception):
    """Raised by a progress callback (or when the cancel event is set) to stop a download.

    The partial file is kept, so the next :func:`fetch` resumes it.
    """


class _BrokeOff(Exception):
    """A transfer ended early after receiving some bytes (resumable)."""


def _lock(name: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(name, threading.Lock())


def sha256_of(path: Path) -> str:
    """Returns the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha_file(path: Path) -> Path:
    return path.with_name(path.name + SHA_SUFFIX)


def _cache_intact(path: Path) -> bool:
    """Returns True when ``path``'s SHA-256 equals the one stored beside it."""
    stored = _sha_file(path)
    try:
        return stored.read_text(encoding="ascii").split()[0] == sha256_of(path)
    except (OSError, IndexError, UnicodeDecodeError):
        return False


def _max_bytes(max_bytes: int | None) -> int:
    if max_bytes is not None:
        return int(max_bytes)
    configured = os.environ.get(MAX_BYTES_ENV, "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else DEFAULT_MAX_BYTES


def _by_hand(entry: PretrainedEntry) -> str:
    return f"download it yourself and put it at {hand_placed_path(entry)}"


def _total(response: httpx.Response, start: int) -> int | None:
    """Returns the full file size the response announces, or ``None``."""
    content_range = response.headers.get("content-range", "")
    if response.status_code == 206 and "/" in content_range:
        size = content_range.rsplit("/", 1)[1].strip()
        return int(size) if size.isdigit() else None
    length = response.headers.get("content-length", "")
    return start + int(length) if length.isdigit() else None


def _range_start(response: httpx.Response) -> int | None:
    """Returns the first byte a 206 response holds (``Content-Range: bytes a-b/n``), or None."""
    value = response.headers.get("content-range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _check_head(chunk: bytes, url: str) -> None:
    """Raises ``DownloadError`` when a file's first bytes are a web page or not a pickle."""
    if chunk.lstrip()[:1] == b"<":
        raise DownloadError(
            f"{url} answered with a web page (HTML), not a checkpoint; the address is wrong or "
            "the server wants a login"
        )
    if chunk[:1] != b"\x80":
        raise DownloadError(f"{url} sent a file that is not a .pdparams checkpoint (not a pickle)")


def _stream(
    client: httpx.Client,
    url: str,
    part: Path,
    entry: PretrainedEntry,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    limit: int,
) -> None:
    """Appends the rest of ``url`` to ``part`` (from its current size, by HTTP Range)."""
    start = part.stat().st_size if part.is_file() else 0
    headers = {"Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    with client.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and start:
            part.unlink()
            raise _BrokeOff("the server refused to resume; starting again")
        if response.status_code >= 400:
            raise DownloadError(
                f"{url} answered HTTP {response.status_code} {response.reason_phrase}; check the "
                f"address ({url_env_var(entry.name)} overrides it) or {_by_hand(entry)}"
            )
        if response.status_code == 206 and _range_start(response) != start:
            part.unlink()
            raise _BrokeOff("the server resumed at another byte; starting again")
        if response.status_code != 206:
            start = 0  # the server sent the whole file: start again
        total = _total(response, start)
        if "text/html" in response.headers.get("content-type", "").lower():
            _check_head(b"<", url)
        if total is not None and total > limit:
            raise DownloadError(
                f"{url} announces {total:,} bytes, more than the {limit:,}-byte cap "
                f"({MAX_BYTES_ENV} raises it)"
            )
        done = start
        with part.open("ab" if start else "wb") as out:
            for chunk in response.iter_bytes(CHUNK_BYTES):
                if done == 0:
                    _check_head(chunk, url)
                out.write(chunk)
                done += len(chunk)
                if done > limit:
                    raise DownloadError(
                        f"{url} sent more than the {limit:,}-byte cap ({MAX_BYTES_ENV} raises it)"
                    )
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelled(f"download of {entry.name} cancelled")
                if progress is not None:
                    progress(done, total)
    if total is not None and done < total:
        raise _BrokeOff(f"the transfer stopped after {done:,} of {total:,} bytes")


def _download(
    url: str,
    part: Path,
    entry: PretrainedEntry,
    progress: ProgressCallback | None,
    cancel: threading.Event | None,
    timeout: httpx.Timeout,
    limit: int,
) -> None:
    """Downloads ``url`` into ``part``, resuming up to :data:`MAX_RESUMES` times."""
    part.parent.mkdir(parents=True, exist_ok=True)
    resumes = 0
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        while True:
            before = part.stat().st_size if part.is_file() else 0
            try:
                _stream(client, url, part, entry, progress, cancel, limit)
                return
            except (_BrokeOff, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                kept = part.stat().st_size if part.is_file() else 0
                resumes += 1
                if resumes > MAX_RESUMES or (kept <= before and not isinstance(exc, _BrokeOff)):
                    raise DownloadError(
                        f"the download from {url} kept breaking off ({exc}); {kept:,} bytes are "
                        f"kept in {part} and the next try resumes from there"
                    ) from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise DownloadError(
                    f"cannot reach {url} ({type(exc).__name__}: {exc}); without network access, "
                    f"{_by_hand(entry)}"
                ) from None
            except httpx.TimeoutException as exc:
                kept = part.stat().st_size if part.is_file() else 0
                raise DownloadError(
                    f"{url} stopped sending data for longer than the timeout "
                    f"({type(exc).__name__}) after {kept:,} bytes; try again later, the next try "
                    "resumes"
                ) from None
            except httpx.HTTPError as exc:
                raise DownloadError(
                    f"downloading {url} failed ({type(exc).__name__}: {exc}); {_by_hand(entry)}"
                ) from None


def _install(part: Path, target: Path, entry: PretrainedEntry, url: str) -> None:
    """Parses and converts the downloaded ``part``; writes the converted model to ``target``
    (with its SHA-256 beside it) only when both worked. ``part`` is removed either way."""
    from hmsa_core.checkpoints.native import save_native
    from hmsa_core.checkpoints.paddle import UnsafePickleError, load_paddle_state, read_pdparams

    source_sha = sha256_of(part)
    try:
        shown = f"{entry.name}.{entry.file_format}"
        state = read_pdparams(part, shown)
        model = load_paddle_state(
            state, shown, labels=None, extra={"source_url": url, "source_sha256": source_sha}
        )
    except UnsafePickleError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"the file from {url} was refused as unsafe: {exc}") from None
    except ValueError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"the file from {url} cannot be used: {exc}") from None
    del state
    if model.labels.num_classes != entry.num_classes:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"the file from {url} has {model.labels.num_classes} classes, but {entry.name!r} "
            f"has {entry.num_classes}; the address points at another model"
        )
    staged = target.with_name(target.name + ".part")
    try:
        save_native(model, staged, extra=dict(model.checkpoint_info.extra))  # type: ignore[attr-defined]
        _sha_file(target).write_text(f"{sha256_of(staged)}  {target.name}\n", encoding="ascii")
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    part.unlink(missing_ok=True)


def fetch(
    name: str,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    max_bytes: int | None = None,
) -> Path:
    """Returns a local file holding the pretrained model ``name``, downloading it if needed.

    Order: a file of that name in ``HMSA_MODELS_DIR``; the converted copy in the cache, if
    its SHA-256 still matches (otherwise it is downloaded once more); a download.

    Args:
        name: a key of :data:`hmsa_core.pretrained.PRETRAINED`, e.g. ``"cityscapes"``.
        progress: called with ``(done_bytes, total_bytes or None)`` after each chunk; raising
            :class:`DownloadCancelled` stops the download (the partial file is kept).
        cancel: another way to stop: the download stops once the event is set.
        connect_timeout: seconds to wait for a connection.
        read_timeout: seconds to wait for the next bytes before giving up.
        max_bytes: size cap (default ``HMSA_MAX_DOWNLOAD_BYTES`` or 1 GiB).

    Raises:
        DownloadError: (a ``ValueError``) no network, ``HMSA_OFFLINE=1``, an HTTP error, a web
            page, a truncated, oversized, unsafe or foreign file; one sentence each.
        DownloadCancelled: the caller cancelled.
    """
    entry = pretrained_entry(name)
    placed = local_file(entry)
    if placed is not None:
        return placed
    target = cached_file(entry)
    url = source_url(entry)
    with _lock(entry.name):
        corrupted = False
        if target.is_file():
            if _cache_intact(target):
                return target
            corrupted = True
            target.unlink(missing_ok=True)
            _sha_file(target).unlink(missing_ok=True)
        if offline():
            state = "its cached copy was corrupted and " if corrupted else ""
            raise DownloadError(
                f"{entry.name!r} is not downloaded: {state}HMSA_OFFLINE=1 forbids fetching {url}; "
                f"{_by_hand(entry)} or unset HMSA_OFFLINE"
            )
        part = cache_dir() / f"{entry.name}.{entry.file_format}.part"
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        try:
            _download(url, part, entry, progress, cancel, timeout, _max_bytes(max_bytes))
            _install(part, target, entry, url)
        except OSError as exc:
            raise DownloadError(
                f"cannot write the download of {entry.name!r} to {cache_dir()} ({exc}); set "
                f"{CACHE_DIR_ENV} to a writable folder with at least "
                f"{2 * entry.approx_bytes / 1e6:.0f} MB free"
            ) from None
        return target


def _tqdm_progress(label: str) -> tuple[ProgressCallback, Callable[[], None]]:
    """Returns a progress callback drawing a tqdm bar, and the function that closes it."""
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr)

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    return update, bar.close


def main(argv: Sequence[str] | None = None) -> int:
    """Downloads and converts pretrained models ahead of time; returns the exit status
    (0 done, 1 a download failed, 130 interrupted). Prints each file's path."""
    parser = argparse.ArgumentParser(
        prog="python -m hmsa_core.download",
        description="Download pretrained HMSA models into the cache (HMSA_CACHE_DIR).",
    )
    parser.add_argument("names", nargs="+", choices=sorted(PRETRAINED), metavar="NAME")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(None if argv is None else list(argv))
    for name in args.names:
        update, close = (None, lambda: None) if args.quiet else _tqdm_progress(name)
        try:
            path = fetch(name, progress=update)
        except DownloadError as exc:
            close()
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (KeyboardInterrupt, DownloadCancelled):
            close()
            print(f"{name}: cancelled; run again to resume", file=sys.stderr)
            return 130
        close()
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
