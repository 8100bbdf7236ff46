terraform {
  backend "local" {
    path = "__STATE_DIR__/hostile/probe.tfstate"
  }
}
