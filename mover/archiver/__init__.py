"""File trees -> snapshot: the parallel pipeline, the content-defined chunker, the stat prescan."""
