"""TF Serving warmup requests: built, checked and written into every export before it ships."""
