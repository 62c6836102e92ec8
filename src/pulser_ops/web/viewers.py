"""How an artifact is shown: which viewer, and the viewers that turn bytes into safe markup.

Everything here is pure (bytes in, ``Markup`` or plain data out) so it is tested without a
server. Safety does not rest on one layer: markdown is rendered with raw HTML disabled and
links limited to safe schemes, every other viewer escapes all text, and the room's
Content-Security-Policy would still refuse any script that got through.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import mimetypes
import posixpath
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup, escape

Viewer = Literal["markdown", "json", "image", "svg", "zip", "text", "binary"]

#: Bytes of an artifact read for a viewer; a bigger one shows its start and a download link.
VIEW_LIMIT = 1 << 20
#: Bytes of each side of a diff.
DIFF_LIMIT = 256 << 10
#: Lines of each side of a diff.
DIFF_MAX_LINES = 5000
#: A zip is listed (its directory sits at its end, so it is read whole) up to this size.
ZIP_LIMIT = 32 << 20
#: Entries of a zip listed at most (its directory can name far more than a page can show).
ZIP_MAX_ENTRIES = 2000
#: A zip entry is downloaded on its own up to this size, inflated; a bigger one only inside
#: the whole zip (so a bomb is never inflated whole).
ENTRY_DOWNLOAD_LIMIT = 64 << 20
#: Images bigger than this are offered as a download only.
IMAGE_LIMIT = 20 << 20
#: Nodes of a JSON tree rendered at most.
JSON_MAX_NODES = 5000

#: Image types browsers render without running anything (SVG is not one of them).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
_EXT_VIEWER: dict[str, Viewer] = {
    ".md": "markdown", ".markdown": "markdown", ".json": "json", ".svg": "svg", ".zip": "zip",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".webp": "image", ".gif": "image",
    ".log": "text", ".txt": "text", ".csv": "text", ".yaml": "text", ".yml": "text",
    ".html": "text", ".htm": "text", ".xml": "text", ".py": "text", ".sh": "text",
}  # fmt: skip


def base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def viewer_for(name: str, content_type: str = "", kind: str = "") -> Viewer:
    """Pick the viewer by content type, then by the name's extension, then by kind. HTML is
    shown as its source, never rendered."""
    ctype = base_type(content_type)
    ext = posixpath.splitext(name.lower())[1]
    if ctype in ("text/markdown", "text/x-markdown"):
        return "markdown"
    if ctype == "application/json" or ctype.endswith("+json") or kind == "json":
        return "json"
    if ctype in IMAGE_TYPES:
        return "image"
    if ctype == "image/svg+xml":
        return "svg"
    if ctype in ("application/zip", "application/x-zip-compressed"):
        return "zip"
    if ext in _EXT_VIEWER:
        return _EXT_VIEWER[ext]
    if ctype.startswith("text/") or kind in ("log", "text"):
        return "text"
    return "binary"


def content_type_of(name: str) -> str:
    """The content type of a zip entry, by its name."""
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def as_text(data: bytes) -> str | None:
    """UTF-8 text, or None for binary (a NUL byte, or not UTF-8 at all). A multi-byte
    character cut by a size limit at the very end does not make text binary."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start >= len(data) - 3:
            return data[: e.start].decode("utf-8", "replace")
        return None


# --- markdown --------------------------------------------------------------------------------

#: Schemes a rendered link may use; anything else (javascript:, data:, vbscript:, file:)
#: becomes plain text.
SAFE_SCHEMES = ("http://", "https://", "mailto:", "#")


def _is_relative(url: str) -> bool:
    return ":" not in url.split("/", 1)[0] and not url.startswith(("/", "#", "//"))


