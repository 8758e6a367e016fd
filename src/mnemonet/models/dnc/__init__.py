"""The Differentiable Neural Computer (Graves et al., Nature 2016): addressing functions, memory access, cell.

``build("dnc", input_size, output_size, hidden_size, memory_size, word_size, num_reads, ...)`` returns a
``Recurrent`` around a :class:`DNCCell`. The equations live in :mod:`.addressing` (dense) and
:mod:`.sparse_link`; :mod:`.access` composes them into one memory step; :mod:`.trace` names what
``model.trace(x)`` records. With kernels enabled the paper's configuration runs a whole sequence as one
autograd node (``mnemonet.kernels.dnc_sequence``), which keeps a few per-step buffers for later calls;
:func:`release_workspaces` frees them. ``memory="sam"`` / ``"sdnc"`` selects the sparse memory of Rae et al.
(2016): :mod:`.sparse` and :mod:`.sparse_temporal`.
"""

from mnemonet.kernels.dnc_sequence import release_workspaces
from mnemonet.models.dnc import addressing
from mnemonet.models.dnc.access import (
    AccessInfo,
    AccessState,
    LinkState,
    MemoryAccess,
    SparseLinkState,
    access_step,
    initial_access_state,
)
from mnemonet.models.dnc.cell import DNCCell, DNCState, build_dnc
from mnemonet.models.dnc.conventions import REFERENCES, from_deepmind_layout
from mnemonet.models.dnc.interface import Interface, interface_size, split_interface
from mnemonet.models.dnc.sparse import SparseAccessState, SparseMemoryAccess
from mnemonet.models.dnc.trace import Trace

__all__ = [
    "REFERENCES", "AccessInfo", "AccessState", "DNCCell", "DNCState", "Interface", "LinkState", "MemoryAccess",
    "SparseAccessState", "SparseLinkState", "SparseMemoryAccess", "Trace", "access_step", "addressing",
    "build_dnc", "from_deepmind_layout", "initial_access_state", "interface_size", "release_workspaces",
    "split_interface",
]  # fmt: skip
