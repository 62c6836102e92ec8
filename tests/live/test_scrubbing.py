"""What the live suite writes into a cassette carries no key, no JWT and not the project's host
(runs in the default suite: no network, no cassette)."""

from __future__ import annotations

import json

from vcr.request import Request

from tests.live.conftest import FILTERED_HEADERS, LIVE_HOST, scrub_request, scrub_response

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
SECRET = "sb_secret_AbC123_realKEY-xyz"


def test_requests_lose_the_host_and_every_secret() -> None:
    req = Request(
        "POST",
        f"https://abcdefghijkl.supabase.co/storage/v1/object/upload/sign/b/x.txt?token={JWT}",
        json.dumps({"access_token": JWT, "key": SECRET}).encode(),
        {"apikey": SECRET, "Authorization": f"Bearer {JWT}"},
    )
    out = scrub_request(req)
    assert out.host == LIVE_HOST and "abcdefghijkl" not in out.uri
    assert JWT not in out.uri and "token=<redacted>" in out.uri
    assert JWT.encode() not in out.body and SECRET.encode() not in out.body


def test_responses_lose_tokens_and_auth_headers() -> None:
    body = json.dumps({"url": f"/object/upload/sign/b/x.txt?token={JWT}", "token": JWT}).encode()
    response = {"status": {"code": 200}, "headers": {"Set-Cookie": ["s=1"], "Content-Range":
                ["0-999/1500"]}, "body": {"string": body}}
    out = scrub_response(response)
    assert JWT.encode() not in out["body"]["string"]
    assert "Set-Cookie" not in out["headers"] and out["headers"]["Content-Range"] == ["0-999/1500"]


def test_the_request_headers_that_carry_keys_are_filtered() -> None:
    assert {"apikey", "authorization", "cookie"} <= set(FILTERED_HEADERS)
