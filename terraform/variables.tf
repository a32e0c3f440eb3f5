# ---------------------------------------------------------------------------
# Project / placement
# ---------------------------------------------------------------------------

variable "project" {
  description = "ID of the Google Cloud project that hosts the workflow executor."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))
    error_message = "project must be a valid project ID (6-30 chars, lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  description = "Region for the functions, the Eventarc triggers and both buckets (e.g. europe-west1)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a single Google Cloud region such as europe-west1 (not a multi-region)."
  }
}

variable "deployer_service_account" {
  description = "Email of the service account that runs Terraform (the Cloud Build deployer). It gets roles/iam.serviceAccountUser on the runtime service accounts only (functions, triggers, scheduler, and the run pages' once deployed). Defaults to workflow-deployer@<project>.iam.gserviceaccount.com."
  type        = string
  default     = null

  validation {
    condition     = var.deployer_service_account == null || can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\\.iam\\.gserviceaccount\\.com$", var.deployer_service_account))
    error_message = "deployer_service_account must be a service account email such as workflow-deployer@my-project.iam.gserviceaccount.com."
  }
}

variable "name_prefix" {
  description = "Prefix for every resource name. Topics become <prefix>-start, <prefix>-engine and <prefix>-dead-letter."
  type        = string
  default     = "workflow"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-20 chars of lowercase letters, digits and hyphens, starting with a letter."
  }
}

# ---------------------------------------------------------------------------
# DAG bucket
# ---------------------------------------------------------------------------

variable "dag_bucket_name" {
  description = "Globally unique name of the bucket that receives DAG files (created by this configuration)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.dag_bucket_name)) && !startswith(var.dag_bucket_name, "goog")
    error_message = "dag_bucket_name must be 3-63 chars of lowercase letters, digits, '-' or '_' and must not start with 'goog'."
  }
}

variable "dag_prefix" {
  description = "Object prefix under which DAG files are read (WORKFLOW_DAG_PREFIX). Empty string or a path ending in '/'."
  type        = string
  default     = "dags/"

  validation {
    condition     = var.dag_prefix == "" || (endswith(var.dag_prefix, "/") && !startswith(var.dag_prefix, "/"))
    error_message = "dag_prefix must be empty or a relative path ending with '/', e.g. \"dags/\"."
  }
}

variable "dag_bucket_writers" {
  description = "IAM members (e.g. \"group:dag-authors@example.com\") allowed to upload DAG files (roles/storage.objectUser on the DAG bucket)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.dag_bucket_writers :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))
    ])
    error_message = "dag_bucket_writers entries must be IAM members like user:, group:, serviceAccount:, domain:; allUsers/allAuthenticatedUsers are not allowed."
  }
}

variable "dag_team_writers" {
  description = "Per-team DAG writers: a map from a team's folder name to IAM members who may create, overwrite and delete objects only under <dag_prefix><team>/ of the DAG bucket (an IAM condition), so one team cannot overwrite another's DAG, nor start a run as it. Prefer it to dag_bucket_writers, which may write anywhere in the bucket."
  type        = map(list(string))
  default     = {}

  validation {
    condition = alltrue([
      for team, members in var.dag_team_writers :
      can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", team)) && alltrue([
        for m in members : can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))
      ])
    ])
    error_message = "dag_team_writers keys must be folder names (a-z, 0-9, _ and -) and its members IAM members like user:, group:, serviceAccount:; allUsers/allAuthenticatedUsers are not allowed."
  }
}

variable "extra_dag_buckets" {
  description = "Names of existing buckets (besides the DAG bucket) the engine may read DAG files from (WORKFLOW_DAG_BUCKETS); the functions' service account gets roles/storage.objectViewer on each."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for b in var.extra_dag_buckets :
      can(regex("^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$", b)) && !startswith(b, "goog")
    ])
    error_message = "extra_dag_buckets entries must be bucket names (lowercase letters, digits, '-', '_', '.'; no gs:// prefix, no path)."
  }
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete the DAG and source buckets even if they still contain objects."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------

variable "start_publishers" {
  description = "IAM members allowed to publish start requests to the <prefix>-start topic (roles/pubsub.publisher on that topic)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.start_publishers :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))
    ])
    error_message = "start_publishers entries must be IAM members like user:, group:, serviceAccount:; allUsers/allAuthenticatedUsers are not allowed."
  }
}

