"""Memory maps of a DNC trace render to PNG, show the traced values, and reject bad input."""

import numpy as np
import pytest
import torch

from mnemonet.analysis.memory_maps import memory_panels, plot_memory_access
from mnemonet.models.dnc import Trace, build_dnc


def run_with_trace(model, x, state=None, lengths=None):
    """A DNC's output, final state and memory trace (``model.trace`` as a ``Trace``)."""
    y, final, traces = model.trace(x, state, lengths=lengths)
    return y, final, Trace(**traces)


def test_plot_memory_access_renders_png(tmp_path):
    model = build_dnc(input_size=4, output_size=4, hidden_size=16, memory_size=10, word_size=6, num_reads=2)
    _, _, trace = run_with_trace(model, torch.randn(2, 12, 4))
    path = tmp_path / "memory.png"
    fig = plot_memory_access(trace, batch_index=1, path=path)
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 5
    write = np.asarray(images[0].get_array())
    np.testing.assert_allclose(write, trace.write_weights[1, :, 0].numpy().T, rtol=1e-6)  # slot × time
    usage = np.asarray(images[2].get_array())
    np.testing.assert_allclose(usage, trace.usage[1].numpy().T, rtol=1e-6)


def test_memory_panels_layout_with_two_write_heads():
    model = build_dnc(input_size=3, output_size=2, hidden_size=8, memory_size=5, word_size=4, num_reads=3, num_writes=2)
    _, _, trace = run_with_trace(model, torch.randn(1, 7, 3))
    panels = memory_panels(trace)
    assert panels["write"][0].shape == (2 * 5, 7) and panels["read"][0].shape == (3 * 5, 7)
    assert panels["gates"][0].shape == (2 + 2 + 3, 7) and len(panels["gates"][1]) == 7
    assert panels["modes"][0].shape == (3 * 5, 7)
    np.testing.assert_allclose(panels["read"][0][5:10], trace.read_weights[0, :, 1].numpy().T, rtol=1e-6)


def test_memory_maps_reject_bad_input():
    model = build_dnc(input_size=3, output_size=2, hidden_size=8, memory_size=5, word_size=4, num_reads=1)
    _, _, trace = run_with_trace(model, torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="batch_index"):
        plot_memory_access(trace, batch_index=2)
    with pytest.raises(ValueError, match="trace"):
        plot_memory_access(object())
    with pytest.raises(ValueError, match="usage"):
        plot_memory_access(trace._replace(usage=trace.usage[0]))
