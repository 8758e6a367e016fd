"""bAbI-style QA: hand-built stories with known answers, generated answers re-derived by an independent
reader of the sentences, path-finding answers walked on the stated grid, the en-10k loader on files the
test writes, the word-by-word encoding and per-task error."""

import pytest
import torch

from mnemonet.tasks.babi import (
    DIRECTIONS,
    NUMBERS,
    TASK_NAMES,
    BabiTask,
    Story,
    _question,
    _World,
    generate_story,
    load_babi,
    parse_babi,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_two_fact_story_with_a_known_answer():
    g = gen(0)
    world = _World()
    world.move("mary", "hallway", g)  # 0
    world.take("mary", "apple", g)  # 1
    world.move("john", "office", g)  # 2
    world.move("mary", "kitchen", g)  # 3
    question, answer, support = _question(world, 2, g)
    assert question == ["where", "is", "the", "apple", "?"] and answer == ["kitchen"] and support == [1, 3]
    question, answer, support = _question(world, 3, g)
    assert question == ["where", "was", "the", "apple", "before", "the", "kitchen", "?"]
    assert answer == ["hallway"] and support == [0, 1, 3]
    assert world.sentences[1][-2:] == ["apple", "."] and world.sentences[3][-2:] == ["kitchen", "."]
    world.take("mary", "milk", g)
    counted = [_question(world, 7, gen(s)) for s in range(10)]
    assert (["how", "many", "objects", "is", "mary", "carrying", "?"], ["two"], [1, 4]) in counted
    listed = [_question(world, 8, gen(s)) for s in range(10)]
    assert (["what", "is", "mary", "carrying", "?"], ["apple", "milk"], [1, 4]) in listed


def read_world(sentences):
    """An independent reader: who is where, who holds what, where each object is."""
    where, holds, objects = {}, {}, {}
    for s in sentences:
        person = s[0]
        if s[-2] in ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office") and "to" in s:
            where[person] = s[-2]
            for o in holds.get(person, []):
                objects[o] = s[-2]
        elif s[1] in ("picked", "got", "grabbed"):
            holds.setdefault(person, []).append(s[-2])
            objects[s[-2]] = where[person]
        else:
            holds[person].remove(s[-2])
    return where, holds, objects


@pytest.mark.parametrize("task", [1, 2, 6, 7, 8])
def test_generated_answers_agree_with_an_independent_reader(task):
    for seed in range(30):
        s = generate_story(task, 6, gen(seed))
        where, holds, objects = read_world(s.sentences)
        q = s.question
        if task == 1:
            assert s.answer == [where[q[2]]]
        elif task == 2:
            assert s.answer == [objects[q[3]]]
        elif task == 6:
            assert s.answer == ["yes" if where[q[1]] == q[4] else "no"]
        elif task == 7:
            assert s.answer == [NUMBERS[len(holds.get(q[4], []))]]
        else:
            assert s.answer == (holds.get(q[2]) or ["nothing"])
        assert s.task == task and all(0 <= i < len(s.sentences) for i in s.supporting)


def test_path_finding_answers_walk_from_start_to_goal():
    step = {"n": (-1, 0), "s": (1, 0), "e": (0, 1), "w": (0, -1)}
    for seed in range(30):
        s = generate_story(19, 5, gen(seed))
        pos = {}  # place -> grid cell, from "the A is D of the B"
        facts = [(f[1], DIRECTIONS[f[3]], f[6]) for f in s.sentences]
        pos[facts[0][2]] = (0, 0)
        for _ in facts:
            for a, d, b in facts:
                dr, dc = step[d]
                if b in pos and a not in pos:
                    pos[a] = (pos[b][0] + dr, pos[b][1] + dc)
                elif a in pos and b not in pos:
                    pos[b] = (pos[a][0] - dr, pos[a][1] - dc)
        start, goal = s.question[6], s.question[9]
        r, c = pos[start]
        for d in s.answer:
            r, c = r + step[d][0], c + step[d][1]
        assert (r, c) == pos[goal] and len(s.answer) == 2


def test_encoding_marks_answer_steps():
    task = BabiTask(tasks=[1])
    story = Story([["mary", "went", "to", "the", "kitchen", "."]], ["where", "is", "mary", "?"], ["kitchen"], [0], 1)
    x, target, weight = task.encode(story)
    V = len(task.vocab)
    assert x.shape == (11, V + 1)
    assert task.vocab.decode(x[:10, :V].argmax(1).tolist()) == story.sentences[0] + story.question
    assert x[:10, V].sum() == 0 and x[10, V] == 1 and x[10, :V].sum() == 0
    assert weight.tolist() == [0] * 10 + [1] and task.vocab.decode([int(target[10])]) == ["kitchen"]


def test_joint_batches_are_seeded_and_scored_per_task():
    task = BabiTask(story_length=(2, 4))
    a, b = task.sample(16, gen(3)), task.sample(16, gen(3))
    assert torch.equal(a.x, b.x) and torch.equal(a.target, b.target) and torch.equal(a.info["task"], b.info["task"])
    assert set(a.info["task"].tolist()) <= set(TASK_NAMES)
    B, T, _ = a.x.shape
    logits = torch.full((B, T, task.output_size), -5.0)
    logits.scatter_(2, a.target[..., None], 5.0)
    m = task.metrics(logits, a)
    assert m["mean_error"] == 0.0 and m["error"] == 0.0 and m["word_accuracy"] == 1.0
    first = int(a.info["task"][0])
    logits[0] = -logits[0]  # every answer of sequence 0 wrong
    m = task.metrics(logits, a)
    share = 1 / int((a.info["task"] == first).sum())
    assert m[f"error_task{first}"] == pytest.approx(share) and m["error"] == pytest.approx(1 / B)


BABI_TRAIN = """1 Mary moved to the bathroom.
2 John went to the hallway.
3 Where is Mary?\tbathroom\t1
4 Daniel went back to the hallway.
5 Where is Daniel?\thallway\t4
1 Sandra travelled to the office.
2 Where is Sandra?\toffice\t1
"""
BABI_TEST = """1 John got the apple.
2 John got the milk.
3 What is John carrying?\tapple,milk\t1 2
"""


def write_babi(folder):
    (folder / "qa1_single-supporting-fact_train.txt").write_text(BABI_TRAIN)
    (folder / "qa1_single-supporting-fact_test.txt").write_text(BABI_TEST)


def test_parse_and_load_the_original_files(tmp_path):
    stories = parse_babi(BABI_TRAIN, task=1)
    assert [s.answer for s in stories] == [["bathroom"], ["hallway"], ["office"]]
    assert stories[1].sentences == [["mary", "moved", "to", "the", "bathroom", "."],
                                    ["john", "went", "to", "the", "hallway", "."],
                                    ["daniel", "went", "back", "to", "the", "hallway", "."]]  # fmt: skip
    assert stories[1].supporting == [2] and stories[1].question == ["where", "is", "daniel", "?"]
    assert len(stories[2].sentences) == 1  # a new story starts at ID 1
    test = parse_babi(BABI_TEST, task=8)
    assert test[0].answer == ["apple", "milk"] and test[0].supporting == [0, 1]
    write_babi(tmp_path)
    files = load_babi(tmp_path, [1])
    assert len(files["train"]) == 3 and len(files["test"]) == 1
    with pytest.raises(FileNotFoundError, match="qa2_"):
        load_babi(tmp_path, [2])
    with pytest.raises(ValueError, match="line 1"):
        parse_babi("Mary moved.\n")


def test_task_reads_the_files(tmp_path):
    write_babi(tmp_path)
    task = BabiTask(tasks=[1], path=tmp_path)
    assert {"daniel", "back", "apple", "milk", "bathroom"} <= set(task.vocab.words)
    batch = task.sample(4, gen(0), "test")
    assert task.vocab.decode(batch.target[0][batch.weight[0] > 0].tolist()) == ["apple", "milk"]
    assert (batch.info["task"] == 1).all()
    train = task.sample(8, gen(0), "train")
    assert train.x.shape[2] == len(task.vocab) + 1


def test_argument_errors():
    with pytest.raises(ValueError, match="tasks"):
        BabiTask(tasks=[4])
    with pytest.raises(ValueError, match="task"):
        generate_story(5, 3, gen(0))
    with pytest.raises(ValueError, match="story_length"):
        BabiTask(story_length=(3, 2))
