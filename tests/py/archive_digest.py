#!/usr/bin/env python3
"""Row count and a checksum over every column of a logwarden archive, with
DuckDB; equal before and after compaction when no row is lost, duplicated
or altered (the sum of per-row hashes does not depend on file boundaries or
row order).

Usage: archive_digest.py ARCHIVE   (a directory, or s3://bucket/prefix)
"""
import json
import sys

import duckdb

from verify_archive import s3_table


def main():
    archive = sys.argv[1]
    con = duckdb.connect()
    if archive.startswith("s3://"):
        table, n_files, _ = s3_table(archive)
        con.register("a_arrow", table)
        con.execute("CREATE TABLE a AS SELECT * FROM a_arrow")
    else:
        con.execute(
            "CREATE TABLE a AS SELECT * FROM read_parquet(?, hive_partitioning = true)",
            [f"{archive}/**/*.parquet"],
        )
        n_files = con.execute(f"SELECT count(*) FROM glob('{archive}/**/*.parquet')").fetchone()[0]
    # Hive columns come back typed differently by the two paths: cast them.
    cols = [r[0] for r in con.execute("DESCRIBE a").fetchall()]
    data = [c for c in cols if c not in ("dt", "hour", "service")] + ["service"]
    row = "struct_pack(" + ", ".join(f'"{c}" := "{c}"' for c in data) + ")"
    rows, checksum, keys = con.execute(
        f"SELECT count(*), sum(hash({row})::HUGEINT)::VARCHAR, "
        "count(DISTINCT (kafka_topic, kafka_partition, kafka_offset)) FROM a"
    ).fetchone()
    print(json.dumps({"rows": rows, "checksum": checksum, "distinct_keys": keys, "files": n_files}))


if __name__ == "__main__":
    main()
