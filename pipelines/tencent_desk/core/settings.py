"""Constants of the Desk REST API and of this source's defaults."""

API_PATH = "v4/desk_http_svc/get_session_state"

# region name -> (main domain, backup domain), from Tencent's REST API introduction.
REGIONS: dict[str, tuple[str, str]] = {
    "china": ("console.tim.qq.com", "adminapi.my-imcloud.com"),
    "singapore": ("adminapisgp.im.qcloud.com", "adminapisgp.my-imcloud.com"),
    "seoul": ("adminapikr.im.qcloud.com", "adminapikr.my-imcloud.com"),
    "tokyo": ("adminapijpn.im.qcloud.com", "adminapijpn.my-imcloud.com"),
    "frankfurt": ("adminapiger.im.qcloud.com", "adminapiger.my-imcloud.com"),
    "silicon_valley": ("adminapiusa.im.qcloud.com", "adminapiusa.my-imcloud.com"),
    "jakarta": ("adminapiidn.im.qcloud.com", "adminapiidn.my-imcloud.com"),
    "mumbai": ("adminapiind.im.qcloud.com", "adminapiind.my-imcloud.com"),
}
DEFAULT_REGION = "china"

# Tencent publishes no limit for desk_http_svc; other REST APIs get 100 or 200 calls/s.
DEFAULT_MAX_QPS = 100.0
# Calls in flight when not set: enough to keep max_qps going with answers this slow (the
# limiter, not this cap, keeps the rate), within bounds that suit the file-handle limit.
AUTO_CONCURRENCY_ANSWER_S = 0.5
AUTO_CONCURRENCY_BOUNDS = (16, 512)
DEFAULT_TIMEOUT_S = 10.0
# The HTTP client (api/transport.py; when to pick which: docs/transports.md).
DEFAULT_TRANSPORT = "aiohttp"
TRANSPORTS = ("aiohttp", "httpx-aiohttp", "httpx")
DEFAULT_MAX_ATTEMPTS = 6
# Throttled answers are retried more often than failures: they cost nothing but time.
DEFAULT_MAX_THROTTLED_ATTEMPTS = 20
DEFAULT_BATCH_SIZE = 2000
# A key ends in `error` after 6 failed attempts (p**6 at a per-call failure rate p: 0.07% at
# 30%, 4.7% at 60%) or when Desk rejects it: more than this share of a run's keys means a
# badly degraded API or a broken seed, worth an alert (exit 6). 1.0 turns it off.
DEFAULT_MAX_ERROR_SHARE = 0.05
# DuckDB memory for loading the destination (its default is 80% of RAM).
DESTINATION_MEMORY_LIMIT = "64MB"

# How long a run waits for its database while another process holds it open, before it
# gives up with exit code 3 (readers should read the published snapshot, never this file).
DATABASE_LOCK_WAIT_S = 30.0

# How long the snapshot's files a publish replaces stay on disk for readers still on an older
# snapshot (setting ``snapshot_retention``, seconds; docs/data.md). A day: a notebook or BI
# connection left open since yesterday morning still reads its snapshot rather than failing.
# The cost is a day of replaced files (runs every minute replace some 7 files a run: about
# 10,000 small files); a shorter one suits readers that reconnect (the notebooks' helper
# moves to each new snapshot), never shorter than the longest query against one snapshot.
SNAPSHOT_RETENTION_S = 24 * 3600.0

DEFAULT_DATASET = "tencent_desk"
# The group of sessions without one (polls only, or never routed), wherever figures
# are kept per group: the plan, the report and the notebooks must agree on it.
NO_GROUP = "(none)"
PIPELINE_NAME = "tencent_desk"

# Seed values longer than this are rejected (session ids are UUIDs, user ids <= 45 bytes).
MAX_KEY_LENGTH = 256

# Session records (describe_im_cdr_list): a second resource, loaded incrementally.
RECORDS_API_PATH = "v4/desk_http_svc/describe_im_cdr_list"
RECORDS_PAGE_LIMIT = 100            # the documented maximum per page
DEFAULT_RECORDS_SETTLE_S = 300      # windows end this long before now: late records settle
DEFAULT_RECORDS_SINCE_S = 86_400    # how far back a first incremental run starts
RECORDS_WINDOW_S = 3_600            # windows are first cut this long ...
RECORDS_MAX_PER_WINDOW = 5_000      # ... and halved while they hold more (50 pages at most)
RECORDS_MAX_REPAGES = 5             # a window whose TotalCount keeps changing: give up after
RECORDS_MAX_BAD_PAGES = 4           # a page malformed this many times in a row: give up
RECORDS_WINDOWS_AHEAD = 4           # windows read at once (their pages share the limiter)

# Sessions from received events: those that began within this many hours are asked about.
DEFAULT_MAX_SESSION_AGE_H = 12.0

# The schema where the simulator (the demo, the tests) keeps its truth next to the job's data;
# published with it, never written by the job.
TRUTH_SCHEMA = "desk_simulator"

# With a server destination, the job's local files in --state-dir: desk.lock, desk.spool/.
ANCHOR = "desk"

# The receiver's limits (desk-sessions listen; docs/receiver-limits.md), each a setting under
# [sources.tencent_desk]: connections open at once (beyond it new requests get 503, which
# Desk retries); seconds an idle kept-alive connection stays open; seconds a sender has to
# finish a request's headers (a connection that trickles them, or sends nothing, is closed).
# The body's limit is the callback contract's (api/callback.py MAX_BODY).
RECEIVER_MAX_CONNECTIONS = 4096
RECEIVER_KEEP_ALIVE_S = 5.0
RECEIVER_HEADER_TIMEOUT_S = 10.0
# Seconds before the receiver hands its open spool segment to the job (listen --seal-after).
SEAL_AFTER_S = 2.0
