# The sweep: on a cron schedule, Cloud Scheduler calls the HTTP start function with
# {"action": "sweep"} as its own service account (an OIDC token); the function publishes
# SweepRuns on the engine topic, with the deployment's stale_after_sec and sweep_limit,
# and on_engine_message reconciles the RUNNING runs that showed no progress for that long
# (docs/cloud-runtime.md: The sweep). So only the functions publish on the engine topic.

locals {
  start_request_uri = local.functions["on_start_request"].service_config[0].uri
}

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "${var.name_prefix} scheduled requests"
  description  = "Identity Cloud Scheduler calls the ${var.name_prefix} HTTP start function as (the sweep, the schedules); it may invoke that function and nothing else."

  depends_on = [google_project_service.required]
}

resource "google_cloud_scheduler_job" "sweep" {
  name        = "${var.name_prefix}-sweep"
  region      = var.region
  description = "Reconciles the ${var.name_prefix} runs with no progress for ${var.stale_after_sec} s."
  schedule    = var.sweep_schedule
  time_zone   = "Etc/UTC"

  http_target {
    uri         = local.start_request_uri
    http_method = "POST"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ action = "sweep" }))

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.start_request_uri
    }
  }

  depends_on = [
    google_project_service.required,
    google_cloud_run_v2_service_iam_member.scheduler_invokes_start,
    google_service_account_iam_member.deployer_acts_as,
  ]

  lifecycle {
    precondition {
      condition     = var.stale_after_sec >= 3 * var.check_state_duration_sec
      error_message = "stale_after_sec must be at least 3 x check_state_duration_sec: a run whose jobs are being checked must never look stale."
    }
  }
}
