#!/usr/bin/env python3
"""Checks a logwarden archive against the generator's truth file with DuckDB.

Usage: verify_archive.py ARCHIVE TRUTH_JSONL

ARCHIVE is a directory, or s3://bucket/prefix read over S3 with pyarrow's
S3FileSystem (endpoint from AWS_ENDPOINT_URL, credentials from the usual
AWS_* variables).

Prints one JSON object: rows, distinct keys, missing, duplicated and
mismatched records, and the Parquet physical type of event_time.
Exit status 0 whatever it finds: the calling test asserts on the numbers.
"""
import json
import os
import sys

import duckdb


def s3_table(url):
    """The whole archive at s3://bucket/prefix as one Arrow table, Hive
    partition columns as strings (as DuckDB reads them)."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    scheme = "http" if endpoint.startswith("http://") else "https"
    fs = pafs.S3FileSystem(
        endpoint_override=endpoint.split("://", 1)[-1] or None,
        scheme=scheme,
        region=os.environ.get("AWS_REGION", "us-east-1"),
    )
    base = url[len("s3://"):].rstrip("/")
    files = [
        f.path
        for f in fs.get_file_info(pafs.FileSelector(base, recursive=True))
        if f.type == pafs.FileType.File and f.path.endswith(".parquet") and "/_logwarden/" not in f.path
    ]
    keys = sorted({seg.split("=", 1)[0] for f in files for seg in f[len(base) + 1:].split("/")[:-1] if "=" in seg})
    part = ds.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive")
    d = ds.dataset(files, filesystem=fs, format="parquet", partitioning=part, partition_base_dir=base)
    import pyarrow.parquet as pq

    logical = str(pq.ParquetFile(files[0], filesystem=fs).schema.column(0).logical_type) if files else ""
    return d.to_table(), len(files), logical


def main():
    archive, truth = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    if archive.startswith("s3://"):
        table, n_files, logical = s3_table(archive)
        con.register("a_arrow", table)
        con.execute("CREATE TABLE a AS SELECT * FROM a_arrow")
    else:
        con.execute(
            "CREATE TABLE a AS SELECT * FROM read_parquet(?, hive_partitioning = true, union_by_name = true)",
            [f"{archive}/**/*.parquet"],
        )
    # Every generated line carries its sequence number: as an attribute when
    # the line is JSON or logfmt, at the end of the message for plain text.
    con.execute(
        """
        CREATE TABLE got AS SELECT
            CAST(coalesce(attributes['seq'], regexp_extract(message, 'seq=([0-9]+)$', 1)) AS BIGINT) AS seq,
            service, level, message, epoch_us(event_time) AS event_time_us, time_source,
            parse_error, kafka_topic, kafka_partition, kafka_offset, dt, hour
        FROM a
        """
    )
    con.execute(
        "CREATE TABLE truth AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = "
        "{'seq': 'BIGINT', 'service': 'VARCHAR', 'level': 'VARCHAR', 'event_time_us': 'BIGINT', 'message': 'VARCHAR'})",
        [truth],
    )
    one = lambda sql: con.execute(sql).fetchone()[0]
    result = {
        "rows": one("SELECT count(*) FROM got"),
        "truth_rows": one("SELECT count(*) FROM truth"),
        "distinct_seq": one("SELECT count(DISTINCT seq) FROM got"),
        "null_seq": one("SELECT count(*) FROM got WHERE seq IS NULL"),
        "distinct_offsets": one(
            "SELECT count(*) FROM (SELECT DISTINCT kafka_topic, kafka_partition, kafka_offset FROM got)"
        ),
        "duplicated": one("SELECT count(*) FROM (SELECT seq FROM got GROUP BY seq HAVING count(*) > 1)"),
        "missing": one("SELECT count(*) FROM truth t WHERE NOT EXISTS (SELECT 1 FROM got g WHERE g.seq = t.seq)"),
        "unexpected": one("SELECT count(*) FROM got g WHERE NOT EXISTS (SELECT 1 FROM truth t WHERE g.seq = t.seq)"),
        "mismatched": one(
            """SELECT count(*) FROM got g JOIN truth t USING (seq)
               WHERE g.service IS DISTINCT FROM t.service
                  OR g.level IS DISTINCT FROM t.level
                  OR g.event_time_us IS DISTINCT FROM t.event_time_us
                  OR g.message IS DISTINCT FROM t.message"""
        ),
        "parse_errors": one("SELECT count(*) FROM got WHERE parse_error IS NOT NULL"),
        "not_parsed_time": one("SELECT count(*) FROM got WHERE time_source <> 'parsed'"),
        "misplaced": one(
            "SELECT count(*) FROM got WHERE dt <> strftime(make_timestamp(event_time_us), '%Y-%m-%d') "
            "OR CAST(hour AS INTEGER) <> hour(make_timestamp(event_time_us))"
        ),
    }
    if archive.startswith("s3://"):
        result["files"] = n_files
        result["event_time_type"] = logical
    else:
        result["files"] = one("SELECT count(*) FROM glob(?)".replace("?", "'" + archive + "/**/*.parquet'"))
        result["event_time_type"] = one(
            "SELECT any_value(logical_type) FROM parquet_schema(?) WHERE name = 'event_time'".replace(
                "?", "'" + archive + "/**/*.parquet'"
            )
        )
    sample = con.execute(
        """SELECT g.seq, g.service, t.service, g.level, t.level, g.event_time_us, t.event_time_us, g.message, t.message
           FROM got g JOIN truth t USING (seq)
           WHERE g.service IS DISTINCT FROM t.service OR g.level IS DISTINCT FROM t.level
              OR g.event_time_us IS DISTINCT FROM t.event_time_us OR g.message IS DISTINCT FROM t.message
           LIMIT 3"""
    ).fetchall()
    result["mismatch_sample"] = [list(map(str, r)) for r in sample]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