class _SafeRenderer(RendererHTML):
    """markdown-it's HTML renderer with links and images pinned down: relative targets point
    at the run's other artifacts, external links open with no referrer, external images
    (which the CSP would block anyway) become links."""

    def __init__(self, parser: Any = None) -> None:
        super().__init__(parser)
        self.resolve: Callable[[str, bool], str | None] = lambda _url, _image: None

    def link_open(self, tokens: Sequence[Token], idx: int, options: OptionsDict,
                  env: EnvType) -> str:  # fmt: skip
        token = tokens[idx]
        href = str(token.attrGet("href") or "")
        if _is_relative(href):
            token.attrSet("href", self.resolve(href, False) or "#")
        elif not href.startswith(SAFE_SCHEMES):
            token.attrSet("href", "#")
        else:
            token.attrSet("rel", "noopener noreferrer nofollow")
        return self.renderToken(tokens, idx, options, env)

    def _aligned(self, tokens: Sequence[Token], idx: int, options: OptionsDict,
                 env: EnvType) -> str:  # fmt: skip
        """Table alignment as a class: markdown-it writes it as a style attribute, which the
        Content-Security-Policy (rightly) refuses."""
        token = tokens[idx]
        style = str(token.attrGet("style") or "")
        if style.startswith("text-align:"):
            token.attrs.pop("style", None)
            token.attrSet("class", "align-" + style.split(":", 1)[1].strip())
        return self.renderToken(tokens, idx, options, env)

    th_open = td_open = _aligned

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict,
              env: EnvType) -> str:  # fmt: skip
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        alt = self.renderInlineAsText(token.children or [], options, env)
        local = self.resolve(src, True) if _is_relative(src) else None
        if local is not None:
            token.attrSet("src", local)
            token.attrSet("loading", "lazy")
            return super().image(tokens, idx, options, env)
        label = escape(alt or src)
        if src.startswith(("http://", "https://")):
            return str(Markup('<a href="{}" rel="noopener noreferrer nofollow">[image: {}]</a>')
                       .format(src, label))  # fmt: skip
        return str(Markup("[image: {}]").format(label))


def markdown(text: str, resolve: Callable[[str, bool], str | None] | None = None) -> Markup:
    """CommonMark (+ tables, strikethrough) with raw HTML disabled: ``<script>`` or
    ``<img onerror>`` in an artifact shows as text. ``resolve(url, is_image)`` maps a relative
    link or image to a URL of another artifact of the run (None: there is none)."""
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False},
                    renderer_cls=_SafeRenderer)  # fmt: skip
    md.enable(["table", "strikethrough"])
    renderer = md.renderer
    assert isinstance(renderer, _SafeRenderer)
    renderer.resolve = resolve or (lambda _url, _image: None)
    return Markup(md.render(text))


# --- JSON ------------------------------------------------------------------------------------


def json_tree(value: Any, *, max_nodes: int = JSON_MAX_NODES) -> Markup:
    """A collapsible tree (``<details>``, no script needed) with each value classed by type
    for highlighting. Past ``max_nodes`` the rest is cut with a note."""
    budget = [max_nodes]
    return Markup('<div class="json-tree">{}</div>').format(_node(value, None, budget, 0))


def _scalar(value: Any) -> Markup:
    if value is None:
        return Markup('<span class="j-null">null</span>')
    if isinstance(value, bool):
        return Markup('<span class="j-bool">{}</span>').format("true" if value else "false")
    if isinstance(value, int | float):
        return Markup('<span class="j-num">{}</span>').format(json.dumps(value))
    return Markup('<span class="j-str">{}</span>').format(json.dumps(value, ensure_ascii=False))


def _key(key: str | int | None) -> Markup:
    if key is None:
        return Markup("")
    if isinstance(key, int):
        return Markup('<span class="j-idx">{}</span>: ').format(key)
    return Markup('<span class="j-key">{}</span>: ').format(json.dumps(key, ensure_ascii=False))


def _node(value: Any, key: str | int | None, budget: list[int], depth: int) -> Markup:
    budget[0] -= 1
    if budget[0] < 0:
        return Markup('<div class="j-cut">… (cut: more than {} values)</div>').format(
            JSON_MAX_NODES
        )
    if not isinstance(value, dict | list):
        return Markup('<div class="j-leaf">{}{}</div>').format(_key(key), _scalar(value))
    items: Iterator[tuple[str | int, Any]] = (
        iter(value.items()) if isinstance(value, dict) else iter(enumerate(value))
    )
    opener, closer = ("{", "}") if isinstance(value, dict) else ("[", "]")
    count = len(value)
    if count == 0:
        return Markup('<div class="j-leaf">{}<span class="j-punct">{}{}</span></div>').format(
            _key(key), opener, closer
        )
    children = []
    for k, v in items:
        if budget[0] < 0:
            break
        children.append(_node(v, k, budget, depth + 1))
    noun = "keys" if isinstance(value, dict) else "items"
    return Markup(
        '<details class="j-node"{}><summary>{}<span class="j-punct">{}</span>'
        '<span class="j-count"> {} {}</span></summary>{}<div class="j-punct">{}</div></details>'
    ).format(
        Markup(" open") if depth < 3 else Markup(""),
        _key(key),
        opener,
        count,
        noun,
        Markup("").join(children),
        closer,
    )


