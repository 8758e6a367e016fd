"""bAbI-style question answering (Weston et al. 2015), as the DNC paper trains it: all tasks jointly, word by word.

Two sources of stories share one encoding:

- a seeded generator (default) for a documented subset of the 20 bAbI task types, written here from
  their published descriptions (not Facebook's generator; sentences are simpler and stories shorter):

  ====  =======================  =============================================================
  task  name                     question (answer)
  ====  =======================  =============================================================
  1     single supporting fact   ``where is mary ?`` (her last location)
  2     two supporting facts     ``where is the apple ?`` (where its holder went, or where dropped)
  3     three supporting facts   ``where was the apple before the kitchen ?`` (its previous place)
  6     yes/no questions         ``is mary in the kitchen ?`` (``yes`` / ``no``)
  7     counting                 ``how many objects is mary carrying ?`` (``none`` .. ``three``)
  8     lists / sets             ``what is mary carrying ?`` (objects in pick-up order, or ``nothing``)
  19    path finding             ``how do you go from the kitchen to the garden ?`` (two of n/s/e/w)
  ====  =======================  =============================================================

- the original files from a local folder (``path``, the en-10k layout ``qa{N}_{name}_{train,test}.txt``):
  every question becomes one sequence holding the statements of its story before it.

Each word is one input step (one-hot); after the question, one answer step per answer word carries
the answer flag and is scored by cross-entropy over the vocabulary. A question counts as an error
when any answer word is wrong; the metrics report the error per task and their mean (the paper's
mean error over tasks).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from mnemonet._checks import check_positive
from mnemonet.tasks.base import Batch, Task, pad_sequences
from mnemonet.tasks.bits import check_range
from mnemonet.tasks.data import check_split
from mnemonet.tasks.scoring import check_logits, weighted_cross_entropy

TASK_NAMES = {
    1: "single supporting fact",
    2: "two supporting facts",
    3: "three supporting facts",
    6: "yes/no questions",
    7: "counting",
    8: "lists/sets",
    19: "path finding",
}
PEOPLE = ("mary", "john", "daniel", "sandra")
PLACES = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
OBJECTS = ("apple", "football", "milk")
MOVES = ("moved", "went", "journeyed", "travelled")
TAKES = ("picked", "got", "grabbed")
DROPS = ("dropped", "discarded", "left")
NUMBERS = ("none", "one", "two", "three")
DIRECTIONS = {"north": "n", "south": "s", "east": "e", "west": "w"}
OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
STEP = {"north": (-1, 0), "south": (1, 0), "east": (0, 1), "west": (0, -1)}
PAD = "<pad>"
_FUNCTION_WORDS = (".", "?", ",", "the", "to", "up", "is", "in", "where", "was", "before", "how", "many",
                   "objects", "carrying", "what", "do", "you", "go", "from", "of", "yes", "no", "nothing")  # fmt: skip
VOCABULARY = (PAD, *_FUNCTION_WORDS, *PEOPLE, *PLACES, *OBJECTS, *MOVES, *TAKES, *DROPS, *NUMBERS[:1], *NUMBERS[1:],
              *DIRECTIONS, *DIRECTIONS.values())  # fmt: skip


class Story(NamedTuple):
    """One question on a story.

    Attributes:
        sentences: the statements before the question, each a list of words (with the final ``.``).
        question: the question's words (with the final ``?``).
        answer: the answer words (one or more).
        supporting: indices into ``sentences`` of the facts that answer the question.
        task: the bAbI task number.
    """

    sentences: list[list[str]]
    question: list[str]
    answer: list[str]
    supporting: list[int]
    task: int


def tokenize(text: str) -> list[str]:
    """Lower-case words with ``.``, ``?`` and ``,`` as words of their own."""
    return re.sub(r"([.?,])", r" \1 ", text.lower()).split()


class Vocabulary:
    """Words <-> ids; id 0 is the padding word ``<pad>`` (also the id of unknown words)."""

    def __init__(self, words: list[str] | tuple[str, ...]) -> None:
        words = [PAD, *dict.fromkeys(w for w in words if w != PAD)]
        self.words = words
        self._ids = {w: i for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.words)

    def id(self, word: str) -> int:
        """The id of ``word`` (0 when unknown)."""
        return self._ids.get(word, 0)

    def encode(self, words: list[str]) -> list[int]:
        return [self.id(w) for w in words]

    def decode(self, ids: list[int]) -> list[str]:
        return [self.words[i] for i in ids]


# ----------------------------------------------------------------------------------------------
# the generator
# ----------------------------------------------------------------------------------------------


def _pick(options: list | tuple, generator: torch.Generator) -> Any:
    return options[int(torch.randint(0, len(options), (1,), generator=generator))]


class _World:
    """People moving between places and carrying objects; one sentence per action, with its history."""

    def __init__(self) -> None:
        self.sentences: list[list[str]] = []
        self.where: dict[str, tuple[str, int]] = {}  # person -> (place, sentence of the move)
        self.holder: dict[str, tuple[str, int]] = {}  # object -> (person, sentence of the pick-up)
        self.carrying: dict[str, list[str]] = {p: [] for p in PEOPLE}
        self.history: dict[str, list[tuple[str, list[int]]]] = {o: [] for o in OBJECTS}  # object -> places

    def _place_object(self, obj: str, place: str, facts: list[int]) -> None:
        hist = self.history[obj]
        if not hist or hist[-1][0] != place:
            hist.append((place, facts))

    def move(self, person: str, place: str, generator: torch.Generator) -> None:
        i = len(self.sentences)
        self.sentences.append([person, _pick(MOVES, generator), "to", "the", place, "."])
        self.where[person] = (place, i)
        for obj in self.carrying[person]:
            self._place_object(obj, place, [self.holder[obj][1], i])

    def take(self, person: str, obj: str, generator: torch.Generator) -> None:
        i = len(self.sentences)
        verb = _pick(TAKES, generator)
        self.sentences.append([person, verb, *(["up"] if verb == "picked" else []), "the", obj, "."])
        self.holder[obj] = (person, i)
        self.carrying[person].append(obj)
        self._place_object(obj, self.where[person][0], [i, self.where[person][1]])

    def drop(self, person: str, obj: str, generator: torch.Generator) -> None:
        self.sentences.append([person, _pick(DROPS, generator), "the", obj, "."])
        del self.holder[obj]
        self.carrying[person].remove(obj)

    def act(self, generator: torch.Generator, objects: bool) -> None:
        """One random valid action: a move, or (with ``objects``) a pick-up or a drop."""
        placed = [p for p in PEOPLE if p in self.where]
        choices = ["move"]
        free = [o for o in OBJECTS if o not in self.holder]
        if objects and placed and free:
            choices += ["take", "take"]
        if objects and self.holder:
            choices.append("drop")
        action = _pick(choices, generator)
        if action == "take":
            self.take(_pick(placed, generator), _pick(free, generator), generator)
        elif action == "drop":
            obj = _pick(sorted(self.holder), generator)
            self.drop(self.holder[obj][0], obj, generator)
        else:
            person = _pick(PEOPLE, generator)
            here = self.where.get(person, ("", 0))[0]
            self.move(person, _pick([p for p in PLACES if p != here], generator), generator)


def _question(world: _World, task: int, generator: torch.Generator) -> tuple[list[str], list[str], list[int]] | None:
    """A question of ``task`` about the world as it stands, or None if it has none to ask."""
    placed = sorted(world.where)
    if task in (1, 6):
        if not placed:
            return None
        person = _pick(placed, generator)
        place, fact = world.where[person]
        if task == 1:
            return ["where", "is", person, "?"], [place], [fact]
        asked = place if bool(torch.rand(1, generator=generator) < 0.5) else _pick(PLACES, generator)
        return ["is", person, "in", "the", asked, "?"], ["yes" if asked == place else "no"], [fact]
    if task == 2:
        seen = [o for o in OBJECTS if world.history[o]]
        if not seen:
            return None
        obj = _pick(seen, generator)
        place, facts = world.history[obj][-1]  # where its holder took it or went, or where it was dropped
        return ["where", "is", "the", obj, "?"], [place], sorted(set(facts))
    if task == 3:
        moved = [o for o in OBJECTS if len(world.history[o]) >= 2]
        if not moved:
            return None
        obj = _pick(moved, generator)
        (before, facts_before), (last, facts_last) = world.history[obj][-2], world.history[obj][-1]
        return ["where", "was", "the", obj, "before", "the", last, "?"], [before], sorted({*facts_before, *facts_last})
    if task in (7, 8):
        if not placed:
            return None
        carriers = [p for p in placed if world.carrying[p]]
        person = _pick(carriers if carriers and bool(torch.rand(1, generator=generator) < 0.75) else placed, generator)
        held = world.carrying[person]
        facts = sorted(world.holder[o][1] for o in held)
        if task == 7:
            return ["how", "many", "objects", "is", person, "carrying", "?"], [NUMBERS[len(held)]], facts
        return ["what", "is", person, "carrying", "?"], (list(held) or ["nothing"]), facts
    raise ValueError(f"task: expected one of {sorted(TASK_NAMES)}, got {task}")


def _path_story(generator: torch.Generator, num_places: int) -> Story:
    """Task 19: places on a grid along a self-avoiding walk, stated pairwise; the way between two places
    two steps apart along the walk."""
    for _ in range(100):
        cells, directions = [(0, 0)], []
        for _ in range(num_places - 1):
            options = [d for d in STEP if (cells[-1][0] + STEP[d][0], cells[-1][1] + STEP[d][1]) not in cells]
            if not options:
                break
            d = _pick(options, generator)
            cells.append((cells[-1][0] + STEP[d][0], cells[-1][1] + STEP[d][1]))
            directions.append(d)
        if len(cells) == num_places:
            break
    names = [PLACES[i] for i in torch.randperm(len(PLACES), generator=generator)[:num_places].tolist()]
    facts = []
    for i, d in enumerate(directions):  # names[i+1] lies d of names[i]
        if bool(torch.rand(1, generator=generator) < 0.5):
            facts.append(["the", names[i + 1], "is", d, "of", "the", names[i], "."])
        else:
            facts.append(["the", names[i], "is", OPPOSITE[d], "of", "the", names[i + 1], "."])
    order = torch.randperm(len(facts), generator=generator).tolist()
    sentences = [facts[i] for i in order]
    start = int(torch.randint(0, num_places - 2, (1,), generator=generator))
    question = ["how", "do", "you", "go", "from", "the", names[start], "to", "the", names[start + 2], "?"]
    answer = [DIRECTIONS[directions[start]], DIRECTIONS[directions[start + 1]]]
    supporting = sorted([order.index(start), order.index(start + 1)])
    return Story(sentences, question, answer, supporting, 19)


def generate_story(task: int, num_sentences: int, generator: torch.Generator) -> Story:
    """A random story of about ``num_sentences`` statements and one question of bAbI ``task``.

    The world runs ``num_sentences`` random actions (task 2 at least 2, task 3 at least 3), and more, up
    to about twice as many, until the task has a question to ask (else a new world is drawn). Task 19
    states ``min(num_sentences, 5) - 1`` (at least 2) adjacencies of places.

    Example:
        >>> s = generate_story(1, 3, torch.Generator().manual_seed(0))
        >>> len(s.sentences), s.question[:2], s.answer[0] in PLACES
        (3, ['where', 'is'], True)
    """
    if task not in TASK_NAMES:
        raise ValueError(f"task: expected one of {sorted(TASK_NAMES)}, got {task!r}")
    check_positive(num_sentences, "num_sentences")
    if task == 19:
        return _path_story(generator, max(3, min(num_sentences, 5)))
    objects = task not in (1, 6)
    least = max(num_sentences, {2: 2, 3: 3}.get(task, 1))  # task 2 needs a move and a pick-up, task 3 two places
    for _ in range(1000):  # a fresh world until one has a question to ask within twice the length
        world = _World()
        for n in range(2 * least + 2):
            world.act(generator, objects)
            if n + 1 >= least:
                asked = _question(world, task, generator)
                if asked is not None:
                    return Story([list(s) for s in world.sentences], *asked, task)
    raise RuntimeError(f"task {task}: no question in 1000 stories of {least} sentences")  # pragma: no cover


# ----------------------------------------------------------------------------------------------
# the original files
# ----------------------------------------------------------------------------------------------


def parse_babi(text: str, task: int = 0) -> list[Story]:
    """Stories of a bAbI file: ``ID sentence`` lines, questions ``ID question?<TAB>answer<TAB>supporting ids``.

    IDs restart at 1 with each new story. Each question gives one :class:`Story` holding the statements
    of its story before it; the answer is split at commas, supporting IDs become statement indices.

    Example:
        >>> parse_babi("1 Mary moved to the bathroom.\\n2 Where is Mary?\\tbathroom\\t1\\n", task=1)[0].answer
        ['bathroom']
    """
    stories: list[Story] = []
    sentences: list[list[str]] = []
    index_of: dict[int, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        head, _, rest = line.partition(" ")
        if not head.isdigit():
            raise ValueError(f"line {number}: expected 'ID text', got {line!r}")
        if int(head) == 1:
            sentences, index_of = [], {}
        if "\t" in rest:
            parts = rest.split("\t")
            if len(parts) < 2:
                raise ValueError(f"line {number}: expected 'question<TAB>answer<TAB>ids', got {line!r}")
            support = [index_of[int(i)] for i in parts[2].split()] if len(parts) > 2 else []
            answer = [a.strip().lower() for a in parts[1].split(",") if a.strip()]
            stories.append(Story([list(s) for s in sentences], tokenize(parts[0]), answer, support, task))
        else:
            index_of[int(head)] = len(sentences)
            sentences.append(tokenize(rest))
    return stories


def load_babi(path: str | Path, tasks: list[int] | tuple[int, ...]) -> dict[str, list[Story]]:
    """The en-10k files of ``tasks`` from a local folder: ``{"train": [...], "test": [...]}``.

    Args:
        path: folder holding ``qa{N}_*_train.txt`` and ``qa{N}_*_test.txt``.
        tasks: bAbI task numbers.

    Raises:
        FileNotFoundError: a task's file is missing (the message names the pattern and folder).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"path: {folder} is not a folder (expected bAbI files qa1_*_train.txt ...)")
    out: dict[str, list[Story]] = {"train": [], "test": []}
    for task in tasks:
        for split in out:
            found = sorted(folder.glob(f"qa{task}_*_{split}.txt"))
            if not found:
                raise FileNotFoundError(f"path: no file qa{task}_*_{split}.txt in {folder}")
            out[split] += parse_babi(found[0].read_text(encoding="utf-8"), task)
    return out


