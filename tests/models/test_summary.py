"""Keras-style summary: the reference network's parameter counts."""

import pytest
import torch
from torch import nn

import mnemonet
from mnemonet import Outputs


def test_summary_of_the_reference_sentiment_network():
    # Embedding(400001, 50) -> LSTM(128, sequences) -> Dropout -> LSTM(128, last) -> Dropout -> Dense(5) -> softmax
    net = nn.Sequential(
        nn.Embedding(400001, 50),
        Outputs(mnemonet.build("lstm", input_size=50, hidden_size=128, single_bias=True)),
        nn.Dropout(0.5),
        Outputs(mnemonet.build("lstm", input_size=128, hidden_size=128, single_bias=True), return_sequences=False),
        nn.Dropout(0.5),
        nn.Linear(128, 5),
        nn.Softmax(dim=-1),
    )
    net[0].weight.requires_grad_(False)  # pretrained embeddings are usually frozen
    s = mnemonet.summary(net, (1, 10), dtype=torch.long)
    assert [r.params for r in s.rows] == [20_000_050, 91_648, 0, 131_584, 0, 645, 0]
    assert [r.output_shape for r in s.rows] == [(1, 10, 50), (1, 10, 128), (1, 10, 128), (1, 128), (1, 128),
                                                (1, 5), (1, 5)]  # fmt: skip
    assert s.total == 20_223_927
    assert s.trainable == 20_223_927 - 20_000_050
    text = str(s)
    assert "Total params: 20,223,927" in text and "Non-trainable params: 20,000,050" in text


def test_summary_of_a_stacked_model_lists_layers():
    model = mnemonet.build("gru", input_size=4, hidden_size=6, num_layers=2, bidirectional=True)
    s = mnemonet.summary(model, (2, 5, 4))
    assert [r.name for r in s.rows] == ["layers.0", "layers.1"]
    assert [r.output_shape for r in s.rows] == [(2, 5, 12), (2, 5, 12)]
    assert s.total == sum(p.numel() for p in model.parameters())


def test_summary_rejects_bad_shapes():
    with pytest.raises(ValueError, match="input_shape: expected positive integers"):
        mnemonet.summary(nn.Linear(2, 2), (0, 2))
