"""The data mover: restic-format repositories, the archiver and restorer, and Velero's API."""

__version__ = "0.1.0"
