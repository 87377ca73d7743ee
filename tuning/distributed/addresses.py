"""Where a chief serves and a worker connects: Keras Tuner's environment, the chief's address, its port.

Owns: the variables by which Keras Tuner knows it is a chief or a worker
(`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`),
how long a worker waits for a silent chief, and checking `--oracle` before
anything is touched. Does not own: serving
(`tuning.distributed.chief`) or working (`tuning.distributed.worker`).
"""

from __future__ import annotations

import os
import socket

from keras_tuner.src.distribute import oracle_client  # its public API has no way to set the client's timeout

from tuning.errors import UsageError

CHIEF_ID = "chief"


def set_tuner_environment(tuner_id: str, host: str, port: int) -> None:
    """Sets the variables by which Keras Tuner knows it is a chief or a worker."""
    os.environ["KERASTUNER_TUNER_ID"] = tuner_id
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = str(port)


def set_chief_timeout(seconds: int) -> None:
    """How long a worker's calls wait for the chief; Keras Tuner's own default is an hour."""
    oracle_client.TIMEOUT = seconds


def check_address(host: str, port: int, serve: bool) -> None:
    """Refuses, before anything is touched, an `--oracle` host that does not resolve or (to serve) a port in use.

    Args:
        host: The host of `--oracle`.
        port: Its port; 0 means a free one is picked later.
        serve: A chief binds it; a worker only connects to it.
    """
    try:
        infos = socket.getaddrinfo(host, port or None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UsageError(
            f"--oracle host {host!r} does not resolve ({error.strerror}); give an IP address or a name this machine resolves"
        ) from None
    if not serve or not port:
        return
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(address)
        except OSError as error:
            raise UsageError(
                f"cannot listen on {host}:{port} ({error.strerror}); is another chief running there? "
                "pick another --oracle port"
            ) from None


def free_port(host: str) -> int:
    """A port on `host` that nothing listens on now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            return int(probe.getsockname()[1])
    except OSError as error:
        raise UsageError(f"cannot listen on {host!r} ({error.strerror}); check the host in --oracle") from None
