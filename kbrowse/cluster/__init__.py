"""The velero-shaped commands against a cluster: create, get, describe, wait, and their printers."""
