"""Models: cells, the time loop, composition, and the registry behind ``mnemonet.build``."""

from mnemonet.models import brims, cells, rims  # registers "rnn", "lstm", "gru", "rims", "brims"
from mnemonet.models.base import Cell, RecurrentModel
from mnemonet.models.brims import BRIMsCell
from mnemonet.models.cells import GRUCell, GRUState, LSTMCell, LSTMState, RNNCell, RNNState
from mnemonet.models.readout import Outputs, Readout
from mnemonet.models.recurrent import Bidirectional, BiState, Recurrent, Stacked, reverse_padded
from mnemonet.models.registry import available, build, register
from mnemonet.models.rims import RIMsCell, RIMsGRUState, RIMsState, run_with_trace

__all__ = [
    "BRIMsCell",
    "BiState",
    "Bidirectional",
    "Cell",
    "GRUCell",
    "GRUState",
    "LSTMCell",
    "LSTMState",
    "Outputs",
    "RIMsCell",
    "RIMsGRUState",
    "RIMsState",
    "RNNCell",
    "RNNState",
    "Readout",
    "Recurrent",
    "RecurrentModel",
    "Stacked",
    "available",
    "brims",
    "build",
    "cells",
    "register",
    "reverse_padded",
    "rims",
    "run_with_trace",
]  # fmt: skip
