"""A DAG file uploaded to GCS starts a run, one per object generation; other objects are ignored."""

import hashlib
import logging
import re
from typing import Any

from ..admission.start_requests import start_upload
from ..bootstrap.cloud import CloudRuntime
from ..model import ticks
from ..settings import DAG_EXTENSIONS

log = logging.getLogger("workflow.entrypoints")
PARAM_PREFIX = "param-"  # object metadata `param-NAME: VALUE` gives the run's parameter NAME (a list as JSON)


def dag_uploaded(event: Any, rt: CloudRuntime) -> None:
    obj = event.data or {}
    bucket, name, generation = str(obj.get("bucket", "")), str(obj.get("name", "")), str(obj.get("generation", ""))
    if not name.startswith(rt.edge.dag_prefix) or not name.lower().endswith(DAG_EXTENSIONS):
        log.info("ignored gs://%s/%s: not a DAG file under %r", bucket, name, rt.edge.dag_prefix)
        return
    metadata = obj.get("metadata") or {}
    given = metadata.get("tr_url") or metadata.get("tr_hostname")
    params = {str(key)[len(PARAM_PREFIX):]: value for key, value in metadata.items()
              if str(key).startswith(PARAM_PREFIX)}
    created, _ = ticks.parse_time(obj.get("timeCreated"), "timeCreated")  # dates the run, on every delivery
    start_upload(upload_run_id(bucket, name, generation), f"gs://{bucket}/{name}", generation, given, rt, params,
                 created)


def upload_run_id(bucket: str, name: str, generation: str) -> str:
    """Deterministic: one upload (bucket, object, generation) is one run."""
    digest = hashlib.sha256(f"{bucket}/{name}#{generation}".encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name.rsplit("/", 1)[-1].rsplit(".", 1)[0])[:60].strip("-")
    return f"{stem or 'dag'}-{digest}"
