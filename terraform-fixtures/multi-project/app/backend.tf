terraform {
  backend "local" {
    path = "__STATE_DIR__/multi-project/app.tfstate"
  }
}
