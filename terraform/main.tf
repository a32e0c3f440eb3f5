# Shared locals, project data and the APIs everything else depends on.

data "google_project" "this" {
  project_id = var.project
}

locals {
  task_runner_project = coalesce(var.task_runner_project, var.project)
  task_runner_region  = coalesce(var.task_runner_region, var.region)
  source_bucket_name  = coalesce(var.source_bucket_name, "${var.project}-${var.name_prefix}-fn-source")
  deployer_email      = coalesce(var.deployer_service_account, "workflow-deployer@${var.project}.iam.gserviceaccount.com")

  # Google-managed service agents.
  pubsub_service_agent = "service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  gcs_service_agent    = data.google_storage_project_service_account.gcs.email_address

  required_apis = toset([
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "required" {
  for_each = local.required_apis

  project                    = var.project
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}
