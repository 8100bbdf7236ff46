variable "name" {
  type = string
}

variable "environment" {
  type = string
}

variable "subnets" {
  type    = number
  default = 2
}

module "label" {
  source      = "../label"
  name        = var.name
  environment = var.environment
}

resource "terraform_data" "network" {
  input = { name = module.label.id }
}

resource "terraform_data" "subnet" {
  count = var.subnets
  input = { network = module.label.id, index = count.index }
}

output "id" {
  value = module.label.id
}
