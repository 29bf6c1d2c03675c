"""`kbrowse mount`: the read-only filesystem, its trees (snapshots, buckets) and its two transports."""
