"""Reads every visible Parquet file under a directory, one by one, with
pyarrow: prints JSON {"files": n, "rows": r, "unreadable": [paths]}.
Hidden files (names starting with '.' or '_') are what readers skip."""
import json
import os
import sys

import pyarrow.parquet as pq

root = sys.argv[1]
files, rows, bad = 0, 0, []
for d, dirs, names in os.walk(root):
    dirs[:] = [x for x in dirs if not x.startswith((".", "_"))]
    for n in names:
        if not n.endswith(".parquet") or n.startswith((".", "_")):
            continue
        p = os.path.join(d, n)
        files += 1
        try:
            rows += pq.read_table(p).num_rows
        except Exception as e:  # any failure to read is what we look for
            bad.append(f"{p}: {e}")
print(json.dumps({"files": files, "rows": rows, "unreadable": bad}))
