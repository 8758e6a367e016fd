"""Memory tasks and curricula: delayed recall, copy / repeat copy / associative recall, sequential
digits, character language modelling, moving digits, graph queries, bAbI-style QA; vocabulary, delay,
length and graph curricula. Build any by name with
:func:`make_task` and :func:`make_curriculum`."""

from mnemonet.tasks.babi import BabiTask
from mnemonet.tasks.base import Batch, Curriculum, Task
from mnemonet.tasks.bits import AssociativeRecallTask, BitTask, CopyTask, RepeatCopyTask
from mnemonet.tasks.char_lm import CharLMTask, sample_from_logits, sample_text
from mnemonet.tasks.copy_delay import CopyDelayTask
from mnemonet.tasks.curricula import (
    DelayCurriculum,
    DelaySchedule,
    LengthCurriculum,
    ScheduledCurriculum,
    ThresholdCurriculum,
    VocabularyCurriculum,
    VocabularySchedule,
)
from mnemonet.tasks.data import (
    CharVocab,
    ImageData,
    TextSplits,
    load_digits,
    load_images,
    load_mnist,
    load_text,
    read_idx,
    shakespeare_text,
)
from mnemonet.tasks.delayed_recall import DelayedRecallTask, evaluate_delays
from mnemonet.tasks.digits import SequentialDigitsTask
from mnemonet.tasks.graphs import GraphCurriculum, GraphTask
from mnemonet.tasks.moving_digits import MovingDigitsTask
from mnemonet.tasks.registry import available_curricula, available_tasks, make_curriculum, make_task

__all__ = [
    "AssociativeRecallTask",
    "BabiTask",
    "Batch",
    "BitTask",
    "CharLMTask",
    "CharVocab",
    "CopyDelayTask",
    "CopyTask",
    "Curriculum",
    "DelayCurriculum",
    "DelaySchedule",
    "DelayedRecallTask",
    "GraphCurriculum",
    "GraphTask",
    "ImageData",
    "LengthCurriculum",
    "MovingDigitsTask",
    "RepeatCopyTask",
    "ScheduledCurriculum",
    "SequentialDigitsTask",
    "Task",
    "TextSplits",
    "ThresholdCurriculum",
    "VocabularyCurriculum",
    "VocabularySchedule",
    "available_curricula",
    "available_tasks",
    "evaluate_delays",
    "load_digits",
    "load_images",
    "load_mnist",
    "load_text",
    "make_curriculum",
    "make_task",
    "read_idx",
    "sample_from_logits",
    "sample_text",
    "shakespeare_text",
]
