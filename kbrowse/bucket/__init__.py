"""A Velero bucket with no cluster: its commands, backup paths, and what they print."""
