"""Example: load Tencent Cloud Desk session states into DuckDB with the tencent_desk source.

Credentials come from .dlt/secrets.toml or SOURCES__TENCENT_DESK__* (see .dlt/config.toml).
For scheduling, the ``desk-sessions run`` command wraps the same steps with a lock,
progress and one-line errors.
"""

import dlt
from tencent_desk import tencent_desk
from tencent_desk.helpers import after_load


def load_session_states(seed: str = "seed.csv", database: str = "desk.duckdb") -> None:
    pipeline = dlt.pipeline(
        pipeline_name="tencent_desk",
        destination=dlt.destinations.duckdb(database),
        dataset_name="tencent_desk",
    )
    load_info = pipeline.run(tencent_desk(seed=seed))
    after_load(pipeline)  # runs marked complete, session_state_latest
    print(load_info)


if __name__ == "__main__":
    load_session_states()
