"""A read-only reader of kopia repositories (what Velero's default uploader writes), beside the
restic one: the format blob, the index, packs, objects, directories and snapshot manifests.
Nothing here ever writes to a repository."""
