"""Spectral clustering and n-cut, the batched torch path, weight shuffles, significance
statistics and the shuffle study."""