# --- zip -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipEntry:
    name: str
    size: int
    compressed: int
    is_dir: bool

    @property
    def viewer(self) -> Viewer:
        return viewer_for(self.name, content_type_of(self.name))


class ZipEntryProblem(Exception):
    """An entry that is there but cannot be read: encrypted, an unknown compression method,
    corrupt data (a hostile or broken archive)."""


def zip_entries(data: bytes, limit: int = ZIP_MAX_ENTRIES) -> tuple[list[ZipEntry], int]:
    """The archive's first ``limit`` entries and how many it has (raises
    ``zipfile.BadZipFile`` for anything that is not a zip)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos = z.infolist()
        shown = [ZipEntry(i.filename, i.file_size, i.compress_size, i.is_dir())
                 for i in infos[:limit]]  # fmt: skip
        return shown, len(infos)


def zip_names(data: bytes) -> set[str]:
    """Every entry's name (what a markdown entry's relative links may point at)."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return set(z.namelist())


def zip_read(data: bytes, entry: str, limit: int) -> tuple[bytes, int]:
    """The first ``limit`` bytes of one entry, and the size its header claims (``KeyError``:
    no entry; ``ZipEntryProblem``: it cannot be read). Inflated in pieces, so a zip bomb is
    never inflated past the limit."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo(entry)
        try:
            with z.open(info) as f:
                return f.read(limit), info.file_size
        except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, EOFError,
                OSError, ValueError) as e:  # fmt: skip
            raise ZipEntryProblem(f"cannot read {entry} in the archive: {e}") from None


# --- diff ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitRow:
    tag: str  # equal | replace | delete | insert
    left_no: int | None
    left: str | None
    right_no: int | None
    right: str | None


def split_diff(a: list[str], b: list[str], context: int = 3) -> list[SplitRow | None]:
    """Side-by-side rows of the changes with ``context`` equal lines around them; None marks
    a run of unchanged lines left out."""
    out: list[SplitRow | None] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        if out:
            out.append(None)
        for tag, i1, i2, j1, j2 in group:
            left, right = list(range(i1, i2)), list(range(j1, j2))
            for k in range(max(len(left), len(right))):
                li = left[k] if k < len(left) else None
                ri = right[k] if k < len(right) else None
                out.append(
                    SplitRow(
                        tag,
                        None if li is None else li + 1,
                        None if li is None else a[li],
                        None if ri is None else ri + 1,
                        None if ri is None else b[ri],
                    )
                )
    return out


def unified_diff(a: list[str], b: list[str], a_name: str, b_name: str) -> list[tuple[str, str]]:
    """``(class, line)`` pairs of a unified diff: head, hunk, add, del or ctx."""
    out: list[tuple[str, str]] = []
    for line in difflib.unified_diff(a, b, a_name, b_name, lineterm="", n=3):
        if line.startswith(("---", "+++")):
            cls = "head"
        elif line.startswith("@@"):
            cls = "hunk"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        else:
            cls = "ctx"
        out.append((cls, line))
    return out


def diff_lines(data: bytes) -> list[str] | None:
    """An artifact as lines for a diff (JSON pretty-printed so key order and spacing do not
    show as changes); None for binary."""
    text = as_text(data[:DIFF_LIMIT])
    if text is None:
        return None
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
    return text.splitlines()[:DIFF_MAX_LINES]


def hexdump(data: bytes, width: int = 16) -> list[tuple[str, str, str]]:
    """``(offset, hex, ascii)`` rows of a binary file's first bytes."""
    rows = []
    for off in range(0, len(data), width):
        chunk = data[off : off + width]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        rows.append((f"{off:08x}", " ".join(f"{b:02x}" for b in chunk), text))
    return rows
