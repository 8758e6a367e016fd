"""Models: cells, the time loop, composition, and the registry behind ``mnemonet.build``."""

from mnemonet.models import bn_lstm, brims, cells, dnc, frames, rims  # registers the models by name
from mnemonet.models.base import Cell, RecurrentModel
from mnemonet.models.bn_lstm import BNLSTMCell
from mnemonet.models.brims import BRIMsCell
from mnemonet.models.cells import GRUCell, GRUState, LSTMCell, LSTMState, RNNCell, RNNState
from mnemonet.models.dnc import DNCCell
from mnemonet.models.readout import Outputs, Readout
from mnemonet.models.recurrent import Bidirectional, BiState, Recurrent, Stacked, reverse_padded
from mnemonet.models.registry import available, build, register
from mnemonet.models.rims import RIMsCell, RIMsGRUState, RIMsState
from mnemonet.models.seq_norm import StepBatchNorm

__all__ = [
    "BNLSTMCell",
    "BRIMsCell",
    "BiState",
    "Bidirectional",
    "Cell",
    "DNCCell",
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
    "StepBatchNorm",
    "available",
    "bn_lstm",
    "brims",
    "build",
    "cells",
    "dnc",
    "frames",
    "register",
    "reverse_padded",
    "rims",
]  # fmt: skip
