"""nnclust: train, prune and cluster ReLU networks, with every run recorded by Sacred."""

__version__ = "0.1.0"
