terraform {
  backend "local" {
    path = "__STATE_DIR__/long-plan/terraform.tfstate"
  }
}
