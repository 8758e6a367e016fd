"""NumPy from-scratch recurrent networks with hand-written backpropagation through time (no torch).

The reference that mnemonet's torch models are checked against and that readers can step through:
Elman RNN, LSTM and GRU layers in torch.nn's parameter layout and gate order, a dense read-out,
softmax cross-entropy, SGD / AdaGrad / RMSProp, clipping by global norm, tanh / softsign / relu,
Xavier initialisation and a finite-difference gradient checker. Everything is float64 NumPy; this
package must never import torch (a test enforces it).
"""

from mnemonet.reference.activations import (
    ACTIVATIONS,
    get_activation,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softsign,
    softsign_grad,
    tanh,
    tanh_grad,
)
from mnemonet.reference.clip import clip_by_global_norm, global_norm
from mnemonet.reference.gradcheck import gradcheck, numerical_gradient, relative_error
from mnemonet.reference.gru import GRU
from mnemonet.reference.init import as_generator, xavier_bound, xavier_uniform
from mnemonet.reference.layer import RecurrentLayer
from mnemonet.reference.linear import Linear
from mnemonet.reference.losses import log_softmax, softmax, softmax_cross_entropy
from mnemonet.reference.lstm import LSTM
from mnemonet.reference.model import SequenceModel
from mnemonet.reference.optim import SGD, AdaGrad, Optimizer, RMSProp
from mnemonet.reference.rnn import ElmanRNN
from mnemonet.reference.train import train_step

__all__ = [
    "ACTIVATIONS",
    "GRU",
    "LSTM",
    "SGD",
    "AdaGrad",
    "ElmanRNN",
    "Linear",
    "Optimizer",
    "RMSProp",
    "RecurrentLayer",
    "SequenceModel",
    "as_generator",
    "clip_by_global_norm",
    "get_activation",
    "global_norm",
    "gradcheck",
    "log_softmax",
    "numerical_gradient",
    "relative_error",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "softmax_cross_entropy",
    "softsign",
    "softsign_grad",
    "tanh",
    "tanh_grad",
    "train_step",
    "xavier_bound",
    "xavier_uniform",
]
