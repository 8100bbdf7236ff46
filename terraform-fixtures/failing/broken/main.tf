variable "port" {
  type    = string
  default = "eighty"
}

resource "terraform_data" "listener" {
  input = {
    port = tonumber(var.port)
  }
}
