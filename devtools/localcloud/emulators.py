"""The emulators of the local cloud: Firestore and Pub/Sub from the gcloud SDK, GCS from PyPI.

Each starts on a free loopback port in its own process group (see `processes`); a missing
tool raises `MissingTool`, whose message says how to install it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import urllib.request
from functools import lru_cache
from pathlib import Path

from .processes import MissingTool
from .servers import LOOPBACK, Service, launch, python_module_argv

LOG = logging.getLogger(__name__)

GCLOUD_HINT = "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install"
EMULATORS_HINT = (
    "gcloud components install cloud-firestore-emulator pubsub-emulator beta"
    " (or, when gcloud came from apt: apt-get install"
    " google-cloud-cli-firestore-emulator google-cloud-cli-pubsub-emulator)"
)
JAVA_HINT = "install a Java 17+ runtime (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
STORAGE_HINT = "pip install gcp-storage-emulator"

FIRESTORE_LAUNCHER = Path("platform", "cloud-firestore-emulator", "cloud_firestore_emulator")
PUBSUB_LAUNCHER = Path("platform", "pubsub-emulator", "bin", "cloud-pubsub-emulator")


@lru_cache(maxsize=1)
def sdk_root() -> Path:
    """The Google Cloud SDK's root directory, found from `gcloud` on PATH."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise MissingTool("gcloud", f"{GCLOUD_HINT}; then {EMULATORS_HINT}")
    root = Path(gcloud).resolve().parent.parent
    if (root / "platform").is_dir():
        return root
    return _ask_gcloud_for_root(gcloud) or root


def _ask_gcloud_for_root(gcloud: str) -> Path | None:
    try:
        done = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as err:
        LOG.warning("gcloud info failed: %s", err)
        return None
    text = done.stdout.strip()
    return Path(text) if text else None


def emulator_launcher(component: str, relative: Path) -> Path:
    """The launcher script of an installed gcloud emulator component; MissingTool otherwise."""
    launcher = sdk_root() / relative
    if not launcher.is_file():
        raise MissingTool(component, EMULATORS_HINT)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise MissingTool("java", JAVA_HINT)
    return launcher


def start_firestore_emulator(project: str, *, timeout: float = 60.0) -> Service:
    """Start the Firestore emulator (native mode) on a free loopback port.

    Clients reach it through FIRESTORE_EMULATOR_HOST (in `Service.env`).
    """
    launcher = emulator_launcher("cloud-firestore-emulator", FIRESTORE_LAUNCHER)

    def argv(port: int) -> list[str]:
        return [str(launcher), "start", f"--host={LOOPBACK}", f"--port={port}"]

    process, port, seconds = launch("firestore-emulator", argv, "/", timeout=timeout)
    env = {"FIRESTORE_EMULATOR_HOST": f"{LOOPBACK}:{port}", "GOOGLE_CLOUD_PROJECT": project}
    return Service("firestore-emulator", LOOPBACK, port, process, seconds, env, project)


def start_pubsub_emulator(project: str, *, timeout: float = 60.0) -> Service:
    """Start the Pub/Sub emulator on a free loopback port; every project id is accepted.

    Clients reach it through PUBSUB_EMULATOR_HOST (in `Service.env`).
    """
    launcher = emulator_launcher("pubsub-emulator", PUBSUB_LAUNCHER)

    def argv(port: int) -> list[str]:
        return [str(launcher), f"--host={LOOPBACK}", f"--port={port}"]

    process, port, seconds = launch("pubsub-emulator", argv, "/", timeout=timeout)
    env = {"PUBSUB_EMULATOR_HOST": f"{LOOPBACK}:{port}", "GOOGLE_CLOUD_PROJECT": project}
    return Service("pubsub-emulator", LOOPBACK, port, process, seconds, env, project)


def start_storage_emulator(*, timeout: float = 30.0) -> Service:
    """Start gcp-storage-emulator, in memory, on a free loopback port.

    Clients reach it through STORAGE_EMULATOR_HOST=http://HOST:PORT (in `Service.env`).
    """
    base = python_module_argv("gcp_storage_emulator", "gcp-storage-emulator", STORAGE_HINT)

    def argv(port: int) -> list[str]:
        return [*base, "start", f"--host={LOOPBACK}", f"--port={port}", "--in-memory"]

    process, port, seconds = launch("storage-emulator", argv, "/", timeout=timeout)
    env = {"STORAGE_EMULATOR_HOST": f"http://{LOOPBACK}:{port}"}
    return Service("storage-emulator", LOOPBACK, port, process, seconds, env)


def reset_firestore(host_port: str, project: str, timeout: float = 10.0) -> None:
    """Delete every document of `project`'s default database on the Firestore emulator."""
    url = f"http://{host_port}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=timeout):  # a non-2xx status raises HTTPError
        pass
