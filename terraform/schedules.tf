# Schedules (var.schedules): one Cloud Scheduler job each, calling the HTTP start function
# on its cron with {"dag_path", "schedule": NAME, "concurrency", "params"} as the scheduler
# service account (an OIDC token; that account may invoke the start function and nothing
# else, iam.tf). Cloud Scheduler marks each call with X-CloudScheduler-ScheduleTime, which
# names the run (NAME-<tick, compact UTC>): a call delivered again, or retried, starts
# nothing new. docs/schedules.md: adding, pausing and backfilling a schedule, concurrency.

locals {
  # A parameter's value is text; one written as a JSON list ('["a","b"]') is sent as a list,
  # as `--param` reads it. No "params" key when there are none.
  schedule_bodies = { for name, s in var.schedules : name => merge(
    { dag_path = s.dag, schedule = name, concurrency = s.concurrency },
    { for key in(length(s.params) > 0 ? ["params"] : []) : key => {
      for k, v in s.params : k => jsondecode(startswith(trimspace(v), "[") ? v : jsonencode(v))
    } },
  ) }
}

resource "google_cloud_scheduler_job" "schedules" {
  for_each = var.schedules

  name        = "${var.name_prefix}-schedule-${each.key}"
  region      = var.region
  description = "Schedule ${each.key} of ${var.name_prefix}: starts its DAG on its cron (concurrency ${each.value.concurrency})."
  schedule    = each.value.cron
  time_zone   = each.value.time_zone
  paused      = each.value.paused

  # The start is idempotent per tick, so a failed or timed-out call is simply sent again:
  # up to 5 more times, 10 s apart at first, then doubling (10, 20, 40, 80, 160 s).
  attempt_deadline = "${max(15, var.function_timeout_sec)}s"
  retry_config {
    retry_count          = 5
    min_backoff_duration = "10s"
    max_backoff_duration = "300s"
    max_doublings        = 4
  }

  http_target {
    uri         = local.start_request_uri
    http_method = "POST"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode(local.schedule_bodies[each.key]))

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
}
