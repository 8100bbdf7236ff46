terraform {
  backend "local" {
    path = "__STATE_DIR__/failing/healthy.tfstate"
  }
}

resource "terraform_data" "ok" {
  input = "healthy"
}
