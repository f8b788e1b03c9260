"""Example: load Tencent Cloud Desk session states with the tencent_desk source into DuckDB
or PostgreSQL (the two destinations tested; ``after_load`` refuses any other).

Credentials come from .dlt/secrets.toml or SOURCES__TENCENT_DESK__* (see .dlt/config.toml);
PostgreSQL's from [destination.postgres.credentials] or DESTINATION__POSTGRES__CREDENTIALS.
For scheduling, the ``desk-sessions run`` command wraps the same steps with a lock,
progress and one-line errors.

    python pipelines/tencent_desk_pipeline.py [seed.csv] [duckdb|postgres]
"""

import sys

import dlt
from tencent_desk import tencent_desk
from tencent_desk.job.destination import server
from tencent_desk.run.post_load import after_load


def load_session_states(seed: str = "seed.csv", destination: str = "duckdb",
                        database: str = "desk.duckdb") -> None:
    pipeline = dlt.pipeline(
        pipeline_name="tencent_desk",
        destination=dlt.destinations.duckdb(database) if destination == "duckdb" else server(),
        dataset_name="tencent_desk",
    )
    load_info = pipeline.run(tencent_desk(seed=seed))
    # runs marked complete, session_state_latest, session_timeline (and on DuckDB the
    # snapshot readers read)
    after_load(pipeline)
    print(load_info)


if __name__ == "__main__":
    load_session_states(*sys.argv[1:3])