variable "run_viewers" {
  description = "IAM members allowed to read runs and steps in Firestore, for `runs` and `status --cloud` (roles/datastore.viewer on the project). With run_operators, they can also cancel, rerun and resume runs."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.run_viewers :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))
    ])
    error_message = "run_viewers entries must be IAM members like user:, group:, serviceAccount:; allUsers/allAuthenticatedUsers are not allowed."
  }
}

variable "event_subscribers" {
  description = "IAM members allowed to attach subscriptions to the <prefix>-events topic of run-ended events (roles/pubsub.subscriber on that topic)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.event_subscribers :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))
    ])
    error_message = "event_subscribers entries must be IAM members like user:, group:, serviceAccount:; allUsers/allAuthenticatedUsers are not allowed."
  }
}

variable "max_inline_wait_sec" {
  description = "Longest a delayed engine message (a job check) is held in the function until it is due (WORKFLOW_MAX_INLINE_WAIT_SEC); one due later is handed back for redelivery. Holding costs instance time, a redelivery one more invocation: docs/cloud-runtime.md, Polling without a live process. Must stay below the subscriptions' ack deadline (function_timeout_sec, set by the build)."
  type        = number
  default     = 8

  validation {
    condition     = var.max_inline_wait_sec >= 0 && var.max_inline_wait_sec <= 500
    error_message = "max_inline_wait_sec must be between 0 and 500 (and below function_timeout_sec)."
  }
}

variable "start_request_invokers" {
  description = "IAM members (e.g. \"serviceAccount:scheduler@other-project.iam.gserviceaccount.com\") allowed to call the HTTP on_start_request function (roles/run.invoker on its Cloud Run service)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.start_request_invokers :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))
    ])
    error_message = "start_request_invokers entries must be IAM members like user:, group:, serviceAccount:; allUsers/allAuthenticatedUsers are not allowed."
  }
}

variable "dead_letter_max_delivery_attempts" {
  description = "Delivery attempts before Pub/Sub moves an event to the dead-letter topic. Applied to the Eventarc subscriptions by the post-deploy step of cloudbuild.yaml."
  type        = number
  default     = 10

  validation {
    condition     = var.dead_letter_max_delivery_attempts >= 5 && var.dead_letter_max_delivery_attempts <= 100
    error_message = "dead_letter_max_delivery_attempts must be between 5 and 100 (Pub/Sub limits)."
  }
}

variable "dead_letter_retention" {
  description = "How long dead-lettered messages are kept on the <prefix>-dead-letter subscription (Pub/Sub duration, max 604800s)."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.dead_letter_retention)) && try(tonumber(trimsuffix(var.dead_letter_retention, "s")) >= 600 && tonumber(trimsuffix(var.dead_letter_retention, "s")) <= 604800, false)
    error_message = "dead_letter_retention must be a duration in seconds between 600s and 604800s, e.g. \"604800s\"."
  }
}

# ---------------------------------------------------------------------------
# Task Runner (existing Cloud Run service, not managed here)
# ---------------------------------------------------------------------------

variable "task_runner_url" {
  description = "Default Task Runner base URL (WORKFLOW_TR_URL), e.g. https://task-runner-abc123-ew.a.run.app."
  type        = string

  validation {
    condition     = can(regex("^https://[A-Za-z0-9.-]+(:[0-9]+)?(/.*)?$", var.task_runner_url))
    error_message = "task_runner_url must be an https:// URL."
  }
}

variable "allowed_task_runner_origins" {
  description = "Extra Task Runner origins (https://host[:port], no path) a start request may name (WORKFLOW_ALLOWED_TR_ORIGINS). The origin of task_runner_url is always allowed; empty means only that one."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for o in var.allowed_task_runner_origins :
      can(regex("^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", o))
    ])
    error_message = "allowed_task_runner_origins entries must be https origins like https://tr.example.com or https://tr.example.com:8443, without path or trailing slash."
  }
}

variable "task_runner_service" {
  description = "Name of the Task Runner Cloud Run service; the functions' service account gets roles/run.invoker on it."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$", var.task_runner_service))
    error_message = "task_runner_service must be a Cloud Run service name (lowercase letters, digits, hyphens; max 49 chars)."
  }
}

