"""The network side of :mod:`yso_labels.catalogs`: the Gaia archive's TAP service through
astroquery, retries with exponential backoff, and an on-disk cache of query results.

* :class:`GaiaArchive` wraps :class:`astroquery.utils.tap.core.TapPlus` (the class that
  ``astroquery.gaia.GaiaClass`` is built on) pointed at the Gaia archive. It is created
  lazily, on the first query, because importing ``astroquery.gaia`` already contacts the
  archive (it builds a ``GaiaClass`` at import time). Every request runs under a socket
  timeout, and a reachability check (TCP connect, at most 10 s) comes first, so that a
  machine without network gets one clear :class:`NoNetworkError` within seconds.
* :func:`with_retries` repeats transient failures (timeouts, dropped connections, HTTP
  5xx/429, an overloaded archive) with delays ``backoff * 2**attempt`` seconds.
* :class:`QueryCache` stores each chunk's result as a VOTable named by the SHA-256 of the
  service URL, the ADQL text and the uploaded chunk, so a rerun after an interruption or a
  service error fetches only what is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import http
import http.client
import io
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from astropy.table import Table

from yso_labels.core.atomic import atomic_write

log = logging.getLogger(__name__)

#: The Gaia archive's TAP endpoint (ESA, ESAC).
GAIA_TAP_URL = "https://gea.esac.esa.int/tap-server/tap"
#: Default cache folder: ``$XDG_CACHE_HOME/yso-labels/catalogs`` (``~/.cache`` by default).
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") \
    / "yso-labels" / "catalogs"

T = TypeVar("T")

_HTTP_STATUS_BY_PHRASE = {s.phrase.lower(): int(s) for s in http.HTTPStatus}
#: Words in a failed job's message that mean "try again later", not "your query is wrong".
_OVERLOAD_WORDS = ("too many", "overload", "unavailable", "timeout", "timed out",
                   "try again", "maintenance")


class CatalogError(OSError):
    """A catalogue query failed (after retries, or for a reason retrying cannot fix)."""


class NoNetworkError(CatalogError):
    """The catalogue service cannot be reached at all (no network, DNS, firewall)."""


def _http_status(message: str) -> int | None:
    """HTTP status in an astroquery error message (``"Error 503: ..."`` or a reason phrase)."""
    match = re.search(r"\bError (\d{3})\b", message)
    if match:
        return int(match.group(1))
    return _HTTP_STATUS_BY_PHRASE.get(message.strip().lower())


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` may help: network faults, HTTP 5xx/429, overload messages."""
    if isinstance(exc, CatalogError):
        return False
    if isinstance(exc, (TimeoutError, socket.timeout, ConnectionError)):
        return True
    if isinstance(exc, http.client.HTTPException):  # RemoteDisconnected, IncompleteRead
        return True
    message = str(exc)
    status = _http_status(message)
    if status is not None:
        return status >= 500 or status == 429
    if type(exc).__name__ == "HTTPError":  # requests' HTTPError without a status: assume load
        return True
    if isinstance(exc, OSError):  # socket-level errors other than the ones above
        return True
    return any(word in message.lower() for word in _OVERLOAD_WORDS)


def describe(exc: BaseException) -> str:
    """One line describing ``exc`` (astroquery messages can span several lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def with_retries(fn: Callable[[], T], *, what: str, retries: int = 4, backoff: float = 2.0,
                 sleep: Callable[[float], Any] = time.sleep) -> T:
    """Call ``fn``; on a transient error wait ``backoff * 2**attempt`` s and try again.

    At most ``retries`` repetitions. Raises :class:`CatalogError` naming ``what`` when the
    error is not transient or the retries are used up.
    """
    for attempt in range(retries + 1):
        try:
            return fn()
        except Exception as exc:
            if isinstance(exc, CatalogError):
                raise
            if not is_transient(exc):
                raise CatalogError(f"{what} failed: {describe(exc)}") from exc
            if attempt == retries:
                raise CatalogError(f"{what} failed after {retries + 1} attempts: "
                                   f"{describe(exc)}") from exc
            delay = backoff * 2 ** attempt
            log.warning("%s failed (%s); retry %d of %d in %.1f s", what, describe(exc),
                        attempt + 1, retries, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


class QueryCache:
    """Results of queries on disk, one VOTable per (service, ADQL, uploaded chunk).

    ``directory=None`` disables caching. Files are written atomically, so an interrupted
    run never leaves a partial entry; an unreadable entry is discarded and refetched.
    """

    def __init__(self, directory: str | os.PathLike | None):
        self.directory = Path(directory) if directory is not None else None

    @staticmethod
    def key(service: str, adql: str, upload: Table) -> str:
        """SHA-256 (hex) of the service URL, the ADQL text and the uploaded rows."""
        buf = io.StringIO()
        upload.write(buf, format="ascii.ecsv")
        digest = hashlib.sha256()
        for part in (service, adql, buf.getvalue()):
            digest.update(part.encode("utf-8"))
            digest.update(b"\0")
        return digest.hexdigest()

    def path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.vot"

    def get(self, key: str) -> Table | None:
        path = self.path(key)
        if path is None or not path.exists():
            return None
        try:
            return Table.read(path, format="votable")
        except Exception as exc:  # a damaged entry: drop it and fetch again
            log.warning("cache entry %s is unreadable (%s); fetching again", path, exc)
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, table: Table) -> None:
        path = self.path(key)
        if path is None:
            return
        with atomic_write(path) as tmp:
            table.write(tmp, format="votable", overwrite=True)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    """Default socket timeout for the connections astroquery opens (it sets none itself)."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


