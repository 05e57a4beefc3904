"""Figures stored as run artifacts."""