variable "task_runner_region" {
  description = "Region of the Task Runner Cloud Run service. Defaults to var.region."
  type        = string
  default     = null

  validation {
    condition     = var.task_runner_region == null || can(regex("^[a-z]+-[a-z]+[0-9]+$", var.task_runner_region))
    error_message = "task_runner_region must be a region such as europe-west1."
  }
}

variable "task_runner_project" {
  description = "Project of the Task Runner Cloud Run service. Defaults to var.project."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Engine behaviour (passed to the functions as environment variables)
# ---------------------------------------------------------------------------

variable "check_state_duration_sec" {
  description = "Interval in seconds between two polls of a running step (WORKFLOW_CHECK_STATE_DURATION_SEC)."
  type        = number
  default     = 30

  validation {
    condition     = var.check_state_duration_sec > 0
    error_message = "check_state_duration_sec must be > 0."
  }
}

variable "stale_after_sec" {
  description = "A RUNNING run with no sign of progress (a step's end or a running job's heartbeat) for this long is reconciled by the sweep (WORKFLOW_STALE_AFTER_SEC, and the stale_after of the scheduled SweepRuns). Running jobs' checks write a heartbeat about three times in this span, so it must be at least 3 x check_state_duration_sec."
  type        = number
  default     = 900

  validation {
    condition     = var.stale_after_sec > 0
    error_message = "stale_after_sec must be > 0 (and at least 3 x check_state_duration_sec)."
  }
}

variable "sweep_schedule" {
  description = "Cron schedule (UTC) of the Cloud Scheduler job publishing the sweep (SweepRuns) on the engine topic."
  type        = string
  default     = "*/5 * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.sweep_schedule))) == 5
    error_message = "sweep_schedule must be a cron expression of five fields, e.g. \"*/5 * * * *\"."
  }
}

variable "sweep_limit" {
  description = "The most runs one sweep reconciles, stalest first (WORKFLOW_SWEEP_LIMIT of the functions)."
  type        = number
  default     = 100

  validation {
    condition     = var.sweep_limit >= 1 && var.sweep_limit <= 1000 && floor(var.sweep_limit) == var.sweep_limit
    error_message = "sweep_limit must be a whole number between 1 and 1000."
  }
}

variable "schedules" {
  description = "Schedules: a map from a schedule's name (which starts its runs' ids: NAME-<tick, compact UTC>) to {dag: gs:// path of a DAG file in a DAG bucket, cron: five fields, time_zone: a tz database name (default UTC), params: parameter values as text (a list as JSON text, '[\"a\",\"b\"]'), concurrency: forbid (default: a tick while the schedule's previous run is RUNNING starts nothing and is recorded SKIPPED) | allow | replace (cancel that run, then start), paused (default false)}. Each is one Cloud Scheduler job calling the HTTP start function as the scheduler service account (docs/schedules.md)."
  type = map(object({
    dag         = string
    cron        = string
    time_zone   = optional(string, "UTC")
    params      = optional(map(string), {})
    concurrency = optional(string, "forbid")
    paused      = optional(bool, false)
  }))
  default = {}

  validation {
    condition     = alltrue([for name, s in var.schedules : can(regex("^[a-z0-9][a-z0-9_-]{0,62}$", name))])
    error_message = "schedules keys (a schedule's name, which starts its runs' ids) must be 1-63 lowercase letters, digits, '_' or '-', starting with a letter or digit."
  }

  validation {
    condition     = alltrue([for s in values(var.schedules) : can(regex("^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/.+\\.(yaml|yml|json)$", s.dag))])
    error_message = "schedules[*].dag must be the gs://BUCKET/OBJECT path of a DAG file (.yaml, .yml or .json) in a DAG bucket (dag_bucket_name or extra_dag_buckets)."
  }

  validation {
    condition     = alltrue([for s in values(var.schedules) : can(regex("^[^ ]+( +[^ ]+){4}$", trimspace(s.cron)))])
    error_message = "schedules[*].cron must be a cron expression of five fields, e.g. \"0 0 * * *\" (Cloud Scheduler's unix-cron format)."
  }

  validation {
    condition     = alltrue([for s in values(var.schedules) : contains(["forbid", "allow", "replace"], s.concurrency)])
    error_message = "schedules[*].concurrency must be forbid, allow or replace."
  }

  validation {
    condition     = alltrue([for s in values(var.schedules) : can(regex("^[A-Za-z][A-Za-z0-9_+/-]{0,63}$", s.time_zone))])
    error_message = "schedules[*].time_zone must be a tz database name such as UTC or America/New_York."
  }
}

