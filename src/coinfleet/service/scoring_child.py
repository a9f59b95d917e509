"""Manual scoring's model code in one child process at operator priority, nice 19 (`db.priority`).

Loading a model (parsing its file, importing its library) and calling it is CPU work that would hold the
HTTP process's event loop (through the GIL, even from a thread), and beside the lanes (`bench api
--http inline`, or a process not niced) it would run at their priority. In a spawned child at operator
priority — the HTTP process's own level under `coinfleet serve`, below the runners' models (nice 10)
and the lanes — scoring gets the CPU first, and model code from outside does not run in the
process that answers requests.
The child keeps the last CACHED_MODELS models loaded (the active ones are loaded when the API
starts); the parent sends a model's file only when the child says it lacks it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

import numpy as np
import structlog

from coinfleet.db.priority import OPERATOR_NICENESS, lower_process, name_process
from coinfleet.errors import ModelLoadError
from coinfleet.models.formats import Predictor, load_predictor
from coinfleet.runners.child import die_with_parent

log = structlog.get_logger(__name__)
#: CPU priority of the child at most: below lanes and runners, like the HTTP process of `coinfleet serve`
SCORING_NICE = OPERATOR_NICENESS
#: the child's name in ps and top
PROCESS_NAME = "coinfleet-score"
#: loaded models kept in the child (model id and version): loading costs more than scoring one row
CACHED_MODELS = 32
#: a model (id, version)
ModelKey = tuple[int, int]
#: models' formats and files by key
ModelFiles = dict[ModelKey, tuple[str, bytes]]

_loaded: OrderedDict[ModelKey, Predictor] = OrderedDict()  # the child's models


class NotLoaded(Exception):
    """The child does not hold that model (yet, or any more): send its file."""


def _start() -> None:
    die_with_parent()
    lower_process(SCORING_NICE)
    name_process(PROCESS_NAME)


def _ready() -> bool:
    return True


def _predict(asked: list[tuple[ModelKey, np.ndarray]]) -> list[list[float]]:
    missing = [key for key, _ in asked if key not in _loaded]
    if missing:
        raise NotLoaded(missing)
    answers = []
    for key, rows in asked:
        _loaded.move_to_end(key)
        answers.append([float(p) for p in _loaded[key].predict_proba(rows)])
    return answers


def _load(files: ModelFiles) -> None:
    for key, (fmt, artifact) in files.items():
        with contextlib.suppress(ModelLoadError):  # a request for it will say what is wrong
            _loaded[key] = load_predictor(fmt, artifact)
    while len(_loaded) > CACHED_MODELS:
        _loaded.popitem(last=False)


def _load_and_predict(files: ModelFiles, asked: list[tuple[ModelKey, np.ndarray]]) -> list[list[float]]:
    for key, (fmt, artifact) in files.items():
        _loaded[key] = load_predictor(fmt, artifact)
    answers = _predict(asked)
    while len(_loaded) > CACHED_MODELS:
        _loaded.popitem(last=False)
    return answers


class ScoringChild:
    """The child process, started on first use (or by `start`) and again after it died."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the child now (its imports take a second or two), without waiting for it."""
        self._pool().submit(_ready)

    async def load(self, files: ModelFiles) -> None:
        """Have the child load these models (ahead of the requests that will ask for them)."""
        if files:
            await asyncio.get_running_loop().run_in_executor(self._pool(), _load, files)

    async def predict(
        self,
        asked: list[tuple[ModelKey, np.ndarray]],
        files: Callable[[list[ModelKey]], Awaitable[ModelFiles]],
    ) -> list[list[float]]:
        """Each model's probabilities for its rows, in one call to the child; `files` reads the format and
        file of the models the child lacks."""
        if not asked:
            return []
        loop = asyncio.get_running_loop()
        try:
            try:
                return await loop.run_in_executor(self._pool(), _predict, asked)
            except NotLoaded as lacking:
                found = await files(lacking.args[0])
                return await loop.run_in_executor(self._pool(), _load_and_predict, found, asked)
        except BrokenProcessPool as exc:  # killed (e.g. out of memory): the next call starts a new one
            self._executor = None
            raise ModelLoadError(f"the scoring process died while scoring ({exc}); try again") from exc

    def close(self) -> None:
        """Stop the child."""
        if self._executor is not None:
            with contextlib.suppress(Exception):
                self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=get_context("spawn"), initializer=_start
            )
        return self._executor
