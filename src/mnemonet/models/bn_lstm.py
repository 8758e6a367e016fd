"""BN-LSTM: the batch-normalised LSTM of Cooijmans et al., "Recurrent Batch Normalization" (ICLR 2017).

The input term W_x·x_t and the recurrent term W_h·h_{t-1} are batch-normalised separately, each with
its own γ and β = 0 (the gate bias b is the shift), and the cell is normalised for the output only:

    (ĩ, f̃, g̃, õ) = BN(W_h h_{t-1}; γ_h, 0) + BN(W_x x_t; γ_x, 0) + b          (eq. 6)
    c_t = σ(f̃) ⊙ c_{t-1} + σ(ĩ) ⊙ tanh(g̃)                                     (eq. 7)
    h_t = σ(õ) ⊙ tanh(BN(c_t; γ_c, β_c))                                       (eq. 8)

Statistics are kept per time step (:class:`~mnemonet.models.seq_norm.StepBatchNorm`); the population
statistics can be re-estimated over a pass of data with ``model.reestimate_statistics(batches)``
(:class:`~mnemonet.models.base.RecurrentModel`). Two variants of the related work are options:
``"input_only"`` normalises W_x·x only and ``"summed"`` normalises the summed pre-activation W_x·x + W_h·h
(both Laurent et al., 2016, without BN of c); ``normalization="sequence"`` (input term only) takes
statistics over all non-padded steps of a batch. ``mnemonet.build("bn_lstm", input_size, hidden_size,
max_length)`` builds a layer, a stack or a bidirectional stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet._checks import check_choice, check_positive, check_tensor
from mnemonet.kernels.bn_lstm import NormArgs, bn_lstm_loop
from mnemonet.kernels.onednn import linear
from mnemonet.models import init as inits
from mnemonet.models.base import Cell
from mnemonet.models.cells import LSTMState, lstm_update
from mnemonet.models.recurrent import Bidirectional, Recurrent, Stacked, padding_mask
from mnemonet.models.registry import register
from mnemonet.models.seq_norm import NORMALIZATIONS, StepBatchNorm

VARIANTS = ("full", "input_only", "summed")


class BNLSTMCell(Cell):
    """One step of the BN-LSTM (Cooijmans et al., eqs. 6-8); gate order i, f, g, o as ``torch.nn.LSTM``.

    Args:
        input_size: I.
        hidden_size: H.
        max_length: number of time steps with their own statistics (the longest training sequence,
            T_max in the paper); later steps use the statistics of step ``max_length - 1``.
        gamma_init: initial γ of every batch normalisation (0.1 in the paper).
        variant: ``"full"`` (the paper: BN of W_x·x, of W_h·h, and of c for the output),
            ``"input_only"`` (BN of W_x·x only) or ``"summed"`` (BN of W_x·x + W_h·h).
        normalization: ``"step"`` (statistics per time step) or ``"sequence"`` (one set of statistics
            over all non-padded steps of a batch; needs ``variant="input_only"``, since the recurrent
            terms of later steps do not exist before the earlier steps are computed).
        momentum: running-statistics momentum, as ``torch.nn.BatchNorm1d`` (None: cumulative average).
        eps: ε of the batch normalisations.

    Parameters: ``weight_ih`` W_x `[4H, I]`, ``weight_hh`` W_h `[4H, H]` (each H×H gate block
    orthogonal), ``bias`` b `[4H]` (forget-gate part 1, the rest 0), and the normalisations
    ``bn_x`` (γ_x), ``bn_h`` (γ_h), ``bn_c`` (γ_c, β_c) for ``"full"``, ``bn_x`` for ``"input_only"``,
    ``bn_gates`` for ``"summed"``.

    Example:
        >>> cell = BNLSTMCell(3, 5, max_length=10)
        >>> y, state = cell(torch.randn(4, 3), cell.initial_state(4), t=0)
        >>> tuple(y.shape), tuple(state.c.shape)
        ((4, 5), (4, 5))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        max_length: int,
        gamma_init: float = 0.1,
        variant: str = "full",
        normalization: str = "step",
        momentum: float | None = 0.1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_positive(input_size, "input_size")
        check_positive(hidden_size, "hidden_size")
        check_positive(max_length, "max_length")
        check_choice(variant, "variant", VARIANTS)
        check_choice(normalization, "normalization", NORMALIZATIONS)
        if normalization == "sequence" and variant != "input_only":
            raise ValueError(
                "normalization: 'sequence' needs variant='input_only' (statistics over a whole sequence exist "
                f"only for the input term W_x·x), got variant={variant!r}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.max_length = max_length
        self.gamma_init = float(gamma_init)
        self.variant = variant
        self.normalization = normalization
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))  # W_x
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))  # W_h
        self.bias = nn.Parameter(torch.empty(4 * H))  # b
        opts = {"gamma_init": gamma_init, "momentum": momentum, "eps": eps}
        if variant in ("full", "input_only"):
            self.bn_x = StepBatchNorm(4 * H, max_length, normalization=normalization, **opts)
        if variant == "full":
            self.bn_h = StepBatchNorm(4 * H, max_length, **opts)
            self.bn_c = StepBatchNorm(H, max_length, shift=True, **opts)
        if variant == "summed":
            self.bn_gates = StepBatchNorm(4 * H, max_length, **opts)
        self.reset_parameters()

    @property
    def norms(self) -> list[StepBatchNorm]:
        """The cell's batch normalisations."""
        return [m for m in self.children() if isinstance(m, StepBatchNorm)]

    def reset_parameters(self) -> None:
        """Orthogonal W_h gate blocks, W_x uniform in ±1/sqrt(H), b = 0 but forget bias 1; γ, β, statistics reset."""
        H = self.hidden_size
        with torch.no_grad():
            inits.orthogonal_blocks_(self.weight_hh, 4)
            inits.default_uniform_(self.weight_ih, H)
            self.bias.zero_()
            self.bias[H : 2 * H] = 1.0  # forget gate
        for norm in self.norms:
            norm.reset_parameters()

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}, max_length={self.max_length}"]
        if self.gamma_init != 0.1:
            parts.append(f"gamma_init={self.gamma_init}")
        if self.variant != "full":
            parts.append(f"variant={self.variant!r}")
        if self.normalization != "step":
            parts.append(f"normalization={self.normalization!r}")
        return ", ".join(parts)

    def initial_state(self, batch_size, device=None, dtype=None) -> LSTMState:
        dtype = dtype or self.weight_hh.dtype
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return LSTMState(zeros, zeros.clone())

    def forward(
        self, x_t: Tensor, state: LSTMState, t: int = 0, mask: Tensor | None = None
    ) -> tuple[Tensor, LSTMState]:
        """One step with the statistics of step t.

        Args:
            x_t: `[B, I]` input.
            state: ``LSTMState(h, c)``, each `[B, H]`.
            t: time index (>= 0); selects the statistics min(t, max_length − 1).
            mask: `[B]` bool; in training only these rows enter the batch statistics (None: all rows).

        Returns:
            h_t `[B, H]` and ``LSTMState(h_t, c_t)``.
        """
        check_tensor(x_t, "x_t", ("B", self.input_size))
        B = x_t.shape[0]
        state = LSTMState(*self.check_state(state, B))
        check_positive(t, "t", allow_zero=True)
        if mask is not None:
            check_tensor(mask, "mask", (B,), floating=False)
            if mask.dtype != torch.bool:
                raise ValueError(f"mask: expected a bool tensor of shape ({B},), got dtype {mask.dtype}")
        wx = F.linear(x_t, self.weight_ih)  # (B, 4H)
        ix = wx if self.variant == "summed" else self.bn_x.step(wx, t, mask, bias=self.bias)
        h, c = self._recur(ix, state.h, state.c, t, mask)
        return h, LSTMState(h, c)

    def _recur(self, ix: Tensor, h: Tensor, c: Tensor, t: int, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """The recurrent part of step t, given the input term ``ix`` `[B, 4H]` (normalised + b, or raw W_x·x)."""
        wh = F.linear(h, self.weight_hh)  # W_h h_{t-1}: (B, 4H)
        if self.variant == "full":
            pre = ix + self.bn_h.step(wh, t, mask)
        elif self.variant == "input_only":
            pre = ix + wh
        else:
            pre = self.bn_gates.step(ix + wh, t, mask, bias=self.bias)
        norm_c = (lambda c_t: self.bn_c.step(c_t, t, mask)) if self.variant == "full" else None
        return lstm_update(pre, c, norm_c)  # eqs. 7-8

    def prepare(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, ...]:
        """The input term of every step at once: W_x·x in one matmul and its BN in one batched op (eq. 6).

        Args:
            x: `[B, T, I]`.
            mask: `[B, T]` bool, true at real steps (only those enter the statistics), or None.

        Returns:
            T tensors `[B, 4H]`: BN(W_x x_t; γ_x, 0) + b, or W_x x_t for ``"summed"``.
        """
        wx = F.linear(x, self.weight_ih)  # (B, T, 4H)
        ix = wx if self.variant == "summed" else self.bn_x.sequence(wx, mask, bias=self.bias)  # (B, T, 4H)
        return ix.unbind(1)

    def step(self, p_t: Tensor, state: LSTMState, t: int = 0, mask: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        """Step t from its prepared input term `[B, 4H]`."""
        h, c = self._recur(p_t, state.h, state.c, t, mask)
        return h, LSTMState(h, c)

    def sequence(self, x: Tensor, state: LSTMState, lengths: Tensor | None) -> tuple[Tensor, LSTMState]:
        """Kernel: all steps in :func:`~mnemonet.kernels.bn_lstm.bn_lstm_loop`, W_x·x included.

        The sequence runs as one autograd node with a hand-written backward; the numbers are those of
        ``prepare`` and ``step`` (``tests/kernels``). With ``normalization="sequence"`` the input term is
        normalised here first (its statistics span all steps).

        Args:
            x: `[B, T, I]`.
            state: initial ``LSTMState``.
            lengths: `[B]` lengths or None; steps past a length are padding (left out of the
                statistics, state frozen, output 0).

        Returns:
            y `[B, T, H]` and the state at each sequence's last real step.
        """
        T = x.shape[1]
        mask = padding_mask(lengths, T, x.device)  # (B, T)
        inp, weight_ih, bn_x = x, self.weight_ih, None
        if self.normalization == "sequence":  # "input_only": the input term with statistics over all steps
            inp = self.bn_x.sequence(linear(x, self.weight_ih), mask, bias=self.bias)  # (B, T, 4H)
            weight_ih = None
        elif self.variant != "summed":
            bn_x = self.bn_x
        bn_1 = {"full": getattr(self, "bn_h", None), "summed": getattr(self, "bn_gates", None)}.get(self.variant)
        bn_c = self.bn_c if self.variant == "full" else None
        y, h, c, stats = bn_lstm_loop(
            inp,
            weight_ih,
            state.h,
            state.c,
            self.weight_hh,
            _norm_args(bn_x, self.bias, T),
            _norm_args(bn_1, self.bias if self.variant == "summed" else None, T),
            _norm_args(bn_c, None if bn_c is None else bn_c.bias, T),
            mask,
            self.variant,
            self._eps,
        )
        n = min(T, self.max_length)
        for norm, mean, var in ((bn_x, stats.mean_x, stats.var_x), (bn_1, stats.mean_1, stats.var_1),
                                (bn_c, stats.mean_c, stats.var_c)):  # fmt: skip
            if norm is not None and norm.training:
                norm.fold(mean[:n], var[:n], stats.count[:n])
        return y, LSTMState(h, c)

    @property
    def _eps(self) -> float:
        return self.norms[0].eps


def _norm_args(norm: StepBatchNorm | None, shift: Tensor | None, T: int) -> NormArgs | None:
    """What the kernel needs of one normalisation: γ, shift, mode, and in evaluation the running (mean, var)
    that steps 0..T-1 use, `[T, F]` each (step t uses slot min(t, L − 1))."""
    if norm is None:
        return None
    if norm.training:
        return NormArgs(norm.weight, shift, True, None)
    idx = torch.arange(T, device=norm.running_mean.device).clamp(max=norm.slots - 1)
    return NormArgs(norm.weight, shift, False, (norm.running_mean[idx], norm.running_var[idx]))


@register("bn_lstm")
def bn_lstm(
    input_size: int,
    hidden_size: int,
    max_length: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    batch_first: bool = True,
    gamma_init: float = 0.1,
    variant: str = "full",
    normalization: str = "step",
    momentum: float | None = 0.1,
    eps: float = 1e-5,
) -> Recurrent | Stacked:
    """A BN-LSTM layer, stack, or bidirectional stack (Cooijmans et al., 2017).

    Args:
        input_size, hidden_size, max_length: see :class:`BNLSTMCell`.
        num_layers: number of stacked layers.
        bidirectional: each layer runs both directions and concatenates them (output 2H).
        dropout: dropout between layers (as ``torch.nn.LSTM``).
        batch_first: `[B, T, I]` (default) or `[T, B, I]` layout.
        gamma_init, variant, normalization, momentum, eps: see :class:`BNLSTMCell`.

    Returns:
        ``Recurrent(BNLSTMCell)`` for one unidirectional layer, else ``Stacked`` of ``Recurrent`` or
        ``Bidirectional`` layers.
    """
    check_positive(num_layers, "num_layers")
    opts = {
        "gamma_init": gamma_init,
        "variant": variant,
        "normalization": normalization,
        "momentum": momentum,
        "eps": eps,
    }
    if num_layers == 1 and not bidirectional:
        return Recurrent(BNLSTMCell(input_size, hidden_size, max_length, **opts), batch_first=batch_first)
    layers: list[Recurrent | Bidirectional] = []
    for k in range(num_layers):
        size = input_size if k == 0 else hidden_size * (2 if bidirectional else 1)
        fwd = Recurrent(BNLSTMCell(size, hidden_size, max_length, **opts), batch_first=batch_first)
        if bidirectional:
            bwd = Recurrent(BNLSTMCell(size, hidden_size, max_length, **opts), batch_first=batch_first)
            layers.append(Bidirectional(fwd, bwd, batch_first=batch_first))
        else:
            layers.append(fwd)
    return Stacked(layers, dropout=dropout, batch_first=batch_first)
