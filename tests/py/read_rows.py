#!/usr/bin/env python3
"""Runs a query over a logwarden archive (as table `a`) with DuckDB and
prints the rows as a JSON list of objects (message text cut to 200 chars).

Usage: read_rows.py ARCHIVE_DIR SQL
"""
import json
import sys

import duckdb

con = duckdb.connect()
con.execute(
    "CREATE TABLE a AS SELECT * FROM read_parquet(?, hive_partitioning = true, union_by_name = true)",
    [f"{sys.argv[1]}/**/*.parquet"],
)
cur = con.execute(sys.argv[2])
cols = [d[0] for d in cur.description]
rows = []
for r in cur.fetchall():
    row = {}
    for c, v in zip(cols, r):
        if isinstance(v, str) and len(v) > 200:
            v = v[:200]
        elif isinstance(v, (bytes, bytearray)):
            v = v.hex()
        elif not isinstance(v, (int, float, bool, type(None), str)):
            v = str(v)
        row[c] = v
    rows.append(row)
print(json.dumps(rows))
