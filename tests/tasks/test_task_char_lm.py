"""Character LM: batchified streams checked against the text, carried positions and resume, bits per
character on known logits, temperature sampling on a toy logit vector, text generation from a toy model."""

import math

import pytest
import torch
from torch import nn

from mnemonet.tasks.char_lm import CharLMTask, sample_from_logits, sample_text
from mnemonet.tasks.data import CharVocab

TEXT = "".join(chr(ord("a") + (i * 7) % 26) for i in range(400))  # 400 characters, 26 letters


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def task(tmp_path):
    (tmp_path / "text8").write_text(TEXT)
    return CharLMTask("text8", tmp_path / "text8", seq_len=7)


def decode(task, onehot):
    return task.vocab.decode(onehot.argmax(-1))


def test_streams_are_consecutive_chunks(task):
    train = TEXT[:360]
    B, n = 3, 120
    seen = ["", "", ""]
    for i in range(task.num_batches("train", B)):
        batch = task.sample(B, gen())
        T = batch.x.shape[1]
        assert batch.x.shape == (B, T, 27) and (7 if i < 17 else 119 - 17 * 7) == T
        assert bool(batch.info["start"][0]) == (i == 0)
        for b in range(B):
            x_text = decode(task, batch.x[b])
            assert x_text == train[b * n + i * 7 : b * n + i * 7 + T]
            assert task.vocab.decode(batch.target[b]) == train[b * n + i * 7 + 1 : b * n + i * 7 + T + 1]
            seen[b] += x_text
        assert torch.all(batch.weight == 1)
    assert seen == [train[b * n : (b + 1) * n - 1] for b in range(B)]  # each stream covered once
    wrapped = task.sample(B, gen())
    assert bool(wrapped.info["start"][0]) and decode(task, wrapped.x[0]) == train[:7]


def test_positions_resume_from_state_dict(task, tmp_path):
    for _ in range(3):
        task.sample(2, gen(), split="valid")
        task.sample(4, gen())
    state = task.state_dict()
    expected = task.sample(4, gen())
    other = CharLMTask("text8", tmp_path / "text8", seq_len=7)
    other.load_state_dict(state)
    resumed = other.sample(4, gen())
    assert torch.equal(resumed.x, expected.x) and torch.equal(resumed.target, expected.target)
    assert int(resumed.info["position"][0]) == 21


def test_new_batch_size_and_reset_restart_streams(task):
    task.sample(2, gen())
    assert int(task.sample(2, gen()).info["position"][0]) == 7
    assert int(task.sample(3, gen()).info["position"][0]) == 0
    task.reset("train")
    assert bool(task.sample(3, gen()).info["start"][0])


def test_bpc_and_perplexity_on_known_logits(task):
    batch = task.sample(2, gen())
    uniform = torch.zeros(2, 7, 27)
    m = task.metrics(uniform, batch)
    assert m["bpc"] == pytest.approx(math.log2(27)) and m["perplexity"] == pytest.approx(27)
    # probability 1/2 on the right character, the rest spread evenly: bpc = 1
    logits = torch.full((2, 7, 27), 0.0)
    logits.scatter_(2, batch.target[..., None], math.log(26.0))
    m = task.metrics(logits, batch)
    assert m["bpc"] == pytest.approx(1.0, rel=1e-5) and m["perplexity"] == pytest.approx(2.0, rel=1e-5)
    assert m["accuracy"] == 1.0
    assert float(task.loss(logits, batch)) == pytest.approx(math.log(2.0), rel=1e-5)


def test_temperature_on_a_toy_logit_vector():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.5]])
    assert sample_from_logits(logits, 0.0).tolist() == [1]
    g = gen(1)
    cold = [int(sample_from_logits(logits, 0.01, g)[0]) for _ in range(200)]
    assert set(cold) == {1}
    counts = torch.bincount(sample_from_logits(logits.expand(20000, 4), 1.0, gen(2)), minlength=4).float() / 20000
    assert torch.allclose(counts, torch.softmax(logits[0], 0), atol=0.015)
    hot = torch.bincount(sample_from_logits(logits.expand(20000, 4), 100.0, gen(3)), minlength=4).float() / 20000
    assert torch.allclose(hot, torch.full((4,), 0.25), atol=0.02)
    with pytest.raises(ValueError, match="temperature"):
        sample_from_logits(logits, -1.0)


class NextLetter(nn.Module):
    """Toy model: its logits favour the letter after the one it was given (a -> b -> c ...)."""

    def __init__(self, vocab: CharVocab):
        super().__init__()
        self.vocab = vocab
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.calls = 0

    def initial_state(self, batch_size, device=None, dtype=None):
        return torch.zeros(batch_size, 1, device=device, dtype=dtype)

    def step(self, x_t, state, t=0, mask=None):
        self.calls += 1
        assert t == self.calls - 1
        V = x_t.shape[1]
        nxt = (x_t.argmax(-1) % (V - 1)) + 1  # index i -> i + 1, wrapping over the known letters
        return self.scale * nn.functional.one_hot(nxt, V).to(x_t.dtype), state + 1


def test_sample_text_from_a_toy_model():
    vocab = CharVocab("abcdefgh")
    model = NextLetter(vocab)
    assert sample_text(model, vocab, "ab", 5, temperature=0.0) == "cdefg"
    assert model.calls == 2 + 4  # the prime, then each generated character but the last
    assert sample_text(NextLetter(vocab), vocab, "g", 3, temperature=0.01, generator=gen()) == "hab"
    assert sample_text(NextLetter(vocab), vocab, "a", 0) == ""
    with pytest.raises(ValueError, match="prime"):
        sample_text(model, vocab, "", 3)
    wrong = NextLetter(vocab)
    wrong.step = lambda x_t, state, t=0: (torch.zeros(1, 4), state)  # logits of the wrong size
    with pytest.raises(ValueError, match=r"model: expected step logits of shape \(1, 9\)"):
        sample_text(wrong, vocab, "a", 2)


def test_shakespeare_default():
    task = CharLMTask(seq_len=20)
    assert task.name == "char_lm" and task.stateful and task.primary_metric == "bpc" and not task.higher_is_better
    assert task.vocab_size == len(task.vocab) and set("ROMEO romeo") <= set(task.vocab.chars)
    total = sum(task.num_chars(s) for s in ("train", "valid", "test"))
    assert task.num_chars("valid") == int(total * 0.05)
    batch = task.sample(2, gen())
    assert batch.x.shape == (2, 20, task.vocab_size) and torch.equal(batch.x.sum(-1), torch.ones(2, 20))


def test_bad_arguments(tmp_path, task):
    with pytest.raises(FileNotFoundError, match="path"):
        CharLMTask("ptb")
    with pytest.raises(ValueError, match="corpus"):
        CharLMTask("wikitext")
    with pytest.raises(ValueError, match="seq_len"):
        CharLMTask("text8", tmp_path / "text8", seq_len=0)
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(15, gen(), split="test")  # 20 characters cannot feed 15 streams of >= 2
    with pytest.raises(ValueError, match=r"logits: expected shape \(2, 7, 27\)"):
        task.loss(torch.zeros(2, 7, 26), task.sample(2, gen()))
