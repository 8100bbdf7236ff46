terraform {
  backend "local" {
    path = "__STATE_DIR__/failing/broken.tfstate"
  }
}

variable "port" {
  type    = string
  default = "eighty"
}

resource "terraform_data" "listener" {
  input = {
    port = tonumber(var.port)
  }
}
