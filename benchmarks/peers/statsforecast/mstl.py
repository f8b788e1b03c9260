"""statsforecast's MSTL (daily and weekly seasonality, AutoETS on the trend), the peer of the
plan's profile forecast: for each origin in IN (Parquet: unique_id, ds, y, origin), fit on
the series before that origin and forecast the ``h`` intervals from it; write OUT (Parquet:
unique_id, ds, origin, mstl).

    uv run --project benchmarks/peers/statsforecast python mstl.py IN OUT H PER_DAY
"""

from __future__ import annotations

import sys

import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import MSTL, AutoETS


def main(src: str, dst: str, h: int, per_day: int) -> None:
    data = pd.read_parquet(src)
    model = MSTL(season_length=[per_day, 7 * per_day], trend_forecaster=AutoETS(model="ZZN"))
    out = []
    for origin, rows in data.groupby("origin"):
        train = rows[rows.ds < origin][["unique_id", "ds", "y"]]
        sf = StatsForecast(models=[model], freq=f"{24 * 60 // per_day}min", n_jobs=1)
        got = sf.forecast(df=train, h=h).reset_index()
        out.append(got.assign(origin=origin).rename(columns={"MSTL": "mstl"})[
            ["unique_id", "ds", "origin", "mstl"]])
    pd.concat(out, ignore_index=True).to_parquet(dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