# ----------------------------------------------------------------------------------------------
# the task
# ----------------------------------------------------------------------------------------------


class BabiTask(Task):
    """Question answering over stories, word by word, trained jointly on several bAbI task types.

    With V words (id 0 = padding) and a story of words ``w_1 .. w_n`` ending with the question, whose
    answer has words ``a_1 .. a_m``::

        step          1     2   ...   n          n+1    ...   n+m
        x[:, :V]      w_1   w_2 ...   w_n ("?")  0      ...   0
        x[:, V] flag  0     0   ...   0          1      ...   1
        target        -     -   ...   -          a_1    ...   a_m
        weight        0     0   ...   0          1      ...   1

    Args:
        tasks: bAbI task numbers, drawn uniformly per sequence (joint training).
        story_length: (lo, hi) statements per generated story.
        test_story_length: (lo, hi) for ``"test"``; None means ``story_length``.
        path: folder of the original en-10k files; None uses the generator. With files, ``"train"`` and
            ``"valid"`` split each task's training questions 90 / 10 and ``"test"`` reads its test file.

    Example:
        >>> task = BabiTask(tasks=[1, 6], story_length=(2, 3))
        >>> batch = task.sample(2, torch.Generator().manual_seed(0))
        >>> task.input_size == len(task.vocab) + 1, tuple(batch.info["task"].shape)
        (True, (2,))
    """

    name = "babi"
    kind = "classification"
    primary_metric = "mean_error"
    higher_is_better = False

    def __init__(
        self,
        tasks: list[int] | tuple[int, ...] = tuple(TASK_NAMES),
        story_length: tuple[int, int] = (2, 6),
        test_story_length: tuple[int, int] | None = None,
        path: str | Path | None = None,
    ) -> None:
        tasks = [int(t) for t in tasks]
        if not tasks:
            raise ValueError("tasks: expected at least one bAbI task number")
        self.tasks = tasks
        self.story_length = check_range(tuple(story_length), "story_length")
        self.test_story_length = check_range(tuple(test_story_length or story_length), "test_story_length")
        self.path = None if path is None else str(path)
        self._stories: dict[str, dict[int, list[Story]]] | None = None
        if path is None:
            bad = [t for t in tasks if t not in TASK_NAMES]
            if bad:
                raise ValueError(f"tasks: the generator has tasks {sorted(TASK_NAMES)}, got {bad}")
            self.vocab = Vocabulary(VOCABULARY)
        else:
            self._stories = self._load(path, tasks)
            words = sorted(
                {w for split in self._stories.values() for ss in split.values() for s in ss for w in _words(s)}
            )
            self.vocab = Vocabulary(words)
        self.input_size = len(self.vocab) + 1
        self.output_size = len(self.vocab)

    @staticmethod
    def _load(path: str | Path, tasks: list[int]) -> dict[str, dict[int, list[Story]]]:
        out: dict[str, dict[int, list[Story]]] = {"train": {}, "valid": {}, "test": {}}
        for task in tasks:
            files = load_babi(path, [task])
            n_valid = max(1, len(files["train"]) // 10) if len(files["train"]) > 1 else 0
            out["train"][task] = files["train"][: len(files["train"]) - n_valid]
            out["valid"][task] = files["train"][len(files["train"]) - n_valid :] or files["train"]
            out["test"][task] = files["test"]
        return out

    def story(self, generator: torch.Generator, split: str = "train") -> Story:
        """One story and question of a random task for ``split``."""
        task = self.tasks[int(torch.randint(0, len(self.tasks), (1,), generator=generator))]
        if self._stories is not None:
            pool = self._stories[split][task]
            return pool[int(torch.randint(0, len(pool), (1,), generator=generator))]
        lo, hi = self.test_story_length if split == "test" else self.story_length
        n = int(torch.randint(lo, hi + 1, (1,), generator=generator))
        return generate_story(task, n, generator)

    def encode(self, story: Story) -> tuple[Tensor, Tensor, Tensor]:
        """``x [T, V+1]``, ``target [T]`` word ids (0 where unscored), ``weight [T]`` of one story."""
        words = self.vocab.encode([w for s in story.sentences for w in s] + story.question)
        answer = self.vocab.encode(story.answer)
        n, m, V = len(words), len(answer), len(self.vocab)
        x = torch.zeros(n + m, V + 1)
        x[torch.arange(n), torch.tensor(words, dtype=torch.int64)] = 1.0
        x[n:, V] = 1.0  # answer flag
        target = torch.zeros(n + m, dtype=torch.int64)
        target[n:] = torch.tensor(answer, dtype=torch.int64)
        weight = torch.zeros(n + m)
        weight[n:] = 1.0
        return x, target, weight

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """Draw ``batch_size`` stories (tasks mixed), padded at the end.

        Returns:
            Batch with x `[B, T, V+1]`, target `[B, T]`, weight `[B, T]`, lengths `[B]` (None when all
            equal) and info ``task`` `[B]` (bAbI task numbers).
        """
        split = check_split(split)
        check_positive(batch_size, "batch_size")
        stories = [self.story(generator, split) for _ in range(batch_size)]
        parts = [(x, y[:, None], w) for x, y, w in map(self.encode, stories)]  # targets (T, 1)
        batch = pad_sequences(parts, target_fill=-1)
        target = batch.target[..., 0].clamp_min(0)  # (B, T)
        return batch._replace(target=target, info={"task": torch.tensor([s.task for s in stories])})

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Cross-entropy of the answer words (mean over answer steps)."""
        check_logits(logits, batch.x, self.output_size)
        return weighted_cross_entropy(logits, batch.target, batch.weight)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """``error``: share of questions with a wrong answer word; ``error_task<N>`` per task (NaN when the
        batch has none); ``mean_error``: their mean over the tasks present; ``word_accuracy``."""
        check_logits(logits, batch.x, self.output_size)
        scored = (batch.weight > 0).to(logits.device)  # (B, T)
        right = logits.detach().argmax(-1) == batch.target.to(logits.device)  # (B, T)
        wrong = (scored & ~right).any(dim=1)  # (B,)
        tasks = batch.info["task"].to(logits.device)
        out = {"error": float(wrong.float().mean()), "word_accuracy": float((scored & right).sum() / scored.sum())}
        per_task = []
        for t in self.tasks:
            sel = tasks == t
            value = float(wrong[sel].float().mean()) if bool(sel.any()) else math.nan
            out[f"error_task{t}"] = value
            if not math.isnan(value):
                per_task.append(value)
        out["mean_error"] = sum(per_task) / len(per_task)
        return out


def _words(story: Story) -> list[str]:
    return [w for s in story.sentences for w in s] + story.question + story.answer
