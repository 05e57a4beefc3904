"""nnclust: train, prune and cluster ReLU networks, with every run recorded by Sacred.

The packages and the direction of their imports are described in ARCHITECTURE.md.
"""

__version__ = "0.1.0"
