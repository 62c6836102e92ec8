"""Split a migration file into statements exactly like the Supabase CLI does.

Why a faithful port instead of a real SQL parser: the CLI stores the split
statements in ``supabase_migrations.schema_migrations.statements``. For a
database pushed by ``pulser-ops db push`` to be indistinguishable from one
pushed by ``supabase db push`` (so either tool can take over), the arrays must
be byte-for-byte equal, quirks included.

This is a port of the state machine in supabase/cli ``pkg/parser/state.go`` and
``token.go`` (``SplitAndTrim``): a statement ends at a ``;`` that is not inside a
quote, dollar quote, comment, parenthesis or ``BEGIN ATOMIC ... END`` body;
each token is then stripped of trailing ``;`` and surrounding whitespace, and
empty tokens are dropped. Comments are kept as part of the following statement.
"""

from __future__ import annotations

import unicodedata
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

BEGIN_ATOMIC = "ATOMIC"
END_ATOMIC = "END"

# Go's unicode.IsSpace, which strings.TrimSpace uses: Python's str.isspace also
# accepts the ASCII information separators \x1c-\x1f, which Go does not.
_NOT_GO_SPACE = frozenset("\x1c\x1d\x1e\x1f")


@dataclass
class _Data:
    """The current token so far: ``sql[start:end]`` without copying it per character."""

    sql: str
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def tail(self, n: int) -> str:
        """Last ``n`` characters (fewer if the token is shorter)."""
        return self.sql[max(self.start, self.end - n) : self.end]

    def since(self, offset: int) -> str:
        return self.sql[self.start + offset : self.end]

    def at(self, offset: int) -> str:
        return self.sql[self.start + offset]


def _ends_with_fold(data: _Data, word: str) -> bool:
    """``strings.EqualFold(data[len(data)-len(word):], word)`` for an ASCII word."""
    if len(data) < len(word):
        return False
    window = data.tail(len(word))
    return window.isascii() and window.upper() == word


class _State(ABC):
    """One tokenizer state; ``next`` returns None to emit a statement."""

    @abstractmethod
    def next(self, ch: str, data: _Data) -> _State | None: ...


class _Ready(_State):
    def next(self, ch: str, data: _Data) -> _State | None:
        if ch == "$":
            return _Tag(offset=len(data) - 1)
        if ch in ("'", '"'):
            return _Quote(delimiter=ch)
        if ch == "-":
            return _Comment()
        if ch == "/":
            return _Block()
        if ch == "\\":
            return _Escape()
        if ch == ";":
            return None
        if ch == "(":
            return _Atomic(prev=self, delimiter=")")
        if ch in ("c", "C"):
            offset = len(data) - len(BEGIN_ATOMIC)
            if (
                offset > 0
                and _ends_with_fold(data, BEGIN_ATOMIC)
                and _go_is_space(data.at(offset - 1))
            ):
                return _Atomic(prev=self, delimiter=END_ATOMIC)
        return self


class _Comment(_State):
    def next(self, ch: str, data: _Data) -> _State | None:
        if ch == "-":
            return _Dollar(delimiter="\n")
        return _Ready().next(ch, data)


@dataclass
class _Block(_State):
    depth: int = 0

    def next(self, ch: str, data: _Data) -> _State | None:
        window = data.tail(2)
        if window == "/*":
            self.depth += 1
            return self
        if self.depth == 0:
            return _Ready().next(ch, data)
        if window == "*/":
            self.depth -= 1
            if self.depth == 0:
                return _Ready()
        return self


@dataclass
class _Quote(_State):
    delimiter: str
    escape: bool = False

    def next(self, ch: str, data: _Data) -> _State | None:
        if self.escape:
            if ch == self.delimiter:
                self.escape = False
                return self
            return _Ready().next(ch, data)
        if ch == self.delimiter:
            self.escape = True
        return self


@dataclass
class _Dollar(_State):
    delimiter: str

    def next(self, ch: str, data: _Data) -> _State | None:
        if data.tail(len(self.delimiter)) == self.delimiter:
            return _Ready()
        return self


@dataclass
class _Tag(_State):
    offset: int

    def next(self, ch: str, data: _Data) -> _State | None:
        if ch == "$":
            return _Dollar(delimiter=data.since(self.offset))
        if ch.isalpha() or unicodedata.category(ch) == "Nd" or ch == "_":
            return self
        return _Ready().next(ch, data)


class _Escape(_State):
    def next(self, ch: str, data: _Data) -> _State | None:
        return _Ready()


@dataclass
class _Atomic(_State):
    prev: _State
    delimiter: str = field(default=")")

    def next(self, ch: str, data: _Data) -> _State | None:
        curr = self.prev.next(ch, data)
        if curr is not None:
            self.prev = curr
        if isinstance(self.prev, _Ready) and _ends_with_fold(data, self.delimiter):
            return _Ready()
        return self


def _go_is_space(ch: str) -> bool:
    return ch.isspace() and ch not in _NOT_GO_SPACE


def _go_trim_space(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _go_is_space(text[start]):
        start += 1
    while end > start and _go_is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def split_raw(sql: str) -> list[str]:
    """Tokens as the CLI's scanner emits them (each includes its ``;``), untrimmed."""
    tokens: list[str] = []
    state: _State = _Ready()
    start = 0
    for i, ch in enumerate(sql):
        nxt = state.next(ch, _Data(sql, start, i + 1))
        if nxt is None:
            tokens.append(sql[start : i + 1])
            start = i + 1
            state = _Ready()
        else:
            state = nxt
    if start < len(sql):
        tokens.append(sql[start:])
    return tokens


def split_statements(sql: str) -> list[str]:
    """The CLI's ``SplitAndTrim``: the statements stored in ``schema_migrations``."""
    out: list[str] = []
    for token in split_raw(sql):
        trimmed = _go_trim_space(token.rstrip(";"))
        if trimmed:
            out.append(trimmed)
    return out
