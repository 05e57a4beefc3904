"""One recorded seed, split into named, independent random streams.

Every source of randomness (data order, weight init, masks, shuffles, k-means)
draws from its own stream, derived from the run seed and the stream's name, so
adding randomness in one place never changes the numbers drawn in another.
"""

from __future__ import annotations

import zlib

import numpy as np


def seed_sequence(seed: int, stream: str, *index: int) -> np.random.SeedSequence:
    """The `SeedSequence` of stream `stream` (optionally its `index`-th child)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    # crc32 is stable across processes, unlike hash(), which is salted per run.
    key = [int(seed) % 2**32, zlib.crc32(stream.encode()), *(int(i) for i in index)]
    return np.random.SeedSequence(key)


def rng(seed: int, stream: str, *index: int) -> np.random.Generator:
    """A numpy Generator for the named stream."""
    return np.random.default_rng(seed_sequence(seed, stream, *index))


def int_seed(seed: int, stream: str, *index: int) -> int:
    """A 31-bit integer seed for libraries that take one (scikit-learn, torch)."""
    return int(seed_sequence(seed, stream, *index).generate_state(1)[0] % 2**31)


def torch_generator(seed: int, stream: str, *index: int):
    """A CPU torch Generator for the named stream."""
    import torch  # here, not at the top: analysis workers never need torch

    gen = torch.Generator()
    gen.manual_seed(int_seed(seed, stream, *index))
    return gen
