"""What the Cloud Functions admit: a start request checked, the run started or recorded
INVALID with its report (docs/cloud-runtime.md, docs/security.md); a cancel, rerun or resume
request checked against its run. A caller's token never appears in a report or a log line."""
