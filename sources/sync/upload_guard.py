"""Keep a hostile upload from taking the worker down with it.

A JSON upload nested 200,000 deep drove ijson's C backend (whose memory grows with the
square of the depth) to 23 GB until the kernel killed the worker; the run then stayed
`running` and every later upload to the source was refused. Before the worker applies an
upload, `read_upload()` forks a child process that

1. scans the bytes for the nesting depth (strings skipped, no parsing) and refuses a file
   nested deeper than `SYNC_UPLOAD_MAX_JSON_DEPTH`, then
2. runs the connector's own `fetch()` over the file under an address-space limit
   (`SYNC_PARSE_MEMORY_MB` above what the worker already holds) and a CPU limit, writing
   the records it yields to a spool file (pickled one by one, in a private temporary
   file the worker created).

A file that needs more memory or time than that fails its run with the reason, in the
parent, which is never at risk. A file the child read in bounds is not parsed again: the
worker reads the child's records back from the spool, one at a time (the upload used to be
read twice, once by the child and once by the worker: 40 s against 23 s for a 50 MB
kubectl export). If the child's `fetch()` raised anything else (not JSON, the wrong kind of
export), the worker reads the file itself with the same code, which reports it as it
always did; its memory then is bounded by what the child used before the error.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import signal
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from django.conf import settings

from sources.sync.base import Connector, FetchContext, SourceConfigError

UPLOAD_TOO_DEEP = (
    "The uploaded file nests JSON {depth:,} levels deep; Runproof reads at most "
    "{limit:,} levels (RUNPROOF_SYNC_UPLOAD_MAX_JSON_DEPTH) and refused it before parsing."
)
UPLOAD_OUT_OF_MEMORY = (
    "Reading the uploaded file needed more than {limit:,} MB of memory "
    "(RUNPROOF_SYNC_PARSE_MEMORY_MB); the run was stopped before it could exhaust the worker."
)
UPLOAD_OUT_OF_TIME = (
    "Reading the uploaded file took more than {limit:,} s of CPU "
    "(RUNPROOF_SYNC_PARSE_CPU_SECONDS); the run was stopped."
)
UPLOAD_PARSER_DIED = (
    "The process reading the uploaded file stopped ({how}); the file was not imported."
)

# A JSON string (to its closing quote, or to the end of the buffer when unterminated, so
# a hostile file cannot make this scan quadratic) or a stray escape outside any string.
_STRING = re.compile(rb'"(?:[^"\\]++|\\(?:.|\Z))*+(?:"|\Z)|\\(?:.|\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SIGNS = bytes.maketrans(b"[]{}", b"\x01\xff\x01\xff")
_CHUNK = 1 << 20

_EXIT_OK, _EXIT_TOO_DEEP, _EXIT_MEMORY = 0, 3, 4


def json_depth(path: str, *, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in a JSON file, by a byte scan.

    Valid JSON never holds a raw newline inside a string, so the file is scanned in
    whole lines and a string never spans two buffers (a minified file is one line).
    Stops early once the depth passes `stop_above`.
    """
    depth = deepest = 0
    carry = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            buf = carry + chunk
            if chunk:
                cut = buf.rfind(b"\n") + 1
                if cut == 0:
                    carry = buf
                    continue
                buf, carry = buf[:cut], buf[cut:]
            if buf:
                steps = array(
                    "b",
                    _STRING.sub(b"", buf)
                    .translate(None, _NOT_BRACKETS)
                    .translate(_SIGNS),
                )
                if steps:
                    running = list(accumulate(steps, initial=depth))
                    deepest = max(deepest, max(running))
                    depth = running[-1]
                if stop_above is not None and deepest > stop_above:
                    return deepest
            if not chunk:
                return deepest


