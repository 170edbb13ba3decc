"""Reading (and re-reading) the routing file: validation, change detection, the watch task.

A reload never makes things worse: a file that fails validation, names another cluster or
trust domain, or lowers ``version`` is rejected with the file and field named, and the gateway
keeps routing with its current table. Applying a model is the caller's callback (it translates
and swaps the table); established connections are never touched by a swap.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

import trio

from federation.model import ModelLoadError, RoutingModel, load_model_file
from gateway.config import GatewayConfig
from gateway.errors import GatewayConfigError

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int] | None


def file_stamp(path: Path) -> Stamp:
    """``(mtime_ns, size, inode)`` or ``None`` when the file is missing; any change (including
    an atomic rename over the file) changes it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def check_model(config: GatewayConfig, model: RoutingModel, current: RoutingModel | None) -> None:
    """Reject a model that is not for this gateway or goes back in version."""
    source = str(config.routing_file)
    if model.cluster != config.cluster:
        raise GatewayConfigError(
            source, [f"cluster: {model.cluster!r} but this gateway is {config.cluster!r}"]
        )
    if model.trust_domain != config.trust_domain:
        raise GatewayConfigError(
            source,
            [f"trust_domain: {model.trust_domain!r} but this gateway is {config.trust_domain!r}"],
        )
    if current is not None and model.version < current.version:
        raise GatewayConfigError(
            source,
            [f"version: {model.version} is older than the active version {current.version}"],
        )


def load_routing_model(config: GatewayConfig, current: RoutingModel | None = None) -> RoutingModel:
    """Read and validate ``config.routing_file``; :class:`GatewayConfigError` names the file
    and each offending field."""
    try:
        model = load_model_file(RoutingModel, config.routing_file)
    except ModelLoadError as err:
        raise GatewayConfigError(err.source, err.problems) from err
    check_model(config, model, current)
    return model


class RoutingWatcher:
    """Holds the active model and re-reads the file when asked or when it changed.

    ``apply(model)`` is called on the trio thread with every accepted model (the first one
    included); it must not raise for a valid model.
    """

    def __init__(
        self,
        config: GatewayConfig,
        apply: Callable[[RoutingModel], None],
        *,
        handle_sighup: bool = True,
        on_rejected: Callable[[GatewayConfigError], None] | None = None,
    ) -> None:
        self._config = config
        self._sighup = handle_sighup
        self._on_rejected = on_rejected or (lambda err: None)
        self._apply = apply
        self.model: RoutingModel | None = None
        self.last_error: str | None = None
        #: Federated mode: the file declares exports only; routes come from snapshots.
        self.federated = False
        self._federation_version: int | None = None
        self._stamp: Stamp = None

    def load_initial(self) -> RoutingModel:
        """First load: errors propagate (a gateway without a valid table must not start)."""
        self._stamp = file_stamp(self._config.routing_file)
        model = load_routing_model(self._config)
        self.model = model
        self._apply(model)
        return model

    def reload(self) -> bool:
        """Re-read now; True if a new model was applied. Errors are logged and kept in
        :attr:`last_error`, the active model stays."""
        self._stamp = file_stamp(self._config.routing_file)
        if self.federated:
            log.info("federated: %s declares exports only", self._config.routing_file)
            return False
        try:
            model = load_routing_model(self._config, self.model)
        except GatewayConfigError as err:
            self.last_error = str(err)
            self._on_rejected(err)
            log.error("routing reload rejected, keeping version %s: %s", self._version(), err)
            return False
        self.last_error = None
        self.model = model
        self._apply(model)
        log.info(
            "routing table version %s loaded from %s", model.version, self._config.routing_file
        )
        return True

    def adopt(self, model: RoutingModel) -> None:
        """Apply a model that came from elsewhere (the federation's snapshot): same checks as a
        file reload, but errors are raised (the caller NACKs) instead of kept. In federated mode
        the version is compared with the last adopted snapshot only (the file's version is of
        another series)."""
        if self.federated:
            check_model(self._config, model, None)
            last = self._federation_version
            if last is not None and model.version < last:
                raise GatewayConfigError(
                    "federation snapshot",
                    [f"version: {model.version} is older than the active version {last}"],
                )
        else:
            check_model(self._config, model, self.model)
        self._apply(model)
        self.model = model
        if self.federated:
            self._federation_version = model.version
        self.last_error = None

    def _version(self) -> int | None:
        return None if self.model is None else self.model.version

    def changed(self) -> bool:
        return file_stamp(self._config.routing_file) != self._stamp

    async def watch(
        self,
        *,
        on_tick: Callable[[], object] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Poll the file every ``config.reload_poll_s`` and reload on change; also reload on
        SIGHUP (main thread only). ``on_tick`` runs each poll (identity file rotation).
        Never returns; cancel to stop."""
        async with trio.open_nursery() as nursery:
            if self._sighup and _can_handle_signals():
                await nursery.start(self._on_sighup)
            task_status.started()
            while True:
                await trio.sleep(self._config.reload_poll_s)
                if self.changed():
                    self.reload()
                if on_tick is not None:
                    on_tick()

    async def _on_sighup(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            task_status.started()
            async for _ in signals:
                log.info("SIGHUP: reloading %s", self._config.routing_file)
                self.reload()


def _can_handle_signals() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
