terraform {
  backend "local" {
    path = "__STATE_DIR__/policy/terraform.tfstate"
  }
}
