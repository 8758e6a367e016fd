"""The HTML report: it parses, every image it references is embedded and decodes, and the analysis composes."""

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

import mnemonet
from mnemonet.analysis.report import (
    Section,
    analysis_sections,
    load_sections,
    rebuild_report,
    save_sections,
    write_report,
)
from mnemonet.analysis.slow_points import SlowPoints
from mnemonet.analysis.trajectories import run_trajectories

PNG = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Collects the title, section headings and image sources; checks that tags balance."""

    VOID = frozenset({"meta", "img", "br", "link"})

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.headings, self.title, self._in = [], [], [], "", None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)
        self._in = tag

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack}"
        self.stack.pop()
        self._in = None

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in == "h2":
            self.headings.append(data)


def _parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    assert page.stack == []
    return page


def _decode(src):
    head, data = src.split(",", 1)
    assert head == "data:image/png;base64"
    return base64.b64decode(data, validate=True)


def _png(path, color="red"):
    fig = Figure(figsize=(1, 1))
    fig.add_subplot(111).plot([0, 1], [0, 1], color=color)
    fig.savefig(path, format="png")
    return path


def test_report_is_self_contained_and_parses(tmp_path):
    run = tmp_path / "run"
    (run / "analysis").mkdir(parents=True)
    inside = _png(run / "analysis" / "one.png")
    outside = _png(tmp_path / "two.png", "blue")
    sections = [
        ("Speeds <fast> & slow", "First paragraph.\n\nSecond, with <b>markup</b>.", ["analysis/one.png"]),
        Section("More", "text", [outside]),
    ]
    out = write_report(run, sections, title="Run <1>")
    assert out == run / "report.html"
    page = _parse(out)
    assert page.title == "Run <1>" and page.headings == ["Speeds <fast> & slow", "More"]
    assert len(page.images) == 2
    assert [_decode(img["src"]) for img in page.images] == [inside.read_bytes(), outside.read_bytes()]
    assert "<b>markup</b>" not in out.read_text()
    assert (run / "analysis" / "two.png").read_bytes() == outside.read_bytes()  # kept as a file too


def test_report_rejects_missing_or_non_png_images(tmp_path):
    with pytest.raises(ValueError, match=r"sections\[0\]: image .* does not exist"):
        write_report(tmp_path, [("a", "", ["nope.png"])])
    (tmp_path / "fake.png").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="not a PNG"):
        write_report(tmp_path, [("a", "", ["fake.png"])])


def _batch(B=16, T=9, D=3):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(B) % 3
    ts = torch.randint(0, 2, (B,), generator=g)
    ta = ts + 4 + torch.randint(0, 3, (B,), generator=g)
    x = torch.zeros(B, T, D + 1)
    x[:, :, :D] = 0.1 * torch.randn(B, T, D, generator=g)
    x[torch.arange(B), ts, :D] = torch.nn.functional.one_hot(labels, D).float() * 2 - 1
    x[torch.arange(B), ta, D] = 1.0
    return x, labels, ts, ta


def test_analysis_sections_compose_into_a_report(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    records = [{"step": 10 * i, "loss": 2.0 / (i + 1), "accuracy": 0.2 * i} for i in range(4)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    model = mnemonet.build("gru", input_size=4, hidden_size=5).eval()
    x, labels, ts, ta = _batch()
    traj = run_trajectories(model, x, labels=labels, ts=ts, ta=ta)
    curves = {"none": ([5, 10, 20], [0.9, 0.6, 0.3])}
    summary = {}
    sections = analysis_sections(
        model, traj, run / "analysis", num_initial=12, per_class=3, delay_curves=curves, trained_max=10,
        finder_kwargs={"max_steps": 400}, attractor_steps=100, summary=summary,
    )  # fmt: skip
    titles = [s.title for s in sections]
    assert titles == ["Hidden-state PCA", "Slow points", "Attractors", "Slow-point speed vs accuracy",
                      "Accuracy vs delay"]  # fmt: skip
    names = ("pca_2d", "pca_3d", "slow_points", "eigenvalues", "attractors", "speed_vs_accuracy", "accuracy_vs_delay")
    for name in names:
        assert (run / "analysis" / f"{name}.png").read_bytes()[:8] == PNG
    points = SlowPoints.load(run / "analysis" / "slow_points.npz")
    per_class = SlowPoints.load(run / "analysis" / "class_slow_points.npz")
    assert per_class.labels.tolist() == [0, 1, 2] and points.states.shape[1] == 5
    assert "Spearman ρ" in sections[3].text
    assert summary["slow_points"]["distinct"] == len(points) and len(summary["attractors"]) >= 1
    assert set(summary["speed_vs_accuracy"]) >= {"spearman_rho", "p"}

    save_sections(run, sections)
    assert [s.title for s in load_sections(run)] == titles
    assert all(not str(p).startswith("/") for s in load_sections(run) for p in s.images)  # relative to the run
    out = rebuild_report(run)
    page = _parse(out)
    assert page.headings == ["Training curves", *titles]
    assert len(page.images) == 1 + 2 + 2 + 1 + 1 + 1
    for img in page.images:
        assert _decode(img["src"])[:8] == PNG
    assert (run / "analysis" / "training_curves.png").is_file()


def test_analysis_sections_need_an_input_without_phases(tmp_path):
    model = mnemonet.build("gru", input_size=4, hidden_size=5).eval()
    traj = run_trajectories(model, torch.randn(3, 5, 4))
    with pytest.raises(ValueError, match="input"):
        analysis_sections(model, traj, tmp_path)
    sections = analysis_sections(
        model, traj, tmp_path, input=torch.zeros(4), num_initial=4, finder_kwargs={"max_steps": 100}
    )
    assert [s.title for s in sections] == ["Hidden-state PCA", "Slow points"]


def test_rebuild_report_from_a_relative_run_folder(tmp_path, monkeypatch):
    import json

    from mnemonet.analysis.report import rebuild_report

    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    lines = [json.dumps({"step": s, "train_loss": 1.0 / s, "valid_accuracy": 0.1 * s}) for s in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    path = rebuild_report(Path("runs/x"))
    assert path.resolve() == (run / "report.html").resolve()
    assert "data:image/png;base64," in path.read_text()
