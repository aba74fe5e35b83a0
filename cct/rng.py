"""cct's random number generator, one per process, seeded like Caffe's (``random_seed``, set_random_seed).

Caffe's own generator (boost mt19937 through its distributions) cannot be reproduced bit for bit, so
cct promises what Caffe promises: the same seed gives the same run.
"""
import numpy as np

_generator = np.random.default_rng()


def set_random_seed(seed):
    """Reseed the generator every filler, dropout mask and data shuffle draws from."""
    global _generator
    _generator = np.random.default_rng(seed)


def generator():
    return _generator


def get_state():
    return _generator.bit_generator.state


def set_state(state):
    _generator.bit_generator.state = state


def generator_state(generator):
    """A numpy Generator's state as a JSON-able dict (None for no generator)."""
    return None if generator is None else generator.bit_generator.state


def set_generator_state(generator, state):
    """Put back what ``generator_state`` returned (both None, or a generator and its state)."""
    if generator is not None and state is not None:
        generator.bit_generator.state = state
