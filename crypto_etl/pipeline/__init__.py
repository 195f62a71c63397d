"""The pipeline: the snapshot run (extract, transform, validate, load), the history backfill, the
candle refresh and the scheduler. It is the one part that uses source, shaping and storage together,
and it journals every run in `etl_runs`."""
