"""Experiment bodies, one module per experiment; the scripts in ``src/`` hold only config.

Each body takes the resolved config, the run seed and a Sacred-like `run` (with
``log_scalar(name, value, step)`` and ``add_artifact(path, name)``), and returns a
plain-JSON result. Each module also declares its config constraints, which
`sacred_setup.make_experiment` checks before a run is created.
"""
