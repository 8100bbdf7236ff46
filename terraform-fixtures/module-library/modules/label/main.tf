variable "name" {
  type = string
}

variable "environment" {
  type = string
}

output "id" {
  value = "${var.environment}-${var.name}"
}
