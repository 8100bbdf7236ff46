terraform {
  backend "local" {
    path          = "__STATE_DIR__/workspaces/default.tfstate"
    workspace_dir = "__STATE_DIR__/workspaces/workspaces.d"
  }
}
