"""Analysing run folders end to end (tiny runs), and the memory_speed regulariser and trainer.init_from in training."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from mnemonet.analysis.regularizers import answer_offset
from mnemonet.analysis.report import load_sections, rebuild_report
from mnemonet.analysis.slow_points import SlowPoints
from mnemonet.app import load_run, train
from mnemonet.app.run import build_run, init_from_run
from mnemonet.app.run_analysis import analyze_run, default_delays, parse_delays, pick_class_delay
from mnemonet.training import load_config, make_regularizer
from mnemonet.training.checkpoint import CheckpointError, load_checkpoint
from mnemonet.training.config import ConfigError

PNG = b"\x89PNG\r\n\x1a\n"
TRAINER = {"batch_size": 8, "eval_every": 5, "eval_batches": 1, "checkpoint_every": 5, "tensorboard": False,
           "threads": 1, "device": "cpu", "lr": 1e-2}  # fmt: skip
RECALL = {
    "model": {"name": "gru", "hidden_size": 8},
    "task": {"name": "delayed_recall", "t_max": 7, "min_gap": 2},
    "trainer": {**TRAINER, "steps": 10},
}
COPY_RIMS = {
    "model": {"name": "rims", "num_modules": 3, "module_size": 4, "k": 2, "input_key_size": 8, "comm_key_size": 8},
    "task": {"name": "copy", "bits": 3, "length_range": [1, 3], "test_length_range": [2, 4]},
    "trainer": {**TRAINER, "steps": 5},
}
FAST = {"max_steps": 150}  # slow-point finder budget for tests
UNTRAINED = {"num_trials": 128, "correct_only": False}  # centres over every trial: untrained models answer wrongly


def _train(cfg: dict, out: Path, overrides: list[str] = ()) -> Path:
    train(load_config(cfg, list(overrides)), out=out, progress="off")
    return out


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.headings, self._in = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in = tag

    def handle_data(self, data):
        if self._in == "h2":
            self.headings.append(data)
        self._in = None


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    for src in page.images:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        assert base64.b64decode(data, validate=True).startswith(PNG)
    return page


@pytest.fixture(scope="module")
def recall_run(tmp_path_factory) -> Path:
    return _train(RECALL, tmp_path_factory.mktemp("recall") / "run")


@pytest.fixture(scope="module")
def analysed(recall_run) -> Path:
    return analyze_run(recall_run, trials=64, delays=[2, 4, 6, 9, 12], finder_kwargs=FAST, progress=False)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def test_default_and_parsed_delays():
    assert default_delays(20) == [5, 10, 20, 30, 40, 60, 100]
    assert default_delays(3, shortest=2) == [2, 3, 4, 6, 9, 15]  # round() halves to even: 4.5 -> 4
    assert parse_delays(" 10,5, 10,40 ") == [5, 10, 40]
    for bad in ("", "5,x", "0,3", "-2"):
        with pytest.raises(ValueError, match="--delays: expected comma-separated integers >= 1"):
            parse_delays(bad)


def test_class_delay_is_the_one_halfway_between_chance_and_trained_accuracy():
    curve = {5: 1.0, 10: 0.9, 20: 0.8, 40: 0.5, 80: 0.15}  # trained up to 10; halfway = 0.1 + 0.4 = 0.5
    assert pick_class_delay(curve, trained_max=10, chance=0.1) == 40
    assert pick_class_delay({5: 1.0, 10: 0.9}, trained_max=10, chance=0.1) == 10  # nothing beyond: the longest
    assert pick_class_delay({30: 0.2, 60: 0.6}, trained_max=10, chance=0.2) == 60  # no trained delay: top is 1
    with pytest.raises(ValueError, match="curve"):
        pick_class_delay({}, 10, 0.1)


# ----------------------------------------------------------------------------------------------
# delayed recall: the full analysis
# ----------------------------------------------------------------------------------------------


def test_analyze_delayed_recall_writes_figures_slow_points_and_report(recall_run, analysed):
    assert analysed == recall_run / "report.html"
    out = recall_run / "analysis"
    for name in ("training_curves", "pca_2d", "pca_3d", "slow_points", "eigenvalues", "attractors",
                 "speed_vs_accuracy", "accuracy_vs_delay"):  # fmt: skip
        assert (out / f"{name}.png").read_bytes().startswith(PNG), name
    points = SlowPoints.load(out / "slow_points.npz")
    assert len(points) >= 1 and points.states.shape[1] == 8 and points.eigenvalues is not None
    per_class = SlowPoints.load(out / "class_slow_points.npz")
    assert per_class.labels is not None
    page = _page(analysed)
    assert page.headings[0] == "Training curves"
    for heading in ("Hidden-state PCA", "Slow points", "Attractors", "Slow-point speed vs accuracy",
                    "Accuracy vs delay", "Run and analysis settings"):  # fmt: skip
        assert heading in page.headings
    assert "Module activity (RIMs / BRIMs)" not in page.headings  # a GRU has no module trace
    assert len(page.images) == 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "delayed_recall" and summary["checkpoint"] == "best"
    assert summary["trained_max_delay"] == 6 and set(summary["accuracy_vs_delay"]) == {"2", "4", "6", "9", "12"}
    assert summary["class_delay"] in (9, 12) and summary["slow_points"]["distinct"] == len(points)
    assert summary["attractors"] and "spearman_rho" in summary["speed_vs_accuracy"]


def test_accuracy_vs_delay_matches_a_plain_loop(recall_run, analysed):
    """The curve in summary.json equals argmax-at-ta accuracy computed here trial by trial."""
    summary = json.loads((recall_run / "analysis" / "summary.json").read_text())
    run = load_run(recall_run, "best")
    gen = torch.Generator().manual_seed(1)  # analyze_run draws the curve's trials with seed + 1
    for delay in (2, 4, 6, 9, 12):
        batch = run.task.sample_at_delay(64, delay, gen, split="test")
        with torch.no_grad():
            logits, _ = run.model(batch.x)
        hits = 0
        for b in range(64):
            ta = int(batch.info["ta"][b])
            hits += int(logits[b, ta].argmax()) == int(batch.info["labels"][b]) + answer_offset(batch)
        assert summary["accuracy_vs_delay"][str(delay)] == pytest.approx(hits / 64)


def test_report_rebuilds_from_the_recorded_sections(recall_run, analysed):
    before = _page(analysed).headings
    analysed.unlink()
    assert rebuild_report(recall_run) == analysed
    assert _page(analysed).headings == before
    assert [s.title for s in load_sections(recall_run)] == before[1:]  # training curves are redrawn, not stored


def test_given_curve_is_used_and_last_checkpoint(tmp_path, recall_run):
    run = tmp_path / "copy_of_run"
    import shutil

    shutil.copytree(recall_run, run, ignore=shutil.ignore_patterns("analysis", "report.html"))
    curve = {3: 0.5, 6: 0.25, 30: 0.125}
    analyze_run(run, "last", trials=16, curve=curve, finder_kwargs=FAST, progress=False)
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    assert summary["accuracy_vs_delay"] == {"3": 0.5, "6": 0.25, "30": 0.125}
    assert summary["class_delay"] == 30 and summary["checkpoint"] == "last" and summary["step"] == 10


# ----------------------------------------------------------------------------------------------
# other tasks and models
# ----------------------------------------------------------------------------------------------


def test_analyze_a_copy_run_of_rims_gives_pca_and_module_raster(tmp_path):
    run = _train(COPY_RIMS, tmp_path / "rims")
    report = analyze_run(run, trials=8, progress=False)
    out = run / "analysis"
    assert (out / "pca_2d.png").read_bytes().startswith(PNG)
    assert (out / "module_activity.png").read_bytes().startswith(PNG)
    assert not (out / "slow_points.npz").exists()  # no delayed-recall phases, no slow-point search
    page = _page(report)
    assert {"Training curves", "Hidden-state PCA", "Module activity (RIMs / BRIMs)"} <= set(page.headings)
    assert json.loads((out / "summary.json").read_text())["kind"] == "generic"


def test_analyze_a_dnc_run_draws_its_memory_maps(tmp_path):
    pytest.importorskip("mnemonet.models.dnc")
    pytest.importorskip("mnemonet.analysis.memory_maps")
    cfg = {**COPY_RIMS, "model": {"name": "dnc", "hidden_size": 8, "memory_size": 6, "word_size": 4, "num_reads": 1}}
    run = _train(cfg, tmp_path / "dnc", ["trainer.steps=2", "trainer.eval_every=2"])
    page = _page(analyze_run(run, trials=4, progress=False))
    assert "Memory access (DNC)" in page.headings
    assert (run / "analysis" / "memory_access.png").read_bytes().startswith(PNG)


def test_not_a_run_and_bad_arguments_are_clear_errors(tmp_path, recall_run):
    with pytest.raises(ConfigError, match="not a run folder"):
        analyze_run(tmp_path)
    with pytest.raises(ValueError, match="trials: expected an integer > 0"):
        analyze_run(recall_run, trials=0)
    with pytest.raises(ValueError, match="delays: expected a non-empty list"):
        analyze_run(recall_run, delays=[])


# ----------------------------------------------------------------------------------------------
# the memory_speed regulariser and trainer.init_from in training
# ----------------------------------------------------------------------------------------------


def _model_and_task():
    run = build_run(load_config(RECALL))
    return run.model, run.task


def test_memory_speed_penalty_is_linear_in_its_weight_and_zero_at_zero():
    model, task = _model_and_task()
    terms = {w: make_regularizer("memory_speed", model, task, weight=w, **UNTRAINED)(model) for w in (0.0, 1.0, 3.0)}
    assert terms[1.0].requires_grad
    value = {w: float(t.detach()) for w, t in terms.items()}
    assert value[1.0] > 0
    assert value[3.0] == pytest.approx(3 * value[1.0], rel=1e-6)  # same anchors, same inputs
    assert value[0.0] == 0.0


def test_memory_speed_changes_gradients_only_with_a_positive_weight():
    model, task = _model_and_task()
    batch = task.sample(8, torch.Generator().manual_seed(3))

    def grads(weight: float | None) -> list[torch.Tensor]:
        model.zero_grad()
        loss = task.loss(model(batch.x)[0], batch)
        if weight is not None:
            loss = loss + make_regularizer("memory_speed", model, task, weight=weight, **UNTRAINED)(model, batch)
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    plain, zero, positive = grads(None), grads(0.0), grads(1.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, zero, strict=True))
    assert any(not torch.allclose(a, b) for a, b in zip(plain, positive, strict=True))


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(run_dir / "checkpoints" / "step_00000003.json")
    return tensors


def test_trainer_with_memory_speed_weight_zero_equals_no_regulariser(tmp_path):
    reg = [
        "regularizer.name=memory_speed",
        "regularizer.num_trials=128",
        "regularizer.correct_only=false",
        "trainer.steps=3",
        "trainer.checkpoint_every=3",
    ]
    base = _weights(_train(RECALL, tmp_path / "none", ["trainer.steps=3", "trainer.checkpoint_every=3"]))
    zero = _weights(_train(RECALL, tmp_path / "zero", [*reg, "regularizer.weight=0"]))
    strong = _weights(_train(RECALL, tmp_path / "strong", [*reg, "regularizer.weight=1e1"]))  # read as a string
    keys = [k for k in base if k.startswith("model.")]
    assert all(torch.equal(base[k], zero[k]) for k in keys)
    assert any(not torch.allclose(base[k], strong[k]) for k in keys)


def test_memory_speed_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"regularizer\.wieght: unknown key for memory_speed; did you mean 'weight'"):
        _train(RECALL, tmp_path / "a", ["regularizer.name=memory_speed", "regularizer.wieght=1"])
    with pytest.raises(ConfigError, match="regularizer: kind: expected one of"):
        _train(RECALL, tmp_path / "b", ["regularizer.name=memory_speed", "regularizer.kind=fast"])
    with pytest.raises(ConfigError, match="memory_speed needs a task whose batches carry labels, ts and ta"):
        _train(COPY_RIMS, tmp_path / "c", ["regularizer.name=memory_speed"])


def test_finetune_preset_starts_from_a_run_and_resumes(tmp_path, recall_run):
    small = ["model.hidden_size=8", "task.t_max=7", "task.min_gap=2", "trainer.batch_size=8", "trainer.eval_every=2",
             "trainer.eval_batches=1", "trainer.checkpoint_every=2", "trainer.tensorboard=false", "trainer.threads=1",
             "trainer.device=cpu", "regularizer.num_trials=128", "regularizer.correct_only=false",
             f"trainer.init_from={recall_run}"]  # fmt: skip
    cfg = load_config("delayed_recall_gru_finetune_speed-small", [*small, "trainer.steps=1", "trainer.lr=1e-12"])
    assert cfg.curriculum.name is None and cfg.regularizer.name == "memory_speed"
    _, run = train(cfg, out=tmp_path / "ft0", progress="off")
    source, _ = load_checkpoint(recall_run / "checkpoints" / "best.json")
    for name, value in run.model.state_dict().items():  # one Adam step of lr 1e-12 from the source weights
        assert torch.allclose(value, source[f"model.{name}"], atol=1e-9), name

    cfg = load_config("delayed_recall_gru_finetune_speed-small", [*small, "trainer.steps=4"])
    train(cfg, out=tmp_path / "ft", progress="off")
    result, _ = train(load_config(tmp_path / "ft" / "config.yaml", ["trainer.steps=6"]), resume=tmp_path / "ft",
                      progress="off")  # fmt: skip
    assert result.step == 6 and result.reason == "finished"


def test_init_from_errors(tmp_path, recall_run):
    model, _ = _model_and_task()
    assert init_from_run(model, recall_run) == recall_run / "checkpoints" / "best.json"
    with pytest.raises(ConfigError, match=r"trainer\.init_from: .* is not a run folder"):
        init_from_run(model, tmp_path)
    with pytest.raises(ConfigError, match=r"expected a run folder or a checkpoint \.json"):
        init_from_run(model, tmp_path / "missing")
    bigger = build_run(load_config(RECALL, ["model.hidden_size=9"])).model
    with pytest.raises(CheckpointError, match="has shape"):
        init_from_run(bigger, recall_run)


def test_parse_positive_ints_is_shared_and_names_its_argument():
    from mnemonet._checks import parse_positive_ints

    assert parse_positive_ints("2,1,2", "--threads") == [1, 2]
    for bad in ["", "0", "1,-2", "two"]:
        with pytest.raises(ValueError, match="--threads: expected comma-separated integers >= 1 such as 1,2"):
            parse_positive_ints(bad, "--threads")


def test_over_training_follows_every_kept_checkpoint(recall_run, analysed):
    from mnemonet.app.run_analysis import analyze_over_training

    page = analyze_over_training(recall_run, delay=9, trials=32, max_steps=20)
    data = json.loads((recall_run / "analysis" / "over_training.json").read_text())
    assert [r["step"] for r in data["rows"]] == [5, 10] and data["delay"] == 9
    assert all(len(r["speeds"]) == len(r["accuracy"]) == 10 for r in data["rows"])
    for suffix in ("png", "pdf", "svg"):
        assert (recall_run / "analysis" / f"over_training.{suffix}").stat().st_size > 0
    assert "Slow points over training" in _page(page).headings


def test_analyze_a_moving_digits_run_draws_frames_and_probes_layers(tmp_path):
    cfg = {
        "model": {"name": "frame_predictor", "core": "lstm", "embed_size": 8, "hidden_size": 8, "num_layers": 2},
        "task": {"name": "moving_digits", "canvas": 16, "num_digits": 1, "frames": 4, "observed": 2},
        "trainer": {"steps": 2, "batch_size": 4, "eval_every": 2, "eval_batches": 1, "tensorboard": False},
    }
    run = _train(cfg, tmp_path / "video")
    page = _page(analyze_run(run, trials=8, progress=False))
    assert "Predicted frames and location probe" in page.headings
    assert (run / "analysis" / "frames.png").read_bytes().startswith(PNG)
    text = (run / "report.html").read_text()
    assert "layer 1: R²" in text and "layer 2: R²" in text
