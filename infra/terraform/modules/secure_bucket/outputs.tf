output "id" {
  description = "Bucket name."
  value       = aws_s3_bucket.this.id
}

output "arn" {
  description = "Bucket ARN."
  value       = aws_s3_bucket.this.arn
}

output "url" {
  description = "s3:// URL of the bucket root."
  value       = "s3://${aws_s3_bucket.this.id}"
}
