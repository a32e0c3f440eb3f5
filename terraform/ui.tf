# The run pages (workflow/ui, `python main.py ui`) deployed as a 2nd-gen HTTP function, the
# entry point run_pages of main.py, from the same source archive as the engine's functions.
# Deployed once var.ui_secret names the Secret Manager secret keying the pages' action
# tokens (the same key on every instance). Never public: only var.ui_viewers may invoke it
# (roles/run.invoker on its Cloud Run service), through `gcloud run services proxy` or a
# load balancer with IAP (docs/deploy.md). Its own identity reads Firestore and publishes run
# requests on one topic, as the command line's --cloud cancel, rerun and resume do.

locals {
  ui_enabled = var.ui_secret != ""
  ui_count   = local.ui_enabled ? 1 : 0

  # The topic the pages' actions (cancel, rerun, resume) publish on: the control route's
  # (control.tf), as the command line's --cloud commands publish them. The function's
  # WORKFLOW_CONTROL_TOPIC and its only publisher grant both read it here.
  ui_action_topic = google_pubsub_topic.control

  ui_env = {
    GOOGLE_CLOUD_PROJECT        = var.project
    WORKFLOW_FIRESTORE_DATABASE = var.firestore_database
    WORKFLOW_CONTROL_TOPIC      = local.ui_action_topic.name
    WORKFLOW_UI_ORIGINS         = join(",", var.ui_origins)
    LOG_FORMAT                  = "json"
  }
}

resource "google_service_account" "ui" {
  count = local.ui_count

  account_id   = "${var.name_prefix}-ui"
  display_name = "${var.name_prefix} run pages"
  description  = "Runtime identity of the ${var.name_prefix} run pages: reads Firestore, publishes run requests on ${local.ui_action_topic.name}."

  depends_on = [google_project_service.required]

  lifecycle {
    precondition {
      condition     = length(var.name_prefix) >= 3
      error_message = "The run pages' service account is <name_prefix>-ui, at least 6 characters: name_prefix needs 3 or more."
    }
  }
}

# Read runs and steps. Firestore IAM is project-level; the viewer role writes nothing.
resource "google_project_iam_member" "ui_datastore_viewer" {
  count = local.ui_count

  project = var.project
  role    = "roles/datastore.viewer"
  member  = "serviceAccount:${google_service_account.ui[0].email}"
}

# Publish the pages' actions as run requests - on local.ui_action_topic only.
resource "google_pubsub_topic_iam_member" "ui_action_publisher" {
  count = local.ui_count

  project = var.project
  topic   = local.ui_action_topic.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.ui[0].email}"
}

# Read the key of the pages' action tokens - that one secret only.
resource "google_secret_manager_secret_iam_member" "ui_secret_accessor" {
  count = local.ui_count

  project   = var.project
  secret_id = var.ui_secret
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.ui[0].email}"
}

# The deployer may deploy a function running as the pages' account (that account only).
resource "google_service_account_iam_member" "deployer_acts_as_ui" {
  count = local.ui_count

  service_account_id = google_service_account.ui[0].name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${local.deployer_email}"
}

resource "google_cloudfunctions2_function" "ui" {
  # checkov:skip=CKV_GCP_124:The run pages are opened from browsers through `gcloud run services proxy` or a load balancer with IAP; every request needs roles/run.invoker, granted only to var.ui_viewers (no public member). ui_ingress = ALLOW_INTERNAL_AND_GCLB closes the direct route when only a load balancer is used.
  count = local.ui_count

  name        = "${var.name_prefix}-run-pages"
  location    = var.region
  description = "The run pages: runs, their graphs, timelines and steps, and their actions (invokers: ui_viewers)."

  build_config {
    runtime     = "python312"
    entry_point = "run_pages"
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
    timeout_seconds                = 60
    environment_variables          = local.ui_env
    ingress_settings               = var.ui_ingress
    all_traffic_on_latest_revision = true
    service_account_email          = google_service_account.ui[0].email

    secret_environment_variables {
      key        = "WORKFLOW_UI_SECRET"
      project_id = var.project
      secret     = var.ui_secret
      version    = var.ui_secret_version
    }
  }

  depends_on = [
    google_project_service.required,
    google_project_iam_member.ui_datastore_viewer,
    google_pubsub_topic_iam_member.ui_action_publisher,
    google_secret_manager_secret_iam_member.ui_secret_accessor,
    google_service_account_iam_member.deployer_acts_as_ui,
    google_firestore_database.main,
  ]
}

# Who may open the pages: run.invoker on the function's own Cloud Run service, nothing else.
resource "google_cloud_run_v2_service_iam_member" "ui_viewers" {
  for_each = local.ui_enabled ? toset(var.ui_viewers) : toset([])

  project  = var.project
  location = google_cloudfunctions2_function.ui[0].location
  name     = google_cloudfunctions2_function.ui[0].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

check "ui_viewers_have_pages_to_open" {
  assert {
    condition     = length(var.ui_viewers) == 0 || local.ui_enabled
    error_message = "ui_viewers is set but ui_secret is empty: the run pages are deployed only once ui_secret names the secret keying their action tokens."
  }
}
