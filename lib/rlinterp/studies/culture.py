"""The Culture study (Fleuret's culture, five small GPTs on grid quizzes): the analyses its chapters call.

* :func:`predict_answers` -- a model's greedy f(B) for quizzes (forward structure), with either the original
  :class:`~rlinterp.models.gpt.MyGPT` or its TransformerLens twin.
* :func:`evaluate` -- exact-match accuracy on f(B), overall and per task, with Wilson intervals (:mod:`rlinterp.stats`).

The quiz world is :mod:`rlinterp.envs.quizzes`, the model :mod:`rlinterp.models.gpt`, the training
:mod:`rlinterp.learners.gpt`.
"""
from __future__ import annotations

import numpy as np
import torch

from rlinterp.envs.quizzes import FORWARD, TASK_NAMES, Quizzes, QuizWorld
from rlinterp.models.gpt import generate
from rlinterp.stats import wilson
from rlinterp.validation import check_int


def predict_answers(model, world: QuizWorld, quizzes: Quizzes, batch_size: int = 256,
                    use_past_kv_cache: bool = True) -> np.ndarray:
    """Greedy f(B) (n, H, W) of ``model`` given A, f(A), B (forward structure); batches of ``batch_size``."""
    batch_size = check_int("batch_size", batch_size, 1)
    tokens = torch.from_numpy(world.to_tokens(quizzes, FORWARD))
    mask = torch.from_numpy(world.answer_mask(FORWARD))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for chunk in tokens.split(batch_size):
        prompt = chunk.clone().to(device)
        prompt[:, mask.to(device)] = 0
        filled, _ = generate(model, prompt, mask.to(device), use_past_kv_cache=use_past_kv_cache)
        out.append(filled[:, mask.to(device)].cpu().numpy())
    model.train(was_training)
    ans = np.concatenate(out) if out else np.zeros((0, world.grid_len), np.int64)
    return ans.reshape(len(quizzes), world.height, world.width)


def evaluate(model, world: QuizWorld, quizzes: Quizzes, level: float = 0.95, batch_size: int = 256) -> dict:
    """Exact-match accuracy of ``model``'s greedy f(B) on ``quizzes``: ``{"all": Interval, "per_task": {task:
    Interval}, "n": {task: count}, "correct": bool (n,), "answers": (n, H, W)}`` (Wilson intervals at ``level``)."""
    if len(quizzes) == 0:
        raise ValueError("evaluate needs at least one quiz")
    answers = predict_answers(model, world, quizzes, batch_size)
    correct = (answers == quizzes.grids[:, 3]).all(axis=(1, 2))
    per_task, counts = {}, {}
    for t in np.unique(quizzes.task):
        m = quizzes.task == t
        name = TASK_NAMES[t] if t >= 0 else "unknown"
        per_task[name] = wilson(float(correct[m].mean()), int(m.sum()), level)
        counts[name] = int(m.sum())
    return {"all": wilson(float(correct.mean()), len(correct), level), "per_task": per_task, "n": counts,
            "correct": correct, "answers": answers}
