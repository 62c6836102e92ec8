"""The artifact viewer through the app, on both transports: each viewer, hostile content that
stays inert, size limits, zip entries, downloads (through the app locally, a signed Storage
URL on Supabase), diffs across attempts and runs, and RLS on all of it."""

from __future__ import annotations

import io
import re
import zipfile
from urllib.parse import quote

from pulser_ops import Client
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import claimed, fetch, new_id, template

from .helpers import board

HOSTILE_MD = """# Report <script>alert('md')</script>

<img src=x onerror="alert('img')">

[click me](javascript:alert('link')) and [fine](https://example.com)

<a href="javascript:alert(2)">raw link</a> ![shot](shot.png)
"""
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f"
    b"\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes/readme.md", "# Inside\n\n<script>alert(1)</script>")
        z.writestr("data.json", '{"ok": true}')
    return buf.getvalue()


def _url(run_id: object, name: str, attempt: int = 1, raw: bool = False) -> str:
    kind = "raw" if raw else "artifacts"
    return f"/runs/{run_id}/{kind}/{quote(name)}?attempt={attempt}"


async def test_markdown_renders_and_hostile_markup_stays_text(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    client.artifacts.put(run.id, "report.md", HOSTILE_MD, attempt=1)
    client.artifacts.put(run.id, "shot.png", PNG, content_type="image/png", attempt=1)
    async with board(env) as b:
        page = await b.get(_url(run.id, "report.md"))
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    article = html[html.index('id="markdown"') : html.index("</article>")]
    assert "<h1>Report &lt;script&gt;alert(" in article  # shown as text
    tags = re.findall(r"<[a-z][^>]*>", article)  # the real tags the browser would build
    assert not [t for t in tags if "script" in t or "onerror" in t or "javascript:" in t]
    assert "&lt;img src=x onerror=" in article and "&lt;a href=&quot;javascript:" in article
    assert 'href="https://example.com" rel="noopener noreferrer nofollow"' in article
    # the relative image points at the run's own artifact, served through the app
    assert f'src="/runs/{run.id}/raw/shot.png?attempt=1"' in article


async def test_json_text_image_and_binary_viewers(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    client.artifacts.put(run.id, "out.json", '{"b": [1, "<two>"], "a": null}', attempt=1)
    client.artifacts.put(run.id, "run.log", "first\nsecond <b>\nthird\n", kind="log", attempt=1)
    client.artifacts.put(run.id, "shot.png", PNG, content_type="image/png", attempt=1)
    client.artifacts.put(run.id, "blob.bin", b"\x00\x01binary", attempt=1)
    client.artifacts.put(run.id, "pic.svg", "<svg><script>alert(1)</script></svg>",
                         content_type="image/svg+xml", attempt=1)  # fmt: skip
    async with board(env) as b:
        js = (await b.get(_url(run.id, "out.json"))).text
        assert 'class="json-tree"' in js and '<span class="j-key">&#34;b&#34;</span>' in js
        assert '<span class="j-str">&#34;&lt;two&gt;&#34;</span>' in js
        log = (await b.get(_url(run.id, "run.log"))).text
        assert '<tr id="L2"><td class="ln"><a href="#L2">2</a></td><td class="lt">second &lt;b&gt;' in log
        img = (await b.get(_url(run.id, "shot.png"))).text
        assert f'id="artifact-image" class="zoomable fit" src="/runs/{run.id}/raw/shot.png?attempt=1"' in img
        raw = await b.get(_url(run.id, "shot.png", raw=True))
        assert raw.status_code == 200 and raw.content == PNG
        assert raw.headers["content-type"] == "image/png"
        assert "sandbox" in raw.headers["content-security-policy"]
        assert raw.headers["x-content-type-options"] == "nosniff"
        binary = (await b.get(_url(run.id, "blob.bin"))).text
        assert "00000000  00 01 62 69 6e 61 72 79" in binary
        svg = await b.get(_url(run.id, "pic.svg"))
        assert "offered as a download only" in svg.text and "&lt;script&gt;" in svg.text
        # SVG and everything but plain images: never served inline, only as a download
        svg_raw = await b.get(_url(run.id, "pic.svg", raw=True))
        assert svg_raw.headers["content-disposition"].startswith("attachment")
        assert svg_raw.headers["content-type"] == "application/octet-stream"


async def test_downloads_go_through_the_app_locally_and_to_signed_urls_on_supabase(
    env: Env, client: Client
) -> None:
    template(client)
    run = claimed(client)
    big = b"x" * 70_000
    client.artifacts.put(run.id, "dir/data.bin", big, attempt=1)
    client.artifacts.put(run.id, "small.txt", "inline text", attempt=1)
    async with board(env) as b:
        got = await b.get(_url(run.id, "dir/data.bin", raw=True) + "&download=1")
        small = await b.get(_url(run.id, "small.txt", raw=True) + "&download=1")
    assert small.status_code == 200 and small.content == b"inline text"
    assert small.headers["content-disposition"].startswith('attachment; filename="small.txt"')
    if env.kind == "postgres":
        assert got.status_code == 200 and got.content == big
        assert 'filename="data.bin"' in got.headers["content-disposition"]
    else:
        assert got.status_code == 303
        signed = got.headers["location"]
        assert "/storage/v1/object/sign/run-artifacts/" in signed and "token=" in signed
        assert fetch(signed) == big


async def test_a_huge_artifact_shows_its_start_and_a_download_link(
    env: Env, client: Client
) -> None:
    template(client)
    run = claimed(client)
    lines = "".join(f"line {i:07d}\n" for i in range(120_000))  # ~1.5 MB
    client.artifacts.put(run.id, "huge.log", lines, kind="log", attempt=1)
    async with board(env) as b:
        page = (await b.get(_url(run.id, "huge.log"))).text
    assert 'id="truncated"' in page and "Showing the first 1,048,576 bytes" in page
    assert "line 0000000" in page and "line 0119999" not in page


async def test_zip_lists_entries_each_viewable(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    client.artifacts.put(run.id, "bundle.zip", _zip(), content_type="application/zip", attempt=1)
    async with board(env) as b:
        listing = (await b.get(_url(run.id, "bundle.zip"))).text
        assert 'id="zip-entries"' in listing
        assert "notes/readme.md" in listing and "data.json" in listing
        entry = await b.get(_url(run.id, "bundle.zip") + "&entry=notes/readme.md")
        assert entry.status_code == 200
        assert "<h1>Inside</h1>" in entry.text and "<script>alert(1)" not in entry.text
        js = (await b.get(_url(run.id, "bundle.zip") + "&entry=data.json")).text
        assert 'class="json-tree"' in js
        assert (await b.get(_url(run.id, "bundle.zip") + "&entry=nope")).status_code == 404


def _hostile_zip() -> bytes:
    """Names and contents meant to break out: a path that climbs, markup in a name, script in
    an SVG and in HTML, a zip inside the zip, an entry that claims to be encrypted, and 70 MiB
    of zeros packed into a few kilobytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("../../etc/passwd", "root:x:0:0")
        z.writestr("<img src=x onerror=alert(1)>.md", "[x](javascript:alert(2)) <script>alert(3)</script>")
        z.writestr("evil.svg", '<svg onload="alert(4)"><script>alert(5)</script></svg>')
        z.writestr("page.html", "<script>alert(6)</script>")
        z.writestr("inner.zip", _zip())
        z.writestr("locked.txt", "secret")
        z.writestr("bomb.txt", b"\0" * (70 << 20))
    # locked.txt "encrypted": the flag set in its central directory record (offset 8), which
    # zipfile reads and then refuses the entry without a password
    data = bytearray(buf.getvalue())
    record = data.rindex(b"PK\x01\x02", 0, data.rindex(b"locked.txt"))
    data[record + 8] |= 0x1
    return bytes(data)


async def test_a_hostile_zip_stays_inert_and_is_never_inflated_whole(
    env: Env, client: Client
) -> None:
    template(client)
    run = claimed(client)
    data = _hostile_zip()
    assert len(data) < 200_000
    client.artifacts.put(run.id, "evil.zip", data, content_type="application/zip", attempt=1)
    zip_url = _url(run.id, "evil.zip")
    async with board(env) as b:
        listing = (await b.get(zip_url)).text
        assert "&lt;img src=x onerror=alert(1)&gt;.md" in listing and "<img src=x" not in listing
        assert "../../etc/passwd" in listing
        for entry, want in (
            ("<img src=x onerror=alert(1)>.md", "&lt;script&gt;alert(3)&lt;/script&gt;"),
            ("evil.svg", "offered as a download only"),
            ("page.html", "&lt;script&gt;alert(6)&lt;/script&gt;"),
            ("inner.zip", "the first bytes"),  # its bytes, not the outer archive's listing
            ("../../etc/passwd", "root:x:0:0"),  # a name inside the archive, nothing more
        ):
            page = await b.get(f"{zip_url}&entry={quote(entry)}")
            assert page.status_code == 200 and want in page.text, entry
            assert "<script>alert" not in page.text and 'href="javascript' not in page.text
        locked = await b.get(f"{zip_url}&entry=locked.txt")
        assert locked.status_code == 422 and "cannot read locked.txt" in locked.text
        bomb = await b.get(f"{zip_url}&entry=bomb.txt")
        assert bomb.status_code == 200 and 'id="truncated"' in bomb.text
        assert "Showing the first 1,048,576 bytes of 73,400,320" in bomb.text
        too_big = await b.get(_url(run.id, "evil.zip", raw=True) + "&entry=bomb.txt&download=1")
        assert too_big.status_code == 422 and "download evil.zip itself" in too_big.text
        svg = await b.get(_url(run.id, "evil.zip", raw=True) + "&entry=evil.svg")
        assert svg.headers["content-disposition"].startswith("attachment")
        assert svg.headers["content-type"] == "application/octet-stream"
        assert "sandbox" in svg.headers["content-security-policy"]
        page = await b.get(_url(run.id, "evil.zip", raw=True) + "&entry=page.html&download=1")
        assert page.status_code == 200 and page.content == b"<script>alert(6)</script>"
        assert page.headers["content-disposition"].startswith('attachment; filename="page.html"')


async def test_a_zip_of_many_entries_lists_the_first_ones(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(2500):
            z.writestr(f"f{i:04d}.txt", "")
    client.artifacts.put(run.id, "many.zip", buf.getvalue(), content_type="application/zip",
                         attempt=1)  # fmt: skip
    async with board(env) as b:
        listing = (await b.get(_url(run.id, "many.zip"))).text
    assert "f1999.txt" in listing and "f2000.txt" not in listing
    assert "Listing the first 2,000 of 2,500 entries" in listing


async def test_diff_of_one_name_across_attempts_and_across_runs(env: Env, client: Client) -> None:
    template(client, max_attempts=2)
    run = claimed(client)
    client.artifacts.put(run.id, "report.md", "# Report\nstatus: red\nsame\n", attempt=1)
    client.runs.complete(run.id, "w1", 1, "failed", error="flaky")
    client.runs.claim("w1", lanes=["A"])
    client.artifacts.put(run.id, "report.md", "# Report\nstatus: green\nsame\nnew line\n",
                         attempt=2)  # fmt: skip
    async with board(env) as b:
        detail = (await b.get(f"/runs/{run.id}")).text
        assert 'id="compare-two"' in detail
        page = (await b.get(_url(run.id, "report.md", 2))).text
        assert "attempt 1" in page and f'value="{run.id}:1:report.md"' in page
        split = await b.get(f"/diff?a={run.id}:1:report.md&b={run.id}:2:report.md")
        assert split.status_code == 200
        assert '<td class="lt l">status: red</td>' in split.text
        assert '<td class="lt r">status: green</td>' in split.text
        assert "+2" in split.text and "\u22121" in split.text  # minus sign
        unified = (await b.get(f"/diff?a={run.id}:1:report.md&b={run.id}:2:report.md"
                               "&view=unified")).text  # fmt: skip
        assert '<tr class="d-del"><td class="lt">-status: red</td>' in unified
        assert '<tr class="d-add"><td class="lt">+status: green</td>' in unified
        other = claimed(client)
        client.artifacts.put(other.id, "report.md", "# Report\nstatus: red\nsame\n", attempt=1)
        across = (await b.get(f"/diff?a={run.id}::report.md&b={other.id}::report.md")).text
        assert '<td class="lt l">status: green</td>' in across
        same = (await b.get(f"/diff?a={run.id}:1:report.md&b={other.id}:1:report.md")).text
        assert 'id="diff-same"' in same
        assert (await b.get(f"/diff?a={run.id}:1:report.md")).status_code == 422


async def test_an_operator_cannot_read_anothers_artifacts(env: Env, client: Client) -> None:
    template(client)
    me, them = Caller("operator", new_id()), Caller("operator", new_id())
    with env.client(them) as theirs:
        run = theirs.runs.create("hello", {"name": "theirs"})
    [held] = client.runs.claim("w1", lanes=["A"])
    client.artifacts.put(held.id, "secret.md", "# secret", attempt=1)
    client.artifacts.put(held.id, "secret.bin", b"\x00" * 70_000, attempt=1)
    async with board(env, me) as b:
        assert (await b.get(_url(run.id, "secret.md"))).status_code == 404
        assert (await b.get(_url(run.id, "secret.bin", raw=True) + "&download=1")).status_code \
            == 404
        assert (await b.get(f"/diff?a={run.id}:1:secret.md&b={run.id}:1:secret.md")).status_code \
            == 404


async def test_the_run_detail_previews_an_artifact_in_place(env: Env, client: Client) -> None:
    template(client)
    run = claimed(client)
    client.artifacts.put(run.id, "notes.md", "# In place <b>x</b>", attempt=1)
    async with board(env) as b:
        detail = (await b.get(f"/runs/{run.id}")).text
        assert 'id="artifact-preview"' in detail
        link = f'hx-get="/partials/runs/{run.id}/artifacts/notes.md?attempt=1"'
        assert link in detail
        refreshed = (await b.get(f"/partials/runs/{run.id}?preview=1")).text
        assert link in refreshed  # the live refresh keeps the preview links
        assert link not in (await b.get(f"/partials/runs/{run.id}")).text  # the board's drawer
        preview = await b.get(f"/partials/runs/{run.id}/artifacts/notes.md?attempt=1")
        assert preview.status_code == 200 and "<html" not in preview.text
        assert "<h1>In place &lt;b&gt;x&lt;/b&gt;</h1>" in preview.text
