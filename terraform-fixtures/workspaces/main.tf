resource "terraform_data" "environment" {
  input = {
    workspace = terraform.workspace
    size      = terraform.workspace == "production" ? "large" : "small"
  }
}

output "workspace" {
  value = terraform.workspace
}
