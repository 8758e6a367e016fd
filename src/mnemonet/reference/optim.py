"""First-order optimisers for the reference: SGD (with momentum), AdaGrad and RMSProp.

Each optimiser is a class holding its hyper-parameters and per-parameter state (keyed by the same
names as ``params``); ``step(params, grads)`` updates the arrays of ``params`` in place, so layers
that own them see the new values. The update rules are those of torch.optim with default options
(no weight decay, no learning-rate decay, RMSProp not centred), so they can be checked against it:

- SGD: v ← μ v + g (v starting at 0), w ← w - η v; plain SGD (μ = 0) is w ← w - η g.
- AdaGrad (Duchi, Hazan & Singer 2011): G ← G + g², w ← w - η g / (√G + ε).
- RMSProp (Tieleman & Hinton 2012, lecture 6.5): r ← α r + (1 - α) g²; without momentum
  w ← w - η g / (√r + ε); with momentum μ, b ← μ b + g / (√r + ε), w ← w - η b.
"""

from __future__ import annotations

import numpy as np

from mnemonet.reference._checks import check_real, check_same_keys


class Optimizer:
    """Base class: validates ``step``'s arguments and keeps per-parameter state in ``state[name]``.

    Args:
        lr: learning rate η > 0.
    """

    def __init__(self, lr: float) -> None:
        self.lr = check_real(lr, "lr", low=0.0, low_open=True)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.steps = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every ``params[name]`` in place from ``grads[name]`` (same keys, same shapes)."""
        if not isinstance(params, dict):
            raise ValueError(f"params: expected a dict of arrays, got {type(params).__name__}")
        check_same_keys(grads, params)
        for name, p in params.items():
            if not (isinstance(p, np.ndarray) and p.dtype == np.float64):
                got = p.dtype if isinstance(p, np.ndarray) else type(p).__name__
                raise ValueError(f"params[{name!r}]: expected a float64 array (updated in place), got {got}")
            self._update(name, p, np.asarray(grads[name], dtype=np.float64))
        self.steps += 1

    def _slot(self, name: str, slot: str, like: np.ndarray) -> np.ndarray:
        """The state array ``slot`` of parameter ``name``, created as zeros on first use."""
        buf = self.state.setdefault(name, {}).get(slot)
        if buf is None:
            buf = self.state[name][slot] = np.zeros_like(like)
        elif buf.shape != like.shape:
            raise ValueError(f"params[{name!r}]: expected shape {buf.shape} as on earlier steps, got {like.shape}")
        return buf

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional (heavy-ball) momentum: v ← μ v + g, w ← w - η v.

    Args:
        lr: η > 0.
        momentum: μ in [0, 1]; 0 gives w ← w - η g.
    """

    def __init__(self, lr: float, momentum: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = check_real(momentum, "momentum", low=0.0, high=1.0)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        if self.momentum == 0.0:
            p -= self.lr * g
            return
        v = self._slot(name, "velocity", p)  # starts at 0, so the first step has v = g
        v *= self.momentum
        v += g
        p -= self.lr * v


class AdaGrad(Optimizer):
    """AdaGrad (Duchi et al. 2011): G ← G + g², w ← w - η g / (√G + ε), G starting at zero.

    Args:
        lr: η > 0.
        eps: ε > 0 added to √G.
    """

    def __init__(self, lr: float = 0.01, eps: float = 1e-10) -> None:
        super().__init__(lr)
        self.eps = check_real(eps, "eps", low=0.0, low_open=True)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        G = self._slot(name, "sum_sq", p)
        G += g * g
        p -= self.lr * g / (np.sqrt(G) + self.eps)


class RMSProp(Optimizer):
    """RMSProp: running mean square r ← α r + (1 - α) g², step g / (√r + ε), optional momentum.

    Args:
        lr: η > 0.
        alpha: α in [0, 1], decay of the mean square.
        eps: ε > 0 added to √r.
        momentum: μ in [0, 1]: b ← μ b + g / (√r + ε), w ← w - η b; 0 gives w ← w - η g / (√r + ε).
    """

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0) -> None:
        super().__init__(lr)
        self.alpha = check_real(alpha, "alpha", low=0.0, high=1.0)
        self.eps = check_real(eps, "eps", low=0.0, low_open=True)
        self.momentum = check_real(momentum, "momentum", low=0.0, high=1.0)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        r = self._slot(name, "mean_sq", p)
        r *= self.alpha
        r += (1.0 - self.alpha) * g * g
        step = g / (np.sqrt(r) + self.eps)
        if self.momentum > 0.0:
            b = self._slot(name, "momentum", p)
            b *= self.momentum
            b += step
            step = b
        p -= self.lr * step
