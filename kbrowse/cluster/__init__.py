"""The velero-shaped commands against a cluster: create, get, describe, wait, and their printers;
and what the app keeps of a cluster (session, watch-fed store, data-movement rates)."""
