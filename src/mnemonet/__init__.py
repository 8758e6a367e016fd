"""mnemonet: recurrent networks with memory — build them, train them on memory tasks, look inside them."""

from mnemonet.models import (
    Bidirectional,
    Cell,
    GRUCell,
    LSTMCell,
    Outputs,
    Readout,
    Recurrent,
    RecurrentModel,
    RNNCell,
    Stacked,
    available,
    build,
    register,
)
from mnemonet.models.summary import summary

__version__ = "0.1.0"

__all__ = [
    "Bidirectional", "Cell", "GRUCell", "LSTMCell", "Outputs", "RNNCell", "Readout", "Recurrent", "RecurrentModel",
    "Stacked", "__version__", "available", "build", "register", "summary",
]  # fmt: skip
