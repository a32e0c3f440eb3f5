output "dag_bucket_name" {
  description = "Bucket to upload DAG files to (under dag_prefix)."
  value       = google_storage_bucket.dags.name
}

output "dag_prefix" {
  description = "Object prefix the engine reads DAG files from."
  value       = var.dag_prefix
}

output "source_bucket_name" {
  description = "Bucket holding the function source archives."
  value       = google_storage_bucket.function_source.name
}

output "start_topic_id" {
  description = "Topic users publish workflow start requests to."
  value       = google_pubsub_topic.start.id
}

output "engine_topic_id" {
  description = "Topic of the engine's own messages."
  value       = google_pubsub_topic.engine.id
}

output "dead_letter_topic_id" {
  description = "Dead-letter topic attached to the Eventarc subscriptions."
  value       = google_pubsub_topic.dead_letter.id
}

output "dead_letter_subscription_id" {
  description = "Pull subscription where dead-lettered events are parked."
  value       = google_pubsub_subscription.dead_letter.id
}

output "dead_letter_max_delivery_attempts" {
  description = "Delivery attempts before an event is dead-lettered (used by the attach-dead-letter build step)."
  value       = var.dead_letter_max_delivery_attempts
}

output "event_ack_deadline_seconds" {
  description = "Ack deadline the attach-dead-letter build step sets on the Eventarc subscriptions (Eventarc creates them with 10 s): the function timeout, so a push is not redelivered while its invocation still runs."
  value       = var.function_timeout_sec
}

output "function_names" {
  description = "Deployed function names, keyed by entry point."
  value       = { for k, f in local.functions : k => f.name }
}

output "eventarc_triggers" {
  description = "Eventarc trigger of each function, keyed by entry point (used by the attach-dead-letter build step)."
  value       = { for k, f in local.event_functions : k => f.event_trigger[0].trigger }
}

output "start_request_url" {
  description = "HTTPS URL of the on_start_request function (callers need roles/run.invoker, see start_request_invokers)."
  value       = local.functions["on_start_request"].url
}

output "functions_service_account_email" {
  description = "Runtime identity of the functions."
  value       = google_service_account.functions.email
}

output "trigger_service_account_email" {
  description = "Identity Eventarc uses to invoke the functions."
  value       = google_service_account.trigger.email
}

output "gcs_service_agent_email" {
  description = "Cloud Storage service agent (publishes GCS trigger notifications)."
  value       = local.gcs_service_agent
}

output "pubsub_service_agent_email" {
  description = "Pub/Sub service agent (push auth and dead-lettering)."
  value       = local.pubsub_service_agent
}

output "firestore_database" {
  description = "Firestore database used by the engine."
  value       = var.firestore_database
}

output "run_pages_service" {
  description = "Cloud Run service of the run pages (`gcloud run services proxy` takes it); null until ui_secret is set."
  value       = one(google_cloudfunctions2_function.ui[*].service_config[0].service)
}

output "run_pages_url" {
  description = "HTTPS URL of the run pages' service (viewers need roles/run.invoker, see ui_viewers); null until ui_secret is set."
  value       = one(google_cloudfunctions2_function.ui[*].service_config[0].uri)
}

output "ui_service_account_email" {
  description = "Runtime identity of the run pages (Firestore reads, run requests on the start topic); null until ui_secret is set."
  value       = one(google_service_account.ui[*].email)
}

output "schedule_jobs" {
  description = "The Cloud Scheduler job of each schedule (var.schedules), by schedule name: what `backfill --cloud --schedule NAME` reads."
  value       = { for name, job in google_cloud_scheduler_job.schedules : name => job.id }
}
