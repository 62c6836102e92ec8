"""Sending calls through an API that returns at most ``max_rows`` rows per reply.

PostgREST cuts every reply at ``db-max-rows`` (Supabase's "Max rows", 1000 unless changed), on
function results too, while the function itself runs in full: a ``create_many`` of 1,500 runs
inserted all of them and answered with 1,000, and a prune of 2,000 runs deleted them all and
reported 1,000 Storage paths, so the other files were orphaned for good. ``Pager`` plans the
requests of one call so that no reply needs more than the cap (``calls.Paging`` says how each
call may be split), and checks every reply it gets: each asks for the exact row count
(``Prefer: count=exact``, read from ``Content-Range``), so a reply that was cut anyway (the
project's cap is lower than configured) is noticed. A read then continues from where the reply
stopped (``offset``); a write has already happened and cannot be read back, so it fails with
``ConfigurationError`` naming the setting, and the pager keeps the lower cap for later calls.

The pager only plans; each transport sends (``SupabaseTransport`` and its async twin), so the
rule is written once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..calls import Arg, Call
from ..errors import ConfigurationError, PulserOpsError

T = TypeVar("T")
Row = Mapping[str, Any]

#: Supabase's default ``max_rows`` (and ``supabase/config.toml``'s).
DEFAULT_MAX_ROWS = 1000


@dataclass(frozen=True)
class Request:
    """One HTTP request of a call: the call (a slice or a page of it) and, to continue a reply
    that was cut, the offset of its first row (``?offset=&limit=``)."""

    call: Call[Any]
    offset: int | None = None
    limit: int | None = None

    @property
    def counted(self) -> bool:
        """Whether to ask for the total (every set-returning call is)."""
        return self.call.decode.is_set


class RowCap:
    """The API's row cap as this process knows it: configured, lowered when a reply shows the
    project's is lower (shared by every call of a transport)."""

    def __init__(self, max_rows: int | None) -> None:
        self.value = max_rows

    def learn(self, got: int) -> None:
        if got > 0 and (self.value is None or got < self.value):
            self.value = got


class Pager(Generic[T]):
    """The requests of one call, planned one reply at a time: ``first()``, then ``feed()``
    each reply until it returns None, then ``result()``."""

    def __init__(self, call: Call[T], cap: RowCap) -> None:
        self.call = call
        self.cap = cap
        self.rows: list[Row] = []
        self._slices: list[Call[Any]] = []
        self._remaining: int | None = None
        paging = call.paging
        if cap.value is None or paging is None:
            self._current = call
        elif paging.each is not None:
            items = list(call.args[paging.each].value or [])
            size = cap.value
            pgtype = call.args[paging.each].pgtype
            self._slices = [
                call.with_args(**{paging.each: Arg(items[i : i + size], pgtype)})
                for i in range(0, len(items), size)
            ] or [call]
            self._current = self._slices.pop(0)
        elif paging.limit is not None and isinstance(self._limit_of(call), int):
            self._remaining = self._limit_of(call)
            self._current = self._capped(call)
        else:
            self._current = call

    def _limit_of(self, call: Call[Any]) -> Any:
        assert self.call.paging is not None and self.call.paging.limit is not None
        arg = call.args.get(self.call.paging.limit)
        return None if arg is None else arg.value

    def _capped(self, call: Call[Any]) -> Call[Any]:
        """``call`` asking for at most the cap (and no more than is still wanted)."""
        assert self.call.paging is not None and self.call.paging.limit is not None
        assert self._remaining is not None and self.cap.value is not None
        want = min(self._remaining, self.cap.value)
        return call.with_args(**{self.call.paging.limit: Arg(want, "integer")})

    def first(self) -> Request:
        return Request(self._current)

    def feed(self, request: Request, rows: Sequence[Row], total: int | None) -> Request | None:
        """Take one reply; the next request, or None when the call is complete."""
        self.rows.extend(rows)
        start = request.offset or 0
        if total is not None and total > start + len(rows):
            self.cap.learn(len(rows))
            if not request.call.read_only:
                raise ConfigurationError(
                    f"the Supabase API returned {len(rows)} of the {total} rows of"
                    f" {request.call.fn}: the project's max_rows is lower than"
                    f" PULSER_OPS_MAX_ROWS; set PULSER_OPS_MAX_ROWS={len(rows)} (the call"
                    " itself was carried out: its other rows were written but not reported)"
                )
            # A read is safe to repeat: continue the same call after the rows we have.
            return Request(request.call, start + len(rows), self.cap.value)
        paging = self.call.paging
        if self._slices:
            self._current = self._slices.pop(0)
            return Request(self._current)
        if self._remaining is None or paging is None:
            return None
        asked = self._limit_of(request.call)
        got = start + len(rows)
        self._remaining -= got
        if got < asked or self._remaining <= 0 or not rows:
            return None
        nxt = request.call
        if paging.after is not None:
            nxt = nxt.with_args(**paging.after(nxt.args, rows[-1]))
        self._current = self._capped(nxt)
        return Request(self._current)

    def failed(self, e: PulserOpsError) -> PulserOpsError:
        """``e``, saying what earlier requests of this call did: a write sent in parts is
        committed part by part (each part is one transaction), so a failing part leaves the
        earlier ones done. Callers that need all-or-nothing give their runs idempotency keys
        and send the whole list again."""
        if self.rows and not self.call.read_only:
            e.message = (
                f"{e.message} (earlier parts of this {self.call.fn} call were committed:"
                f" {len(self.rows)} row(s))"
            )
        return e

    def result(self) -> T:
        out = self.call.decode.rows(self.rows)
        order = self.call.paging.order if self.call.paging is not None else None
        return order(out) if order is not None else out
