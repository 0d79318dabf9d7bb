"""Where finished images live: local disk by default, or an S3-compatible bucket."""
