"""Errors of the evaluation runners."""

from __future__ import annotations


class EvalError(RuntimeError):
    """An evaluation that cannot run, with the task (when one is at fault) and what to do."""


def task_error(task: str, message: str) -> EvalError:
    return EvalError(f"task '{task}': {message}")
