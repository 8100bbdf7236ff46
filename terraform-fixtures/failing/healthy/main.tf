resource "terraform_data" "ok" {
  input = "healthy"
}
