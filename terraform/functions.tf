# The deployed functions: four event-driven ones and two HTTP ones. This file
# is the single definition of the function set, their entry points and
# trigger types; tests/static/test_terraform.py checks it against main.py.

locals {
  # Origin (scheme://host[:port]) of the default Task Runner, always allowed.
  task_runner_origin  = lower(regex("^https://[^/]+", var.task_runner_url))
  allowed_tr_origins  = distinct(concat([local.task_runner_origin], [for o in var.allowed_task_runner_origins : lower(o)]))
  dag_bucket_names    = distinct(concat([google_storage_bucket.dags.name], var.extra_dag_buckets))

  function_env = {
    GOOGLE_CLOUD_PROJECT              = var.project
    WORKFLOW_ENGINE_TOPIC             = google_pubsub_topic.engine.name
    WORKFLOW_EVENTS_TOPIC             = google_pubsub_topic.events.name
    WORKFLOW_MAX_INLINE_WAIT_SEC      = tostring(var.max_inline_wait_sec)
    WORKFLOW_DAG_PREFIX               = var.dag_prefix
    WORKFLOW_DAG_BUCKETS              = join(",", local.dag_bucket_names)
    WORKFLOW_TR_URL                   = var.task_runner_url
    WORKFLOW_ALLOWED_TR_ORIGINS       = join(",", local.allowed_tr_origins)
    WORKFLOW_CHECK_STATE_DURATION_SEC = tostring(var.check_state_duration_sec)
    WORKFLOW_STEP_TIMEOUT_SEC         = tostring(var.step_timeout_sec)
    WORKFLOW_STALE_AFTER_SEC          = tostring(var.stale_after_sec)
    WORKFLOW_SWEEP_LIMIT              = tostring(var.sweep_limit)
    WORKFLOW_FIRESTORE_DATABASE       = var.firestore_database
    WORKFLOW_RUN_ADMINS               = join(",", var.run_admins)
    WORKFLOW_REPLACING_SCHEDULES      = join(",", sort([for name, s in var.schedules : name if s.concurrency == "replace"]))
    LOG_FORMAT                        = "json"
  }

  # One entry per function, keyed by entry point. event_type null means HTTP.
  function_specs = {
    on_dag_uploaded = {
      description  = "Handles DAG files finalized in the DAG bucket."
      ingress      = "ALLOW_INTERNAL_ONLY"
      event_type   = "google.cloud.storage.object.v1.finalized"
      pubsub_topic = null
      bucket       = google_storage_bucket.dags.name
    }
    on_start_message = {
      description  = "Handles workflow start requests published to ${google_pubsub_topic.start.name}."
      ingress      = "ALLOW_INTERNAL_ONLY"
      event_type   = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic = google_pubsub_topic.start.id
      bucket       = null
    }
    # Cancel, rerun and resume requests: publishers of the control topic are only
    # var.run_operators (control.tf).
    on_control_message = {
      description  = "Handles cancel, rerun and resume requests published to ${google_pubsub_topic.control.name}."
      ingress      = "ALLOW_INTERNAL_ONLY"
      event_type   = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic = google_pubsub_topic.control.id
      bucket       = null
    }
    on_engine_message = {
      description  = "Handles the engine's own messages published to ${google_pubsub_topic.engine.name}."
      ingress      = "ALLOW_INTERNAL_ONLY"
      event_type   = "google.cloud.pubsub.topic.v1.messagePublished"
      pubsub_topic = google_pubsub_topic.engine.id
      bucket       = null
    }
    # Authenticated HTTP calls from other systems: reachable from anywhere,
    # invocable only by var.start_request_invokers (iam.tf).
    on_start_request = {
      description  = "Starts a workflow on an authenticated HTTP request."
      ingress      = "ALLOW_ALL"
      event_type   = null
      pubsub_topic = null
      bucket       = null
    }
    # Invocable only by var.run_operators and var.run_control_invokers (control.tf); the
    # function lets a caller act on the runs it started, and var.run_admins on any run.
    on_control_request = {
      description  = "Cancels, reruns or resumes a run on an authenticated HTTP request."
      ingress      = "ALLOW_ALL"
      event_type   = null
      pubsub_topic = null
      bucket       = null
    }
  }

  functions       = google_cloudfunctions2_function.this
  event_functions = { for k, spec in local.function_specs : k => google_cloudfunctions2_function.this[k] if spec.event_type != null }
}

resource "google_cloudfunctions2_function" "this" {
  # checkov:skip=CKV_GCP_124:on_start_request and on_control_request are called by other systems over HTTPS; every call needs roles/run.invoker, granted only to var.start_request_invokers, and to var.run_operators and var.run_control_invokers, respectively (no public member). The event-driven functions are internal only.
  for_each = local.function_specs

  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  location    = var.region
  description = each.value.description

  build_config {
    runtime     = "python312"
    entry_point = each.key
    source {
      storage_source {
        bucket = google_storage_bucket.function_source.name
        object = google_storage_bucket_object.function_source.name
      }
    }
  }

  service_config {
    min_instance_count             = 0
    max_instance_count             = var.function_max_instances
    available_memory               = var.function_memory
    timeout_seconds                = var.function_timeout_sec
    environment_variables          = local.function_env
    ingress_settings               = each.value.ingress
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions.email

    dynamic "secret_environment_variables" {
      for_each = var.token_key_secret == "" ? [] : [var.token_key_secret]
      content {
        key        = "WORKFLOW_TOKEN_KEY"
        project_id = var.project
        secret     = secret_environment_variables.value
        version    = var.token_key_version
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.value.event_type == null ? [] : [each.value]
    content {
      trigger_region        = var.region
      event_type            = event_trigger.value.event_type
      pubsub_topic          = event_trigger.value.pubsub_topic
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.trigger.email

      dynamic "event_filters" {
        for_each = event_trigger.value.bucket == null ? [] : [event_trigger.value.bucket]
        content {
          attribute = "bucket"
          value     = event_filters.value
        }
      }
    }
  }

  depends_on = [
    google_project_service.required,
    google_project_iam_member.trigger_event_receiver,
    google_project_iam_member.gcs_agent_pubsub_publisher,
    google_service_account_iam_member.pubsub_agent_token_creator,
    google_project_iam_member.functions_datastore_user,
    google_pubsub_topic_iam_member.functions_engine_publisher,
    google_storage_bucket_iam_member.functions_dag_reader,
    google_storage_bucket_iam_member.functions_extra_dag_reader,
    google_cloud_run_v2_service_iam_member.functions_task_runner_invoker,
    google_service_account_iam_member.deployer_acts_as,
    google_firestore_database.main,
  ]

  lifecycle {
    precondition {
      condition     = var.max_inline_wait_sec < var.function_timeout_sec
      error_message = "max_inline_wait_sec must stay below function_timeout_sec, the ack deadline of the subscriptions."
    }
  }
}

# Addresses of the functions before they became one for_each resource: an
# existing deployment is moved in state, not destroyed and recreated.
moved {
  from = google_cloudfunctions2_function.on_dag_uploaded
  to   = google_cloudfunctions2_function.this["on_dag_uploaded"]
}

moved {
  from = google_cloudfunctions2_function.on_start_message
  to   = google_cloudfunctions2_function.this["on_start_message"]
}

moved {
  from = google_cloudfunctions2_function.on_engine_message
  to   = google_cloudfunctions2_function.this["on_engine_message"]
}
