"""Example data for docs/add-your-own-model.md: food-delivery orders in a CSV hive lake.

Writes ``<out>/ds=YYYY-MM-DD/orders.csv`` for ``--days`` days from ``--start``, ``--rows-per-day``
orders a day, with the columns a new model typically brings: a string id, an ISO-8601
timestamp string, numeric and categorical features and a numeric target (``delivery_minutes``).
From ``--shift-day`` on the service reaches farther suburbs: distances grow by 80 %, a covariate
shift the monitor should report. Deterministic for given arguments.

    python docs/examples/deliveries.py --out .driftline/lake/deliveries
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd


def orders(day: date, rows: int, shifted: bool) -> pd.DataFrame:
    """One day of orders; ``delivery_minutes`` = preparation + travel at the vehicle's speed +
    courier load, basket size, city and rain effects + noise."""
    rng = np.random.default_rng(day.toordinal())
    city = rng.choice(["lisbon", "porto", "braga"], rows, p=[0.5, 0.35, 0.15])
    vehicle = rng.choice(["bike", "scooter", "car"], rows, p=[0.4, 0.4, 0.2])
    distance_km = rng.gamma(2.0, 1.6, rows) * (1.8 if shifted else 1.0)
    items = rng.integers(1, 9, rows)
    prep_minutes = rng.normal(12.0, 4.0, rows).clip(2.0, None)
    courier_load = rng.poisson(3.0, rows)
    raining = (rng.random(rows) < 0.2).astype(int)
    speed_kmh = np.select([vehicle == "bike", vehicle == "scooter"], [14.0, 22.0], 28.0)
    minutes = (prep_minutes + 60.0 * distance_km / speed_kmh + 1.5 * courier_load + 0.4 * items
               + np.where(city == "lisbon", 4.0, 0.0) + 6.0 * raining + rng.normal(0.0, 3.0, rows))
    seconds = np.sort(rng.uniform(0, 86_400, rows))
    ordered_at = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame({
        "order_id": [f"{day:%Y%m%d}-{k:05d}" for k in range(rows)],
        "ordered_at": ordered_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "distance_km": distance_km.round(2), "items": items, "prep_minutes": prep_minutes.round(1),
        "courier_load": courier_load, "raining": raining, "city": city, "vehicle": vehicle,
        "delivery_minutes": minutes.round(1),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="lake folder (the spec's source.uri)")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 9, 1))
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--rows-per-day", type=int, default=300)
    parser.add_argument("--shift-day", type=date.fromisoformat, default=date(2025, 10, 10))
    args = parser.parse_args()
    for i in range(args.days):
        day = args.start + timedelta(days=i)
        partition = Path(args.out) / f"ds={day:%Y-%m-%d}"
        partition.mkdir(parents=True, exist_ok=True)
        orders(day, args.rows_per_day, day >= args.shift_day).to_csv(partition / "orders.csv", index=False)
    print(f"wrote {args.days} days of orders to {args.out}")


if __name__ == "__main__":
    main()
