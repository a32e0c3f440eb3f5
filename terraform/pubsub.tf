# Topics: start requests (published by users), engine messages (published
# by the functions themselves), run-ended events (read by users) and the
# dead-letter topic.

resource "google_pubsub_topic" "start" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest; CMEK needs a KMS key and service-agent grants this deployment does not manage. Set kms_key_name if policy requires CMEK.
  name = "${var.name_prefix}-start"

  depends_on = [google_project_service.required]
}

resource "google_pubsub_topic" "engine" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest; CMEK needs a KMS key and service-agent grants this deployment does not manage. Set kms_key_name if policy requires CMEK.
  name = "${var.name_prefix}-engine"

  depends_on = [google_project_service.required]
}

# A run's end (SUCCEEDED, FAILED, CANCELLED, INVALID), once per end, as JSON
# (docs/cloud-runtime.md: Run-ended events). Subscribers bring their own subscriptions.
resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest; CMEK needs a KMS key and service-agent grants this deployment does not manage. Set kms_key_name if policy requires CMEK.
  name = "${var.name_prefix}-events"

  depends_on = [google_project_service.required]
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest; CMEK needs a KMS key and service-agent grants this deployment does not manage. Set kms_key_name if policy requires CMEK.
  name = "${var.name_prefix}-dead-letter"

  depends_on = [google_project_service.required]
}

# A topic without subscription drops what is published to it, so dead
# letters are parked on a pull subscription for inspection / replay.
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.name_prefix}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = "" # never expire
  }
}
