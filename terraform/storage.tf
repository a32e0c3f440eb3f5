# DAG bucket (input) and the bucket holding the function source archives.

resource "google_storage_bucket" "dags" {
  # checkov:skip=CKV_GCP_62:Legacy per-bucket usage logs are not used; object access is audited through Cloud Audit Logs (Data Access logs for storage.googleapis.com, enabled at project or organization level).
  name                        = var.dag_bucket_name
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  # Keep overwritten/deleted DAG versions for 90 days, then drop them.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 90
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.required]
}

resource "google_storage_bucket" "function_source" {
  # checkov:skip=CKV_GCP_62:Legacy per-bucket usage logs are not used; object access is audited through Cloud Audit Logs (Data Access logs for storage.googleapis.com, enabled at project or organization level).
  name                        = local.source_bucket_name
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  # Archives are content-addressed and replaced on change; old generations
  # are only useful for a short rollback window.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.required]
}

# ---------------------------------------------------------------------------
# Function source archive: an explicit allow-list (main.py, requirements.txt
# and the workflow package), so tests, virtualenvs, caches, the terraform
# directory and the developer tools (devtools/: the local cloud and the mock
# Task Runner) can never end up in the upload.
# ---------------------------------------------------------------------------

locals {
  repo_root = abspath("${path.module}/..")

  # File types shipped from workflow/: the code, and the run pages' templates, styles,
  # scripts and the vendored layout library's licence. A static test fails if workflow/
  # contains any other file type, so nothing is silently left out.
  function_source_extensions = ["py", "pyi", "typed", "json", "yaml", "yml", "html", "css", "js", "txt"]

  # What only the command line uses (the CLI and the embedded runtime: SQLite, the
  # in-process bus, the run pages over SQLite; local DAG files; gcloud user credentials).
  # A static test fails if shipped code imports any of it. The run pages themselves
  # (workflow/ui) are shipped: the run_pages function (ui.tf) serves them.
  function_source_excluded = [
    "workflow/cli/**", "workflow/adapters/embedded/**", "workflow/bootstrap/embedded.py",
    "workflow/bootstrap/ui.py", "workflow/adapters/local_dags.py",
    "workflow/adapters/http/user_tokens.py",
  ]

  function_source_files = sort(concat(
    ["main.py", "requirements.txt"],
    tolist(setsubtract(
      fileset(local.repo_root, "workflow/**/*.{${join(",", local.function_source_extensions)}}"),
      flatten([for pattern in local.function_source_excluded : tolist(fileset(local.repo_root, pattern))]),
    )),
  ))
}

data "archive_file" "function_source" {
  type        = "zip"
  output_path = "${path.module}/.build/function-source.zip"

  dynamic "source" {
    for_each = local.function_source_files
    content {
      content  = file("${local.repo_root}/${source.value}")
      filename = source.value
    }
  }
}

resource "google_storage_bucket_object" "function_source" {
  # The md5 in the name makes every source change a new object, which in
  # turn changes build_config.source and redeploys the functions.
  name         = "function-source/${data.archive_file.function_source.output_md5}.zip"
  bucket       = google_storage_bucket.function_source.name
  source       = data.archive_file.function_source.output_path
  content_type = "application/zip"
}
