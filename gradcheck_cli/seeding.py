"""One seed for every random number generator a model's code may draw from.

A model file may initialise or augment with torch, Python's :mod:`random` or NumPy; ``--seed``
seeds all three, so the same seed gives the same weights and batches whichever one it uses. The
caller's generator states are saved and restored, so seeding never changes the randomness of
the program around gradcheck (a training loop calling the API).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch


@contextlib.contextmanager
def seeded(seed: int, devices: Sequence[int] = ()) -> Iterator[None]:
    """Run the block with torch (CPU and the CUDA ``devices``), :mod:`random` and NumPy's global
    generator seeded with ``seed``; their previous states come back afterwards."""
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=list(devices)):
        # The generators fork_rng restores, and only those: torch.manual_seed would seed every
        # CUDA device too, leaving the caller's other devices reseeded, and costs about 90 us
        # (it records a stack trace for lazy CUDA seeding) where this is one call per generator.
        torch.default_generator.manual_seed(seed)
        for device in devices:
            torch.cuda.default_generators[device].manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)  # NumPy's legacy seed is 32 bits
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
