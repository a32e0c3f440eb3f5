"""What the Cloud Functions do with an event or request, one module per kind of entry;
`main.py` binds them to names. `workflow.admission` decides what is admitted."""

from ..settings import DAG_EXTENSIONS
from .control import control_message, control_over_http
from .engine_message import REPUBLISH_AFTER, NotYet, engine_message
from .events import GCS_FINALIZED, PUBSUB_PUBLISHED, accepts, event_ids, pubsub_message
from .http_start import start_over_http
from .start_message import start_message
from .upload import dag_uploaded, upload_run_id

__all__ = ["DAG_EXTENSIONS", "GCS_FINALIZED", "PUBSUB_PUBLISHED", "REPUBLISH_AFTER", "NotYet", "accepts",
           "control_message", "control_over_http", "dag_uploaded", "engine_message", "event_ids", "pubsub_message",
           "start_message", "start_over_http", "upload_run_id"]
