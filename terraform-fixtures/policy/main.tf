# Resources shaped like the ones policies guard (buckets with an ACL, instances with a size),
# modelled with terraform_data so that planning needs no provider download.
variable "bucket_acl" {
  type    = string
  default = "private"
}

variable "instance_size" {
  type    = string
  default = "small"
}

variable "instances" {
  type    = number
  default = 2
}

resource "terraform_data" "bucket" {
  input = {
    kind = "bucket"
    name = "assets"
    acl  = var.bucket_acl
  }
}

resource "terraform_data" "instance" {
  count = var.instances

  input = {
    kind = "instance"
    name = format("web-%03d", count.index)
    size = var.instance_size
    zone = element(["eu-west-1a", "eu-west-1b", "eu-west-1c"], count.index % 3)
    tags = { team = "platform", env = "staging" }
  }
}

output "bucket_acl" {
  value = terraform_data.bucket.output.acl
}
