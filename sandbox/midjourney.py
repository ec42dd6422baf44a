"""Midjourney tasks kept in memory: each poll moves a task one step, SUBMITTED → IN_PROGRESS → SUCCESS."""
from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field

ASPECT = re.compile(r"--(?:ar|aspect)\s+(\d+)\s*:\s*(\d+)")

STAGES = [("SUBMITTED", "0%"), ("IN_PROGRESS", "50%")]


class UnknownTask(LookupError):
    pass


class InvalidAction(ValueError):
    pass


@dataclass
class Task:
    id: str
    action: str  # IMAGINE, UPSCALE, VARIATION, REROLL
    prompt: str
    ratio: tuple[int, int]
    index: int = 0
    will_fail: bool = False
    result_url: str | None = None
    polls: int = 0
    buttons: list[dict] = field(default_factory=list)

    @property
    def is_grid(self) -> bool:
        return self.action != "UPSCALE"


def grid_buttons(task_id: str) -> list[dict]:
    buttons = [{"customId": f"MJ::JOB::upsample::{i}::{task_id}", "label": f"U{i}", "emoji": ""}
               for i in range(1, 5)]
    buttons.append({"customId": f"MJ::JOB::reroll::0::{task_id}::SOLO", "label": "", "emoji": "🔄"})
    buttons += [{"customId": f"MJ::JOB::variation::{i}::{task_id}", "label": f"V{i}", "emoji": ""}
                for i in range(1, 5)]
    return buttons


def upscale_buttons(task_id: str) -> list[dict]:
    return [
        {"customId": f"MJ::JOB::high_variation::1::{task_id}::SOLO", "label": "Vary (Strong)", "emoji": "🪄"},
        {"customId": f"MJ::JOB::low_variation::1::{task_id}::SOLO", "label": "Vary (Subtle)", "emoji": "🪄"},
    ]


ACTIONS = {"upsample": "UPSCALE", "variation": "VARIATION", "high_variation": "VARIATION",
           "low_variation": "VARIATION", "reroll": "REROLL"}


def aspect_of(prompt: str) -> tuple[int, int]:
    match = ASPECT.search(prompt)
    if not match:
        return 1, 1
    width, height = int(match.group(1)), int(match.group(2))
    if not width or not height or max(width, height) > 8 * min(width, height):
        return 1, 1
    return width, height


class TaskBoard:
    """Thread-safe: the sandbox serves each request on its own thread."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._lock = threading.Lock()

    def imagine(self, prompt: str, *, will_fail: bool = False, result_url: str | None = None) -> str:
        task = Task(id=uuid.uuid4().hex, action="IMAGINE", prompt=prompt, ratio=aspect_of(prompt),
                    will_fail=will_fail, result_url=result_url)
        with self._lock:
            self._tasks[task.id] = task
        return task.id

    def act(self, message_id: str, custom_id: str) -> str:
        with self._lock:
            parent = self._tasks.get(message_id)
            if parent is None:
                raise UnknownTask(f"unknown messageId {message_id!r}")
            if not any(button["customId"] == custom_id for button in parent.buttons):
                raise InvalidAction(f"customId {custom_id!r} is not a button of task {message_id}")
            parts = custom_id.split("::")
            task = Task(id=uuid.uuid4().hex, action=ACTIONS[parts[2]], prompt=parent.prompt, ratio=parent.ratio,
                        index=int(parts[3]), will_fail=parent.will_fail, result_url=parent.result_url)
            self._tasks[task.id] = task
        return task.id

    def poll(self, task_id: str) -> tuple[Task, str, str]:
        """(task, status, progress) as this poll sees it; the task then advances one step."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None:
                raise UnknownTask(task_id)
            if task.polls < len(STAGES):
                status, progress = STAGES[task.polls]
            elif task.will_fail:
                status, progress = "FAILURE", "100%"
            else:
                status, progress = "SUCCESS", "100%"
                if not task.buttons:
                    task.buttons = grid_buttons(task.id) if task.is_grid else upscale_buttons(task.id)
            task.polls += 1
            return task, status, progress