variable "step_timeout_sec" {
  description = "Maximum run time of one step before it is marked failed (WORKFLOW_STEP_TIMEOUT_SEC)."
  type        = number
  default     = 3600

  validation {
    condition     = var.step_timeout_sec > 0
    error_message = "step_timeout_sec must be > 0."
  }
}

# ---------------------------------------------------------------------------
# Firestore
# ---------------------------------------------------------------------------

variable "create_firestore_database" {
  description = "Create the Firestore (native mode) database. Set false if it already exists in the project."
  type        = bool
  default     = true
}

variable "firestore_database" {
  description = "Firestore database ID used by the engine (WORKFLOW_FIRESTORE_DATABASE)."
  type        = string
  default     = "(default)"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be \"(default)\" or 4-63 chars of lowercase letters, digits and hyphens."
  }
}

variable "firestore_location" {
  description = "Firestore location (a region such as europe-west1 or a multi-region such as eur3). Defaults to var.region. Only used when create_firestore_database is true."
  type        = string
  default     = null
}

# ---------------------------------------------------------------------------
# Functions sizing
# ---------------------------------------------------------------------------

variable "function_max_instances" {
  description = "Maximum number of instances per function."
  type        = number
  default     = 10

  validation {
    condition     = var.function_max_instances >= 1 && var.function_max_instances <= 1000
    error_message = "function_max_instances must be between 1 and 1000."
  }
}

variable "function_memory" {
  description = "Memory per function instance (Cloud Functions syntax, e.g. 256M, 512M, 1G)."
  type        = string
  default     = "512M"

  validation {
    condition     = can(regex("^[0-9]+(M|Mi|G|Gi)$", var.function_memory))
    error_message = "function_memory must look like 256M, 512Mi, 1G or 2Gi."
  }
}

variable "function_timeout_sec" {
  description = "Timeout of one function invocation. Event-driven functions allow at most 540 s. The attach-dead-letter build step also sets it as the ack deadline of the Eventarc subscriptions, which Eventarc creates with 10 s."
  type        = number
  default     = 300

  validation {
    condition     = var.function_timeout_sec >= 10 && var.function_timeout_sec <= 540
    error_message = "function_timeout_sec must be between 10 and 540."
  }
}

variable "source_bucket_name" {
  description = "Name of the bucket holding the function source archives. Defaults to <project>-<name_prefix>-fn-source."
  type        = string
  default     = null

  validation {
    condition     = var.source_bucket_name == null || can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.source_bucket_name))
    error_message = "source_bucket_name must be 3-63 chars of lowercase letters, digits, '-' or '_'."
  }
}

variable "token_key_version" {
  description = "The version of token_key_secret the functions read, pinned (not \"latest\"), so that a new version reaches the functions only with a deploy. A version may hold several Fernet keys separated by commas, newest first: see docs/security.md, rotating the token key."
  type        = string
  default     = "1"

  validation {
    condition     = can(regex("^[1-9][0-9]*$", var.token_key_version))
    error_message = "token_key_version must be a version number of the secret (1, 2, ...), not latest."
  }
}

variable "token_key_secret" {
  description = "Optional id of an existing Secret Manager secret (in this project) holding a Fernet key. When set, start messages may carry tr_auth_jwt, which the functions keep only sealed with this key; when empty, such requests are recorded INVALID and the functions call the Task Runner with their own identity."
  type        = string
  default     = ""

  validation {
    condition     = var.token_key_secret == "" || can(regex("^[A-Za-z0-9_-]{1,255}$", var.token_key_secret))
    error_message = "token_key_secret must be empty or a Secret Manager secret id (letters, digits, _ and -)."
  }
}

# ---------------------------------------------------------------------------
# Run pages (terraform/ui.tf)
# ---------------------------------------------------------------------------

