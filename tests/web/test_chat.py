"""The Chat tab through the app, on both transports: sessions as conversations that persist,
commands that act through the SDK, live run cards and their ends, bad commands that change
nothing, completion, and RLS (an operator's own sessions only)."""

from __future__ import annotations

import re

from pulser_ops import Client
from tests.contract.conftest import Caller, Env
from tests.contract.helpers import new_id, template

from .helpers import board


def _bubbles(html: str) -> list[tuple[str, str]]:
    return [(k, re.sub(r"<[^>]+>", "", body).strip()) for k, body in re.findall(
        r'<div class="msg msg-(\w+)"[^>]*>.*?<div class="bubble[^"]*">(.*?)</div>', html, re.S)]  # fmt: skip


async def test_a_session_runs_steers_and_keeps_its_conversation(env: Env, client: Client) -> None:
    template(client, max_attempts=1)
    async with board(env) as b:
        made = await b.post("/chat/sessions", data={"title": "deploy <b>friday</b>"})
        assert made.status_code == 303
        url = made.headers["location"]
        sid = url.rsplit("/", 1)[1]
        page = (await b.get(url)).text
        assert "deploy &lt;b&gt;friday&lt;/b&gt;" in page and 'id="stream-empty"' in page
        sent = await b.post(f"/chat/{sid}/send", data={"text": "run hello name=ops lane=B"})
        assert sent.status_code == 200
        [run] = client.runs.list()
        assert (str(run.session_id), run.lane, run.params["name"]) == (sid, "B", "ops")
        html = sent.text
        assert _bubbles(html)[:2] == [
            ("command", "run hello name=ops lane=B"),
            ("reply", f"started hello as run {str(run.id)[:8]} on lane B"),
        ]
        card = html[html.index(f'id="runcard-{run.id}"'):]
        assert "#1" in card[:400] and "queued" in card[:1200]
        # the run works, then ends: the card follows and its end is in the stream
        [held] = client.runs.claim("w-chat", lanes=["B"])
        client.events.log(run.id, "greeting <everyone>")
        client.artifacts.put(run.id, "greeting.md", "# hi", attempt=1)
        b.room.reads.forget()  # what the change signal does (it may not have arrived yet)
        live = (await b.get(f"/partials/chat/{sid}")).text
        card = live[live.index(f'id="runcard-{run.id}"'):]
        assert "running" in card[:1500] and "greeting &lt;everyone&gt;" in card
        assert f"/runs/{run.id}/artifacts/greeting.md?attempt=1" in card
        client.runs.complete(run.id, "w-chat", held.attempt, "succeeded", result={"ok": True})
        b.room.reads.forget()
        ended = (await b.get(f"/partials/chat/{sid}")).text
        assert f'id="end-{run.id}"' in ended and "succeeded" in ended
        # other commands, each answered in the stream
        for text in ("status", "logs #1", "retry #1", "help"):
            assert (await b.post(f"/chat/{sid}/send", data={"text": text})).status_code == 200
    messages = client.sessions.messages(sid)
    said = [(m.kind, m.body.splitlines()[0] if m.body else "") for m in messages]
    assert said[0] == ("command", "run hello name=ops lane=B")
    assert ("reply", "greeting <everyone>") not in said  # logs carry their time
    logs = next(m for m in messages if m.data and m.data.get("logs"))
    assert "greeting <everyone>" in logs.body and logs.run_id == run.id
    assert logs.body.splitlines()[-1].endswith("[succeeded] succeeded on attempt 1")
    rerun = [r for r in client.runs.list() if r.id != run.id]
    assert len(rerun) == 1 and str(rerun[0].session_id) == sid
    # reopened (another browser, another server): the same conversation
    async with board(env) as other:
        again = (await other.get(f"/chat/{sid}")).text
    assert [k for k, _ in _bubbles(again)][:2] == ["command", "reply"]
    assert again.count('class="msg msg-command"') == 5


async def test_bad_commands_get_an_answer_and_change_nothing(env: Env, client: Client) -> None:
    template(client)
    s = client.sessions.create("x")
    async with board(env) as b:
        before = env.state()
        cases = {
            "deploy prod": "unknown command 'deploy'",
            "run nope": "unknown template 'nope' (templates: hello)",
            "run hello": "invalid params for template hello: params.name: is required\n"
                         "usage: run hello name=<string> [count=<integer>]",
            "run hello name=x lane=Z": "lane must be one of A, B, C, D",
            "cancel #4": "this session has no run #4 (it has 0)",
            f"cancel {new_id()}": "not_found: run",
            'run hello name="open': "close your quotes",
        }
        for text in cases:
            got = await b.post(f"/chat/{s.id}/send", data={"text": text})
            assert got.status_code == 200
            assert (got.text.count('class="msg msg-error"'), text) == (
                list(cases).index(text) + 1, text)
        assert (await b.post(f"/chat/{s.id}/send", data={"text": "  "})).status_code == 422
    after = env.state()
    assert after["public.runs"] == before["public.runs"]
    errors = [m.body for m in client.sessions.messages(s.id) if m.kind == "error"]
    for (_, answer), body in zip(cases.items(), errors, strict=True):
        assert answer in body, (answer, body)


async def test_completion_offers_templates_params_and_runs(env: Env, client: Client) -> None:
    template(client)
    s = client.sessions.create("x")
    run = client.runs.create("hello", {"name": "x"}, session_id=s.id)
    async with board(env) as b:
        got = (await b.get(f"/chat/{s.id}/complete", params={"text": "run he"})).json()
        assert got == [{"text": "run hello ", "label": "hello", "detail": "2 params"}]
        params = (await b.get(f"/chat/{s.id}/complete", params={"text": "run hello "})).json()
        assert [x["text"] for x in params] == ["run hello name=", "run hello count=",
                                               "run hello lane=", "run hello priority="]
        runs = (await b.get(f"/chat/{s.id}/complete", params={"text": "cancel "})).json()
        assert runs[0]["text"] == f"cancel {str(run.id)[:8]} "


async def test_an_operator_sees_and_writes_only_their_own_sessions(
    env: Env, client: Client
) -> None:
    template(client)
    me, them = Caller("operator", new_id()), Caller("operator", new_id())
    with env.client(them) as theirs:
        private = theirs.sessions.create("theirs")
        theirs.sessions.post(private.id, [{"kind": "command", "body": "secret plan"}])
    async with board(env, me) as b:
        mine = (await b.post("/chat/sessions", data={"title": "mine"})).headers["location"]
        listing = (await b.get("/chat")).text
        assert "mine" in listing and "theirs" not in listing
        assert (await b.get(f"/chat/{private.id}")).status_code == 404
        assert "secret plan" not in (await b.get(f"/partials/chat/{private.id}")).text
        refused = await b.post(f"/chat/{private.id}/send", data={"text": "run hello name=x"})
        assert refused.status_code == 404  # another's session is not found, as a missing one
        assert (await b.post(f"{mine}/send", data={"text": "run hello name=me"})).status_code == 200
    assert len(client.sessions.messages(private.id)) == 1
    # the refused command enqueued nothing in their session
    assert [r.params["name"] for r in client.runs.list()] == ["me"]
    async with board(env, Caller("admin", new_id())) as b:
        assert "secret plan" in (await b.get(f"/chat/{private.id}")).text
