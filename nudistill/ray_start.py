"""Start or join Ray, quietly: the one ``ray.init`` of labelling and of Ray Train distillation.

    from nudistill.ray_start import ensure_ray
    ensure_ray()                 # RAY_ADDRESS's cluster, or a new embedded one when it is unset or "local"

A new local cluster turns token authentication on by default and logs that it did on every
``ray.init``. On an embedded cluster the user chose nothing and needs to do nothing, so that notice,
and only it, is dropped; the cluster keeps Ray's default (token auth on). An embedded start always
asks for a new cluster (``address="local"``), never one that `ray start` left on this machine.
Ray is imported when a function here runs, not when this module is imported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from nudistill.log import get_logger

log = get_logger("ray")
TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"
TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster"


@contextmanager
def drop_token_notice() -> Iterator[None]:
    """Drop Ray's "token authentication is enabled" notice, and only it, while starting a local cluster."""
    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TOKEN_NOTICE)

    logger = logging.getLogger(TOKEN_LOGGER)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the cluster at ``address`` / RAY_ADDRESS, or start an embedded local Ray (also for "local")
    with ``num_cpus`` (default: every core). Nothing happens when Ray is already initialised here."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":
        ray.init(address=address, log_to_driver=False)
    else:
        with drop_token_notice():
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    if not log.isEnabledFor(logging.INFO):  # quiet by default: Ray's progress lines only with -v
        logging.getLogger("ray").setLevel(logging.WARNING)
