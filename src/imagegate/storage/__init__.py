"""Where finished images live: local disk now, S3-compatible stores later."""
