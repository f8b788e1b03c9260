"""A second, independent server of ``get_session_state``, written from the reference alone.

It shares no code with ``tencent_desk`` (not its simulator, not its UserSig module)
and uses another HTTP stack (aiohttp.web, not uvicorn): a benchmark against it shows the
client is not tuned to the quirks of our own simulator. Its frequency limit is read the
other common way: fixed calendar seconds that count every arrival, refused ones too.

  python benchmarks/independent_api.py --port 8123 --rate-limit 1000 --latency-ms 80

Credentials come from SOURCES__TENCENT_DESK__SDKAPPID / __IDENTIFIER / __SECRET_KEY.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import time
import zlib

from aiohttp import web

PATH = "/v4/desk_http_svc/get_session_state"
# The spellings of both the English and the Chinese pages.
STATES = ("Chatbot", "Queuing", "Queueing", "WaitingForAgentAnswering", "Agent",
          "Not in session", "NotInSession")


def usersig_error(sig: str, sdkappid: int, identifier: str, key: str) -> int:
    """0 when ``sig`` is a valid TLSSigAPIv2 UserSig, else the documented ErrorCode."""
    try:
        raw = base64.b64decode(sig.translate(str.maketrans("*-_", "+/=")))
        doc = json.loads(zlib.decompress(raw))
        if str(doc["TLS.identifier"]) != identifier:
            return 70013
        if int(doc["TLS.sdkappid"]) != sdkappid:
            return 70014
        if time.time() > int(doc["TLS.time"]) + int(doc["TLS.expire"]):
            return 70001
        text = "".join(f"TLS.{k}:{doc['TLS.' + k]}\n"
                       for k in ("identifier", "sdkappid", "time", "expire"))
        digest = hmac.new(key.encode(), text.encode(), hashlib.sha256).digest()
        ok = hmac.compare_digest(base64.b64encode(digest).decode(), doc["TLS.sig"])
        return 0 if ok else 70009
    except Exception:  # anything that does not decode is malformed
        return 70003


class Api:
    def __init__(self, sdkappid: int, identifier: str, key: str, rate_limit: int,
                 latency_s: float) -> None:
        self.sdkappid, self.identifier, self.key = sdkappid, identifier, key
        self.rate_limit, self.latency_s = rate_limit, latency_s
        self.second, self.count = 0, 0
        self.ids = itertools.count(1)
        self.sigs: dict[str, int] = {}  # verified UserSigs (verifying is the costly part)

    def over_limit(self) -> bool:
        second = int(time.time())
        if second != self.second:
            self.second, self.count = second, 0
        self.count += 1  # refused calls count too
        return bool(self.rate_limit) and self.count > self.rate_limit

    async def handle(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("contenttype") != "json" or "random" not in q:
            return self.error(60002, "invalid url")
        if q.get("sdkappid") != str(self.sdkappid):
            return self.error(60006, "invalid sdkappid")
        if q.get("identifier") != self.identifier:
            return self.error(60010, "identifier is not an app administrator")
        sig = q.get("usersig", "")
        code = self.sigs.get(sig)
        if code is None:
            code = self.sigs[sig] = usersig_error(sig, self.sdkappid, self.identifier,
                                                  self.key)
        if code:
            return self.error(code, "usersig check failed")
        if self.over_limit():
            return self.error(60007, "API call frequency over limit")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self.error(60003, "invalid json")
        await asyncio.sleep(self.latency_s)
        session = body.get("SessionId") or ""
        if not session and not (body.get("ClientUserId") and body.get("CustomerServiceId")):
            return self.error(141004, "invalid parameter")
        key = session or f"{body['ClientUserId']}|{body['CustomerServiceId']}"
        h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big")
        if h % 10 == 0:
            return self.error(141005, "session does not exist or has ended")
        state = STATES[h % len(STATES)]
        agent = f"agent{h % 7}@desk" if state in ("Agent", "WaitingForAgentAnswering") else ""
        return self.answer({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0,
                            "SessionId": session or f"s-{h:08x}", "CurrentState": state,
                            "AgentId": agent})

    def error(self, code: int, info: str) -> web.Response:
        return self.answer({"ActionStatus": "FAIL", "ErrorCode": code, "ErrorInfo": info})

    def answer(self, doc: dict) -> web.Response:
        doc["RequestId"] = f"Id-{next(self.ids):x}-O-Seq-1"
        return web.json_response(doc)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate-limit", type=int, default=0, help="calls per calendar second")
    p.add_argument("--latency-ms", type=float, default=0.0)
    args = p.parse_args()
    api = Api(int(os.environ["SOURCES__TENCENT_DESK__SDKAPPID"]),
              os.environ["SOURCES__TENCENT_DESK__IDENTIFIER"],
              os.environ["SOURCES__TENCENT_DESK__SECRET_KEY"], args.rate_limit,
              args.latency_ms / 1000)
    app = web.Application()
    app.router.add_post(PATH, api.handle)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
