"""Picking beyond one process: job arrays (``--shard I/N`` + ``epick merge-index``) and Dask clusters.

- :mod:`.shard`: which micrographs belong to shard I of N (no extra dependency).
- :mod:`.merge_index`: each shard's record of what it did, and the job-level ``autopick.star``,
  failures and ``pick_summary.json`` built from all records (no extra dependency).
- :mod:`.dask_pick`: ``epick pick --cluster``: one Picker per Dask worker process; needs the
  ``cluster`` extra (``pip install 'epick[cluster]'``), imported only when asked for.

Importing this package imports neither dask nor the Picker.
"""
