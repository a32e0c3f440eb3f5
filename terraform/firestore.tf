# Engine state store. Skipped when the database already exists
# (create_firestore_database = false). `terraform destroy` abandons it
# instead of deleting workflow state; see docs/deploy.md.

resource "google_firestore_database" "main" {
  count = var.create_firestore_database ? 1 : 0

  project                           = var.project
  name                              = var.firestore_database
  location_id                       = coalesce(var.firestore_location, var.region)
  type                              = "FIRESTORE_NATIVE"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.required]
}

# `python main.py runs --cloud --status S`: runs of one status, newest first.
resource "google_firestore_index" "runs_by_status" {
  project    = var.project
  database   = var.firestore_database
  collection = "runs"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }

  depends_on = [google_firestore_database.main]
}

# The sweep: RUNNING runs by their last sign of progress, stalest first.
resource "google_firestore_index" "runs_by_progress" {
  project    = var.project
  database   = var.firestore_database
  collection = "runs"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "updated_at"
    order      = "ASCENDING"
  }

  depends_on = [google_firestore_database.main]
}
