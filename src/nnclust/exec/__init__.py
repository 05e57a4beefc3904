"""Execution: one map over joblib or Dask workers, and config grids of Sacred runs."""