@contextlib.contextmanager
def _quiet():
    """astroquery prints status lines on stdout; keep them out of the user's output."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        text = buf.getvalue().strip()
        if text:
            log.debug("astroquery: %s", text)


class GaiaArchive:
    """ADQL queries with an uploaded table on the Gaia archive (astroquery TAP+, async jobs).

    ``timeout`` (s) bounds every socket operation; ``job_timeout`` (s) bounds the wait for
    one job to finish. ``url`` may point to another TAP+ service (e.g. a local test server).
    """

    #: Result format: the archive's gzip-compressed VOTable, as astroquery.gaia requests it.
    OUTPUT_FORMAT = "votable_gzip"

    def __init__(self, url: str = GAIA_TAP_URL, timeout: float = 60.0,
                 job_timeout: float = 1800.0, poll: float = 1.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"archive URL {url!r}: expected http(s)://host[:port]/path")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive (got {timeout})")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.timeout = float(timeout)
        self.job_timeout = float(job_timeout)
        self.poll = float(poll)
        self._tap = None

    def check_reachable(self) -> None:
        """Raise :class:`NoNetworkError` unless a TCP connection opens within 10 s."""
        limit = min(self.timeout, 10.0)
        outcome: dict[str, BaseException | None] = {}

        def connect() -> None:
            try:
                with socket.create_connection((self.host, self.port), timeout=limit):
                    outcome["error"] = None
            except OSError as exc:
                outcome["error"] = exc

        # a thread, because name resolution ignores socket timeouts
        worker = threading.Thread(target=connect, daemon=True)
        worker.start()
        worker.join(limit + 1.0)
        if "error" not in outcome:
            raise NoNetworkError(f"cannot reach the Gaia archive at {self.host}:{self.port}: "
                                 f"no answer within {limit:.0f} s (no network?)")
        if outcome["error"] is not None:
            raise NoNetworkError(f"cannot reach the Gaia archive at {self.host}:{self.port} "
                                 f"(no network?): {describe(outcome['error'])}")

    def _service(self):
        if self._tap is None:
            from astroquery.utils.tap.core import TapPlus
            with _quiet():
                self._tap = TapPlus(url=self.url, use_names_over_ids=True)
        return self._tap

    def query(self, adql: str, upload: Table, table_name: str = "targets") -> Table:
        """Run ``adql`` with ``upload`` as ``TAP_UPLOAD.<table_name>``; return the result."""
        with _socket_timeout(self.timeout), _quiet():
            job = self._service().launch_job_async(
                adql, upload_resource=upload, upload_table_name=table_name,
                output_format=self.OUTPUT_FORMAT, background=True,
                format_with_results_compressed=(self.OUTPUT_FORMAT,))
            deadline = time.monotonic() + self.job_timeout
            phase = str(job.get_phase(update=True)).strip().upper()
            while phase in ("PENDING", "QUEUED", "EXECUTING"):
                if time.monotonic() > deadline:
                    raise CatalogError(f"Gaia archive job {job.jobid} still {phase} after "
                                       f"{self.job_timeout:.0f} s")
                time.sleep(self.poll)
                phase = str(job.get_phase(update=True)).strip().upper()
            result = job.get_results()
        if result is None:
            raise CatalogError(f"Gaia archive job {job.jobid} returned no result")
        result = Table(result, masked=True, copy=False)
        result.rename_columns(result.colnames, [c.lower() for c in result.colnames])
        return result
