terraform {
  backend "local" {
    path = "__STATE_DIR__/multi-project/db.tfstate"
  }
}
