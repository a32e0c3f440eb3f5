# The three event-driven functions. This file is the single definition of
# the deployed function set, their entry points and trigger types;
# tests/static/test_terraform.py checks it against main.py.

locals {
  function_env = {
    GOOGLE_CLOUD_PROJECT              = var.project
    WORKFLOW_ENGINE_TOPIC             = google_pubsub_topic.engine.name
    WORKFLOW_DAG_PREFIX               = var.dag_prefix
    WORKFLOW_TR_URL                   = var.task_runner_url
    WORKFLOW_CHECK_STATE_DURATION_SEC = tostring(var.check_state_duration_sec)
    WORKFLOW_STEP_TIMEOUT_SEC         = tostring(var.step_timeout_sec)
    WORKFLOW_FIRESTORE_DATABASE       = var.firestore_database
    LOG_FORMAT                        = "json"
  }

  functions = {
    on_dag_uploaded   = google_cloudfunctions2_function.on_dag_uploaded
    on_start_message  = google_cloudfunctions2_function.on_start_message
    on_engine_message = google_cloudfunctions2_function.on_engine_message
  }
}

resource "google_cloudfunctions2_function" "on_dag_uploaded" {
  name        = "${var.name_prefix}-on-dag-uploaded"
  location    = var.region
  description = "Handles DAG files finalized in the DAG bucket."

  build_config {
    runtime     = "python312"
    entry_point = "on_dag_uploaded"
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
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions.email

    dynamic "secret_environment_variables" {
      for_each = var.token_key_secret == "" ? [] : [var.token_key_secret]
      content {
        key        = "WORKFLOW_TOKEN_KEY"
        project_id = var.project
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.storage.object.v1.finalized"
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email

    event_filters {
      attribute = "bucket"
      value     = google_storage_bucket.dags.name
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
    google_cloud_run_v2_service_iam_member.functions_task_runner_invoker,
    google_firestore_database.main,
  ]
}

resource "google_cloudfunctions2_function" "on_start_message" {
  name        = "${var.name_prefix}-on-start-message"
  location    = var.region
  description = "Handles workflow start requests published to ${google_pubsub_topic.start.name}."

  build_config {
    runtime     = "python312"
    entry_point = "on_start_message"
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
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions.email

    dynamic "secret_environment_variables" {
      for_each = var.token_key_secret == "" ? [] : [var.token_key_secret]
      content {
        key        = "WORKFLOW_TOKEN_KEY"
        project_id = var.project
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.start.id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
  }

  depends_on = [
    google_project_service.required,
    google_project_iam_member.trigger_event_receiver,
    google_service_account_iam_member.pubsub_agent_token_creator,
    google_project_iam_member.functions_datastore_user,
    google_pubsub_topic_iam_member.functions_engine_publisher,
    google_storage_bucket_iam_member.functions_dag_reader,
    google_cloud_run_v2_service_iam_member.functions_task_runner_invoker,
    google_firestore_database.main,
  ]
}

resource "google_cloudfunctions2_function" "on_engine_message" {
  name        = "${var.name_prefix}-on-engine-message"
  location    = var.region
  description = "Handles the engine's own messages published to ${google_pubsub_topic.engine.name}."

  build_config {
    runtime     = "python312"
    entry_point = "on_engine_message"
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
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.functions.email

    dynamic "secret_environment_variables" {
      for_each = var.token_key_secret == "" ? [] : [var.token_key_secret]
      content {
        key        = "WORKFLOW_TOKEN_KEY"
        project_id = var.project
        secret     = secret_environment_variables.value
        version    = "latest"
      }
    }
  }

  event_trigger {
    trigger_region        = var.region
    event_type            = "google.cloud.pubsub.topic.v1.messagePublished"
    pubsub_topic          = google_pubsub_topic.engine.id
    retry_policy          = "RETRY_POLICY_RETRY"
    service_account_email = google_service_account.trigger.email
  }

  depends_on = [
    google_project_service.required,
    google_project_iam_member.trigger_event_receiver,
    google_service_account_iam_member.pubsub_agent_token_creator,
    google_project_iam_member.functions_datastore_user,
    google_pubsub_topic_iam_member.functions_engine_publisher,
    google_storage_bucket_iam_member.functions_dag_reader,
    google_cloud_run_v2_service_iam_member.functions_task_runner_invoker,
    google_firestore_database.main,
  ]
}
