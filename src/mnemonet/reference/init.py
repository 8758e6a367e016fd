"""Weight initialisation for the reference layers: Xavier (Glorot) uniform and torch's default uniform.

Glorot & Bengio (2010, "Understanding the difficulty of training deep feedforward neural networks",
eq. 16) choose W ~ U[-√6/√(n_in + n_out), √6/√(n_in + n_out)] so that Var(W) = 2 / (n_in + n_out),
the compromise between keeping activation variance (n_in Var W = 1) and gradient variance
(n_out Var W = 1) constant from layer to layer. Recurrent layers stack several gate matrices in one
array (torch layout ``(G*H, D)``); each gate block is its own (H, D) map, so it is initialised with
its own fans n_in = D, n_out = H.
"""

from __future__ import annotations

import math

import numpy as np

from mnemonet.reference._checks import check_choice, check_positive, check_real

INITS = ("xavier", "uniform")


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A NumPy Generator from a Generator (returned as is), an int seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, int | np.integer) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng: expected a numpy Generator, an int seed or None, got {type(rng).__name__}")


def xavier_bound(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    """Glorot's uniform half-width gain · √(6 / (fan_in + fan_out)) (Glorot & Bengio 2010, eq. 16)."""
    check_positive(fan_in, "fan_in")
    check_positive(fan_out, "fan_out")
    check_real(gain, "gain", low=0.0, low_open=True)
    return gain * math.sqrt(6.0 / (fan_in + fan_out))


def xavier_uniform(
    shape: tuple[int, int], rng: np.random.Generator | int | None = None, gain: float = 1.0
) -> np.ndarray:
    """Xavier / Glorot uniform weights W ~ U[-b, b], b = gain · √(6 / (n_in + n_out)), so Var W = b²/3.

    Args:
        shape: ``(n_out, n_in)``, the torch layout of a map from n_in inputs to n_out outputs.
        rng: Generator or seed.
        gain: scale factor (1 for tanh / linear units).

    Returns:
        `[n_out, n_in]` float64 weights.
    """
    if not (isinstance(shape, tuple) and len(shape) == 2):
        raise ValueError(f"shape: expected a tuple (n_out, n_in), got {shape!r}")
    bound = xavier_bound(shape[1], shape[0], gain)
    return as_generator(rng).uniform(-bound, bound, size=shape)


def gate_weights(n_gates: int, hidden_size: int, fan_in: int, init: str, rng: np.random.Generator) -> np.ndarray:
    """Stacked gate weights `[G*H, fan_in]`, each (H, fan_in) gate block initialised on its own.

    ``init="xavier"``: Glorot uniform per block; ``init="uniform"``: torch.nn.RNN's default
    U[-1/√H, 1/√H] for every entry.
    """
    check_choice(init, "init", INITS)
    if init == "uniform":
        k = 1.0 / math.sqrt(hidden_size)
        return rng.uniform(-k, k, size=(n_gates * hidden_size, fan_in))
    blocks = [xavier_uniform((hidden_size, fan_in), rng) for _ in range(n_gates)]
    return np.concatenate(blocks, axis=0)  # (G*H, fan_in)
