"""Models: cells, the time loop, composition, and the registry behind ``mnemonet.build``."""

from mnemonet.models import cells
from mnemonet.models.base import Cell, RecurrentModel
from mnemonet.models.cells import GRUCell, GRUState, LSTMCell, LSTMState, RNNCell, RNNState
from mnemonet.models.readout import Outputs, Readout
from mnemonet.models.recurrent import Bidirectional, BiState, Recurrent, Stacked, reverse_padded
from mnemonet.models.registry import available, build, register

__all__ = [
    "BiState", "Bidirectional", "Cell", "GRUCell", "GRUState", "LSTMCell", "LSTMState", "Outputs", "RNNCell",
    "RNNState", "Readout", "Recurrent", "RecurrentModel", "Stacked", "available", "build", "cells", "register",
    "reverse_padded",
]  # fmt: skip
