terraform {
  backend "local" {
    path = "__STATE_DIR__/failing/broken.tfstate"
  }
}
