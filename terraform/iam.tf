# Identities and least-privilege bindings. No project-wide primitive roles,
# no public members. See docs/deploy.md for the reason behind each binding.

# ---------------------------------------------------------------------------
# Runtime identity of the functions
# ---------------------------------------------------------------------------

resource "google_service_account" "functions" {
  account_id   = "${var.name_prefix}-functions"
  display_name = "${var.name_prefix} functions runtime"
  description  = "Runtime identity of the ${var.name_prefix} Cloud Functions (Firestore state, engine topic, DAG bucket, Task Runner)."

  depends_on = [google_project_service.required]
}

# Read/write workflow state in Firestore. Firestore IAM is project-level.
resource "google_project_iam_member" "functions_datastore_user" {
  project = var.project
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.functions.email}"
}

# Publish the engine's own messages (WORKFLOW_ENGINE_TOPIC) - topic level only.
resource "google_pubsub_topic_iam_member" "functions_engine_publisher" {
  project = var.project
  topic   = google_pubsub_topic.engine.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.functions.email}"
}

# Announce runs' ends (WORKFLOW_EVENTS_TOPIC) - topic level only.
resource "google_pubsub_topic_iam_member" "functions_events_publisher" {
  project = var.project
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.functions.email}"
}

# Read DAG files - bucket level only.
resource "google_storage_bucket_iam_member" "functions_dag_reader" {
  bucket = google_storage_bucket.dags.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.functions.email}"
}

# Read DAG files from the extra buckets named in var.extra_dag_buckets.
resource "google_storage_bucket_iam_member" "functions_extra_dag_reader" {
  for_each = toset(var.extra_dag_buckets)

  bucket = each.value
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.functions.email}"
}

# Call the Task Runner with an ID token - on that one Cloud Run service.
resource "google_cloud_run_v2_service_iam_member" "functions_task_runner_invoker" {
  project  = local.task_runner_project
  location = local.task_runner_region
  name     = var.task_runner_service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.functions.email}"
}

# ---------------------------------------------------------------------------
# Read the key that seals callers' Task Runner tokens (only when one is configured).
resource "google_secret_manager_secret_iam_member" "functions_token_key_accessor" {
  count     = var.token_key_secret == "" ? 0 : 1
  project   = var.project
  secret_id = var.token_key_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.functions.email}"
}

# Identity Eventarc uses to deliver events to the functions
# ---------------------------------------------------------------------------

resource "google_service_account" "trigger" {
  account_id   = "${var.name_prefix}-trigger"
  display_name = "${var.name_prefix} Eventarc triggers"
  description  = "Identity used by the Eventarc triggers to invoke the ${var.name_prefix} functions."

  depends_on = [google_project_service.required]
}

resource "google_project_iam_member" "trigger_event_receiver" {
  project = var.project
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.trigger.email}"
}

# run.invoker on each event-driven function's underlying Cloud Run service only.
resource "google_cloud_run_v2_service_iam_member" "trigger_function_invoker" {
  for_each = local.event_functions

  project  = var.project
  location = each.value.location
  name     = each.value.service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.trigger.email}"
}

# ---------------------------------------------------------------------------
# The deployer (the identity running Terraform) may act as the three runtime
# identities, which deploying the functions, their triggers and the scheduler's job
# requires; it gets that on these service accounts only, not project-wide.
# ---------------------------------------------------------------------------

resource "google_service_account_iam_member" "deployer_acts_as" {
  for_each = {
    functions = google_service_account.functions.name
    trigger   = google_service_account.trigger.name
    scheduler = google_service_account.scheduler.name
  }

  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${local.deployer_email}"
}

# ---------------------------------------------------------------------------
# Google-managed service agents
# ---------------------------------------------------------------------------

data "google_storage_project_service_account" "gcs" {
  project = var.project

  depends_on = [google_project_service.required]
}

# GCS publishes object notifications to the Pub/Sub transport topic that
# Eventarc creates for the GCS trigger (topic unknown in advance, hence the
# project-level grant documented by Google for GCS triggers).
resource "google_project_iam_member" "gcs_agent_pubsub_publisher" {
  project = var.project
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.gcs_service_agent}"
}

# Pub/Sub forwards undeliverable events to the dead-letter topic.
resource "google_pubsub_topic_iam_member" "pubsub_agent_dead_letter_publisher" {
  project = var.project
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.pubsub_service_agent}"

  depends_on = [google_project_service.required]
}

# Pub/Sub mints the OIDC token of the trigger SA for the authenticated push
# to the functions. Scoped to that one service account (only strictly needed
# in projects created before April 2021, harmless otherwise).
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.trigger.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"

  depends_on = [google_project_service.required]
}

# NOTE: dead-lettering also needs roles/pubsub.subscriber for the Pub/Sub
# service agent on each Eventarc-managed subscription. Those subscriptions
# are created by Eventarc, not by Terraform, so that binding is made by the
# "attach-dead-letter" step of cloudbuild.yaml (see docs/deploy.md).

# ---------------------------------------------------------------------------
# Optional human / CI access
# ---------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "start_publishers" {
  for_each = toset(var.start_publishers)

  project = var.project
  topic   = google_pubsub_topic.start.name
  role    = "roles/pubsub.publisher"
  member  = each.value
}

# Who may read runs and their steps (`python main.py runs|status --cloud`): Firestore
# grants reads per project, so this is read access to the project's Firestore databases.
resource "google_project_iam_member" "run_viewers" {
  for_each = toset(var.run_viewers)

  project = var.project
  role    = "roles/datastore.viewer"
  member  = each.value
}

# Who may attach subscriptions to the run-ended events topic (and nothing else).
resource "google_pubsub_topic_iam_member" "event_subscribers" {
  for_each = toset(var.event_subscribers)

  project = var.project
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.subscriber"
  member  = each.value
}

# The scheduler's identity calls the HTTP start function (the sweep, the schedules) and nothing else.
resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_start" {
  project  = var.project
  location = local.functions["on_start_request"].location
  name     = local.functions["on_start_request"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# Callers of the HTTP start function: run.invoker on its Cloud Run service only.
resource "google_cloud_run_v2_service_iam_member" "start_request_invokers" {
  for_each = toset(var.start_request_invokers)

  project  = var.project
  location = local.functions["on_start_request"].location
  name     = local.functions["on_start_request"].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

# Each team writes only under its own folder of the DAG prefix: an IAM condition on the
# object's name (the bucket has uniform bucket-level access, which conditions need).
resource "google_storage_bucket_iam_member" "dag_team_writers" {
  for_each = {
    for pair in flatten([
      for team, members in var.dag_team_writers : [for m in members : { team = team, member = m }]
    ]) : "${pair.team}/${pair.member}" => pair
  }

  bucket = google_storage_bucket.dags.name
  role   = "roles/storage.objectUser"
  member = each.value.member

  condition {
    title       = "dags-${each.value.team}"
    description = "Objects under ${var.dag_prefix}${each.value.team}/ only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.dags.name}/objects/${var.dag_prefix}${each.value.team}/\")"
  }
}

resource "google_storage_bucket_iam_member" "dag_bucket_writers" {
  for_each = toset(var.dag_bucket_writers)

  bucket = google_storage_bucket.dags.name
  role   = "roles/storage.objectUser"
  member = each.value
}