variable "ui_secret" {
  description = "Id of an existing Secret Manager secret (in this project) holding the key of the run pages' action tokens (WORKFLOW_UI_SECRET, a long random string), the same on every instance. The run pages (the run_pages function) are deployed only when it is set."
  type        = string
  default     = ""

  validation {
    condition     = var.ui_secret == "" || can(regex("^[A-Za-z0-9_-]{1,255}$", var.ui_secret))
    error_message = "ui_secret must be empty or a Secret Manager secret id (letters, digits, _ and -)."
  }
}

variable "ui_secret_version" {
  description = "The version of ui_secret the run pages read, pinned (not \"latest\"), so that a new key reaches them only with a deploy (pages open then ask for a reload before acting)."
  type        = string
  default     = "1"

  validation {
    condition     = can(regex("^[1-9][0-9]*$", var.ui_secret_version))
    error_message = "ui_secret_version must be a version number of the secret (1, 2, ...), not latest."
  }
}

variable "ui_viewers" {
  description = "IAM members (e.g. \"group:workflow-users@example.com\") who may open the run pages: roles/run.invoker on the run_pages function's Cloud Run service only. Behind IAP, IAP's service agent (docs/deploy.md). The pages read every run and may cancel, rerun and resume them."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.ui_viewers :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))
    ])
    error_message = "ui_viewers entries must be IAM members like user:, group:, serviceAccount:; allUsers/allAuthenticatedUsers are not allowed."
  }
}

variable "ui_origins" {
  description = "Origins besides the pages' own that an action (a POST) may come from (WORKFLOW_UI_ORIGINS): where `gcloud run services proxy` serves the pages, since it forwards them under the service's host name. The default is its default address."
  type        = list(string)
  default     = ["http://localhost:8080"]

  validation {
    condition = alltrue([
      for o in var.ui_origins :
      can(regex("^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", o))
    ])
    error_message = "ui_origins entries must be origins like http://localhost:8080 or https://pages.example.com, without path or trailing slash."
  }
}

variable "ui_ingress" {
  description = "Ingress of the run pages' function: ALLOW_ALL (reached with `gcloud run services proxy`, or a load balancer) or ALLOW_INTERNAL_AND_GCLB (only through a load balancer, with IAP). Every request needs roles/run.invoker either way."
  type        = string
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_AND_GCLB"], var.ui_ingress)
    error_message = "ui_ingress must be ALLOW_ALL or ALLOW_INTERNAL_AND_GCLB."
  }
}

# ---------------------------------------------------------------------------
# Run control: cancel, rerun and resume (terraform/control.tf)
# ---------------------------------------------------------------------------

variable "run_operators" {
  description = "IAM members allowed to send cancel, rerun and resume requests about any run: roles/pubsub.publisher on the <prefix>-run-control topic (a publisher cannot be told per message, so on the topic they may act on any run) and roles/run.invoker on the HTTP on_control_request function (where each acts on the runs it started, unless listed in run_admins)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.run_operators :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))
    ])
    error_message = "run_operators entries must be IAM members like user:, group:, serviceAccount:; allUsers/allAuthenticatedUsers are not allowed."
  }
}

variable "run_control_invokers" {
  description = "IAM members allowed to call the HTTP on_control_request function only (roles/run.invoker on it), not to publish on the control topic: each may cancel, rerun and resume the runs it started over on_start_request (any run if listed in run_admins)."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for m in var.run_control_invokers :
      can(regex("^(user|group|serviceAccount|domain|principal|principalSet):.+$", m))
    ])
    error_message = "run_control_invokers entries must be IAM members like user:, group:, serviceAccount:; allUsers/allAuthenticatedUsers are not allowed."
  }
}

variable "run_admins" {
  description = "Emails (of users or service accounts, without user: or serviceAccount:) that may cancel, rerun and resume any run over HTTP (WORKFLOW_RUN_ADMINS); other callers of on_control_request only the runs they started. They must also be run_operators or run_control_invokers to reach the function."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.run_admins : can(regex("^[^@:,\\s]+@[^@:,\\s]+$", e))])
    error_message = "run_admins entries must be email addresses (ops@example.com), without user: or serviceAccount: and without commas."
  }
}
