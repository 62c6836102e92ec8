"""Phoenix channel frames: how a Realtime message is put on the wire, by protocol version.

The socket's ``vsn`` query parameter picks the serializer, as on the real server (which
accepts both, ``realtime_web/endpoint.ex``):

- ``1.0.0`` (realtime-py 2.34.1): every frame is one JSON object
  ``{"topic", "event", "payload", "ref", "join_ref"}``.
- ``2.0.0`` (supabase-js' default): every text frame is a JSON array
  ``[join_ref, ref, topic, event, payload]`` (``Phoenix.Socket.V2.JSONSerializer``); messages the
  server pushes outside a reply (changes, ``system``) carry the channel's ``join_ref``, or
  ``null`` for a broadcast. Clients may also send binary frames: supabase-js encodes a
  broadcast whose payload has an ``event`` as a "user broadcast push" (kind 3: one byte each
  for the lengths of join_ref, ref, topic, event and metadata, one for the payload encoding,
  then those strings and the payload). The stand-in decodes its header so the push can be
  acknowledged like any other; broadcast itself is not implemented.

Inside the stand-in a message is always the 1.0.0 shape (a dict with those five keys).
"""

from __future__ import annotations

import json
from typing import Any

Message = dict[str, Any]

#: Binary frame kinds of the 2.0.0 protocol that a client sends.
_USER_BROADCAST_PUSH = 3


class Serializer:
    """Phoenix ``vsn=1.0.0``: every frame is one JSON object."""

    vsn = "1.0.0"

    def encode(self, message: Message) -> str:
        return json.dumps(message)

    def decode(self, frame: str | bytes) -> Message | None:
        """The message in ``frame``, or None for a frame that is not one (ignored)."""
        if not isinstance(frame, str):
            return None
        try:
            msg = json.loads(frame)
        except ValueError:
            return None
        return msg if isinstance(msg, dict) else None


class SerializerV2(Serializer):
    """Phoenix ``vsn=2.0.0``: ``[join_ref, ref, topic, event, payload]`` arrays."""

    vsn = "2.0.0"

    def encode(self, message: Message) -> str:
        return json.dumps([message.get("join_ref"), message.get("ref"), message.get("topic"),
                           message.get("event"), message.get("payload")])

    def decode(self, frame: str | bytes) -> Message | None:
        if isinstance(frame, bytes):
            return _decode_binary(frame)
        try:
            parts = json.loads(frame)
        except ValueError:
            return None
        if not isinstance(parts, list) or len(parts) < 5:
            return None
        join_ref, ref, topic, event, payload = parts[:5]
        return {"join_ref": join_ref, "ref": ref, "topic": topic, "event": event,
                "payload": payload}


def _decode_binary(frame: bytes) -> Message | None:
    """A client's binary user broadcast push (realtime-js ``_encodeUserBroadcastPush``)."""
    if len(frame) < 7 or frame[0] != _USER_BROADCAST_PUSH:
        return None
    sizes = frame[1:6]  # join_ref, ref, topic, user event, metadata
    encoding = frame[6]
    offset = 7
    fields: list[str] = []
    for size in sizes:
        fields.append(frame[offset:offset + size].decode(errors="replace"))
        offset += size
    join_ref, ref, topic, user_event, _metadata = fields
    body = frame[offset:]
    payload: Any = body.decode(errors="replace")
    if encoding == 1:
        try:
            payload = json.loads(payload)
        except ValueError:
            return None
    return {"join_ref": join_ref or None, "ref": ref or None, "topic": topic,
            "event": "broadcast",
            "payload": {"type": "broadcast", "event": user_event, "payload": payload}}


#: ``vsn`` query parameter → serializer (a missing ``vsn`` means 1.0.0).
SERIALIZERS: dict[str, type[Serializer]] = {"1.0.0": Serializer, "2.0.0": SerializerV2}
