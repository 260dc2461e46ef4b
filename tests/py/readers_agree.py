#!/usr/bin/env python3
"""Reads a local logwarden archive with DuckDB, pyarrow and polars and checks
they agree: row counts, and every row's values (event time as UTC
microseconds, service, level, message, the attributes map), keyed by
provenance. Also a DuckDB query whose filter is pruned by the Hive
partitions, checked against the same filter applied by the other readers.

Usage: readers_agree.py ARCHIVE_DIR
Prints one JSON object; exit status 0 whatever it finds.
"""
import hashlib
import json
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds


def canon(rows):
    """Sorted rows as one digest: (topic, partition, offset, event_time_us,
    service, level, message, sorted attributes)."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: (r[0], r[1], r[2])):
        h.update(repr(r).encode())
    return h.hexdigest()


def attrs(m):
    if m is None:
        return ()
    if isinstance(m, dict):
        items = m.items()
    else:  # list of (k, v) tuples or {key, value} dicts
        items = [(e["key"], e["value"]) if isinstance(e, dict) else tuple(e) for e in m]
    return tuple(sorted(items))


def main():
    archive = sys.argv[1]
    glob = f"{archive}/**/*.parquet"
    out = {}

    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW a AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)"
    )
    tz = con.execute("SELECT typeof(event_time) FROM a LIMIT 1").fetchone()[0]
    d_rows = con.execute(
        "SELECT kafka_topic, kafka_partition, kafka_offset, epoch_us(event_time), service, level, message, attributes FROM a"
    ).fetchall()
    d_rows = [r[:7] + (attrs(r[7]),) for r in d_rows]
    # One partition (the second hour present): the filter prunes the others.
    dt, hour = con.execute("SELECT DISTINCT dt, hour FROM a ORDER BY ALL LIMIT 1 OFFSET 1").fetchone()
    out["partition"] = f"dt={dt}/hour={hour}"
    pruned = con.execute(
        f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true) WHERE dt = ? AND hour = ?",
        [str(dt), hour],
    ).fetchone()[0]
    out["duckdb"] = {"rows": len(d_rows), "digest": canon(d_rows), "event_time": str(tz), "pruned": pruned}

    t = ds.dataset(archive, format="parquet", partitioning="hive").to_table()
    ty = t.schema.field("event_time").type
    et = t.column("event_time").cast(pa.int64()).to_pylist()
    cols = {c: t.column(c).to_pylist() for c in ["kafka_topic", "kafka_partition", "kafka_offset", "service", "level", "message", "attributes"]}
    a_rows = [
        (cols["kafka_topic"][i], cols["kafka_partition"][i], cols["kafka_offset"][i], et[i], cols["service"][i], cols["level"][i], cols["message"][i], attrs(cols["attributes"][i]))
        for i in range(t.num_rows)
    ]
    a_pruned = ds.dataset(archive, format="parquet", partitioning="hive").count_rows(
        filter=(ds.field("dt") == str(dt)) & (ds.field("hour") == int(hour))
    )
    out["pyarrow"] = {"rows": len(a_rows), "digest": canon(a_rows), "event_time": str(ty), "pruned": a_pruned}

    lf = pl.scan_parquet(glob, hive_partitioning=True)
    p = lf.with_columns(pl.col("event_time").dt.epoch("us").alias("et_us")).collect()
    p_ty = str(lf.collect_schema()["event_time"])
    p_rows = [
        (r["kafka_topic"], r["kafka_partition"], r["kafka_offset"], r["et_us"], r["service"], r["level"], r["message"], attrs(r["attributes"]))
        for r in p.iter_rows(named=True)
    ]
    p_pruned = (
        lf.filter((pl.col("dt").cast(pl.Utf8) == str(dt)) & (pl.col("hour").cast(pl.Int64) == int(hour)))
        .select(pl.len())
        .collect()
        .item()
    )
    out["polars"] = {"rows": len(p_rows), "digest": canon(p_rows), "event_time": p_ty, "pruned": p_pruned}

    readers = [out["duckdb"], out["pyarrow"], out["polars"]]
    out["rows"] = out["duckdb"]["rows"]
    out["pruned_rows"] = pruned
    out["utc_micros"] = (
        "TIME ZONE" in out["duckdb"]["event_time"]
        and out["pyarrow"]["event_time"] == "timestamp[us, tz=UTC]"
        and "us" in p_ty and "UTC" in p_ty
    )
    out["agree"] = (
        len({r["rows"] for r in readers}) == 1
        and len({r["digest"] for r in readers}) == 1
        and len({r["pruned"] for r in readers}) == 1
        and out["utc_micros"]
        and out["rows"] > 0
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
