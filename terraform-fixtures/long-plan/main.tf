# Enough resources that the rendered plan is longer than one GitHub comment (65,536 characters).
resource "terraform_data" "server" {
  count = 240

  input = {
    name        = format("server-%03d", count.index)
    description = "A server with a long description so that every resource takes a few lines of plan output"
    zone        = element(["eu-west-1a", "eu-west-1b", "eu-west-1c"], count.index % 3)
  }
}
