# The sweep: Cloud Scheduler publishes SweepRuns on the engine topic on a cron
# schedule; on_engine_message reconciles the RUNNING runs that showed no
# progress for stale_after_sec (docs/cloud-runtime.md: The sweep).

locals {
  # workflow.model.messages.SweepRuns as the codec's JSON (schema version 1).
  sweep_message = {
    v           = 1
    type        = "SweepRuns"
    stale_after = var.stale_after_sec
    limit       = var.sweep_limit
  }
  scheduler_service_agent = "service-${data.google_project.this.number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
}

resource "google_cloud_scheduler_job" "sweep" {
  name        = "${var.name_prefix}-sweep"
  region      = var.region
  description = "Reconciles the ${var.name_prefix} runs with no progress for ${var.stale_after_sec} s."
  schedule    = var.sweep_schedule
  time_zone   = "Etc/UTC"

  pubsub_target {
    topic_name = google_pubsub_topic.engine.id
    data       = base64encode(jsonencode(local.sweep_message))
    attributes = { type = "SweepRuns" }
  }

  depends_on = [
    google_project_service.required,
    google_pubsub_topic_iam_member.scheduler_agent_engine_publisher,
  ]

  lifecycle {
    precondition {
      condition     = var.stale_after_sec >= 3 * var.check_state_duration_sec
      error_message = "stale_after_sec must be at least 3 x check_state_duration_sec: a run whose jobs are being checked must never look stale."
    }
  }
}
