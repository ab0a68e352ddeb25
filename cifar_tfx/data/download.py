"""Download an official archive: progress, resume, md5 check, atomic placement.

The archive is written to ``<name>.part`` beside its final name and renamed only
after its md5 matches, so the final name never holds a partial or wrong file.
A ``.part`` left by an interrupted download is resumed with an HTTP range request
(when the server answers 206; otherwise it starts over).
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import urllib.error
import urllib.request
from typing import Optional, TextIO

from cifar_tfx import storage
from cifar_tfx.data.datasets import CIFAR10, DatasetSpec
from cifar_tfx.data.errors import ChecksumError, DownloadError
from cifar_tfx.progress import Progress

_CHUNK = 1 << 16


def md5_of(path: str) -> str:
    """Hex md5 of a file's bytes."""
    digest = hashlib.md5()
    with storage.open_binary(path) as handle:  # a regular file, checked on the open descriptor
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(fmt: str = "python", dest: str = ".", spec: DatasetSpec = CIFAR10,
             url: Optional[str] = None, md5: Optional[str] = None, timeout: float = 30.0,
             stream: Optional[TextIO] = None) -> str:
    """Fetch the ``fmt`` archive of ``spec`` into ``dest``; return the archive's path.

    ``url``/``md5`` override the official location and checksum (a mirror, or a test).
    An archive already present with the right md5 is kept as it is.
    """
    url = url or spec.urls[fmt]
    expected = (md5 or spec.md5[fmt]).lower()
    stream = stream if stream is not None else sys.stderr
    os.makedirs(dest, exist_ok=True)
    final = os.path.join(dest, os.path.basename(urllib.request.urlparse(url).path) or f"{spec.name}-{fmt}.tar.gz")
    if os.path.isfile(final) and md5_of(final) == expected:
        stream.write(f"{final} is already present and its md5 matches\n")
        return final
    part = final + ".part"
    offset = _bytes_already_fetched(part)
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the .part already holds the whole file
            return _finish(part, final, expected, url)
        raise DownloadError(f"{url} answered HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(
            f"cannot reach {url} ({reason}). If this machine is offline, get "
            f"{os.path.basename(final)} another way (md5 {expected}) and put it at {final}, "
            "or pass its path to --data"
        ) from err
    with response:
        resumed = offset and response.status == 206
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        meter = Progress(f"downloading {os.path.basename(final)}", total, unit="MB", scale=1e6,
                         stream=stream, initial=offset)
        if resumed:
            stream.write(f"resuming at {offset:,} bytes\n")
        try:
            with open(part, "ab" if resumed else "wb") as out:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    meter.update(len(chunk))
        except (OSError, socket.timeout) as err:
            raise DownloadError(
                f"download of {url} broke off after {meter.done:,.0f} bytes ({err}); "
                f"run the same command again to resume from {part}"
            ) from err
        meter.close()
    if total is not None and os.path.getsize(part) < total:
        raise DownloadError(
            f"download of {url} ended early at {os.path.getsize(part):,} of {total:,} bytes; "
            f"run the same command again to resume from {part}"
        )
    return _finish(part, final, expected, url)


def _bytes_already_fetched(part: str) -> int:
    """The size of an earlier download's ``part`` file, 0 if there is none; one that is not a regular
    file is refused (a pipe would block the write, a folder refuse it)."""
    if os.path.lexists(part) and not os.path.isfile(part):
        raise DownloadError(f"{part} is not a regular file (a folder, pipe or device); remove it and run the "
                            "same command again")
    return os.path.getsize(part) if os.path.isfile(part) else 0


def _finish(part: str, final: str, expected: str, url: str) -> str:
    actual = md5_of(part)
    if actual != expected:
        os.remove(part)
        raise ChecksumError(
            f"md5 of the file downloaded from {url} is {actual}, expected {expected}; "
            "the partial file was deleted, nothing was placed at " + final
        )
    os.replace(part, final)
    return final


def download_dataset(fmt: str, dest: str, spec: DatasetSpec, timeout: float = 30.0,
                     stream: Optional[TextIO] = None) -> str:
    """Fetch every file of ``spec``'s ``fmt`` layout into ``dest`` (md5-checked, resumable).

    Returns what ``--data`` takes: the archive for a one-file layout, ``dest`` for IDX files.
    """
    files = spec.download_files(fmt)
    paths = [download(fmt, dest, spec, url=url, md5=md5, timeout=timeout, stream=stream) for url, md5 in files]
    return paths[0] if len(paths) == 1 else dest
