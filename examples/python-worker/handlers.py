"""Business logic for the Python worker: the `enrich` activity of
examples/first-workflow, written in Python instead of a shell script.

A handler takes the task input (parsed JSON) and returns the task output
(any JSON value). Raising fails the task: the exception's class name is the
error that Retry and Catch in the state machine match, its message the
cause.
"""

import time


class InvalidOrder(Exception):
    """The task input has no usable order number."""


def enrich(task_input):
    """{"order": N, ...} -> {"score": 2N, "tier": ..., "scored_by": "python"}.

    An input field "work_seconds" makes the handler take that long, standing
    in for slow work (to watch heartbeats and graceful stops).
    """
    order = task_input.get("order") if isinstance(task_input, dict) else None
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise InvalidOrder(f"order must be a non-negative integer, got {order!r}")
    time.sleep(float(task_input.get("work_seconds", 0)))
    score = order * 2
    return {"score": score, "tier": "gold" if score >= 100 else "standard",
            "scored_by": "python"}
