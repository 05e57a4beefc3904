"""Shared foundations: the Registry type, config checks and constraints, seeding streams."""
