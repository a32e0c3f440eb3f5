# The control route: cancel, rerun and resume requests about a run, apart from starting
# runs (docs/security.md). Only var.run_operators may publish on the control topic; they
# and var.run_control_invokers may invoke the HTTP control function; the start topic's
# publishers and the HTTP start function's invokers get nothing here, and nothing is
# public. Over HTTP the function also reads the caller's verified email: a caller may act
# on the runs it started over HTTP, and var.run_admins (WORKFLOW_RUN_ADMINS) on any run.
# On the topic a publisher cannot be told per message: the topic's IAM is the whole limit
# there, so run_operators may act on any run.
#
# The functions (on_control_message on this topic, on_control_request over HTTP) are
# entries of local.function_specs (functions.tf); the Eventarc subscription of
# on_control_message gets the dead-letter topic and ack deadline from the build's
# attach-dead-letter step, as every event function's does.

resource "google_pubsub_topic" "control" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest; CMEK needs a KMS key and service-agent grants this deployment does not manage. Set kms_key_name if policy requires CMEK.
  name = "${var.name_prefix}-run-control"

  depends_on = [google_project_service.required]
}

# Who may publish cancel, rerun and resume requests (the command line's --cloud, the run pages).
resource "google_pubsub_topic_iam_member" "run_operators_publish_control" {
  for_each = toset(var.run_operators)

  project = var.project
  topic   = google_pubsub_topic.control.name
  role    = "roles/pubsub.publisher"
  member  = each.value
}

# Who may call the HTTP control function: run.invoker on its Cloud Run service only, for
# var.run_operators and var.run_control_invokers (who may not publish on the topic). Each
# acts on the runs it started over HTTP, unless listed in var.run_admins.
resource "google_cloud_run_v2_service_iam_member" "control_request_invokers" {
  for_each = toset(concat(var.run_operators, var.run_control_invokers))

  project  = var.project
  location = local.functions["on_control_request"].location
  name     = local.functions["on_control_request"].service_config[0].service
  role     = "roles/run.invoker"
  member   = each.value
}

output "control_topic_id" {
  description = "Topic run_operators publish cancel, rerun and resume requests to."
  value       = google_pubsub_topic.control.id
}

output "control_request_url" {
  description = "HTTPS URL of the on_control_request function (callers need roles/run.invoker: run_operators and run_control_invokers)."
  value       = local.functions["on_control_request"].url
}
