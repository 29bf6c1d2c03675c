"""Controllers and the manager that runs them.

A controller names the resource it watches and reconciles one object at a time by name. The
manager shares one informer per resource between controllers, gives each controller its own
work queue and worker thread, re-queues everything every ``resync`` seconds (time-driven work:
schedules, expirations, validation), retries conflicts at once and other failures with
backoff, and on stop lets the work in hand finish before returning.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mover.kube.framework.client import Kube, KubeError, Obj, Resource
from mover.kube.framework.informer import WATCH_SECONDS, Informer
from mover.kube.framework.workqueue import WorkQueue

log = logging.getLogger("mover.kube")

Clock = Callable[[], datetime]
BACKOFF_MIN, BACKOFF_MAX = 0.1, 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    """What every controller gets: the API, the namespace it serves, the clock and the stop flag."""

    kube: Kube
    namespace: str
    clock: Clock
    stop: threading.Event
    informers: dict[Resource, Informer]

    def cached(self, resource: Resource, name: str) -> Obj | None:
        return self.informers[resource].get(name)

    def cached_all(self, resource: Resource) -> list[Obj]:
        return self.informers[resource].objects()


class Controller:
    """Subclasses set ``resource`` and implement ``reconcile``."""

    resource: Resource
    # Other resources the controller reads from the cache (``ctx.cached``) without reconciling them.
    reads: tuple[Resource, ...] = ()

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def name(self) -> str:
        return type(self).__name__

    def reconcile(self, name: str, obj: Obj | None) -> float | None:
        """Bring the world in line with ``obj`` (None: it was deleted). Return seconds after which
        to look again, or None to wait for the next change or resync."""
        raise NotImplementedError


class Manager:
    def __init__(self, kube: Kube, namespace: str, *, resync: float = 60.0, clock: Clock = utc_now,
                 watch_seconds: int = WATCH_SECONDS) -> None:
        self.stop_event = threading.Event()
        self.ctx = Context(kube, namespace, clock, self.stop_event, {})
        self._resync = resync
        self._watch_seconds = watch_seconds
        self._controllers: list[tuple[Controller, WorkQueue]] = []
        self._workers: dict[Controller, int] = {}
        self._threads: list[threading.Thread] = []

    def add(self, factory: Callable[[Context], Controller], workers: int = 1) -> Controller:
        """``workers``: how many objects of the controller are reconciled at once (never one
        object by two workers: the queue sees to that)."""
        controller = factory(self.ctx)
        queue = WorkQueue()
        self._controllers.append((controller, queue))
        self._workers[controller] = workers
        for resource in (controller.resource, *controller.reads):
            self._informer(resource)
        return controller

    def _informer(self, resource: Resource) -> Informer:
        if resource not in self.ctx.informers:
            def changed(name: str) -> None:
                for controller, queue in self._controllers:
                    if controller.resource == resource:
                        queue.add(name)
            self.ctx.informers[resource] = Informer(self.ctx.kube, resource, self.ctx.namespace, changed,
                                                    self.stop_event, self._watch_seconds)
        return self.ctx.informers[resource]

    def start(self) -> None:
        for resource, informer in self.ctx.informers.items():
            self._spawn(informer.run, f"watch-{resource.plural}")
        for controller, queue in self._controllers:
            for _ in range(self._workers[controller]):
                self._spawn(functools.partial(self._work, controller, queue), controller.name)
        self._spawn(self._resync_loop, "resync")

    def stop(self, grace: float = 25.0) -> None:
        """Stop watching and taking work; wait up to ``grace`` seconds for work in hand."""
        self.stop_event.set()
        for informer in self.ctx.informers.values():
            informer.close()
        for _, queue in self._controllers:
            queue.shutdown()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _resync_loop(self) -> None:
        while not self.stop_event.wait(self._resync):
            for controller, queue in self._controllers:
                for name in self.ctx.informers[controller.resource].names():
                    queue.add(name)

    def _work(self, controller: Controller, queue: WorkQueue) -> None:
        informer = self.ctx.informers[controller.resource]
        informer.synced.wait()
        failures: dict[str, int] = {}
        while (name := queue.get()) is not None:
            try:
                again = controller.reconcile(name, informer.get(name))
                failures.pop(name, None)
                if again is not None:
                    queue.add(name, min(again, self._resync))
            except KubeError as exc:
                failures[name] = failures.get(name, 0) + 1
                # A conflict means the cache was behind: try at once, once it has caught up.
                delay = BACKOFF_MIN if exc.conflict else _backoff(failures[name])
                log.info("%s %s: %s; retrying in %.1fs", controller.name, name, exc.message, delay)
                queue.add(name, delay)
            except Exception:  # a bug must not kill the worker: log it and try again later
                failures[name] = failures.get(name, 0) + 1
                log.exception("%s %s failed", controller.name, name)
                queue.add(name, _backoff(failures[name]))
            finally:
                queue.done(name)


def _backoff(attempt: int) -> float:
    return min(BACKOFF_MIN * 2 ** attempt, BACKOFF_MAX)