def _address_space() -> int:
    """Bytes of address space this process holds now (Linux), 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class _Expect:
    """A spool frame: fetch() said how many records will come (`FetchContext.expect`)."""

    expected: list[int]


@dataclass
class _End:
    """The last spool frame: what fetch() left on the connector for apply()/finish()."""

    state: dict[str, Any] = field(default_factory=dict)


def _child(
    connector: Connector,
    fctx: FetchContext,
    json_upload: bool,
    w: int,
    spool: str | None,
) -> None:
    """The forked reader. Never returns: it reports on the pipe and exits."""
    code, detail = _EXIT_OK, {}
    try:
        import resource

        budget = settings.SYNC_PARSE_MEMORY_MB * 1024 * 1024
        limit = _address_space() + budget
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        cpu = settings.SYNC_PARSE_CPU_SECONDS
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        if json_upload:
            limit_depth = settings.SYNC_UPLOAD_MAX_JSON_DEPTH
            depth = json_depth(fctx.upload_path or "", stop_above=limit_depth)
            if depth > limit_depth:
                code, detail = _EXIT_TOO_DEEP, {"depth": depth}
        if code == _EXIT_OK:
            if spool is None:
                for _item in connector.fetch(fctx):
                    pass
            else:
                detail = {"spooled": _spool(connector, fctx, spool)}
    except MemoryError:
        code, detail = _EXIT_MEMORY, {}
    except BaseException:  # noqa: S110 - the worker reads the file again and reports it
        pass
    finally:
        with contextlib.suppress(BaseException):
            os.write(w, json.dumps({"code": code, **detail}).encode())
        os._exit(code)


def _spool(connector: Connector, fctx: FetchContext, spool: str) -> bool:
    """Write what fetch() yields to `spool`; False if fetch() raised (not MemoryError)."""
    expected: list[int] = []
    protocol = pickle.HIGHEST_PROTOCOL
    with open(spool, "wb", buffering=1 << 20) as f:
        try:
            for item in connector.fetch(fctx):
                if fctx.expected != expected:
                    expected = list(fctx.expected)
                    pickle.dump(_Expect(expected), f, protocol)
                pickle.dump(item, f, protocol)  # one pickle a record: nothing kept
        except MemoryError:
            raise
        except Exception:
            return False
        state = {
            name: getattr(connector, name)
            for name in connector.fetch_state
            if hasattr(connector, name)
        }
        pickle.dump(_End(state), f, protocol)
    return True


def _spooled(connector: Connector, fctx: FetchContext, spool: str) -> Iterator[Any]:
    """The records the child wrote, one at a time, as fetch() yielded them."""
    with open(spool, "rb", buffering=1 << 20) as f:
        # The spool is a private file this worker created and its own forked child
        # wrote; nothing else can have written it.
        while True:
            item = pickle.load(f)  # noqa: S301
            if isinstance(item, _Expect):
                fctx.expected[:] = item.expected
            elif isinstance(item, _End):
                for name, value in item.state.items():
                    setattr(connector, name, value)
                return
            else:
                yield item


@contextlib.contextmanager
def read_upload(
    *,
    connector: Connector,
    fctx: FetchContext,
    json_upload: bool,
    beat: Callable[[], None] | None = None,
) -> Iterator[Iterator[Any] | None]:
    """Read the upload once in a child process under limits; raise if it is hostile.

    Yields the records the child read (to apply instead of calling `connector.fetch()`
    again), or None when the worker must read the file itself (the child's fetch()
    raised: the worker's own read reports it). Raises SourceConfigError with the reason
    (too deep, out of memory, out of time, the reader died).
    """
    if not fctx.upload_path:
        yield None
        return
    fd, spool = tempfile.mkstemp(prefix="runproof-upload-", suffix=".spool")
    os.close(fd)
    try:
        report = _run_child(connector, fctx, json_upload, beat, spool)
        yield _spooled(connector, fctx, spool) if report.get("spooled") else None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(spool)


def check_upload(
    *,
    connector: Connector,
    fctx: FetchContext,
    json_upload: bool,
    beat: Callable[[], None] | None = None,
) -> None:
    """Read the upload once in a child process under limits, keeping nothing; raise if
    it is hostile (SourceConfigError with the reason: too deep, out of memory, out of
    time, the reader died). Other failures (a file that is not JSON, the wrong export)
    are left to the worker's own read, which reports them as it always did."""
    if fctx.upload_path:
        _run_child(connector, fctx, json_upload, beat, None)


def _run_child(
    connector: Connector,
    fctx: FetchContext,
    json_upload: bool,
    beat: Callable[[], None] | None,
    spool: str | None,
) -> dict[str, Any]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(r)
        _child(connector, fctx, json_upload, w, spool)
    os.close(w)
    try:
        last_beat = time.monotonic()
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
            if beat is not None and time.monotonic() - last_beat > 30:
                beat()  # the lease must not lapse while a large file is read
                last_beat = time.monotonic()
        report = os.read(r, 4096)
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    finally:
        os.close(r)
    try:
        message = json.loads(report or b"{}")
    except ValueError:
        message = {}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            raise SourceConfigError(
                UPLOAD_OUT_OF_TIME.format(limit=settings.SYNC_PARSE_CPU_SECONDS)
            )
        if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
            # A C parser that cannot allocate may abort rather than raise MemoryError.
            raise SourceConfigError(
                UPLOAD_OUT_OF_MEMORY.format(limit=settings.SYNC_PARSE_MEMORY_MB)
            )
        raise SourceConfigError(UPLOAD_PARSER_DIED.format(how=signal.Signals(sig).name))
    code = message.get("code", os.WEXITSTATUS(status))
    if code == _EXIT_TOO_DEEP:
        raise SourceConfigError(
            UPLOAD_TOO_DEEP.format(
                depth=message.get("depth", 0),
                limit=settings.SYNC_UPLOAD_MAX_JSON_DEPTH,
            )
        )
    if code == _EXIT_MEMORY:
        raise SourceConfigError(
            UPLOAD_OUT_OF_MEMORY.format(limit=settings.SYNC_PARSE_MEMORY_MB)
        )
    if code != _EXIT_OK:
        raise SourceConfigError(UPLOAD_PARSER_DIED.format(how=f"exit code {code}"))
    return message
