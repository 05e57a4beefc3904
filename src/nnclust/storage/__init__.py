"""Run storage: run folders and artifact names (`paths`), MongoDB, model references,
run tables for pandas, and the import of folder runs into MongoDB."""
