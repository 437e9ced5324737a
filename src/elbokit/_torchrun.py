"""torchrun's environment, read in one place (no torch import).

torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` in every process it starts. elbokit takes a process for one of a
distributed job only when all five are present and consistent; a variable left
over in the environment (a lone ``RANK``) means a single-process run, and a full
set that contradicts itself is a clear error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .exceptions import ParameterError

VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class TorchrunEnv:
    rank: int
    local_rank: int
    world_size: int
    master_addr: str
    master_port: int


def torchrun_env(environ=None) -> TorchrunEnv | None:
    """The torchrun environment of this process, or None for a single-process run
    (none or only some of the five variables set). Raises :class:`ParameterError`
    when all five are set but do not fit together."""
    environ = os.environ if environ is None else environ
    present = [name for name in VARIABLES if environ.get(name, "") != ""]
    if len(present) < len(VARIABLES):
        return None
    values = {}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT"):
        text = environ[name].strip()
        if not text.isdigit() or len(text) > 9:
            raise ParameterError(f"torchrun variable {name}={environ[name][:20]!r} is not a "
                                 "non-negative integer")
        values[name] = int(text)
    env = TorchrunEnv(values["RANK"], values["LOCAL_RANK"], values["WORLD_SIZE"],
                      environ["MASTER_ADDR"], values["MASTER_PORT"])
    if env.world_size < 1 or not 0 <= env.rank < env.world_size \
            or not 0 <= env.local_rank <= env.rank or not 1 <= env.master_port <= 65535:
        raise ParameterError(f"inconsistent torchrun environment: RANK={env.rank}, "
                             f"LOCAL_RANK={env.local_rank}, WORLD_SIZE={env.world_size}, "
                             f"MASTER_PORT={env.master_port} (need 0 <= LOCAL_RANK <= RANK "
                             "< WORLD_SIZE and a port in 1..65535)")
    return env


def stray_variables(environ=None) -> list[str]:
    """The torchrun variables set without the full set (ignored: one process)."""
    environ = os.environ if environ is None else environ
    present = [name for name in VARIABLES if environ.get(name, "") != ""]
    return present if len(present) < len(VARIABLES) else []


def env_rank(environ=None) -> int:
    """This process's rank: torchrun's RANK under a full, consistent set, else 0."""
    try:
        env = torchrun_env(environ)
    except ParameterError:
        return 0
    return 0 if env is None else env.rank


def env_world_size(environ=None) -> int:
    env = torchrun_env(environ)
    return 1 if env is None else env.world_size
