"""Worker: what other ways of doing the same job achieve against the same simulator.

``python benchmarks/bench_peers.py '{"peer": "loop"|"rest_api", "url": ..., ...}'`` prints
one JSON line. Run by run.py in a fresh process per peer.

* ``loop``: a plain sequential httpx loop, each request signed (usersig.generate), a fresh
  random, one POST; what a script written in ten minutes does.
* ``rest_api``: dlt's own rest_api source as a dlt user would configure it: the seed rows as
  a parent resource, a child resource POSTing ``{"SessionId": ...}`` per parent row, the
  signature in a small custom auth class (the API wants a fresh ``random`` per request);
  optionally ``parallelized``.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from common import IDENTIFIER, OUT, SDKAPPID, SECRET_KEY

API_PATH = "v4/desk_http_svc/get_session_state"


def peer_loop(args: dict, ids: list[str]) -> dict:
    import httpx
    from tencent_desk.api import usersig

    codes: Counter[int] = Counter()
    url = f"{args['url']}/{API_PATH}"
    c0, t0 = time.process_time(), time.perf_counter()
    with httpx.Client(timeout=10.0) as http:
        for sid in ids:
            sig = usersig.generate(SDKAPPID, IDENTIFIER, SECRET_KEY)
            params = {"sdkappid": SDKAPPID, "identifier": IDENTIFIER, "usersig": sig,
                      "random": random.getrandbits(32), "contenttype": "json"}
            doc = http.post(url, params=params, json={"SessionId": sid}).json()
            codes[doc.get("ErrorCode")] += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = sum(codes.values())
    return {"rows": n, "fetch_s": wall, "fetch_cpu_s": cpu, "codes": dict(codes),
            "throttled": sum(v for k, v in codes.items() if 60000 <= (k or 0) < 61000)}


def peer_rest_api(args: dict, ids: list[str]) -> dict:
    import dlt
    from dlt.common.configuration import configspec
    from dlt.sources.helpers.rest_client.auth import AuthConfigBase
    from dlt.sources.rest_api import rest_api_source
    from tencent_desk.api import usersig

    @configspec
    class DeskUserSigAuth(AuthConfigBase):
        """Adds the admin's UserSig and a fresh random to every request's query."""

        sdkappid: int = None
        identifier: str = None
        secret_key: str = None

        def __call__(self, request):  # type: ignore[no-untyped-def]
            if not getattr(self, "_sig", None):
                self._sig = usersig.generate(self.sdkappid, self.identifier, self.secret_key)
            request.prepare_url(request.url, {"usersig": self._sig,
                                              "random": str(random.getrandbits(32))})
            return request

    @dlt.resource(name="seeds", selected=False)
    def seeds():  # type: ignore[no-untyped-def]
        yield [{"session_id": s} for s in ids]

    parallel = bool(args.get("parallelized"))
    source = rest_api_source({
        "client": {
            "base_url": args["url"] + "/",
            "auth": DeskUserSigAuth(sdkappid=SDKAPPID, identifier=IDENTIFIER,
                                    secret_key=SECRET_KEY),
            "paginator": "single_page",
        },
        "resources": [
            seeds,
            {
                "name": "session_states",
                "endpoint": {
                    "path": API_PATH,
                    "method": "POST",
                    "params": {"sdkappid": SDKAPPID, "identifier": IDENTIFIER,
                               "contenttype": "json"},
                    "json": {"SessionId": "{resources.seeds.session_id}"},
                    "data_selector": "$",
                },
                "include_from_parent": ["session_id"],
                "parallelized": parallel,
            },
        ],
    }, name="desk_rest_api")
    work = OUT / f"rest_api_{'par' if parallel else 'seq'}"
    shutil.rmtree(work, ignore_errors=True)  # a fresh pipeline and database every time
    db = work / "rest_api.duckdb"
    pipeline = dlt.pipeline(pipeline_name=f"desk_rest_api_{'par' if parallel else 'seq'}",
                            destination=dlt.destinations.duckdb(str(db)),
                            dataset_name="desk", pipelines_dir=str(work / "pipelines"))
    c0, t0 = time.process_time(), time.perf_counter()
    pipeline.extract(source)
    t1 = time.perf_counter()
    pipeline.normalize()
    pipeline.load()
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT error_code, count(*) FROM session_states GROUP BY 1")
    codes = {int(k) if k is not None else None: int(v) for k, v in rows}
    return {"rows": sum(codes.values()), "fetch_s": t1 - t0, "total_s": t2 - t0,
            "cpu_s": cpu, "codes": {str(k): v for k, v in codes.items()},
            "throttled": sum(v for k, v in codes.items() if 60000 <= (k or 0) < 61000)}


def main() -> None:
    args = json.loads(sys.argv[1])
    ids = [line.strip() for line in Path(args["ids_file"]).read_text().splitlines()[1:]
           if line.strip()][: args["rows"]]
    peer = {"loop": peer_loop, "rest_api": peer_rest_api}[args["peer"]]
    print(json.dumps(peer(args, ids)))


if __name__ == "__main__":
    main()
