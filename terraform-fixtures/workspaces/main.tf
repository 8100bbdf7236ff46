terraform {
  backend "local" {
    path          = "__STATE_DIR__/workspaces/default.tfstate"
    workspace_dir = "__STATE_DIR__/workspaces/workspaces.d"
  }
}

resource "terraform_data" "environment" {
  input = {
    workspace = terraform.workspace
    size      = terraform.workspace == "production" ? "large" : "small"
  }
}

output "workspace" {
  value = terraform.workspace
}
