terraform {
  backend "local" {
    path = "__STATE_DIR__/remote-modules/service.tfstate"
  }
}
